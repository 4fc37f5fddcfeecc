"""Secret: names, sources, reading on demand, and the value never leaking."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from envkit import EnvkitError, Image, Secret, Service, SpecError, Stack

VALUE = "s3cr3t-value-9f1c"


def test_from_env_names_the_secret_after_the_variable() -> None:
    secret = Secret.from_env("DB_PASSWORD")
    assert (secret.name, secret.source, secret.required) == ("DB_PASSWORD", "env:DB_PASSWORD", True)
    assert Secret.from_env("X", as_name="x.txt").name == "x.txt"


def test_from_file_names_the_secret_after_the_file() -> None:
    secret = Secret.from_file("./conf/db_password.txt")
    assert (secret.name, secret.source) == ("db_password.txt", "file:./conf/db_password.txt")
    assert Secret.from_file(Path("/a/b"), name="pw").name == "pw"


@pytest.mark.parametrize(
    "make",
    [
        lambda: Secret("a/b", source="env:X"),
        lambda: Secret("..", source="env:X"),
        lambda: Secret("x", source="no-scheme"),
        lambda: Secret("x", source="Env:X"),
        lambda: Secret("x", source="env:"),
        lambda: Secret.from_env("A=B"),
        lambda: Secret.from_file("/"),
        lambda: Secret("x", source="env:X", required="no"),  # type: ignore[arg-type]
    ],
)
def test_validation(make: Callable[[], object]) -> None:
    with pytest.raises(SpecError):
        make()


def test_reveal_reads_only_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = Secret.from_env("ENVKIT_TEST_SECRET")
    monkeypatch.setenv("ENVKIT_TEST_SECRET", "first")
    assert secret.reveal() == b"first"
    monkeypatch.setenv("ENVKIT_TEST_SECRET", "second")
    assert secret.reveal() == b"second"


def test_reveal_of_absent_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVKIT_TEST_ABSENT", raising=False)
    with pytest.raises(EnvkitError, match="ENVKIT_TEST_ABSENT") as info:
        Secret.from_env("ENVKIT_TEST_ABSENT").reveal()
    assert "required=False" in str(info.value)
    assert Secret.from_env("ENVKIT_TEST_ABSENT", required=False).reveal() == b""


def test_reveal_file_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_bytes(b"pw\n")
    assert Secret.from_file("pw.txt").reveal(base_dir=tmp_path) == b"pw\n"
    assert Secret.from_file(tmp_path / "pw.txt").reveal() == b"pw\n"
    with pytest.raises(EnvkitError, match=r"secret 'missing\.txt': file:missing\.txt has no") as e:
        Secret.from_file("missing.txt").reveal(base_dir=tmp_path)
    assert e.value.hint == f"create {tmp_path / 'missing.txt'}, or pass required=False"


def test_unknown_scheme_is_reported_when_revealed() -> None:
    secret = Secret("x", source="vault:kv/app")
    with pytest.raises(EnvkitError, match="no secret provider named 'vault'"):
        secret.reveal()


def test_value_never_appears_in_repr_canonical_key_or_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ENVKIT_TEST_TOKEN", VALUE)
    (tmp_path / "token").write_text(VALUE)
    env_secret = Secret.from_env("ENVKIT_TEST_TOKEN")
    file_secret = Secret.from_file(tmp_path / "token")
    assert env_secret.reveal() == file_secret.reveal() == VALUE.encode()

    image = Image.scratch().run("make", secrets=[env_secret])
    service = Service("app", image=image, secrets=[file_secret])
    stack = Stack("demo", services=[service])
    texts = [repr(env_secret), str(file_secret), repr(image), repr(service), repr(stack)]
    for obj in (env_secret, file_secret, image, service, stack):
        texts += [str(obj.canonical()), obj.cache_key()]
    with pytest.raises(SpecError) as info:
        Service(
            "app",
            image=image,
            secrets=[env_secret, Secret.from_env("OTHER", as_name=env_secret.name)],
        )
    texts.append(str(info.value))
    for text in texts:
        assert VALUE not in text
    assert stack.secrets == (env_secret, file_secret)  # sorted by name


def test_cache_key_depends_on_source_not_value(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = Secret.from_env("ENVKIT_TEST_TOKEN")
    image = Image.scratch().run("make", secrets=[secret])
    monkeypatch.setenv("ENVKIT_TEST_TOKEN", "one")
    key = image.cache_key()
    monkeypatch.setenv("ENVKIT_TEST_TOKEN", "two")
    assert image.cache_key() == key
    other = Image.scratch().run("make", secrets=[Secret.from_env("ENVKIT_TEST_OTHER")])
    assert other.cache_key() != key


def test_constructor_typos_suggest_the_option() -> None:
    with pytest.raises(SpecError) as info:
        Secret.from_env("X", asname="y")  # type: ignore[arg-type]
    assert (info.value.field, info.value.hint) == (
        "Secret.from_env.asname",
        "did you mean 'as_name'?",
    )
    with pytest.raises(SpecError, match="did you mean 'required'"):
        Secret.from_file("x", requird=False)  # type: ignore[arg-type]
    assert Secret("x", "env:X") == Secret("x", source="env:X")
