"""The executor's pure parts: config changes, copy layers, image states, the step cache,
progress reporters and secret masking (no containers)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from envkit import Healthcheck, Image, Secret
from envkit.build.cache import StepCache
from envkit.build.copy_layer import LayerEntry, sort_key, write_entries
from envkit.build.executor import config_change, describe
from envkit.build.image_state import ImageState, build_epoch
from envkit.build.progress import LiveProgress, PlainProgress, Progress, for_stream
from envkit.build.secrets_mount import StepSecrets
from envkit.errors import LayerError
from envkit.oci.types import Descriptor
from envkit.spec import steps as st
from envkit.store.store import Store


def _steps(image: Image) -> tuple[st.Step, ...]:
    return image.steps


def _apply(image: Image, start: ImageState | None = None) -> ImageState:
    state = start or ImageState.scratch()
    for step in _steps(image):
        state = state.with_settings(config_change(step, state), describe(step))
    return state


def test_config_steps_merge_like_docker() -> None:
    base = ImageState.scratch().with_settings(
        {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "Labels": {"x": "1"}}, "base"
    )
    image = (
        Image.scratch()
        .env(A="2", B="3")
        .workdir("/app")
        .workdir("sub")
        .expose(80)
        .expose("53/udp")
        .label(y="2")
        .user("1000")
    )
    settings = _apply(image, base).settings
    assert settings["Env"] == ["PATH=/bin", "A=2", "B=3"]
    assert settings["WorkingDir"] == "/app/sub"
    assert settings["ExposedPorts"] == {"53/udp": {}, "80/tcp": {}}
    assert settings["Labels"] == {"x": "1", "y": "2"}
    assert settings["User"] == "1000"
    assert settings["Cmd"] == ["sh"]


def test_entrypoint_clears_an_inherited_cmd_but_not_its_own() -> None:
    base = ImageState.scratch().with_settings({"Cmd": ["sh"]}, "base")
    step = Image.scratch().entrypoint(["run"]).steps[0]
    assert config_change(step, base) == {"Entrypoint": ["run"], "Cmd": None}
    assert config_change(step, base, cmd_set=True) == {"Entrypoint": ["run"]}


def test_healthcheck_in_docker_form_and_exact_label() -> None:
    step = Image.scratch().healthcheck(Healthcheck("true", interval=1.5, retries=2)).steps[0]
    change = config_change(step, ImageState.scratch())
    assert change["Healthcheck"] == {
        "Test": ["CMD-SHELL", "true"],
        "Interval": 1_500_000_000,
        "Timeout": 30_000_000_000,
        "Retries": 2,
        "StartPeriod": 0,
    }
    assert json.loads(change["Labels"]["io.envkit.healthcheck"])["interval"] == 1.5
    off = Image.scratch().healthcheck(Healthcheck(["NONE"])).steps[0]
    assert config_change(off, ImageState.scratch())["Healthcheck"] == {"Test": ["NONE"]}


def test_a_start_interval_is_in_the_config_and_the_history_only_when_set() -> None:
    check = Healthcheck("true", start_period=60, start_interval=0.05)
    step = Image.scratch().healthcheck(check).steps[0]
    change = config_change(step, ImageState.scratch())
    assert change["Healthcheck"]["StartInterval"] == 50_000_000
    assert "--start-interval=0.05s" in describe(step)
    plain = Image.scratch().healthcheck(Healthcheck("true", start_period=60)).steps[0]
    assert "StartInterval" not in config_change(plain, ImageState.scratch())["Healthcheck"]
    assert "--start-interval" not in describe(plain)


def test_describe_never_shows_a_secret_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEN", "hunter2")
    step = Image.scratch().run("make", secrets=[Secret.from_env("TOKEN")]).steps[0]
    assert describe(step) == "RUN make"
    assert describe(Image.scratch().run(["a", "b c"]).steps[0]) == 'RUN ["a", "b c"]'
    assert describe(Image.scratch().workdir("/w").steps[0]) == "WORKDIR /w"


def _tar(entries: list[LayerEntry], epoch: int = 0) -> tuple[str, str, list[tarfile.TarInfo]]:
    out = io.BytesIO()
    info = write_entries(entries, out, epoch=epoch)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(out.getvalue()))) as tar:
        members = tar.getmembers()
    return info.digest, info.diff_id, members


def test_copy_layer_is_deterministic_and_in_walk_order(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("data")
    entries = [
        LayerEntry("a.txt", "file", 0o644, data=b"x"),
        LayerEntry("a/b", "file", 0o600, 5, 6, host=str(tmp_path / "f")),
        LayerEntry("a", "dir", 0o755),
        LayerEntry("l", "symlink", 0o777, target="a/b"),
    ]
    first = _tar(entries, epoch=7)
    second = _tar(list(reversed(entries)), epoch=7)
    assert first[:2] == second[:2]
    members = first[2]
    assert [m.name for m in members] == ["a", "a/b", "a.txt", "l"]
    assert {m.mtime for m in members} == {7}
    b = members[1]
    assert (b.uid, b.gid, b.mode, b.size, b.uname) == (5, 6, 0o600, 4, "")
    assert members[3].linkname == "a/b"
    assert sorted(["a.txt", "a/b", "a"], key=sort_key) == ["a", "a/b", "a.txt"]


def test_copy_layer_refuses_a_file_that_changed(tmp_path: Path) -> None:
    from envkit.errors import BuildError

    (tmp_path / "f").write_text("new")
    entry = LayerEntry("f", "file", 0o644, host=str(tmp_path / "f"), digest="sha256:" + "0" * 64)
    with pytest.raises(BuildError, match="changed while the image was built"):
        write_entries([entry], io.BytesIO(), epoch=0)


def test_image_state_layers_history_and_created(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert build_epoch() == 0
    layer = Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", "sha256:" + "1" * 64, 3)
    state = ImageState.scratch().with_layer(layer, "sha256:" + "2" * 64, "COPY x y")
    state = state.with_settings({"Cmd": ["x"]}, "CMD x")
    assert state.diff_ids == ["sha256:" + "2" * 64]
    assert [h.get("empty_layer", False) for h in state.config["history"]] == [False, True]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    done = state.finished()
    assert done.config["created"] == "1970-01-02T00:00:00Z"
    assert done.manifest().layers == (layer,)
    assert ImageState.from_json(json.loads(json.dumps(done.to_json()))) == done
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(LayerError):
        build_epoch()


def test_step_cache_entries_need_their_blobs(envkit_home: Path) -> None:
    store = Store.default()
    blob = store.write_blob(b"layer bytes")
    layer = Descriptor("application/vnd.oci.image.layer.v1.tar", blob.digest, blob.size)
    state = ImageState.scratch().with_layer(layer, blob.digest, "RUN x")
    cache = StepCache()
    key, other = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert cache.get(key, store) is None
    cache.put(key, state)
    assert cache.get(key, store) == state
    missing = Descriptor(layer.media_type, "sha256:" + "c" * 64, 1)
    cache.put(other, ImageState.scratch().with_layer(missing, missing.digest, "RUN y"))
    assert cache.get(other, store) is None  # its blob is gone: a miss, not an error
    cache.path(key).write_text("{not json")
    assert cache.get(key, store) is None


def test_step_cache_rewrites_an_entry_only_when_it_changes(envkit_home: Path) -> None:
    store = Store.default()
    cache = StepCache()
    key = "sha256:" + "a" * 64
    state = ImageState.scratch().with_settings({"WorkingDir": "/app"}, "WORKDIR /app")
    cache.put(key, state)
    first = cache.path(key).stat()
    cache.put(key, state)  # a --no-cache rebuild records the same state: kept as it is
    assert cache.path(key).stat().st_ino == first.st_ino
    changed = state.with_settings({"User": "app"}, "USER app")
    cache.put(key, changed)  # cut or damaged entries, or another state: written anew
    assert cache.path(key).stat().st_ino != first.st_ino
    assert cache.get(key, store) == changed
    assert sorted(p.name for p in cache.root.iterdir()) == [f"{'a' * 64}.json"]


def test_plain_progress_lines() -> None:
    out = io.StringIO()
    progress = PlainProgress(out)
    progress.cached(1, "[1/3] COPY a b")
    progress.start(2, "[2/3] RUN make")
    progress.output(2, "compiling")
    progress.done(2, 1.25)
    progress.failed(3, "boom")
    assert out.getvalue().splitlines() == [
        "#1 [1/3] COPY a b",
        "#1 CACHED",
        "#2 [2/3] RUN make",
        "#2 | compiling",
        "#2 DONE 1.2s",
        "#3 ERROR boom",
    ]


def test_live_progress_redraws_in_place_with_output_tail() -> None:
    out = io.StringIO()
    progress = LiveProgress(out)
    progress.cached(1, "[1/2] COPY a b")
    progress.start(2, "[2/2] RUN make")
    for n in range(10):
        progress.output(2, f"line {n}")
    progress.done(2, 0.5)
    progress.close()
    text = out.getvalue()
    assert "\x1b[1A" in text  # moved back up to redraw
    last = text.rsplit("\x1b[1A\x1b[2K", 1)[-1]
    assert "CACHED" in last and "DONE 0.5s" in last
    assert "line 9" not in last  # a finished step's output tail is folded away


def test_for_stream_modes() -> None:
    assert isinstance(for_stream(io.StringIO()), PlainProgress)  # not a terminal
    assert isinstance(for_stream(io.StringIO(), "tty"), LiveProgress)
    assert type(for_stream(io.StringIO(), "quiet")) is Progress


def test_secret_values_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTI", "first-line\nsecond-line\n")
    with StepSecrets([Secret.from_env("MULTI")], None) as secrets:
        assert len(secrets.mounts) == 1
        source = Path(secrets.mounts[0].source)
        assert source.stat().st_mode & 0o777 == 0o400
        assert secrets.mounts[0].target == "/run/secrets/MULTI"
        assert secrets.mounts[0].readonly
        assert secrets.mask(b"got second-line!") == b"got ****!"
    assert not source.exists()
