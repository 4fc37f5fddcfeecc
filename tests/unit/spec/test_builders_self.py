"""The spec's builders return ``Self``: a subclass of ``Image`` keeps its class through
every step method (and ``Ready``, ``Secret`` constructors, ``Stack.with_base_dir``), so
both mypy (these annotated assignments type-check only with ``Self``) and ``isinstance``
see it."""

from __future__ import annotations

from pathlib import Path

from envkit.spec import Image, Ready, Secret, Service, Stack


class AppImage(Image):
    """What a project might derive (helpers of its own beside the builders)."""

    def python_app(self) -> AppImage:
        return self.workdir("/app").copy(".", ".").cmd(["python", "app.py"])


class Probe(Ready):
    pass


class Token(Secret):
    pass


class Project(Stack):
    pass


def test_image_builders_keep_the_subclass() -> None:
    image: AppImage = (
        AppImage.from_("busybox:1")
        .run("true", env={"A": "1"})
        .env(PORT="5000")
        .user("1000")
        .expose(5000)
        .entrypoint(["/bin/sh", "-c"])
        .label(team="web")
        .python_app()
    )
    assert type(image) is AppImage
    assert type(AppImage.scratch().copy("a", "/a")) is AppImage
    assert image.canonical() == Image(image.base, image.steps).canonical()


def test_constructors_and_copies_keep_the_subclass(tmp_path: Path) -> None:
    probe: Probe = Probe.tcp(5432)
    token: Token = Token.from_env("TOKEN", required=False)
    project: Project = Project("p", [Service("web", image="busybox:1")]).with_base_dir(tmp_path)
    assert (type(probe), type(token), type(project)) == (Probe, Token, Project)
    assert project.base_dir == tmp_path
