"""The CLI frame: exit codes and error rendering."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from envkit.cli import main
from envkit.errors import SpecError
from envkit.plugins import hookimpl
from envkit.plugins.manager import PluginManager, reset_manager


class Failing:
    name = "fail"
    help = "raise a SpecError"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:
        raise SpecError(
            "Service('web').ports", "port out of range", value=70000, hint="use 1-65535"
        )


class Plugin:
    @hookimpl
    def envkit_commands(self) -> list[Failing]:
        return [Failing()]


@pytest.fixture
def manager() -> Iterator[PluginManager]:
    m = PluginManager(load_entry_points=False)
    m.register(Plugin(), name="failing")
    reset_manager(m)
    yield m
    reset_manager()


def test_envkit_error_is_one_message_exit_2(
    manager: PluginManager, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENVKIT_DEBUG", raising=False)
    assert main(["fail"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("envkit: error: Service('web').ports: port out of range (got 70000)")
    assert "hint: use 1-65535" in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(manager: PluginManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVKIT_DEBUG", "1")
    with pytest.raises(SpecError):
        main(["fail"])


def test_no_command_prints_help_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: envkit" in capsys.readouterr().out


def test_unknown_command_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_builtin_verb_table_matches_the_registered_commands() -> None:
    from envkit.cli.commands import envkit_commands
    from envkit.cli.verbs import BUILTIN_VERBS

    registered = {c.name for c in envkit_commands()}
    assert registered == set(BUILTIN_VERBS)


def test_builtin_verbs_start_without_pluggy(envkit_home: object) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from envkit.cli import main; main(['ps', '-a']); "
        "print('pluggy' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "ten"])
def test_down_refuses_a_grace_that_is_not_seconds(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["down", "-t", value, "-p", "none"])
    assert exc.value.code == 2
    assert "is not a number of seconds" in capsys.readouterr().err


def test_version_is_answered_without_building_the_parser(tmp_path: Path) -> None:
    """``envkit --version`` prints what the full parser's action prints, and loads no
    plugin (pluggy) and no argparse parser of the commands to do so."""
    from tests.unit.fresh_imports import loaded_after

    code = "from envkit.cli import main\nassert main(['--version']) == 0"
    assert loaded_after(code, tmp_path, ["pluggy", "envkit.plugins.manager"]) == []


def test_version_text_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from envkit.cli.parsing import version_text

    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out == version_text() + "\n" and out.startswith("envkit ")


class LosesAHelper:
    name = "lose"
    help = "a helper's socket breaks (EPIPE) in the middle of the command"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:
        import socket

        ours, helper = socket.socketpair()
        helper.close()
        with ours:
            ours.send(b"request")  # raises BrokenPipeError
        return 0


class LosingPlugin:
    @hookimpl
    def envkit_commands(self) -> list[LosesAHelper]:
        return [LosesAHelper()]


def test_a_broken_pipe_that_is_not_our_output_is_an_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run -d` whose monitor was killed mid-start once exited 0 printing nothing: an
    EPIPE on the monitor's socket was taken for `envkit images | head`."""
    monkeypatch.delenv("ENVKIT_DEBUG", raising=False)
    m = PluginManager(load_entry_points=False)
    m.register(LosingPlugin(), name="losing")
    reset_manager(m)
    try:
        assert main(["lose"]) == 1
    finally:
        reset_manager()
    err = capsys.readouterr().err
    assert err.startswith("envkit: error: a helper process went away"), err
    assert "Traceback" not in err


def test_a_reader_that_went_away_is_not_an_error() -> None:
    """`envkit ... | head`: the reader leaves, the command ends quietly with 0."""
    import subprocess
    import sys

    script = (
        "import argparse, sys\n"
        "from envkit.cli import main\n"
        "from envkit.plugins import hookimpl\n"
        "from envkit.plugins.manager import PluginManager, reset_manager\n"
        "class Loud:\n"
        "    name, help = 'loud', 'print a lot'\n"
        "    def configure(self, parser): pass\n"
        "    def run(self, args):\n"
        "        for i in range(10**6): print('line', i)\n"
        "        return 0\n"
        "class P:\n"
        "    @hookimpl\n"
        "    def envkit_commands(self): return [Loud()]\n"
        "m = PluginManager(load_entry_points=False); m.register(P(), name='p'); reset_manager(m)\n"
        "import os; os._exit(main(['loud']))\n"
    )
    import os

    read, write = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=write, stderr=subprocess.PIPE)
    os.close(write)
    try:
        assert os.read(read, 100)
    finally:
        os.close(read)  # as `head` does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err
