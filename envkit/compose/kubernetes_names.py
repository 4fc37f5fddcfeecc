"""Names and labels of exported Kubernetes objects."""

from __future__ import annotations

import re

from envkit.spec.secret import Secret
from envkit.spec.stack import Stack

NAME_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"


def k8s_name(name: str) -> str:
    """``name`` as a DNS-1035 label (Service names): lowercase letters, digits and ``-``,
    starting with a letter, at most 63 characters."""
    text = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not text or not text[0].isalpha():
        text = f"s-{text}".rstrip("-")
    return text[:63].rstrip("-")


def secret_name(stack: Stack, secret: Secret) -> str:
    """The name of the Kubernetes Secret holding ``secret``: ``STACK-SECRET``."""
    return k8s_name(f"{stack.name}-{secret.name}")
