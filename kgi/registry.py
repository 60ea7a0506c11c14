"""The model registry: named model versions with a manifest, in a local folder or under ``s3://``.

A registry root (``models/``, ``/data/registry`` or ``s3://bucket/prefix``, opened with
``kgi.data.storage.open_root``) holds one folder per version::

    <root>/<name>/version.yaml, keypoints.safetensors, parse.safetensors, inpainter/...   the version folder
    <root>/<name>/manifest.json                                                           written last

A version exists once its ``manifest.json`` does: :meth:`ModelRegistry.push` uploads every file first and the
manifest last, so a reader never sees a half-pushed version. The manifest records the sha256 and size of every
file, the version's ``version.yaml`` (resolutions, sampler settings, the training run of each stage), the bytes
of each stage's weights and optional metrics::

    {"format": 1, "name": "default", "created": "2026-11-23T22:11:00+00:00",
     "files": {"keypoints.safetensors": {"sha256": "9f2c...", "size": 2333384}, ...},
     "stages": {"keypoints": {"files": 1, "bytes": 2333384}, "parse": {...}, "inpainter": {...}},
     "version": {"name": "default", "sampler": {...}, "provenance": {"keypoints": {"run": ..., "step": 500}}},
     "metrics": {"keypoint_error": 0.0100}}

Every copy is checked against it: :meth:`ModelRegistry.pull` verifies each file as it arrives and
:func:`verify_folder` checks a folder on disk, raising :class:`IntegrityError` naming the first file that is
missing, extra or changed. A version folder of any other origin (fresh from training, with no manifest) is
simply unregistered: :func:`check_version_folder` verifies a folder when it has a manifest.

A version is named by its name, or pinned to one exact content by ``name@sha256:<digest>`` (the manifest's
:meth:`Manifest.digest`, which ``kgi models show`` prints): the manifest holds every file's sha256, so the digest
names every byte of the version. Wherever a version is named (:meth:`ModelRegistry.show`, ``pull``,
``local_copy``, a Serve config's ``version:``) a pinned reference whose digest no longer matches, because the
name was pushed again, is refused with :class:`DigestMismatchError`.

This module never imports Ray: the CLI (``kgi models``) and the Serve application (``deployments.config``)
both use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from kgi.data.storage import LocalStorage, Storage, open_root
from kgi.pipeline import VERSION_FILE

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"  # as `kgi export --version`: one path part, no dot first
DIGEST_SEPARATOR = "@sha256:"  # name@sha256:<64 hex digits> pins a version to one manifest
# Where each stage's weights live in a version folder (kgi.pipeline's layout): a file or a folder.
STAGE_PATHS = {"keypoints": "keypoints.safetensors", "parse": "parse.safetensors", "inpainter": "inpainter"}
HASH_CHUNK_BYTES = 1 << 20


class RegistryError(ValueError):
    """A registry, version name or version folder that cannot be used as asked; the message says which."""


class IntegrityError(RegistryError):
    """A version's files do not match its manifest (missing, extra or changed); the message names the file."""


class DigestMismatchError(IntegrityError):
    """A version pinned by digest (``name@sha256:...``) whose manifest in the registry has another digest."""


@dataclass(frozen=True)
class FileEntry:
    """One file of a version: its sha256 (hex) and size in bytes."""

    sha256: str
    size: int


@dataclass
class Manifest:
    """The ``manifest.json`` of a registry version (see the module docstring).

    Attributes:
        name: the version's name in the registry.
        files: relative path (``/``-separated) -> :class:`FileEntry`, every file of the folder but the manifest.
        version: the folder's ``version.yaml`` as a mapping (``kgi.pipeline.VersionInfo``'s fields).
        stages: stage -> {"files": count, "bytes": total} of its weights.
        metrics: figures measured on the version (any JSON mapping), empty when none were given.
        created: when the manifest was made, ISO 8601 UTC.
    """

    name: str
    files: dict[str, FileEntry]
    version: dict
    stages: dict[str, dict]
    metrics: dict = field(default_factory=dict)
    created: str = ""

    def to_json(self) -> bytes:
        """The manifest as written to ``manifest.json`` (sorted keys, so equal manifests are equal bytes)."""
        doc = {"format": MANIFEST_FORMAT, **asdict(self)}
        return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        """Parse ``manifest.json`` bytes; ``where`` names the file in the ``RegistryError`` for a malformed one."""
        try:
            doc = json.loads(data)
            if doc.pop("format") != MANIFEST_FORMAT:
                raise ValueError(f"format {MANIFEST_FORMAT} expected")
            doc["files"] = {rel: FileEntry(**entry) for rel, entry in doc["files"].items()}
            return cls(**doc)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RegistryError(f"{where}: not a valid registry manifest ({exc})") from None

    def digest(self) -> str:
        """sha256 of the manifest: names this exact content (a re-pushed version gets a new digest)."""
        return hashlib.sha256(self.to_json()).hexdigest()

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files.values())


def check_name(name: str) -> str:
    """Return ``name`` if it can name a registry version, else raise ``RegistryError`` saying why."""
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise RegistryError(f"version name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a "
                            "letter or digit")
    return name


def parse_reference(reference: str) -> tuple[str, str | None]:
    """Split a version reference into its name and pinned digest (``None`` when not pinned).

    Args:
        reference: ``name`` or ``name@sha256:<64 lowercase hex digits>`` (:meth:`Manifest.digest`).

    Raises ``RegistryError`` saying what is wrong with a malformed reference.
    """
    if not isinstance(reference, str):
        raise RegistryError(f"version {reference!r}: expected a name or name@sha256:<digest>")
    name, separator, digest = reference.partition(DIGEST_SEPARATOR)
    if not separator and "@" in reference:
        raise RegistryError(f"version {reference!r}: a pinned version is name@sha256:<64 hex digits>")
    check_name(name)
    if not separator:
        return name, None
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise RegistryError(f"version {reference!r}: the digest after '{DIGEST_SEPARATOR}' must be 64 lowercase hex "
                            "digits, the full digest `kgi models show` prints")
    return name, digest


def _sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _folder_files(directory: Path) -> list[str]:
    """Relative paths of every file below ``directory`` except the manifest, sorted."""
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")
                  if p.is_file() and p.relative_to(directory).as_posix() != MANIFEST_FILE)


def build_manifest(directory: str | os.PathLike[str], name: str, metrics: dict | None = None) -> Manifest:
    """Hash a version folder into its manifest (nothing is written).

    Args:
        directory: a model version folder (``kgi.pipeline.TryOnPipeline.save_pretrained``'s layout).
        name: the version's name in the registry.
        metrics: figures to record with it (a JSON-serialisable mapping).

    Raises ``RegistryError`` when ``directory`` is not a version folder (no ``version.yaml``, a stage missing).
    """
    directory = Path(directory)
    check_name(name)
    if not (directory / VERSION_FILE).is_file():
        raise RegistryError(f"{directory}: not a model version folder (no {VERSION_FILE})")
    missing = [stage for stage, rel in STAGE_PATHS.items() if not (directory / rel).exists()]
    if missing:
        raise RegistryError(f"{directory}: not a complete model version (no {', '.join(missing)} weights)")
    files = {}
    for rel in _folder_files(directory):
        path = directory / rel
        files[rel] = FileEntry(sha256=_sha256_of_file(path), size=path.stat().st_size)
    stages = {}
    for stage, stage_path in STAGE_PATHS.items():
        members = [entry for rel, entry in files.items() if rel == stage_path or rel.startswith(stage_path + "/")]
        stages[stage] = {"files": len(members), "bytes": sum(entry.size for entry in members)}
    return Manifest(name=name, files=files, version=yaml.safe_load((directory / VERSION_FILE).read_text()),
                    stages=stages, metrics=dict(metrics or {}),
                    created=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def write_manifest(directory: str | os.PathLike[str], name: str, metrics: dict | None = None) -> Manifest:
    """Hash a version folder and write its ``manifest.json`` into it: registers it in the registry that holds
    it (a local registry is a folder of such folders). Raises as :func:`build_manifest`."""
    manifest = build_manifest(directory, name, metrics)
    LocalStorage(directory).write_bytes(MANIFEST_FILE, manifest.to_json())
    return manifest


def read_manifest(directory: str | os.PathLike[str]) -> Manifest:
    """The ``manifest.json`` of a version folder; ``RegistryError`` if it has none or it is malformed."""
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        raise RegistryError(f"{Path(directory)}: no {MANIFEST_FILE}, not a registry version")
    return Manifest.from_json(path.read_bytes(), str(path))


def _check_file(where: str | Path, size: int, sha256: str, entry: FileEntry) -> None:
    """Raise ``IntegrityError`` naming ``where`` when a file's ``size`` and ``sha256`` are not ``entry``'s."""
    if size != entry.size:
        raise IntegrityError(f"{where}: {size} bytes, the manifest says {entry.size}: the file was changed or "
                             "truncated after it was pushed")
    if sha256 != entry.sha256:
        raise IntegrityError(f"{where}: sha256 {sha256[:16]}... does not match the manifest's {entry.sha256[:16]}...: "
                             "the file was changed after it was pushed")


def verify_folder(directory: str | os.PathLike[str], manifest: Manifest | None = None) -> Manifest:
    """Check every file of a version folder against a manifest (by default the folder's own) and return it.

    Raises ``IntegrityError`` naming the first file that is missing, not in the manifest, of the wrong size or
    with the wrong sha256, and ``RegistryError`` when the folder has no manifest and none is given.
    """
    directory = Path(directory)
    manifest = manifest if manifest is not None else read_manifest(directory)
    present = set(_folder_files(directory))
    missing = sorted(set(manifest.files) - present)
    if missing:
        raise IntegrityError(f"{directory / missing[0]}: missing, the manifest of version {manifest.name!r} "
                             "lists it")
    extra = sorted(present - set(manifest.files))
    if extra:
        raise IntegrityError(f"{directory / extra[0]}: not in the manifest of version {manifest.name!r}; a "
                             "registry version's folder holds exactly its manifest's files")
    for rel, entry in manifest.files.items():
        path = directory / rel
        _check_file(path, path.stat().st_size, _sha256_of_file(path), entry)
    return manifest


def check_version_folder(directory: str | os.PathLike[str]) -> Manifest | None:
    """Verify a version folder against its ``manifest.json`` when it has one (what loading for serving does).

    Returns the manifest, or ``None`` for a folder without one (unregistered, e.g. fresh from ``kgi export``
    of an older checkout). Raises ``IntegrityError`` as :func:`verify_folder`.
    """
    return verify_folder(directory) if (Path(directory) / MANIFEST_FILE).is_file() else None


class ModelRegistry:
    """The versions under a registry root.

    Args:
        root: a local folder or ``s3://bucket/prefix`` (S3 through boto3: the endpoint and credentials come from
            the usual AWS variables, see ``kgi.data.storage``).

    Raises ``StoragePathError`` (a ``ValueError``) for a malformed root.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.storage: Storage = open_root(root)

    def __repr__(self) -> str:
        return f"ModelRegistry({self.storage.uri()!r})"

    def names(self) -> list[str]:
        """Names of the published versions (those with a manifest), sorted."""
        return sorted(rel.split("/")[0] for rel in self.storage.list()
                      if rel.count("/") == 1 and rel.endswith("/" + MANIFEST_FILE))

    def show(self, reference: str) -> Manifest:
        """The manifest of a version, named ``name`` or pinned ``name@sha256:<digest>``.

        Raises ``RegistryError`` naming the registry if there is no such version, and ``DigestMismatchError``
        when the version's manifest does not have the pinned digest.
        """
        name, pinned = parse_reference(reference)
        rel = f"{name}/{MANIFEST_FILE}"
        try:
            data = self.storage.read_bytes(rel)
        except FileNotFoundError:
            known = ", ".join(self.names()) or "none"
            raise RegistryError(f"{self.storage.uri()}: no version {name!r} (versions: {known})") from None
        manifest = Manifest.from_json(data, self.storage.uri(rel))
        if pinned is not None and manifest.digest() != pinned:
            raise DigestMismatchError(
                f"{self.storage.uri(name)}: version {name!r} is pinned to sha256:{pinned[:16]}... but the registry "
                f"holds sha256:{manifest.digest()[:16]}...: it was pushed again since it was pinned. Pin the digest "
                f"`kgi models show {name}` prints once that content is the one to serve")
        return manifest

    def list(self) -> list[Manifest]:
        """The manifests of every published version, by name."""
        return [self.show(name) for name in self.names()]

    def push(self, directory: str | os.PathLike[str], name: str | None = None, metrics: dict | None = None,
             overwrite: bool = False) -> Manifest:
        """Publish a version folder as ``name``: upload its files, then its manifest.

        Args:
            directory: the model version folder to push.
            name: its name in the registry (default: the folder's name).
            metrics: figures to record in the manifest.
            overwrite: replace an existing version of that name. Its manifest is replaced last, so until then
                readers get the old version (or, for a file already replaced, an ``IntegrityError``).

        Pushing a folder of a local registry into that same registry writes its manifest in place.
        Raises ``RegistryError`` for a bad name, a folder that is not a version, or an existing version without
        ``overwrite``.
        """
        directory = Path(directory).expanduser().absolute()
        name = check_name(name if name is not None else directory.name)
        if self.storage.exists(f"{name}/{MANIFEST_FILE}") and not overwrite:
            raise RegistryError(f"{self.storage.uri(name)}: version {name!r} exists; push under a new name "
                                "(versions are meant to be immutable) or overwrite it explicitly")
        manifest = build_manifest(directory, name, metrics)
        for rel, entry in manifest.files.items():
            data = (directory / rel).read_bytes()
            _check_file(f"{directory / rel} (changed while pushing)", len(data), hashlib.sha256(data).hexdigest(),
                        entry)
            self.storage.write_bytes(f"{name}/{rel}", data)
        self.storage.write_bytes(f"{name}/{MANIFEST_FILE}", manifest.to_json())
        return manifest

    def pull(self, reference: str, destination: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Download a version (``name`` or ``name@sha256:<digest>``) into the folder ``destination``, verifying
        every file, and return it.

        The files go to a temporary folder beside ``destination`` that is renamed into place once complete, so
        ``destination`` is either absent, the previous content, or the whole verified version. A
        ``destination`` that already holds exactly this version is kept as it is.

        Raises ``IntegrityError`` naming the first file whose content does not match the manifest (nothing is
        written then), ``DigestMismatchError`` for a pinned digest the version no longer has, and
        ``RegistryError`` for an unknown version or a ``destination`` holding something else without ``overwrite``.
        """
        manifest = self.show(reference)
        name, _ = parse_reference(reference)
        destination = Path(destination).expanduser().absolute()
        if destination.exists():
            try:
                return self._verified(destination, manifest)
            except RegistryError as exc:
                if not overwrite:
                    raise RegistryError(f"{destination} exists and is not version {name!r} ({exc}); choose another "
                                        "folder or overwrite it") from None
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent))
        try:
            for rel, entry in manifest.files.items():
                data = self.storage.read_bytes(f"{name}/{rel}")
                _check_file(self.storage.uri(f"{name}/{rel}"), len(data), hashlib.sha256(data).hexdigest(), entry)
                LocalStorage(staging).write_bytes(rel, data)
            (staging / MANIFEST_FILE).write_bytes(manifest.to_json())
            if destination.exists():  # overwrite: set the old folder aside, then swap
                old = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".old", dir=destination.parent))
                destination.rename(old / destination.name)
                staging.rename(destination)
                shutil.rmtree(old)
            else:
                try:
                    staging.rename(destination)
                except OSError:  # another process pulled the same version meanwhile: keep theirs if it is right
                    return self._verified(destination, manifest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return destination

    @staticmethod
    def _verified(directory: Path, manifest: Manifest) -> Path:
        """``directory`` if it holds exactly ``manifest``'s version (files and manifest), else ``RegistryError``."""
        verify_folder(directory, manifest)
        if read_manifest(directory).files != manifest.files:
            raise IntegrityError(f"{directory / MANIFEST_FILE}: differs from the registry's manifest")
        return directory

    def local_copy(self, reference: str, cache_dir: str | os.PathLike[str]) -> Path:
        """A verified folder of a version (``name`` or ``name@sha256:<digest>``) on this machine, for loading it.

        A local registry's own folder is verified and used in place. A remote version is pulled into
        ``<cache_dir>/<bucket>/<prefix>/<name>-<digest>`` (the manifest's digest, so a re-pushed version is a new
        folder) unless a verified copy is already there; a damaged copy is pulled again.

        Raises ``IntegrityError`` when the registry's files do not match the manifest, ``DigestMismatchError``
        when the manifest does not have the pinned digest.
        """
        manifest = self.show(reference)
        name, _ = parse_reference(reference)
        if isinstance(self.storage, LocalStorage):
            return self._verified(self.storage.root / name, manifest)
        remote = self.storage.uri().split("://", 1)[1]  # bucket/prefix, validated by open_root
        destination = Path(cache_dir).expanduser() / remote / f"{name}-{manifest.digest()[:16]}"
        return self.pull(name, destination, overwrite=True)
