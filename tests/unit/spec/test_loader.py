"""load_stack: finding the Stack and one clear error per way a stack file can fail."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from envkit.errors import StackFileError
from envkit.spec.loader import load_stack

HEADER = "from envkit import Image, Service, Stack\n"
ONE = HEADER + 'stack = Stack("demo", services=[Service("web", image=Image.from_("busybox"))])\n'


def write(tmp_path: Path, text: str, name: str = "stack.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_loads_the_stack_and_records_base_dir(tmp_path: Path) -> None:
    stack = load_stack(write(tmp_path, ONE))
    assert stack.name == "demo"
    assert stack.base_dir == tmp_path


def test_file_dir_is_importable_and_restored(tmp_path: Path) -> None:
    (tmp_path / "helpers_for_envkit_test.py").write_text("NAME = 'fromhelper'\n")
    text = HEADER + (
        "from helpers_for_envkit_test import NAME\n"
        "stack = Stack(NAME, services=[Service('a', image='busybox')])\n"
    )
    path_before = list(sys.path)
    assert load_stack(write(tmp_path, text)).name == "fromhelper"
    assert sys.path == path_before
    sys.modules.pop("helpers_for_envkit_test", None)


def test_main_block_does_not_run_and_dataclasses_work(tmp_path: Path) -> None:
    text = ONE + (
        "from dataclasses import dataclass\n"
        "@dataclass\nclass Cfg:\n    port: int = 1\n"
        "if __name__ == '__main__':\n    raise SystemExit('ran as main')\n"
    )
    assert load_stack(write(tmp_path, text)).name == "demo"


def test_same_stack_under_two_names_is_one(tmp_path: Path) -> None:
    assert load_stack(write(tmp_path, ONE + "alias = stack\n")).name == "demo"


def error_of(path: Path, name: str | None = None) -> str:
    with pytest.raises(StackFileError) as info:
        load_stack(path, name)
    return str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    assert error_of(tmp_path / "nope.py").startswith(f"{tmp_path / 'nope.py'}: no such stack file")


def test_directory(tmp_path: Path) -> None:
    assert "is a directory" in error_of(tmp_path)


def test_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "x = (1,\ny = 2 +\n")
    message = error_of(path)
    assert message.startswith(f"{path}:2:")
    assert "syntax error" in message


def test_exception_names_the_innermost_line_in_the_file(tmp_path: Path) -> None:
    text = HEADER + "def helper():\n    return 1 / 0\n\nhelper()\n"
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"{path}:3: ZeroDivisionError: division by zero")
    assert "Traceback" not in message


def test_spec_error_keeps_its_text_and_hint(tmp_path: Path) -> None:
    text = HEADER + "\n\nweb = Service('web', image='busybox', ports={8000: 0})\n"
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"{path}:4: Service('web').ports[8000]: port must be a number")
    unknown = error_of(write(tmp_path, HEADER + "Service('web', image='busybox', prots={})\n"))
    assert "hint: did you mean 'ports'?" in unknown


def test_system_exit_in_file_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "import sys\nsys.exit(3)\n")
    assert error_of(path).startswith(f"{path}:2: SystemExit: 3")


def test_no_stack(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER)
    message = error_of(path)
    assert message.startswith(f"{path}: no Stack found")
    assert f"define a Stack in {path}" in message


def test_several_stacks_need_a_choice(tmp_path: Path) -> None:
    text = ONE + "other = Stack('b', services=[Service('x', image='busybox')])\n"
    path = write(tmp_path, text)
    assert "found stacks b, demo; choose one with --stack NAME" in error_of(path)
    assert load_stack(path, "b").name == "b"
    assert "no stack named 'zzz' (found: b, demo)" in error_of(path, "zzz")
