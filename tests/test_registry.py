"""The model registry for real: versions pushed to and pulled from a real S3 server (moto), files changed behind
the registry's back refused by ``pull``, by the Serve config's resolution and by replica loading, and the
``kgi models`` command."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pytest

from deployments.config import parse_app_args
from kgi.cli import CommandError
from kgi.commands import models as models_command
from kgi.pipeline import TryOnPipeline
from kgi.registry import (MANIFEST_FILE, DigestMismatchError, IntegrityError, ModelRegistry, RegistryError,
                          check_version_folder, verify_folder, write_manifest)


@pytest.fixture(scope="module")
def version_dir(model_root: Path) -> Path:
    return model_root / "default"


@pytest.fixture(scope="module")
def registry_uri(s3_server) -> str:
    return s3_server.bucket("kgi-registry") + "/models"


def _files(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _flip_byte(data: bytes) -> bytes:
    """The same bytes with the middle one changed: same size, different sha256."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


def _tamper_object(s3_server, uri: str, rel: str) -> None:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    key = f"{prefix}/{rel}"
    client = s3_server.client()
    data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    client.put_object(Bucket=bucket, Key=key, Body=_flip_byte(data))


def test_push_list_show_pull_roundtrip(version_dir, registry_uri, tmp_path):
    registry = ModelRegistry(registry_uri)
    pushed = registry.push(version_dir, "v1", metrics={"keypoint_error": 0.0123})

    assert registry.names() == ["v1"]
    shown = registry.show("v1")
    assert shown == pushed and [m.name for m in registry.list()] == ["v1"]
    local = _files(version_dir)
    assert {rel: entry.sha256 for rel, entry in shown.files.items()} == {
        rel: hashlib.sha256(data).hexdigest() for rel, data in local.items()}
    assert shown.version["sampler"]["num_steps"] == 2  # the fixture's version.yaml
    assert shown.metrics == {"keypoint_error": 0.0123}
    assert shown.stages["keypoints"] == {"files": 1, "bytes": len(local["keypoints.safetensors"])}
    assert shown.stages["inpainter"]["bytes"] == sum(len(d) for rel, d in local.items() if rel.startswith("inpainter/"))

    pulled = registry.pull("v1", tmp_path / "v1")
    assert {rel: d for rel, d in _files(pulled).items() if rel != MANIFEST_FILE} == local
    assert json.loads((pulled / MANIFEST_FILE).read_text())["name"] == "v1"
    assert check_version_folder(pulled) == shown
    TryOnPipeline.from_pretrained(pulled)  # the pulled folder is a loadable version
    modified = (pulled / "parse.safetensors").stat().st_mtime_ns
    assert registry.pull("v1", tmp_path / "v1") == pulled  # already there: kept, not downloaded again
    assert (pulled / "parse.safetensors").stat().st_mtime_ns == modified


def test_push_refuses_an_existing_version_a_non_version_and_a_bad_name(version_dir, registry_uri, tmp_path):
    registry = ModelRegistry(registry_uri)
    first = registry.push(version_dir, "immutable")
    with pytest.raises(RegistryError, match="version 'immutable' exists"):
        registry.push(version_dir, "immutable")
    replaced = registry.push(version_dir, "immutable", metrics={"note": "again"}, overwrite=True)
    assert replaced.digest() != first.digest() and registry.show("immutable").metrics == {"note": "again"}

    (tmp_path / "empty").mkdir()
    with pytest.raises(RegistryError, match="not a model version folder"):
        registry.push(tmp_path / "empty", "empty")
    for name in ("../escape", "a/b", "", ".hidden"):
        with pytest.raises(RegistryError, match="version name"):
            registry.push(version_dir, name)
    with pytest.raises(RegistryError, match="no version 'missing'.*immutable"):
        registry.show("missing")


def test_pull_refuses_an_object_changed_in_the_registry(version_dir, registry_uri, s3_server, tmp_path):
    registry = ModelRegistry(registry_uri)
    registry.push(version_dir, "tampered")
    _tamper_object(s3_server, registry_uri, "tampered/parse.safetensors")

    with pytest.raises(IntegrityError, match=r"tampered/parse\.safetensors: sha256 .* does not match"):
        registry.pull("tampered", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # neither the destination nor a partial download is left


def _change_keypoints(folder: Path) -> None:
    path = folder / "keypoints.safetensors"
    path.write_bytes(_flip_byte(path.read_bytes()))


def _remove_inpainter_config(folder: Path) -> None:
    (folder / "inpainter" / "config.json").unlink()


def _add_a_file(folder: Path) -> None:
    (folder / "inpainter" / "extra.bin").write_bytes(b"x")


@pytest.mark.parametrize("damage, message", [
    (_change_keypoints, r"keypoints\.safetensors: sha256 .* does not match"),
    (_remove_inpainter_config, r"inpainter/config\.json: missing"),
    (_add_a_file, r"inpainter/extra\.bin: not in the manifest"),
])
def test_a_changed_missing_or_extra_file_on_disk_is_refused(version_dir, registry_uri, tmp_path, damage, message):
    registry = ModelRegistry(registry_uri)
    if "on-disk" not in registry.names():
        registry.push(version_dir, "on-disk")
    folder = registry.pull("on-disk", tmp_path / "on-disk")
    damage(folder)
    with pytest.raises(IntegrityError, match=message):
        verify_folder(folder)
    assert check_version_folder(version_dir) is None  # no manifest: an unregistered folder, nothing to check


def test_serving_resolves_a_registry_version_and_each_node_pulls_its_own_copy(version_dir, registry_uri, tmp_path):
    ModelRegistry(registry_uri).push(version_dir, "served")
    args = parse_app_args({"registry_cache": str(tmp_path / "cache")})
    version = args.resolve_versions({"main": {"registry": registry_uri, "version": "served",
                                              "sampler": {"num_steps": 1}}})["main"]
    directory = Path(version.directory)
    assert directory.is_relative_to(tmp_path / "cache") and directory.name.startswith("served-")
    assert version.sampler.num_steps == 1 and version.source.version == "served"

    # A node without the copy pulls it; a damaged copy is replaced by a verified one from the registry.
    keypoints = directory / "keypoints.safetensors"
    keypoints.write_bytes(_flip_byte(keypoints.read_bytes()))
    assert version.local_directory() == str(directory)
    assert keypoints.read_bytes() == (version_dir / "keypoints.safetensors").read_bytes()
    TryOnPipeline.from_pretrained(version.local_directory())


def test_serving_refuses_a_tampered_registry_version_and_a_tampered_folder(version_dir, registry_uri, s3_server,
                                                                          tmp_path):
    ModelRegistry(registry_uri).push(version_dir, "bad")
    _tamper_object(s3_server, registry_uri, "bad/inpainter/diffusion_pytorch_model.safetensors")
    args = parse_app_args({"registry_cache": str(tmp_path / "cache")})
    with pytest.raises(IntegrityError, match="diffusion_pytorch_model.safetensors"):
        args.resolve_versions({"main": {"registry": registry_uri, "version": "bad"}})

    # A version folder given by path is verified when it has a manifest, at resolution and at replica load.
    models_dir = tmp_path / "models"
    ModelRegistry(models_dir).push(version_dir, "local")
    args = parse_app_args({"models_dir": str(models_dir)})
    version = args.resolve_versions({"main": {"path": "local"}})["main"]
    parse = models_dir / "local" / "parse.safetensors"
    parse.write_bytes(_flip_byte(parse.read_bytes()))
    with pytest.raises(IntegrityError, match=r"local/parse\.safetensors"):
        args.resolve_versions({"main": {"path": "local"}})
    with pytest.raises(IntegrityError, match=r"local/parse\.safetensors"):
        version.local_directory()
    write_manifest(models_dir / "local", "local")  # re-registering the folder as it is now makes it loadable
    assert version.local_directory() == str(models_dir / "local")


def test_a_version_pinned_by_digest_is_served_until_its_name_is_pushed_again(version_dir, registry_uri, tmp_path):
    registry = ModelRegistry(registry_uri)
    digest = registry.push(version_dir, "pinned", metrics={"round": 1}).digest()
    pinned = f"pinned@sha256:{digest}"
    args = parse_app_args({"registry_cache": str(tmp_path / "cache")})
    served = {"main": {"registry": registry_uri, "version": pinned}}
    version = args.resolve_versions(served)["main"]
    assert Path(version.directory).name == f"pinned-{digest[:16]}"
    assert registry.pull(pinned, tmp_path / "pulled") == tmp_path / "pulled"

    # The same name pushed again (here only its metrics differ): the name follows, the pin refuses.
    new_digest = registry.push(version_dir, "pinned", metrics={"round": 2}, overwrite=True).digest()
    assert new_digest != digest
    assert registry.show("pinned").digest() == new_digest
    for refused in (lambda: args.resolve_versions(served), version.local_directory,
                    lambda: registry.pull(pinned, tmp_path / "pulled-again")):
        with pytest.raises(DigestMismatchError, match=rf"'pinned' is pinned to sha256:{digest[:16]}\.\.\. but the "
                                                     rf"registry holds sha256:{new_digest[:16]}"):
            refused()
    assert not (tmp_path / "pulled-again").exists()

    for malformed, says in [("pinned@sha256:abc", "64 lowercase hex"), (f"pinned@md5:{digest}", "name@sha256:"),
                            (f"@sha256:{digest}", "version name ''")]:
        with pytest.raises(ValueError, match=says):
            parse_app_args({}).resolve_versions({"main": {"registry": registry_uri, "version": malformed}})
        with pytest.raises(RegistryError, match=says):
            registry.show(malformed)


def _kgi_models(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="kgi models")
    models_command.add_arguments(parser)
    return models_command.run(parser.parse_args(list(argv)))


def test_kgi_models_command(version_dir, registry_uri, tmp_path, monkeypatch, capsys):
    metrics = tmp_path / "metrics.yaml"
    metrics.write_text("keypoint_error: 0.02\nparse_miou: 0.61\n")
    monkeypatch.setenv(models_command.REGISTRY_VARIABLE, registry_uri)
    assert _kgi_models("push", str(version_dir), "--name", "cli", "--metrics", str(metrics)) == 0
    assert "pushed cli: " in capsys.readouterr().out
    assert _kgi_models("list") == 0
    listing = capsys.readouterr().out
    assert listing.startswith("NAME") and "\ncli " in listing
    assert _kgi_models("show", "cli", "--files") == 0
    shown = capsys.readouterr().out
    assert "parse_miou: 0.61" in shown and hashlib.sha256(
        (version_dir / "parse.safetensors").read_bytes()).hexdigest() in shown
    assert _kgi_models("pull", "cli", str(tmp_path / "pulled")) == 0
    verify_folder(tmp_path / "pulled")
    pin = next(line.split(": ", 1)[1] for line in shown.splitlines() if line.startswith("pin: "))
    assert pin == f"cli@sha256:{ModelRegistry(registry_uri).show('cli').digest()}"
    assert _kgi_models("show", pin) == 0 and f"pin: {pin}" in capsys.readouterr().out
    with pytest.raises(CommandError, match="pinned to sha256:0000000000000000"):
        _kgi_models("pull", "cli@sha256:" + "0" * 64, str(tmp_path / "pulled-pinned"))

    with pytest.raises(CommandError, match="exists"):
        _kgi_models("push", str(version_dir), "--name", "cli")
    with pytest.raises(CommandError, match="no version 'nope'"):
        _kgi_models("show", "nope")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file").write_text("mine")
    with pytest.raises(CommandError, match="exists and is not version 'cli'"):
        _kgi_models("pull", "cli", str(tmp_path / "other"))
    metrics.write_text("- not a mapping\n")
    with pytest.raises(CommandError, match="--metrics"):
        _kgi_models("push", str(version_dir), "--name", "cli2", "--metrics", str(metrics))
    empty = tmp_path / "empty-registry"
    assert _kgi_models("list", "--registry", str(empty)) == 0
    assert "no versions" in capsys.readouterr().out
