"""Run by tests/unit/host/test_detached.py through ``spawn_module``: reports on fd 3
(as JSON) what the daemon it became can see of its start, then echoes its stdin."""

import json
import os
import sys


def main() -> None:
    fds = sorted(int(n) for n in os.listdir("/proc/self/fd"))
    report = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "sid": os.getsid(0),
        "cwd": os.getcwd(),
        "fds": fds,
        "stdout": os.readlink("/proc/self/fd/1"),
        "argv": sys.argv[1:],
        "stdin": sys.stdin.read(),
    }
    os.write(3, json.dumps(report).encode())


if __name__ == "__main__":
    main()
