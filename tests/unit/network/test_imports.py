"""What importing the network costs: no pyroute2 in a command (only the network daemon,
envkit.network.netd, speaks netlink), and nothing on a warm networked start that only the
holder's set-up needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.fresh_imports import loaded_after


@pytest.mark.parametrize(
    "modules",
    [
        "envkit.network",
        "envkit.network.attach",
        "envkit.container.start, envkit.network.sandbox, envkit.network.control",
    ],
)
def test_importing_the_network_does_not_import_pyroute2(modules: str) -> None:
    code = f"import sys, {modules}; print('pyroute2' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_planning_an_attachment_does_not_import_pyroute2(tmp_path: Path) -> None:
    code = (
        "from envkit.network.attach import Attachment\n"
        "a = Attachment.plan('web', [], published=['0:80'])\n"
        "assert a is not None and a.reservation is not None\n"
        "a.close_ports()\n"
    )
    assert loaded_after(code, tmp_path, ["pyroute2"]) == []


#: Loaded only where they are used: iptables rules (holder set-up), a dropped endpoint.
NOT_ON_A_WARM_START = (
    "pyroute2",
    "subprocess",
    "shutil",
    "tempfile",
    "logging",
    "pickle",
    "typing",
    "dataclasses",
)


def test_planning_and_connecting_code_loads_nothing_it_does_not_use(tmp_path: Path) -> None:
    code = (
        "import envkit.network, envkit.network.attach, envkit.network.endpoints\n"
        "from envkit.network.attach import Attachment\n"
        "a = Attachment.plan('web', [], published=['0:80'])\n"
        "assert a is not None\n"
        "a.close_ports()\n"
    )
    assert loaded_after(code, tmp_path, NOT_ON_A_WARM_START) == []


#: The commands' side of the network, and what only a failure or the worker needs: a
#: running network daemon holds none of it (each module is memory for its whole life).
NOT_IN_THE_DAEMON = (
    "envkit.network.containers",
    "envkit.network.endpoints",
    "envkit.network.networks",
    "envkit.network.holder",
    "pyroute2",
    "typing",
    "traceback",
    "importlib.util",
)


def test_the_network_daemon_loads_only_what_it_serves_from(tmp_path: Path) -> None:
    assert loaded_after("import envkit.network.netd", tmp_path, NOT_IN_THE_DAEMON) == []


def test_the_network_package_still_gives_every_public_name() -> None:
    import envkit.network

    for name in envkit.network.__all__:
        assert getattr(envkit.network, name) is not None
    with pytest.raises(AttributeError):
        getattr(envkit.network, "no_such_name")  # noqa: B009
