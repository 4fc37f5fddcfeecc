"""Short labels of the fake kernel's calls, so that an expected order reads as a list of
steps (``"no_new_privs"``, ``"seccomp filter"``, ``"execve /app"``)."""

from __future__ import annotations

import signal

from envkit.host.prctl import (
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAPBSET_DROP,
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    PR_SET_SECCOMP,
    SECCOMP_MODE_FILTER,
)
from tests.unit.runtime.fake_kernel import Call, FakeKernel


def steps(kernel: FakeKernel) -> list[str]:
    """The calls as short labels, the bounding-set drops as one step."""
    labels: list[str] = []
    for call in kernel.calls:
        label = label_of(call)
        if label != "drop bounding capabilities" or labels[-1:] != [label]:
            labels.append(label)
    return labels


_PRCTL = {
    (PR_SET_DUMPABLE, 0): "not dumpable",
    (PR_SET_PDEATHSIG, signal.SIGKILL): "die with the parent",
    (PR_SET_NO_NEW_PRIVS, 1): "no_new_privs",
    (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL): "clear ambient capabilities",
}


def label_of(call: Call) -> str:
    """A short label of one call: prctl options by meaning, execve by path."""
    name, args = call
    if name == "prctl":
        if args[0] == PR_CAPBSET_DROP:
            return "drop bounding capabilities"
        if args[0] == PR_SET_SECCOMP:
            return "seccomp filter" if args[1] == SECCOMP_MODE_FILTER else "seccomp ?"
        return _PRCTL.get((int(args[0]), int(args[1])), f"prctl {args}")  # type: ignore[call-overload]
    if name == "capset":
        return "capset"
    if name == "execve":
        return f"execve {args[0]}"
    if name == "close_all_but":
        return f"close fds but {sorted(args[0])}"  # type: ignore[call-overload]
    return f"{name} {' '.join(map(str, args))}".strip()
