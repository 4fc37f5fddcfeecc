"""Image: constructors, steps, validation and immutability."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envkit import Healthcheck, Image, Secret, SpecError
from envkit.spec import bases, steps


def test_from_normalises_the_reference() -> None:
    assert Image.from_("python:3.11-slim") == Image.from_("docker.io/library/python:3.11-slim")
    assert Image.from_("busybox").base == bases.FromRef("docker.io/library/busybox:latest")


@pytest.mark.parametrize("ref", ["", "upper/Case", "name:bad tag", "x@sha256:short", " busybox"])
def test_from_rejects_bad_references_naming_the_field(ref: str) -> None:
    with pytest.raises(SpecError) as info:
        Image.from_(ref)
    assert info.value.field == "Image.from_(ref)"


def test_constructors_record_their_base() -> None:
    assert Image.scratch().base == bases.Scratch()
    assert Image.load(Path("img.tar")).base == bases.Archive("img.tar")
    assert Image.from_dockerfile().base == bases.Dockerfile("Dockerfile", ".")
    deb = Image.debian(packages=["curl", "ca-certificates", "curl"]).base
    assert deb == bases.Debian("bookworm", ("ca-certificates", "curl"), "minbase", None)


def test_from_dockerfile_records_build_args_and_target() -> None:
    """``docker build --build-arg A=1 --target t``; a plain Dockerfile keeps the canonical
    form (and so the cache key) it had before build args existed."""
    plain = Image.from_dockerfile("app/Dockerfile", "app")
    assert plain.canonical()["base"] == {
        "kind": "dockerfile",
        "path": "app/Dockerfile",
        "context": "app",
    }
    img = Image.from_dockerfile("app/Dockerfile", "app", args={"B": 2, "A": "x"}, target="dev")
    assert img.base == bases.Dockerfile("app/Dockerfile", "app", (("A", "x"), ("B", "2")), "dev")
    assert img.canonical()["base"]["args"] == {"A": "x", "B": "2"}
    assert img.canonical()["base"]["target"] == "dev"
    assert img.canonical() != plain.canonical()
    with pytest.raises(SpecError) as info:
        Image.from_dockerfile(args={"A=B": "1"})
    assert info.value.field == "Image.from_dockerfile(args)"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"suite": "Book worm"}, "Image.debian(suite)"),
        ({"packages": ["Bad_Name"]}, "Image.debian(packages)"),
        ({"packages": "curl"}, "Image.debian(packages)"),
        ({"variant": "minimal"}, "Image.debian(variant)"),
        ({"mirror": "ftp://deb.example"}, "Image.debian(mirror)"),
    ],
)
def test_debian_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        Image.debian(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_run_shell_and_exec_forms() -> None:
    img = Image.scratch().run("echo hi").run(["echo", "hi"])
    assert [s.argv for s in img.steps if isinstance(s, steps.Run)] == [
        ("/bin/sh", "-c", "echo hi"),
        ("echo", "hi"),
    ]


def test_run_options_are_normalised() -> None:
    tok = Secret.from_env("TOKEN")
    # A number where the signature says str: what a YAML or dynamic caller passes; made "1".
    loose_env: dict[str, Any] = {"A": 1}
    step = (
        Image.scratch()
        .run("make", secrets=[tok], caches={"/root/.cache": "pip"}, network="none", env=loose_env)
        .steps[0]
    )
    assert step == steps.Run(
        ("/bin/sh", "-c", "make"), (tok,), (("/root/.cache", "pip"),), "none", (("A", "1"),)
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"caches": {"relative": "pip"}}, "Image.run(caches)"),
        ({"caches": {"/c": "bad id"}}, "Image.run(caches)['/c']"),
        ({"network": "bridge"}, "Image.run(network)"),
        ({"secrets": ["hunter2"]}, "Image.run(secrets)"),
        ({"env": {"A=B": "x"}}, "Image.run(env)"),
        ({"netwrok": "host"}, "Image.run.netwrok"),
    ],
)
def test_run_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        Image.scratch().run("true", **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_run_secret_value_is_not_echoed_when_passed_instead_of_a_secret() -> None:
    with pytest.raises(SpecError) as info:
        Image.scratch().run("true", secrets=["hunter2"])  # type: ignore[list-item]
    assert "hunter2" not in str(info.value)


def test_unknown_option_suggests_the_closest_name() -> None:
    with pytest.raises(SpecError) as info:
        Image.scratch().copy("a", "b", chmode=0o755)  # type: ignore[arg-type]
    assert info.value.hint == "did you mean 'chmod'?"


def test_copy_options() -> None:
    builder = Image.from_("busybox").run("make")
    step = Image.scratch().copy("/out", "/app", from_=builder, chown="1000:1000", chmod="755")
    assert step.steps[0] == steps.Copy("/out", "/app", builder, (), "1000:1000", 0o755)
    assert Image.scratch().copy("a", "b", chmod=0o644).steps[0].canonical()["chmod"] == "0644"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"chmod": "rwx"}, "Image.copy(chmod)"),
        ({"chmod": 0o10000}, "Image.copy(chmod)"),
        ({"chown": "a b"}, "Image.copy(chown)"),
        ({"from_": "busybox"}, "Image.copy(from_)"),
        ({"ignore": ".git"}, "Image.copy(ignore)"),
    ],
)
def test_copy_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        Image.scratch().copy("a", "b", **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_config_steps() -> None:
    img = (
        Image.scratch()
        .env({"B": "2"}, A="1")
        .workdir("/app")
        .user(1000)
        .expose("53/udp")
        .entrypoint("exec app")
        .cmd([])
        .label(team="web")
        .healthcheck(Healthcheck("true"))
    )
    assert img.steps == (
        steps.Env((("A", "1"), ("B", "2"))),
        steps.Workdir("/app"),
        steps.User("1000"),
        steps.Expose(53, "udp"),
        steps.Entrypoint(("/bin/sh", "-c", "exec app")),
        steps.Cmd(()),
        steps.Label((("team", "web"),)),
        steps.SetHealthcheck(Healthcheck("true")),
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.scratch().expose(0),
        lambda: Image.scratch().expose(70000),
        lambda: Image.scratch().expose(80, "icmp"),
        lambda: Image.scratch().user("a:b:c"),
        lambda: Image.scratch().cmd([1]),  # type: ignore[list-item]
        lambda: Image.scratch().env(),
        lambda: Image.scratch().env(A=True),  # type: ignore[arg-type]
        lambda: Image.scratch().healthcheck(["true"]),  # type: ignore[arg-type]
        lambda: Image.scratch().workdir(""),
    ],
)
def test_step_validation(make: Callable[[], object]) -> None:
    with pytest.raises(SpecError):
        make()


def test_builder_methods_return_new_images() -> None:
    base = Image.from_("busybox").workdir("/app")
    a = base.cmd(["a"])
    b = base.cmd(["b"])
    assert base.steps == (steps.Workdir("/app"),)
    assert a != b and a.steps[0] is b.steps[0]
    with pytest.raises(AttributeError):
        base.steps = ()  # type: ignore[misc]


def test_secrets_of_an_image_include_its_stages() -> None:
    s1, s2 = Secret.from_env("A"), Secret.from_env("B")
    builder = Image.scratch().run("x", secrets=[s2])
    img = Image.scratch().copy("/x", "/x", from_=builder).run("y", secrets=[s1])
    assert img.secrets == (s1, s2)


def test_equal_images_have_equal_keys_and_hashes() -> None:
    def make() -> Image:
        return Image.from_("busybox").run(["a"]).env(X="1").copy(".", "/src", ignore=[".git"])

    assert make() == make()
    assert hash(make()) == hash(make())
    assert make().cache_key() == make().cache_key()
    assert make().cache_key() != make().env(Y="1").cache_key()


def test_repr_is_short() -> None:
    text = repr(Image.from_("busybox").cmd(["sh"]))
    assert text == "<Image ref(ref='docker.io/library/busybox:latest') +1 steps>"


def test_constructor_typos_suggest_the_option() -> None:
    with pytest.raises(SpecError) as info:
        Image.debian(packges=["curl"])  # type: ignore[arg-type]
    assert (info.value.field, info.value.hint) == (
        "Image.debian.packges",
        "did you mean 'packages'?",
    )
    with pytest.raises(SpecError, match="did you mean 'context'"):
        Image.from_dockerfile(contxt=".")  # type: ignore[arg-type]
