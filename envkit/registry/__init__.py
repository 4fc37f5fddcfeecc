"""OCI distribution client: pull and push images between a registry and the local store.

:func:`pull` and :func:`push` are the entry points (``envkit pull`` / ``envkit push`` call
them); :mod:`envkit.registry.credentials` keeps what ``envkit login`` stores. Everything
speaks the OCI distribution spec over keep-alive HTTP (:mod:`envkit.registry.transport`):
bearer tokens and basic auth, OCI and docker schema 2 manifests and indexes, resumable
and verified blob transfers.
"""

from __future__ import annotations

from envkit.registry.pull import pull
from envkit.registry.push import push

__all__ = ["pull", "push"]
