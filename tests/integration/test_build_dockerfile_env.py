"""A Dockerfile built on a local base: its variables resolve against the base's Env.

The base is the tests' busybox image, whose config Env is ``PATH=/bin`` (an official
base has Debian's PATH; the rule is the same): ``ENV PATH=/opt/venv/bin:$PATH`` must keep
it, as BuildKit does, and VOLUME / STOPSIGNAL land in the image config.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import envkit
from envkit import Image
from envkit.build.executor import build
from envkit.build.progress import PlainProgress
from envkit.store.store import Store
from tests import images
from tests.integration import homes

pytestmark = pytest.mark.rootless

DOCKERFILE = """\
FROM busybox:1 AS base
ENV PATH=/opt/venv/bin:$PATH
RUN mkdir -p /opt/venv/bin && printf '#!/bin/sh\\necho venv-tool\\n' > /opt/venv/bin/tool \\
 && chmod 755 /opt/venv/bin/tool && echo "$PATH" > /path-at-run.txt
FROM base
ARG APP=app
ENV APP_HOME=/srv/$APP
WORKDIR $APP_HOME
COPY --chown=1:1 app.txt $APP_HOME/
VOLUME /data
STOPSIGNAL SIGQUIT
CMD ["sh", "-c", "tool; echo $PATH; cat /path-at-run.txt"]
"""


@pytest.fixture
def home(envkit_home: Path, tmp_path: Path) -> Iterator[Path]:
    from envkit.oci.archive_read import load_archive

    homes.require_containers()
    archive = tmp_path / "bb.tar"
    images.build_archive(archive, ref="busybox:1")
    load_archive(archive, Store.default())
    yield envkit_home


def test_dockerfile_keeps_the_base_path_and_records_volume_and_stopsignal(
    home: Path, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "app.txt").write_text("app\n")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    log = tmp_path / "build.log"
    with open(log, "w") as stream:
        result = build(
            Image.from_dockerfile("Dockerfile", context="."),
            ctx,
            tag="envtest:1",
            progress=PlainProgress(stream),
        )
    store = Store.default()
    settings = store.config(store.manifest(result.digest)).raw["config"]
    env = dict(item.partition("=")[::2] for item in settings["Env"])
    assert env["PATH"] == "/opt/venv/bin:/bin"
    assert env["APP_HOME"] == "/srv/app"
    assert settings["WorkingDir"] == "/srv/app"
    assert settings["Volumes"] == {"/data": {}}
    assert settings["StopSignal"] == "SIGQUIT"
    text = log.read_text()
    assert "ENV PATH=/opt/venv/bin:$PATH" in text and "STOPSIGNAL SIGQUIT" in text
    assert "{'" not in text  # no Python reprs in the build output
    out = tmp_path / "out.txt"
    with open(os.devnull, "rb") as stdin, open(out, "wb") as f:
        code = envkit.run("envtest:1", None, stdio=(stdin.fileno(), f.fileno(), f.fileno())).wait()
    assert code == 0, out.read_text()
    assert out.read_text().split() == ["venv-tool", "/opt/venv/bin:/bin", "/opt/venv/bin:/bin"]
