"""Step cache keys and build plans.

Golden files pin the keys of a few specs over a fixed context tree; a failure means a
key changed. If that was on purpose (the keys of every cached build change with it),
bump ``envkit.spec.canonical.FORMAT_VERSION`` and regenerate with::

    ENVKIT_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/build/test_keys.py
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from envkit import Image, Secret
from envkit.build.keys import BuildPlan, plan

GOLDEN = Path(__file__).parent / "golden_keys"
FILES = {
    "requirements.txt": ("flask==3.0\n", 0o644),
    "app.py": ("print('hi')\n", 0o644),
    "run.sh": ("#!/bin/sh\nexec python app.py\n", 0o755),
    "src/lib.py": ("x = 1\n", 0o644),
    "src/notes.md": ("notes\n", 0o600),
    ".dockerignore": ("**/*.md\n", 0o644),
}


def make_context(root: Path) -> Path:
    for rel, (text, mode) in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
    for path in [root, root / "src"]:
        path.chmod(0o755)
    return root


def builder() -> Image:
    return (
        Image.from_("python:3.11-slim")
        .workdir("/src")
        .copy("requirements.txt", ".")
        .run("pip wheel -r requirements.txt -w /wheels", caches={"/root/.cache/pip": "pip"})
    )


def app() -> Image:
    return (
        Image.from_("python:3.11-slim")
        .copy("/wheels", "/wheels", from_=builder())
        .run("pip install /wheels/*", secrets=[Secret.from_env("PIP_TOKEN", required=False)])
        .workdir("/app")
        .copy(".", ".", ignore=["run.sh"])
        .copy("run.sh", "/usr/local/bin/", chmod=0o755)
        .env(PORT="5000")
        .user("1000:1000")
        .expose(5000)
        .cmd(["python", "app.py"])
    )


def two_builders() -> Image:
    a = Image.scratch().copy("src/*.py", "/lib/")
    b = Image.from_("busybox").run("echo b > /b")
    return Image.scratch().copy("/lib", "/lib", from_=a).copy("/b", "/b", from_=b)


CASES: dict[str, Callable[[], Image]] = {
    "design_app": app,
    "scratch_only": lambda: Image.scratch().label(a="b"),
    "two_builders": two_builders,
}


def summary(p: BuildPlan) -> list[dict[str, object]]:
    return [
        {
            "base_key": s.base_key,
            "depends_on": list(s.depends_on),
            "steps": [[step.op, step.key] for step in s.steps],
        }
        for s in p.stages
    ]


@pytest.fixture
def context(tmp_path: Path, envkit_home: Path) -> Path:
    return make_context(tmp_path / "ctx")


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_keys(name: str, context: Path) -> None:
    got = {"stages": summary(plan(CASES[name](), context))}
    path = GOLDEN / f"{name}.json"
    if os.environ.get("ENVKIT_UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    assert got == json.loads(path.read_text()), f"keys of {name} changed; see module docstring"


def _keys(p: BuildPlan) -> list[str]:
    return [s.key for s in p.final.steps]


def test_changing_a_copied_file_changes_that_step_and_later_ones_only(context: Path) -> None:
    before = _keys(plan(app(), context))
    (context / "app.py").write_text("print('changed')\n")
    after = _keys(plan(app(), context))
    copy_at = 3  # .copy(".", ".")
    assert before[:copy_at] == after[:copy_at]
    assert all(b != a for b, a in zip(before[copy_at:], after[copy_at:], strict=True))


def test_ignored_file_change_changes_no_key(context: Path) -> None:
    before = _keys(plan(app(), context))
    (context / "src/notes.md").write_text("ignored by .dockerignore\n")
    (context / "run.sh").write_text("#!/bin/sh\n")  # ignored by the "." copy, read by the next
    after = _keys(plan(app(), context))
    assert before[:4] == after[:4]
    assert before[4] != after[4]


def test_builder_change_reaches_the_stage_copy(context: Path) -> None:
    before = plan(app(), context)
    (context / "requirements.txt").write_text("flask==3.1\n")
    after = plan(app(), context)
    assert before.stages[0].key != after.stages[0].key
    assert before.final.base_key == after.final.base_key
    assert before.final.steps[0].key != after.final.steps[0].key
    assert before.final.steps[0].inputs == before.stages[0].key


def test_secret_value_and_source_never_change_a_key(
    context: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def image(secret: Secret) -> Image:
        return Image.scratch().run("true", secrets=[secret])

    monkeypatch.setenv("TOKEN", "value-one")
    first = plan(image(Secret.from_env("TOKEN")), context).final.key
    monkeypatch.setenv("TOKEN", "value-two")
    assert plan(image(Secret.from_env("TOKEN")), context).final.key == first
    moved = Secret("TOKEN", source="file:./token.txt")
    assert plan(image(moved), context).final.key == first
    renamed = Secret.from_env("TOKEN", as_name="OTHER")
    assert plan(image(renamed), context).final.key != first


def test_cache_ids_and_resolved_digests_are_covered(context: Path) -> None:
    one = Image.scratch().run("make", caches={"/c": "one"})
    two = Image.scratch().run("make", caches={"/c": "two"})
    assert plan(one, context).final.key != plan(two, context).final.key
    ref = Image.from_("busybox")
    unpinned = plan(ref, context).final.base_key
    pin_a = plan(ref, context, resolve=lambda r: "sha256:" + "a" * 64).final.base_key
    pin_b = plan(ref, context, resolve=lambda r: "sha256:" + "b" * 64).final.base_key
    assert len({unpinned, pin_a, pin_b}) == 3


def test_independent_stages_build_in_the_same_wave(context: Path) -> None:
    p = plan(two_builders(), context)
    assert len(p.stages) == 3
    assert p.waves() == ((0, 1), (2,))
    assert p.final.depends_on == (0, 1)


def test_equal_stages_are_planned_once(context: Path) -> None:
    shared = Image.scratch().copy("app.py", "/app.py")
    image = Image.scratch().copy("/app.py", "/a", from_=shared).copy("/app.py", "/b", from_=shared)
    assert len(plan(image, context).stages) == 2


def test_dockerfile_base_is_imported_with_its_own_context(context: Path, tmp_path: Path) -> None:
    sub = tmp_path / "svc"
    sub.mkdir()
    (sub / "main.py").write_text("main\n")
    (sub / "Dockerfile").write_text("FROM scratch\nCOPY main.py /main.py\n")
    image = Image.from_dockerfile(sub / "Dockerfile", context=sub).copy("app.py", "/app.py")
    p = plan(image, context)
    ops = [(s.op, s.context) for s in p.final.steps]
    assert ops == [("copy", sub), ("copy", context)]
    alone = plan(Image.scratch().copy("main.py", "/main.py"), sub)
    assert p.final.steps[0].key == alone.final.steps[0].key


def test_a_run_binding_context_files_reruns_when_they_change_only(context: Path) -> None:
    """``RUN --mount=type=bind``: the bound files are the run's inputs, as a copy's."""
    image = Image.from_("busybox:1").run("pip install -r r.txt", binds={"r.txt": "app.py"})
    first = _keys(plan(image, context))
    (context / "src/notes.md").write_text("ignored and not bound\n")
    assert _keys(plan(image, context)) == first
    (context / "app.py").write_text("print('changed')\n")
    assert _keys(plan(image, context)) != first
    plain = Image.from_("busybox:1").run("pip install -r r.txt")
    assert _keys(plan(plain, context)) != first
