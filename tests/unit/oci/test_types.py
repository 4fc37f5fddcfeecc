"""OCI documents: fields envkit does not model survive a read and a write, and an image
config with a field of the wrong type is refused with the image and the field named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from envkit.errors import ImageConfigError
from envkit.oci.digest import sha256_bytes
from envkit.oci.types import (
    MT_DOCKER_LIST,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
)

HEX = "a" * 64
SUBJECT = {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:" + "b" * 64,
    "size": 321,
}


def _manifest_doc() -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.sbom.v1",
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "size": 2,
            "data": "e30=",
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": "sha256:" + HEX,
                "size": 10,
                "urls": ["https://example.org/layer.tar.gz"],
                "artifactType": "application/vnd.example.part",
                "annotations": {"org.example": "x"},
            }
        ],
        "subject": SUBJECT,
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        "x-vendor-field": {"kept": True},
    }


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def test_manifest_keeps_subject_artifact_type_urls_and_data() -> None:
    doc = _manifest_doc()
    manifest = Manifest.from_bytes(json.dumps(doc).encode())
    assert manifest.extra["subject"] == SUBJECT
    assert manifest.extra["artifactType"] == "application/vnd.example.sbom.v1"
    assert manifest.config.extra == {"data": "e30="}
    assert manifest.layers[0].extra["urls"] == ["https://example.org/layer.tar.gz"]
    assert json.loads(manifest.to_bytes()) == doc
    # Canonical bytes in, the same bytes (and digest) out.
    assert sha256_bytes(manifest.to_bytes()) == sha256_bytes(_canonical(doc))


def test_extra_fields_take_no_part_in_equality() -> None:
    doc = _manifest_doc()
    with_extra = Manifest.from_json(doc)
    for key in ("subject", "artifactType", "x-vendor-field"):
        del doc[key]
    assert with_extra == Manifest.from_json(doc)
    assert hash(with_extra) == hash(Manifest.from_json(doc))


def test_annotations_and_platform_extras_take_no_part_in_equality() -> None:
    """As the descriptors' docstring says: what identifies content is its media type,
    digest, size (and platform); annotations and unmodelled fields do not."""
    plain = Descriptor("application/octet-stream", "sha256:" + "a" * 64, 3)
    noted = Descriptor(
        plain.media_type, plain.digest, plain.size, annotations={"k": "v"}, extra={"urls": []}
    )
    assert plain == noted and hash(plain) == hash(noted)
    assert plain != Descriptor(plain.media_type, plain.digest, 4)
    assert Platform("linux", "arm64", extra={"os.version": "x"}) == Platform("linux", "arm64")
    assert Platform("linux", "arm64") != Platform("linux", "arm64", "v8")
    assert repr(noted).startswith("Descriptor(media_type=")


def test_index_keeps_its_media_type_subject_and_platform_fields() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": MT_DOCKER_LIST,
        "manifests": [
            {
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "digest": "sha256:" + HEX,
                "size": 7,
                "platform": {
                    "architecture": "amd64",
                    "os": "windows",
                    "os.version": "10.0.17763.1",
                    "os.features": ["win32k"],
                },
            }
        ],
        "subject": SUBJECT,
    }
    index = Index.from_json(doc)
    assert json.loads(index.to_bytes()) == doc
    assert index.manifests[0].platform is not None
    assert index.manifests[0].platform.extra["os.version"] == "10.0.17763.1"


def test_new_documents_are_unchanged() -> None:
    desc = Descriptor("application/vnd.oci.image.layer.v1.tar", "sha256:" + HEX, 1)
    assert desc.to_json() == {
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        "digest": "sha256:" + HEX,
        "size": 1,
    }
    assert json.loads(Index((desc,)).to_bytes())["mediaType"] == (
        "application/vnd.oci.image.index.v1+json"
    )


def _config(settings: Any) -> bytes:
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": settings,
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"Env": [7]}, "config.Env[0] is a number (7), not a string"),
        ({"Env": "PATH=/bin"}, "config.Env is a string, not a list of strings"),
        ({"Cmd": ["sh", None]}, "config.Cmd[1] is null"),
        ({"Entrypoint": {"a": 1}}, "config.Entrypoint is an object, not a list"),
        ({"WorkingDir": 3}, "config.WorkingDir is a number, not a string"),
        ({"Labels": {"a": 1}}, "config.Labels['a'] is a number"),
        ({"ExposedPorts": ["80/tcp"]}, "config.ExposedPorts is a list, not an object"),
        ([], "'config' is a list, not an object"),
    ],
)
def test_config_with_wrong_types_is_refused_naming_image_and_field(
    settings: Any, words: str
) -> None:
    raw = _config(settings)
    with pytest.raises(ImageConfigError) as info:
        ImageConfig.from_bytes(raw)
    message = str(info.value)
    assert words in message
    assert f"image {sha256_bytes(raw)}" in message  # the image id
    assert info.value.exit_code == 2


def test_config_with_nulls_and_right_types_is_read() -> None:
    settings = {"Env": ["A=1"], "Cmd": None, "Entrypoint": None, "Labels": {"k": "v"}}
    assert ImageConfig.from_bytes(_config(settings)).config["Env"] == ["A=1"]
    assert ImageConfig.from_bytes(_config(None)).config == {}


def test_an_env_step_on_a_base_with_a_bad_env_names_the_image_and_field(
    envkit_home: Path, tmp_path: Path
) -> None:
    from envkit import Image
    from envkit.build.executor import build
    from envkit.oci.types import MT_OCI_CONFIG, MT_OCI_MANIFEST
    from envkit.store.store import Store

    store = Store.default()
    raw = _config({"Env": [7], "Cmd": ["/bin/sh"]})
    config = store.write_blob(raw).replace(media_type=MT_OCI_CONFIG)
    manifest = Manifest(config=config, layers=())
    store.tag("bad-env:1", store.put_manifest(manifest.to_bytes(), MT_OCI_MANIFEST))
    with pytest.raises(ImageConfigError, match=r"config\.Env\[0\] is a number \(7\)") as info:
        build(Image.from_("bad-env:1").env(PORT="5000"), tmp_path, store=store)
    assert sha256_bytes(raw) in str(info.value)
