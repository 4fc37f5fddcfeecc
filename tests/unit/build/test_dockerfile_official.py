"""Official images' Dockerfiles import into the steps BuildKit runs.

The Dockerfiles in tests/data/official_dockerfiles/ are docker-library's (python,
postgres, redis, golang), nginx's and node's, verbatim (README there names each one's
repository, path and commit). ``expected.json`` lists each one's base and steps in
Dockerfile words, checked by hand against the Dockerfile; the config a build gives is
checked on a base whose Env has Debian's PATH, as ``debian:bookworm-slim`` has.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envkit.build.dockerfile import import_dockerfile
from envkit.build.dockerfile_steps import ExpandConfig
from envkit.build.executor import config_change, describe
from envkit.build.image_state import ImageState
from envkit.spec import steps as st

DATA = Path(__file__).parents[2] / "data" / "official_dockerfiles"
EXPECTED: dict[str, Any] = json.loads((DATA / "expected.json").read_text())
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: What the image's config holds after the build (PATH from the base's Env).
CONFIG: dict[str, dict[str, Any]] = {
    "python-3.13-slim-bookworm": {"PATH": "/usr/local/bin:" + DEBIAN_PATH, "Cmd": ["python3"]},
    "python-3.13-alpine": {"PATH": "/usr/local/bin:" + DEBIAN_PATH, "Cmd": ["python3"]},
    "postgres-17-bookworm": {
        "PATH": DEBIAN_PATH + ":/usr/lib/postgresql/17/bin",
        "Volumes": {"/var/lib/postgresql/data": {}},
        "StopSignal": "SIGINT",
        "Entrypoint": ["docker-entrypoint.sh"],
        "Cmd": ["postgres"],
        "ExposedPorts": {"5432/tcp": {}},
    },
    "redis-7.2-debian": {
        "PATH": DEBIAN_PATH,
        "Volumes": {"/data": {}},
        "WorkingDir": "/data",
        "Entrypoint": ["docker-entrypoint.sh"],
        "Cmd": ["redis-server"],
    },
    "nginx-mainline-debian": {
        "PATH": DEBIAN_PATH,
        "StopSignal": "SIGQUIT",
        "Entrypoint": ["/docker-entrypoint.sh"],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "ExposedPorts": {"80/tcp": {}},
    },
    "golang-1.26-bookworm": {
        "PATH": "/go/bin:/usr/local/go/bin:" + DEBIAN_PATH,
        "WorkingDir": "/go",
        "GOPATH": "/go",
    },
    "golang-1.26-alpine": {"PATH": "/go/bin:/usr/local/go/bin:" + DEBIAN_PATH, "WorkingDir": "/go"},
    "node-22-bookworm-slim": {
        "PATH": DEBIAN_PATH,
        "Entrypoint": ["docker-entrypoint.sh"],
        "Cmd": ["node"],
    },
}


def _settings(steps: tuple[st.Step, ...]) -> dict[str, Any]:
    state = ImageState((), {"config": {"Env": [f"PATH={DEBIAN_PATH}"], "Cmd": ["bash"]}})
    cmd_set = False
    for step in steps:
        if not isinstance(step, st.Run | st.Copy):
            state = state.with_settings(config_change(step, state, cmd_set), describe(step))
        cmd_set = cmd_set or isinstance(step, st.Cmd)
    return state.settings


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_official_dockerfile_imports_to_buildkits_steps(name: str) -> None:
    found = import_dockerfile(DATA / name / "Dockerfile", DATA / name)
    assert found.image.base.params()["ref"] == EXPECTED[name]["from"]
    assert [describe(s)[:72] for s in found.image.steps] == EXPECTED[name]["steps"]
    settings = _settings(found.image.steps)
    env = dict(item.partition("=")[::2] for item in settings["Env"])
    for key, value in CONFIG[name].items():
        assert (env[key] if key.isupper() else settings[key]) == value, key


def test_the_path_lines_wait_for_the_base_images_env() -> None:
    found = import_dockerfile(DATA / "python-3.13-slim-bookworm" / "Dockerfile")
    first = found.image.steps[0]
    assert isinstance(first, ExpandConfig)
    assert first.deferred.words == ("PATH", "/usr/local/bin:$PATH")
    assert any("LegacyKeyValueFormat" in w for w in found.warnings)
