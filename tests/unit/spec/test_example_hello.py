"""examples/hello/stack.py loads and says what its README says."""

from __future__ import annotations

from pathlib import Path

from envkit.spec.loader import load_stack

HELLO = Path(__file__).resolve().parents[3] / "examples" / "hello" / "stack.py"


def test_hello_example_loads() -> None:
    stack = load_stack(HELLO)
    assert stack.name == "hello"
    assert stack.base_dir == HELLO.parent
    assert stack.start_order() == ["web", "worker"]
    assert [str(p) for p in stack["web"].ports] == ["127.0.0.1:8080:8080/tcp"]
    assert [s.name for s in stack.secrets] == ["HELLO_TOKEN"]
    assert (HELLO.parent / "site" / "index.html").exists()
