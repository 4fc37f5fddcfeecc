"""Building Images: run steps in real containers, copies, the cache, multi-stage, secrets,
cache mounts, reproducibility and failures; on busybox-static images, as root and rootless."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

import envkit
from envkit import Healthcheck, Image, Secret
from envkit.build import cache
from envkit.build.executor import BuildResult, build
from envkit.build.progress import PlainProgress
from envkit.errors import BuildError, ContextError
from envkit.store.store import Store
from tests import images
from tests.integration import homes

pytestmark = pytest.mark.rootless

BUSYBOX = "busybox:1"


@pytest.fixture(scope="module")
def busybox_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    homes.require_containers()
    archive = tmp_path_factory.mktemp("busybox") / "bb.tar"
    images.build_archive(archive, ref=BUSYBOX)
    return archive


@pytest.fixture
def home(envkit_home: Path, busybox_archive: Path) -> Iterator[Path]:
    """A fresh ENVKIT_HOME with busybox:1 loaded; checks nothing is left behind."""
    from envkit.oci.archive_read import load_archive

    load_archive(busybox_archive, Store.default())
    yield envkit_home
    build_dir = envkit_home / "build"
    assert not build_dir.exists() or list(build_dir.iterdir()) == []
    assert [p.name for p in (envkit_home / "store" / "tmp").iterdir()] == []


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "src").mkdir(parents=True)
    (root / "app.txt").write_text("app v1\n")
    (root / "src" / "main.sh").write_text("echo main\n")
    (root / "src" / "helper.sh").write_text("echo helper\n")
    (root / "secret.key").write_text("do not copy\n")
    (root / ".dockerignore").write_text("*.key\n")
    return root


def _run(image: str, cmd: list[str], tmp_path: Path) -> tuple[int, str]:
    out = tmp_path / "run-out.txt"
    with open(os.devnull, "rb") as stdin, open(out, "wb") as f:
        code = envkit.run(image, cmd, stdio=(stdin.fileno(), f.fileno(), f.fileno())).wait()
    return code, out.read_text()


def _config(result: BuildResult) -> dict[str, object]:
    store = Store.default()
    return store.config(store.manifest(result.digest)).raw


def _layer_members(result: BuildResult) -> list[list[tarfile.TarInfo]]:
    store = Store.default()
    out = []
    for layer in store.manifest(result.digest).layers:
        with store.open_blob(layer.digest) as blob, tarfile.open(fileobj=blob, mode="r|gz") as tar:
            out.append(list(tar))
    return out


def _cli(home: Path, argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return homes.cli(home, argv, cwd=cwd, timeout=None)


APP = (
    Image.from_(BUSYBOX)
    .workdir("/app")
    .copy("app.txt", ".")
    .copy("src", "src/")
    .run("cat /app/app.txt > /app/out.txt && rm /etc/group && echo ran")
    .env(GREETING="hi")
    .cmd(["cat", "/app/out.txt"])
)


def test_build_runs_steps_and_the_image_runs(home: Path, ctx: Path, tmp_path: Path) -> None:
    result = build(APP, ctx, tag="app:1")
    assert result.executed == 6 and result.cached == 0
    assert Store.default().resolve("app:1").digest == result.digest
    assert _run("app:1", [], tmp_path) == (0, "app v1\n")
    code, out = _run(
        "app:1", ["sh", "-c", "ls /app/src; test -e /etc/group || echo gone"], tmp_path
    )
    assert (code, out) == (0, "helper.sh\nmain.sh\ngone\n")
    config = _config(result)
    settings = config["config"]
    assert isinstance(settings, dict)
    assert settings["WorkingDir"] == "/app"
    assert "GREETING=hi" in settings["Env"]
    assert config["created"] == "1970-01-01T00:00:00Z"


def test_layers_hold_container_owners_clamped_times_and_whiteouts(home: Path, ctx: Path) -> None:
    layers = _layer_members(build(APP, ctx))
    added = [m for layer in layers[1:] for m in layer]
    assert {(m.uid, m.gid) for m in added} == {(0, 0)}
    assert {m.mtime for m in added} == {0}
    names = {m.name for m in added}
    assert "etc/.wh.group" in names
    assert "app/out.txt" in names
    assert not any("secret.key" in n for n in names)  # .dockerignore
    assert not any(n.startswith(("proc", "dev", "sys", "run")) for n in names)


def test_fully_cached_rebuild_executes_nothing_and_is_identical(home: Path, ctx: Path) -> None:
    first = build(APP, ctx, tag="app:1")
    again = build(APP, ctx, tag="app:1")
    assert (again.executed, again.cached) == (0, 6)
    assert again.digest == first.digest
    assert not (home / "containers").exists() or list((home / "containers").iterdir()) == []


def test_one_changed_file_rebuilds_that_step_and_later_ones(home: Path, ctx: Path) -> None:
    first = build(APP, ctx)
    (ctx / "src" / "main.sh").write_text("echo main v2\n")
    second = build(APP, ctx)
    # workdir and the first copy are cached; copy src, run, env, cmd execute
    assert (second.cached, second.executed) == (2, 4)
    assert second.digest != first.digest
    first_layers = Store.default().manifest(first.digest).layers
    second_layers = Store.default().manifest(second.digest).layers
    assert first_layers[:2] == second_layers[:2]


def test_no_cache_gives_the_same_digest(home: Path, ctx: Path) -> None:
    first = build(APP, ctx)
    fresh = build(APP, ctx, no_cache=True)
    assert fresh.executed == 6
    assert fresh.digest == first.digest and fresh.image_id == first.image_id


def test_source_date_epoch_sets_created(
    home: Path, ctx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    result = build(Image.from_(BUSYBOX).copy("app.txt", "/app.txt"), ctx)
    assert _config(result)["created"] == "2023-11-14T22:13:20Z"
    assert {m.mtime for m in _layer_members(result)[1]} == {1_700_000_000}


def test_config_steps(home: Path, ctx: Path) -> None:
    image = (
        Image.from_(BUSYBOX)
        .user("nobody")
        .expose(5000)
        .expose("53/udp")
        .entrypoint(["sh", "-c"])
        .cmd("echo hi")
        .label(team="web")
        .healthcheck(Healthcheck(["true"], interval=0.5, retries=7))
    )
    settings = _config(build(image, ctx))["config"]
    assert isinstance(settings, dict)
    assert settings["User"] == "nobody"
    assert settings["ExposedPorts"] == {"5000/tcp": {}, "53/udp": {}}
    assert settings["Entrypoint"] == ["sh", "-c"]
    assert settings["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert settings["Labels"]["team"] == "web"
    assert settings["Healthcheck"] == {
        "Test": ["CMD", "true"],
        "Interval": 500_000_000,
        "Timeout": 30_000_000_000,
        "Retries": 7,
        "StartPeriod": 0,
    }
    assert json.loads(settings["Labels"]["io.envkit.healthcheck"])["interval"] == 0.5


def test_run_uses_env_workdir_and_user(home: Path, ctx: Path, tmp_path: Path) -> None:
    image = (
        Image.from_(BUSYBOX)
        .env(A="1")
        .workdir("/w")
        .user("65534:65534")
        .run('echo "$A $B $(pwd) $(id -u):$(id -g)" > /tmp/info', env={"B": "2"})
        .user("0")
    )
    build(image, ctx, tag="info:1")
    assert _run("info:1", ["cat", "/tmp/info"], tmp_path) == (0, "1 2 /w 65534:65534\n")


def test_copy_chown_chmod_and_parent_dirs_keep_their_mode(home: Path, ctx: Path) -> None:
    image = Image.from_(BUSYBOX).copy("app.txt", "/tmp/x/app.txt", chown="1000:1000", chmod="600")
    members = {m.name: m for m in _layer_members(build(image, ctx))[1]}
    assert members["tmp"].mode == 0o1777  # the base's /tmp, not a fresh 0755
    assert (members["tmp/x"].mode, members["tmp/x"].uid) == (0o755, 0)
    copied = members["tmp/x/app.txt"]
    assert (copied.uid, copied.gid, copied.mode) == (1000, 1000, 0o600)


def test_failing_run_reports_and_leaves_nothing(home: Path, ctx: Path) -> None:
    image = Image.from_(BUSYBOX).run("echo first; echo last words; exit 7")
    with pytest.raises(BuildError) as info:
        build(image, ctx, tag="broken:1")
    assert "exit code 7" in info.value.message
    assert "last words" in info.value.message
    assert info.value.exit_code == 1
    assert "docker.io/library/broken:1" not in Store.default().refs()


def test_cli_failing_build_exits_1_with_step_and_output(home: Path, tmp_path: Path) -> None:
    (tmp_path / "img.py").write_text(
        f"from envkit import Image\nbad = Image.from_({BUSYBOX!r}).run('echo oops >&2; exit 3')\n"
    )
    done = _cli(home, ["build", f"{tmp_path / 'img.py'}:bad", "-t", "bad:1", "--progress", "plain"])
    assert done.returncode == 1
    assert "RUN echo oops >&2; exit 3" in done.stderr
    assert "exit code 3" in done.stderr
    assert "oops" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_builds_a_stack_file(home: Path, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("from the stack\n")
    (tmp_path / "stack.py").write_text(
        "from envkit import Image, Service, Stack\n"
        f"img = Image.from_({BUSYBOX!r}).copy('hello.txt', '/hello.txt')\n"
        "stack = Stack('shop', services=[Service('web', init=True, image=img)])\n"
    )
    done = _cli(home, ["build", "--progress", "plain"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("web: sha256:")
    assert "docker.io/library/shop-web:latest" in Store.default().refs()


def test_multi_stage_copies_only_what_is_asked(home: Path, ctx: Path, tmp_path: Path) -> None:
    builder = Image.from_(BUSYBOX).run(
        "mkdir -p /out && echo built > /out/artifact && echo x > /junk"
    )
    other = Image.from_(BUSYBOX).run("echo other > /other.txt")
    final = (
        Image.from_(BUSYBOX)
        .copy("/out/artifact", "/artifact", from_=builder)
        .copy("/other.txt", "/other.txt", from_=other)
    )
    result = build(final, ctx, tag="final:1")
    assert _run("final:1", ["cat", "/artifact", "/other.txt"], tmp_path) == (0, "built\nother\n")
    names = {m.name for layer in _layer_members(result)[1:] for m in layer}
    assert names == {"artifact", "other.txt"}
    again = build(final, ctx, tag="final:1")
    assert again.executed == 0  # the builder stages are not even looked at


def test_secret_never_reaches_layers_config_store_or_log(
    home: Path, ctx: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    value = "s3cr3t-Value-42"
    monkeypatch.setenv("BUILD_TOKEN", value)
    image = Image.from_(BUSYBOX).run(
        "test $(stat -c %a /run/secrets/BUILD_TOKEN) = 400 && "
        "cat /run/secrets/BUILD_TOKEN && touch /tmp/len-$(wc -c < /run/secrets/BUILD_TOKEN)",
        secrets=[Secret.from_env("BUILD_TOKEN")],
    )
    log = tmp_path / "log.txt"
    with open(log, "w") as stream:
        build(image, ctx, tag="sec:1", progress=PlainProgress(stream))
    text = log.read_text()
    assert value not in text and "****" in text
    leaks = []
    store = Store.default()
    for digest in store.blobs():
        data = store.read_blob(digest)
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        if value.encode() in data:
            leaks.append(digest)
    for path in home.rglob("*"):
        if path.is_file() and not path.is_symlink() and value.encode() in path.read_bytes():
            leaks.append(str(path))
    assert leaks == []
    names = {m.name for m in _layer_members(build(image, ctx))[1]}
    assert "tmp/len-15" in names  # the step did read the value
    assert not any(n.startswith("run") for n in names)


def test_changing_a_secret_value_changes_no_key(
    home: Path, ctx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = Image.from_(BUSYBOX).run("true", secrets=[Secret.from_env("TOK")])
    monkeypatch.setenv("TOK", "one")
    build(image, ctx)
    monkeypatch.setenv("TOK", "two")
    assert build(image, ctx).executed == 0


def test_cache_mount_persists_and_is_never_in_a_layer(
    home: Path, ctx: Path, tmp_path: Path
) -> None:
    fill = Image.from_(BUSYBOX).run("echo warm > /cache/state", caches={"/cache": "c1"})
    layers = _layer_members(build(fill, ctx))
    assert not any(m.name.startswith("cache") for m in layers[-1])
    use = Image.from_(BUSYBOX).run("cp /cache/state /seen", caches={"/cache": "c1"})
    build(use, ctx, tag="use:1")
    assert _run("use:1", ["cat", "/seen"], tmp_path) == (0, "warm\n")
    archive = tmp_path / "mounts.tar"
    assert cache.export_mounts(archive) == ["c1"]
    (cache.mounts_dir() / "c1" / "state").unlink()
    assert cache.import_mounts(archive) == ["c1"]
    assert (cache.mounts_dir() / "c1" / "state").read_text() == "warm\n"


def test_prune_drops_unused_steps_and_keeps_used_ones(home: Path, ctx: Path) -> None:
    kept = build(APP, ctx, tag="app:1")
    build(Image.from_(BUSYBOX).run("echo gone > /gone"), ctx)  # kept only by digest
    store = Store.default()
    store.untag_image(store.entries()[-1][1].digest)
    report = cache.prune_cache(store)
    assert len(report.removed) >= 1
    store.prune()
    again = build(APP, ctx, tag="app:1")
    assert again.executed == 0 and again.digest == kept.digest


def test_scratch_image_from_copies_and_dockerfile(home: Path, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text(
        f'FROM {BUSYBOX}\nWORKDIR /d\nCOPY app.txt .\nRUN cat app.txt > copy.txt\nCMD ["cat"]\n'
    )
    result = build(Image.from_dockerfile("Dockerfile", context="."), ctx)
    names = {m.name for layer in _layer_members(result)[1:] for m in layer}
    assert {"d/app.txt", "d/copy.txt"} <= names
    scratch = build(Image.scratch().copy("app.txt", "/app.txt"), ctx)
    assert [[m.name for m in layer] for layer in _layer_members(scratch)] == [["app.txt"]]


def test_dockerfile_build_args_and_target_in_a_context_of_its_own(home: Path, ctx: Path) -> None:
    """``Image.from_dockerfile("web/Dockerfile", "web", args=..., target=...)``, as
    compose's ``build: {context: web, target: builder, args: ...}``: the target stage is
    built (not the last), with the arg, reading web/ as its context; the host platform
    in ``FROM --platform=$BUILDPLATFORM`` is accepted."""
    web = ctx / "web"
    web.mkdir()
    (web / "in-web.txt").write_text("from web\n")
    (web / "Dockerfile").write_text(
        f"FROM --platform=$BUILDPLATFORM {BUSYBOX} AS builder\nARG GREETING=default\n"
        "COPY in-web.txt /in-web.txt\nRUN echo $GREETING > /greeting\n"
        "FROM builder AS later\nRUN touch /later\n"
    )
    image = Image.from_dockerfile(
        "web/Dockerfile", "web", args={"GREETING": "hi"}, target="builder"
    )
    result = build(image, ctx)
    names = {m.name for layer in _layer_members(result)[1:] for m in layer}
    assert {"in-web.txt", "greeting"} <= names
    assert "later" not in names
    cached = build(image, ctx)
    assert cached.executed == 0 and cached.digest == result.digest
    other = build(Image.from_dockerfile("web/Dockerfile", "web", args={"GREETING": "yo"}), ctx)
    assert other.digest != result.digest


def test_run_mount_bind_shows_context_files_to_one_step_only(
    home: Path, ctx: Path, tmp_path: Path
) -> None:
    """``docker init``'s ``RUN --mount=type=bind,source=F,target=F`` and
    ``--mount=type=bind,target=.,rw``: the step reads the context files (the ignore file
    applies: no secret.key), what it writes there is discarded, nothing of the mounts is
    in the layer, and the step runs again when, and only when, a bound file changes."""
    (ctx / "Dockerfile").write_text(
        f"FROM {BUSYBOX}\nWORKDIR /w\n"
        "RUN --mount=type=bind,source=app.txt,target=app.txt cat app.txt > /seen-app\n"
        "RUN --mount=type=bind,target=.,rw ls -a . > /seen-all && echo x > scribble\n"
    )
    image = Image.from_dockerfile("Dockerfile", context=".")
    first = build(image, ctx, tag="bind:1")
    code, out = _run("bind:1", ["sh", "-c", "cat /seen-app; cat /seen-all; ls -a /w"], tmp_path)
    assert code == 0, out
    seen_app, rest = out.split("\n", 1)
    assert seen_app == "app v1"
    assert "src" in rest.split() and "app.txt" in rest.split()
    assert "secret.key" not in rest.split(), "the ignore file did not apply to the bind"
    assert "scribble" not in rest.split(), "a write to a bind reached the image"
    names = {m.name for layer in _layer_members(first)[1:] for m in layer}
    assert not {"w/app.txt", "w/scribble", "w/src"} & names, names
    (ctx / "secret.key").write_text("changed, but ignored\n")
    assert build(image, ctx).executed == 0
    (ctx / "src" / "main.sh").write_text("echo changed\n")
    assert build(image, ctx).executed == 1  # the "." bind only
    (ctx / "app.txt").write_text("app v2\n")
    assert build(image, ctx).executed == 2


@pytest.mark.parametrize(
    "line",
    [
        "COPY keys/* /k/",
        "COPY keys/id_rsa /k/",
        "RUN --mount=type=bind,source=keys/id_rsa,target=/k cat /k",
    ],
)
def test_a_repositorys_symlink_never_copies_host_files_into_the_image(
    home: Path, ctx: Path, tmp_path: Path, line: str
) -> None:
    """An attack: a cloned repository ships ``keys -> <the user's ~/.ssh>`` and a
    Dockerfile copying ``keys/*``. The link resolves inside the context, as BuildKit
    resolves it, so the build fails (not found) instead of putting the key in a layer."""
    outside = tmp_path / "home-ssh"
    outside.mkdir()
    (outside / "id_rsa").write_text("HOST SECRET KEY\n")
    (ctx / "keys").symlink_to(outside)
    (ctx / "Dockerfile").write_text(f"FROM {BUSYBOX}\n{line}\n")
    with pytest.raises(ContextError):
        build(Image.from_dockerfile("Dockerfile", context="."), ctx)


def test_concurrent_builds_share_entries_and_run_a_step_once(home: Path, tmp_path: Path) -> None:
    (tmp_path / "img.py").write_text(
        "from envkit import Image\n"
        f"img = Image.from_({BUSYBOX!r}).run('echo ran >> /c/runs; sleep 0.5; echo x > /x',"
        " caches={'/c': 'count'})\n"
    )
    argv = [sys.executable, "-m", "envkit", "build", f"{tmp_path / 'img.py'}:img"]
    env = {**os.environ, "ENVKIT_HOME": str(home)}
    procs = [
        subprocess.Popen(
            [*argv, "-t", f"same:{n}", "--progress", "plain"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    outputs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert outputs[0][0] == outputs[1][0]  # the same image id
    assert (cache.mounts_dir() / "count" / "runs").read_text() == "ran\n"
    assert sum("CACHED" in err for _, err in outputs) == 1


def test_same_digest_in_another_home_and_context_path(
    home: Path, ctx: Path, tmp_path: Path, busybox_archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another machine in miniature: a fresh store and the context at another path."""
    import shutil

    from envkit.oci.archive_read import load_archive

    first = APP.build(context=ctx)
    other_home = tmp_path / "other-home"
    other_ctx = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(ctx, other_ctx)
    for path in other_ctx.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))  # a checkout made at another time
    monkeypatch.setenv("ENVKIT_HOME", str(other_home))
    load_archive(busybox_archive, Store.default())
    second = APP.build(context=other_ctx)
    assert (second.executed, second.digest, second.image_id) == (
        6,
        first.digest,
        first.image_id,
    )


def test_built_image_saves_to_an_archive_that_loads_back(
    home: Path, ctx: Path, tmp_path: Path
) -> None:
    result = build(APP, ctx, tag="app:1")
    archive = tmp_path / "app.tar"
    done = _cli(home, ["save", "app:1", "-o", str(archive)])
    assert done.returncode == 0, done.stderr
    fresh = tmp_path / "fresh-home"
    loaded = _cli(fresh, ["load", "-i", str(archive)])
    assert loaded.returncode == 0, loaded.stderr
    assert Store(fresh / "store").resolve("app:1").digest == result.digest


@pytest.mark.peers
def test_skopeo_copies_a_built_image(home: Path, ctx: Path, tmp_path: Path) -> None:
    import shutil

    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed")
    build(APP, ctx, tag="app:1")
    archive = tmp_path / "app.tar"
    assert _cli(home, ["save", "app:1", "-o", str(archive)]).returncode == 0
    done = subprocess.run(
        ["skopeo", "copy", f"oci-archive:{archive}", f"dir:{tmp_path / 'copied'}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # skopeo verifies every blob's digest
    manifest = json.loads((tmp_path / "copied" / "manifest.json").read_text())
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    }


@pytest.mark.parametrize("network", [None, "host", "none"])
def test_run_steps_use_the_host_network_unless_none(
    home: Path, ctx: Path, tmp_path: Path, network: Literal["host", "none"] | None
) -> None:
    image = Image.from_(BUSYBOX).run(
        "readlink /proc/self/ns/net > /netns; cat /etc/resolv.conf > /resolv || true",
        network=network,
    )
    result = build(image, ctx, tag="net:1")
    code, out = _run("net:1", ["cat", "/netns"], tmp_path)
    assert code == 0, out
    shares = out.strip() == os.readlink("/proc/self/ns/net")
    assert shares is (network != "none")
    code, resolv = _run("net:1", ["cat", "/resolv"], tmp_path)
    if network != "none" and os.path.isfile("/etc/resolv.conf"):
        assert resolv == Path("/etc/resolv.conf").read_text()
    # The bind-mounted resolv.conf is not part of the image.
    names = [m.name for layer in _layer_members(result) for m in layer]
    assert "etc/resolv.conf" not in names


def test_plugins_hear_of_every_build_step(home: Path, ctx: Path) -> None:
    from envkit.plugins import hookimpl
    from envkit.plugins.manager import PluginManager, reset_manager

    heard: list[tuple[str, bool]] = []

    class Listener:
        @hookimpl
        def envkit_build_step_finished(
            self, step: str, key: str, cached: bool, seconds: float
        ) -> None:
            assert key.startswith("sha256:") and seconds >= 0
            heard.append((step, cached))

    manager = PluginManager(load_entry_points=False)
    manager.register(Listener(), name="listener")
    reset_manager(manager)
    try:
        image = Image.from_(BUSYBOX).run("echo one > /one").env(A="1")
        build(image, ctx)
        build(image, ctx)
    finally:
        reset_manager()
    assert [cached for _, cached in heard] == [False, False, True, True]
    assert "RUN echo one > /one" in heard[0][0]


def test_copy_from_a_stage_of_a_directory_only_its_user_may_read(
    home: Path, tmp_path: Path
) -> None:
    """Rootless, the stage's snapshot keeps the 0700 directory as a subordinate id this
    process cannot read: the copy is made as container root. Owners become root's, as
    docker's COPY gives them without --chown; modes and content are kept."""
    from envkit.host import idmap

    if idmap.plan().single_id:
        pytest.skip("a single-id map has no uid 1000")
    private = "mkdir /p && echo secret > /p/f && chown -R 1000:1000 /p && chmod 700 /p"
    first = Image.from_(BUSYBOX).run(private + " && chmod 600 /p/f")
    second = Image.from_(BUSYBOX).copy("/p", "/q", from_=first)
    out = tmp_path / "out.txt"
    with open(out, "wb") as f:
        script = "stat -c '%u %a' /q /q/f; cat /q/f"
        code = envkit.run(second, ["sh", "-c", script], stdio=(0, f.fileno(), f.fileno())).wait()
    assert code == 0, out.read_text()
    assert out.read_text().splitlines() == ["0 700", "0 600", "secret"]
