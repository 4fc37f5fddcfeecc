"""Docker's image-config rules: command, environment, working dir and user resolution."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from envkit.errors import SpecError
from envkit.runtime.config import DEFAULT_PATH
from envkit.runtime.image_config import (
    ExecUser,
    command,
    environment,
    read_image_file,
    resolve_user,
    workdir,
)

IMAGE = {"Entrypoint": ["/entry.sh"], "Cmd": ["serve", "--port", "80"]}
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "# a comment\n"
    "app:x:1000:1000:App:/home/app:/bin/sh\n"
    "broken line\n"
)
GROUP = "root:x:0:\napp:x:1000:\nwheel:x:10:app,other\naudio:x:29:other\nstaff:x:50:app\n"


def test_entrypoint_plus_cmd() -> None:
    assert command(IMAGE) == ["/entry.sh", "serve", "--port", "80"]


def test_run_args_replace_cmd_only() -> None:
    assert command(IMAGE, ["debug"]) == ["/entry.sh", "debug"]


def test_entrypoint_override_clears_cmd() -> None:
    assert command(IMAGE, entrypoint=["/bin/sh"]) == ["/bin/sh"]
    assert command(IMAGE, ["-c", "true"], entrypoint=["/bin/sh"]) == ["/bin/sh", "-c", "true"]


def test_empty_entrypoint_override_runs_the_args() -> None:
    assert command(IMAGE, ["ls"], entrypoint=[]) == ["ls"]


def test_cmd_only_image() -> None:
    assert command({"Cmd": ["sh"]}) == ["sh"]
    assert command({"Cmd": ["sh"]}, ["id", "-u"]) == ["id", "-u"]


def test_shell_form_string() -> None:
    assert command({"Cmd": "echo hi"}) == ["/bin/sh", "-c", "echo hi"]


def test_no_command_at_all_is_an_error() -> None:
    with pytest.raises(SpecError, match="no Entrypoint or Cmd"):
        command({})
    with pytest.raises(SpecError, match="no Entrypoint or Cmd"):
        command({"Cmd": ["x"]}, entrypoint=[])


def test_malformed_cmd_is_an_error() -> None:
    with pytest.raises(SpecError, match="list of strings"):
        command({"Cmd": ["a", 1]})


def test_environment_merge_and_defaults() -> None:
    image = {"Env": ["A=1", "B=image", "EMPTY=", "BARE"]}
    env = environment(image, {"B": "run", "C": "3"}, home="/home/app")
    assert env == {
        "A": "1",
        "B": "run",
        "C": "3",
        "EMPTY": "",
        "BARE": "",
        "PATH": DEFAULT_PATH,
        "HOME": "/home/app",
    }


def test_environment_keeps_image_path_and_home() -> None:
    env = environment({"Env": ["PATH=/bin", "HOME=/data"]})
    assert env["PATH"] == "/bin"
    assert env["HOME"] == "/data"
    assert environment({}, {"PATH": "/x"})["PATH"] == "/x"


def test_workdir_rules() -> None:
    assert workdir({}) == "/"
    assert workdir({"WorkingDir": "/app"}) == "/app"
    assert workdir({"WorkingDir": "/app"}, "/tmp") == "/tmp"
    with pytest.raises(SpecError, match="absolute"):
        workdir({}, "rel")


def test_default_user_is_root() -> None:
    assert resolve_user("", PASSWD, GROUP) == ExecUser(0, 0, (), "/root")
    assert resolve_user("", "", "") == ExecUser(0, 0, (), "/root")


def test_user_by_name_gets_passwd_ids_home_and_supplementary_groups() -> None:
    assert resolve_user("app", PASSWD, GROUP) == ExecUser(1000, 1000, (10, 50), "/home/app")


def test_user_by_uid_found_in_passwd() -> None:
    assert resolve_user("1000", PASSWD, GROUP).gid == 1000


def test_unknown_numeric_uid_runs_with_gid_0() -> None:
    assert resolve_user("4242", PASSWD, GROUP) == ExecUser(4242, 0, (), "/")


def test_user_and_group_by_name_or_number() -> None:
    assert resolve_user("app:wheel", PASSWD, GROUP) == ExecUser(1000, 10, (50,), "/home/app")
    assert resolve_user("4242:77", PASSWD, GROUP) == ExecUser(4242, 77, (), "/")
    assert resolve_user("root:audio", PASSWD, GROUP).gid == 29


def test_unknown_names_are_errors() -> None:
    with pytest.raises(SpecError, match="no user 'ghost'"):
        resolve_user("ghost", PASSWD, GROUP)
    with pytest.raises(SpecError, match="no group 'ghosts'"):
        resolve_user("app:ghosts", PASSWD, GROUP)


def test_read_image_file_top_layer_wins_and_stays_inside(tmp_path: Path) -> None:
    top, base = tmp_path / "top", tmp_path / "base"
    (base / "etc").mkdir(parents=True)
    (top / "etc").mkdir(parents=True)
    (base / "etc" / "passwd").write_text("base\n")
    assert read_image_file([str(top), str(base)], "/etc/passwd") == "base\n"
    (top / "etc" / "passwd").write_text("top\n")
    assert read_image_file([str(top), str(base)], "/etc/passwd") == "top\n"
    (top / "etc" / "group").symlink_to("/../../../../etc/hostname-not-here")
    assert read_image_file([str(top)], "/etc/group") == ""
    assert read_image_file([str(top)], "/etc/missing") == ""


@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_read_image_file_of_a_non_regular_file_is_empty_at_once(tmp_path: Path, kind: str) -> None:
    """An image whose /etc/passwd is a named pipe made `run -u`, `exec -u`, a stack's
    start and a build's chown block for ever on opening it (layers may hold FIFOs)."""
    layer = tmp_path / "layer"
    (layer / "etc").mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(layer / "etc" / "passwd")
    else:
        (layer / "etc" / "passwd").mkdir()
    done: list[str] = []
    reader = threading.Thread(
        target=lambda: done.append(read_image_file([str(layer)], "/etc/passwd")), daemon=True
    )
    reader.start()
    reader.join(5)
    if reader.is_alive():  # unblock the reader, then fail
        os.close(os.open(layer / "etc" / "passwd", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading a FIFO /etc/passwd blocked")
    assert done == [""]
