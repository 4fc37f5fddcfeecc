"""The run options, typed once: ``RunKwargs``/``ExecKwargs`` (the TypedDicts a type
checker reads) and ``RUN_KEYWORDS``/``EXEC_KEYWORDS`` (what ``envkit.run``,
``RunOptions`` and ``Container.exec`` check at run time) agree key for key, each key is
documented, a typo'd keyword raises Python's ``TypeError`` naming it before anything is
made, and every key reaches ``RunOptions``."""

from __future__ import annotations

import ast
import inspect
import io
from pathlib import Path

import pytest

import envkit
from envkit.container import run_kwargs
from envkit.container import start as start_module
from envkit.container.handle import Container
from envkit.container.options import EXEC_KEYWORDS, RUN_KEYWORDS, RunOptions
from envkit.container.run_kwargs import ExecKwargs, RunKwargs
from envkit.errors import SpecError
from envkit.runtime.cgroups import Limits
from envkit.runtime.config import BindMount, TmpfsMount
from envkit.stack.api import RunningService
from tests.unit.fresh_imports import loaded_after

ROOT = Path(__file__).resolve().parents[3]

#: A value of every key (what a caller may pass; memory etc. as the CLI gives them).
EVERY_KEY: RunKwargs = {
    "env": {"A": "1"},
    "workdir": "/srv",
    "user": "1000:1000",
    "stdio": (0, 1, 2),
    "entrypoint": ["/bin/sh", "-c"],
    "volumes": ["/tmp:/data:ro", BindMount("/etc", "/host-etc", readonly=True)],
    "tmpfs": ["/run"],
    "hostname": "box",
    "read_only": True,
    "name": "web",
    "detach": True,
    "remove": True,
    "memory": "256m",
    "cpus": 0.5,
    "pids_limit": 100,
    "network": ["front", "back"],
    "network_aliases": ["www"],
    "ports": {0: 80},
    "init": True,
    "seccomp": False,
    "cap_add": ["NET_ADMIN"],
    "cap_drop": ["CHOWN"],
    "pull": "never",
    "pull_output": io.StringIO(),
    "stop_signal": "SIGQUIT",
    "shm_size": 1 << 30,  # kept as bytes ("1g" is parsed to them)
    "ulimits": {"nofile": (1024, 2048)},  # kept as ((name, soft, hard), ...)
    "extra_hosts": ["db:10.0.0.5"],  # kept as ((name, address), ...)
    "sysctls": {"net.core.somaxconn": 1024},  # kept as ((name, value), ...)
}

#: Attributes of RunOptions that are not keywords of envkit.run, and why.
NOT_KEYWORDS = {
    "cmd": "run's second positional argument",
    "tty": "the CLI's -t only: it attaches the caller's terminal to the container's pty",
    "limits": "derived from memory, cpus and pids_limit (parsed once, before anything is made)",
    "networks": "derived from network (a name or a list) as a list",
}


def test_the_typeddicts_and_the_runtime_tuples_agree_key_for_key() -> None:
    assert RunKwargs.__optional_keys__ == frozenset(RUN_KEYWORDS)
    assert RunKwargs.__required_keys__ == frozenset()
    assert ExecKwargs.__optional_keys__ == frozenset(EXEC_KEYWORDS)
    assert len(set(RUN_KEYWORDS)) == len(RUN_KEYWORDS) == 29
    assert set(EVERY_KEY) == set(RUN_KEYWORDS)


def test_run_options_keeps_every_keyword_as_an_attribute_of_its_name() -> None:
    slots = set(RunOptions.__slots__)
    assert slots - set(RUN_KEYWORDS) == set(NOT_KEYWORDS)
    assert set(RUN_KEYWORDS) <= slots


def test_every_key_is_documented() -> None:
    """Each key of the TypedDicts has a docstring (the string right after it)."""
    tree = ast.parse(inspect.getsource(run_kwargs))
    documented: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for field, after in zip(node.body, [*node.body[1:], None], strict=True):
                if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name):
                    assert isinstance(after, ast.Expr), f"{field.target.id}: no docstring"
                    assert isinstance(after.value, ast.Constant)
                    assert isinstance(after.value.value, str)
                    documented[field.target.id] = after.value.value
    assert set(documented) == set(RUN_KEYWORDS)
    assert all(len(text) > 20 for text in documented.values())


def test_the_reference_names_every_key() -> None:
    text = (ROOT / "docs/reference/run.md").read_text()
    api = text[text.index("## Python API") : text.index("## Command line")]
    assert [key for key in RUN_KEYWORDS if f"`{key}`" not in api] == []


def test_a_typo_raises_typeerror_naming_it_before_anything_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def prepare(*args: object) -> None:
        raise AssertionError("prepare ran")

    monkeypatch.setattr(start_module, "prepare", prepare)
    with pytest.raises(TypeError) as info:
        envkit.run("busybox:1", ["true"], rmove=True)  # type: ignore[call-arg]
    assert str(info.value) == "run() got an unexpected keyword argument 'rmove'"
    # tty is RunOptions' (the CLI's), not envkit.run's
    with pytest.raises(TypeError, match="unexpected keyword argument 'tty'"):
        envkit.run("busybox:1", tty=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError) as info:
        RunOptions(["true"], limits=None)  # type: ignore[call-arg]
    assert str(info.value) == "RunOptions() got an unexpected keyword argument 'limits'"


def test_exec_checks_its_keywords_before_touching_the_container(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    container = object.__new__(Container)  # no record: the check comes first
    with pytest.raises(TypeError) as info:
        container.exec(["true"], workir="/tmp")  # type: ignore[call-arg]
    assert str(info.value) == "Container.exec() got an unexpected keyword argument 'workir'"
    with pytest.raises(TypeError, match="unexpected keyword argument 'detach'"):
        container.exec(["true"], detach=True)  # type: ignore[call-arg]
    monkeypatch.setattr(RunningService, "container", lambda self: container)
    with pytest.raises(TypeError, match="unexpected keyword argument 'usr'"):
        RunningService("s", "db").exec(["true"], usr="root")  # type: ignore[call-arg]


def test_envkit_run_accepts_every_key_and_passes_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[RunOptions] = []

    class Stop(Exception):
        pass

    def prepare(image: object, options: RunOptions) -> None:
        seen.append(options)
        raise Stop

    monkeypatch.setattr(start_module, "prepare", prepare)
    with pytest.raises(Stop):
        envkit.run("busybox:1", ["echo", "hi"], **EVERY_KEY)
    (options,) = seen
    assert options.cmd == ["echo", "hi"]
    for key, value in EVERY_KEY.items():
        if key not in ("ulimits", "extra_hosts", "sysctls"):
            assert getattr(options, key) == value, key
    assert options.ulimits == (("nofile", 1024, 2048),)
    assert options.extra_hosts == (("db", "10.0.0.5"),)
    assert options.sysctls == (("net.core.somaxconn", "1024"),)
    assert options.tty is False
    assert options.limits == Limits.parse("256m", "0.5", "100")
    assert options.networks == ["front", "back"]


def test_shm_size_and_tmpfs_options_as_docker_takes_them() -> None:
    assert RunOptions(shm_size="1g").shm_size == 1 << 30
    assert RunOptions().shm_size == 0  # docker's 64m
    with pytest.raises(SpecError):
        RunOptions(shm_size="lots")
    assert TmpfsMount.parse("/run:rw,size=1m,mode=1770,nosuid") == TmpfsMount(
        "/run", 1 << 20, 0o1770
    )
    assert TmpfsMount.parse("/run") == TmpfsMount("/run")
    for bad in ("/run:ro", "/run:noexec", "/run:mode=999", "/run:size=lots"):
        with pytest.raises(SpecError):
            TmpfsMount.parse(bad)


def test_the_defaults() -> None:
    options = RunOptions()
    assert (options.cmd, options.entrypoint, options.env, options.stdio) == (None, None, {}, None)
    assert (options.volumes, options.tmpfs, options.ports, options.cap_add) == ((), (), (), ())
    assert (options.detach, options.remove, options.read_only, options.init) == (
        False,
        False,
        False,
        False,
    )
    assert (options.seccomp, options.pull, options.pull_output) == (True, "missing", None)
    assert (options.limits, options.networks) == (None, [])


def test_derived_limits_and_networks() -> None:
    assert RunOptions(network="net").networks == ["net"]
    assert RunOptions(network=("a", "b")).networks == ["a", "b"]
    limits = RunOptions(memory=256 << 20, pids_limit="-1").limits
    assert limits is not None and limits.memory == 256 << 20
    assert RunOptions(cpus="1.5").limits == Limits.parse(None, "1.5", None)
    env = {"A": "1"}
    options = RunOptions(env=env)
    env["B"] = "2"  # the options keep their own copy
    assert options.env == {"A": "1"}


@pytest.mark.parametrize(
    ("options", "where"),
    [({"memory": "1x"}, "--memory"), ({"pull": "sometimes"}, "pull")],
)
def test_bad_values_fail_when_the_options_are_made(options: RunKwargs, where: str) -> None:
    with pytest.raises(SpecError) as info:
        RunOptions(**options)
    assert str(info.value).startswith(where)


def test_the_check_is_a_tuple_lookup_without_typing(tmp_path: Path) -> None:
    """The run path (CLI and library) checks keywords against the tuples: neither
    ``typing`` nor ``typing_extensions`` nor the TypedDicts' module is imported."""
    code = (
        "import envkit.container.start, envkit.container.handle\n"
        "from envkit.container.options import RunOptions\n"
        "RunOptions(['true'], tty=True, name='x', remove=True, network='n', memory='64m')\n"
    )
    modules = ("typing", "typing_extensions", "envkit.container.run_kwargs")
    assert loaded_after(code, tmp_path, modules) == []
