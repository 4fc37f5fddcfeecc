"""The example plugins exercise each kind of hook; notifications and ``cmd:`` secrets."""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from envkit.builtin.secrets import CmdSecrets
from envkit.errors import EnvkitError
from envkit.plugins import hookimpl, notify
from envkit.plugins.manager import PluginManager
from envkit.spec import Secret
from envkit.store.store import Store

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "plugins"


def load_example(dist: str) -> ModuleType:
    module = dist.replace("-", "_")
    path = EXAMPLES / dist / f"{module}.py"
    spec = importlib.util.spec_from_file_location(module, path)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def manager_with(dist: str) -> PluginManager:
    manager = PluginManager(load_entry_points=False)
    manager.register(load_example(dist), name=dist)
    return manager


def test_events_plugin_hears_notifications_and_lists_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "events.jsonl"
    monkeypatch.setenv("ENVKIT_EVENTS_FILE", str(log))
    manager = manager_with("envkit-example-events")
    notify.service_started("shop", "web", manager=manager)
    notify.build_step_finished("RUN make", "sha256:" + "0" * 64, True, 0.25, manager=manager)
    notify.service_stopped("shop", "web", 3, manager=manager)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == [
        "service_started",
        "build_step_finished",
        "service_stopped",
    ]
    assert events[1]["cached"] is True and events[1]["step"] == "RUN make"
    assert events[2]["exit_code"] == 3
    command = manager.commands()["events"]
    import argparse

    parser = argparse.ArgumentParser()
    command.configure(parser)
    assert command.run(parser.parse_args(["-n", "2"])) == 0
    assert capsys.readouterr().out == "build_step_finished RUN make\nservice_stopped shop/web\n"


def test_a_failing_listener_is_logged_and_the_others_still_hear(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard: list[str] = []

    class Broken:
        @hookimpl
        def envkit_service_started(self, stack: str, service: str) -> None:
            raise OSError("disk full")

    class Listener:
        @hookimpl
        def envkit_service_started(self, service: str) -> None:  # a subset of the args
            heard.append(service)

    manager = PluginManager(load_entry_points=False)
    manager.register(Listener(), name="listener")
    manager.register(Broken(), name="broken")
    with caplog.at_level(logging.WARNING, logger="envkit.plugins"):
        notify.service_started("shop", "db", manager=manager)
    assert heard == ["db"]
    assert "plugin broken failed in envkit_service_started: OSError: disk full" in caplog.text


def test_notifications_are_traced(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENVKIT_EVENTS_FILE", str(tmp_path / "e.jsonl"))
    events_py = EXAMPLES / "envkit-example-events" / "envkit_example_events.py"
    script = (
        "import importlib.util, sys\n"
        "from envkit.plugins import notify\n"
        "from envkit.plugins.manager import PluginManager\n"
        f"spec = importlib.util.spec_from_file_location('ev', {str(events_py)!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "m = PluginManager(load_entry_points=False); m.register(mod, name='events')\n"
        "notify.service_started('shop', 'web', manager=m)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"ENVKIT_TRACE_PLUGINS": "1", "ENVKIT_EVENTS_FILE": str(tmp_path / "e.jsonl")},
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "envkit-trace: envkit_service_started(stack='shop', service='web') -> events" in (
        run.stderr
    )


def test_netrc_secret_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rc = tmp_path / "netrc"
    rc.write_text("machine registry.example login ci password s3cret\n")
    rc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(rc))
    provider = manager_with("envkit-example-netrc").secret_provider("netrc")
    assert provider.read("registry.example") == b"s3cret"
    assert provider.read("ci@registry.example") == b"s3cret"
    assert provider.read("other@registry.example") is None
    assert provider.read("unknown.example") is None


def test_dir_source_gives_a_deterministic_image(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "bin" / "hello").write_text("#!/bin/sh\necho hello\n")
    source = manager_with("envkit-example-dir-source").image_source("rootfs-dir")
    store = Store(tmp_path / "store")
    first = source.provide({"path": str(rootfs), "cmd": ["/bin/hello"]}, store)
    again = source.provide({"path": str(rootfs), "cmd": ["/bin/hello"]}, Store(tmp_path / "s2"))
    assert first.digest == again.digest
    manifest = store.manifest(first)
    assert store.config(manifest).config["Cmd"] == ["/bin/hello"]
    assert store.resolve(first.digest).digest == first.digest  # kept in the index
    with pytest.raises(EnvkitError, match="not an absolute path"):
        source.provide({"path": "relative"}, store)


def test_cmd_secrets_read_a_commands_output(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = CmdSecrets()
    assert provider.read("printf 'tok\\n'") == b"tok"
    assert provider.read("echo 'two words'") == b"two words"
    assert provider.read("no-such-command-xyz") is None
    with pytest.raises(EnvkitError, match="'sh' failed with exit status 3") as err:
        provider.read("sh -c 'echo leaked; exit 3'")
    assert "leaked" not in str(err.value)
    monkeypatch.setenv("ENVKIT_TEST_TOKEN_X", "abc")
    secret = Secret("token", source="cmd:printenv ENVKIT_TEST_TOKEN_X")
    assert secret.reveal() == b"abc"
