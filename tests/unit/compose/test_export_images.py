"""Images of an export are named by digest: pinned references as given, pulled ones by
the digest the store recorded, built ones only with ``--push`` (else one error naming
them and the flag); and ``envkit export`` on the command line (exit 2, no traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from envkit.cli import main
from envkit.compose.export import export
from envkit.compose.export_images import pin_images, push_prefix
from envkit.errors import EnvkitError
from envkit.spec import Image, Service, Stack
from envkit.store.store import Store
from tests.unit.store_helpers import make_image

ROOT = Path(__file__).resolve().parents[3]
SHOP = ROOT / "tests" / "data" / "export" / "shop"
PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1234:4321::/home/app:/bin/sh\n"
GROUP = b"root:x:0:\napp:x:4321:\nstaff:x:50:app\n"


@pytest.fixture
def store(envkit_home: Path) -> Store:
    return Store.default()


def test_a_pulled_reference_is_named_by_the_stores_digest(store: Store) -> None:
    desc = make_image(store, "docker.io/library/app:1", files={"etc/passwd": PASSWD})
    stack = Stack("s", services=[Service("app", image="app:1")])
    facts, _ = pin_images(stack, store=store)
    assert facts["app"].ref == f"docker.io/library/app@{desc.digest}"
    assert facts["app"].config["Cmd"] == ["/bin/sh"]


def test_a_reference_with_a_digest_is_kept_even_when_not_in_the_store(store: Store) -> None:
    digest = "sha256:" + "d" * 64
    stack = Stack("s", services=[Service("app", image=f"example.org/x/app:1@{digest}")])
    facts, _ = pin_images(stack, store=store)
    assert facts["app"].ref == f"example.org/x/app@{digest}"


def test_a_user_name_is_resolved_from_the_images_passwd_and_group(store: Store) -> None:
    make_image(store, "app:1", files={"etc/passwd": PASSWD, "etc/group": GROUP})
    services = [
        Service("a", image="app:1", user="app"),
        Service("b", image="app:1", user="app:staff"),
        Service("c", image="app:1", user="nobody"),
    ]
    result = export(Stack("s", services=services), format="kubernetes", store=store)
    security = {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]["containers"][0].get("securityContext")
        for o in result.objects
    }
    assert security == {
        "a": {"runAsUser": 1234, "runAsGroup": 4321},
        "b": {"runAsUser": 1234, "runAsGroup": 50},
        "c": None,
    }
    assert [str(w) for w in result.warnings] == [
        "service 'c': user: 'nobody' could not be resolved to numeric ids from the image's "
        "/etc/passwd (image not in the store, or no such entry): runAsUser not set, so the "
        "image's user applies; give uid:gid"
    ]


def test_built_images_without_push_are_one_error_naming_them_and_the_flag(store: Store) -> None:
    built = Image.from_("busybox:1").cmd(["true"])
    stack = Stack(
        "s",
        services=[
            Service("web", image=built),
            Service("worker", image=Image.scratch()),
            Service("db", image="postgres@sha256:" + "a" * 64),
        ],
    )
    with pytest.raises(EnvkitError) as caught:
        pin_images(stack, store=store)
    assert caught.value.message == (
        "the images of services 'web' and 'worker' are built by the stack and are in no "
        "registry, so another engine cannot pull them"
    )
    assert caught.value.hint is not None and "add --push REGISTRY" in caught.value.hint


def test_references_never_pulled_are_one_error_naming_envkit_pull(store: Store) -> None:
    stack = Stack("s", services=[Service("db", image="postgres:15"), Service("c", image="redis")])
    with pytest.raises(EnvkitError) as caught:
        pin_images(stack, store=store)
    text = str(caught.value)
    assert "no digest is known for c (redis:latest), db (postgres:15)" in text
    assert "envkit pull redis:latest" in text


@pytest.mark.parametrize(
    ("given", "prefix"),
    [
        ("registry.example.org/team", "registry.example.org/team"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("127.0.0.1:5000/a/b/", "127.0.0.1:5000/a/b"),
        ("myuser", "docker.io/myuser"),
    ],
)
def test_push_prefix(given: str, prefix: str) -> None:
    assert push_prefix(given) == prefix


# -- the command line ------------------------------------------------------------------


def test_cli_writes_one_multi_document_yaml_to_stdout(
    envkit_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(SHOP)
    wait = "busybox@sha256:" + "b" * 64
    code = main(["export", "--format", "kubernetes", "--wait-image", wait])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("# create the Secrets first")
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert {d["kind"] for d in docs} == {
        "Service",
        "Deployment",
        "StatefulSet",
        "PersistentVolumeClaim",
    }
    assert "warning: service 'web': volumes[./conf]: a bind mount" in err


def test_cli_with_output_prints_the_files_and_strict_fails_with_exit_2(
    envkit_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["export", str(SHOP / "stack.py"), "--format", "compose", "-o", str(tmp_path)])
    out, err = capsys.readouterr()
    assert (code, out) == (0, f"{tmp_path / 'compose.yaml'}\n"), err
    code = main(["export", str(SHOP / "stack.py"), "--format", "compose", "--strict"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("envkit: error: 1 thing(s) of stack 'shop' cannot be exported")
    assert "Traceback" not in err


def test_cli_names_the_push_flag_for_built_images(
    envkit_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "stack.py").write_text(
        "from envkit import Image, Service, Stack\n"
        "stack = Stack('s', services=[Service('web', image=Image.scratch().cmd(['x']))])\n"
    )
    code = main(["export", str(tmp_path / "stack.py"), "--format", "kubernetes"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "service 'web' are built by the stack" in err and "--push REGISTRY" in err
    assert "Traceback" not in err
