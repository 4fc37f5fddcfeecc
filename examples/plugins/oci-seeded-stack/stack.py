"""A stack whose volume starts with data seeded from a registry (envkit-oci-volumes).

``SEED_REPO`` names the repository holding the snapshot (``127.0.0.1:5000/ci/seed``);
``SEED_TAG`` the snapshot (default ``v1``). Run with ``envkit up -d`` (see README.md).
"""

import os

from envkit import Service, Stack, Volume

seed = Volume(
    "seed",
    backend="oci",
    options={"repository": os.environ["SEED_REPO"], "seed": os.environ.get("SEED_TAG", "v1")},
)
reader = Service(
    "reader",
    image="busybox:1",
    command=["sh", "-c", "cat /seed/hello.txt && exec sleep 3600"],
    volumes={seed: "/seed"},
)
stack = Stack("seeded", services=[reader])
