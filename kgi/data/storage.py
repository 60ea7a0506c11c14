"""One byte-level API over a local folder or an S3 prefix.

``open_root("data/vitonhd")`` and ``open_root("s3://bucket/vitonhd")`` return a :class:`Storage` with the same
five methods; everything above this module (readers, the synthetic generator, checkpoints) speaks only in
*relative paths* such as ``"test/image/00006_00.jpg"``, always with ``/`` separators.

Relative paths are validated before any I/O: no ``..`` or ``.`` parts, no absolute paths, no backslashes, no
empty parts (``a//b``, a trailing ``/``). A bad path raises :class:`StoragePathError`, so a file name taken
from user input (a pairs file, a request) cannot reach outside the root.

S3 goes through boto3. The endpoint comes from the standard ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``
environment variables, which boto3 reads itself (moto, MinIO, Ceph); credentials from the usual chain.
Transient errors (throttling, 5xx, refused or dropped connections) are retried by botocore's "standard" retry
mode with exponential backoff and jitter, ``AWS_MAX_ATTEMPTS`` attempts in all (default
:data:`DEFAULT_S3_ATTEMPTS`); when the last one fails, :class:`StorageUnavailableError` names the object and the
cause. A write is one PUT, with a checksum the server verifies: the object appears whole or not at all.
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

S3_SCHEME = "s3://"
DEFAULT_S3_ATTEMPTS = 8  # botocore's "standard" retries: up to ~1 minute of backoff (each wait at most 20 s)


class StoragePathError(ValueError):
    """A storage root or relative path that is malformed or would escape the root."""


class StorageUnavailableError(OSError):
    """The storage did not answer, or kept failing, through every retry; the message names the location."""


def s3_attempts() -> int:
    """Attempts per S3 request, first one included: ``AWS_MAX_ATTEMPTS`` (the AWS variable), else the default."""
    value = os.environ.get("AWS_MAX_ATTEMPTS", "")
    return int(value) if value.strip().isdigit() and int(value) > 0 else DEFAULT_S3_ATTEMPTS


def validate_rel(rel: str, *, allow_root: bool = False) -> str:
    """Check a relative path and return it unchanged.

    Args:
        rel: a ``/``-separated path below a storage root, e.g. ``"test/image/00006_00.jpg"``.
        allow_root: accept ``""`` meaning the root itself (listing everything).

    Raises ``StoragePathError`` naming the path for: a non-string, an empty path (unless ``allow_root``), an
    absolute path, a backslash, a NUL character, and any empty, ``.`` or ``..`` part.
    """
    if not isinstance(rel, str):
        raise StoragePathError(f"storage path {rel!r}: must be a string, got {type(rel).__name__}")
    if rel == "" and allow_root:
        return rel
    if rel == "":
        raise StoragePathError("storage path '': empty")
    if rel.startswith("/"):
        raise StoragePathError(f"storage path {rel!r}: must be relative, not absolute")
    if "\\" in rel or "\x00" in rel:
        raise StoragePathError(f"storage path {rel!r}: backslashes and NUL characters are not allowed")
    for part in rel.split("/"):
        if part in ("", ".", ".."):
            raise StoragePathError(f"storage path {rel!r}: empty, '.' or '..' parts are not allowed")
    return rel


class Storage(ABC):
    """Bytes under a root, addressed by validated relative paths (see :func:`validate_rel`)."""

    @abstractmethod
    def read_bytes(self, rel: str) -> bytes:
        """The whole content of ``rel``. Raises ``FileNotFoundError`` naming the full URI if it does not exist."""

    @abstractmethod
    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write ``data`` to ``rel`` atomically (readers see the old content or the new, never a part)."""

    @abstractmethod
    def exists(self, rel: str) -> bool:
        """Whether a file (object) exists at ``rel``."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Sorted relative paths of every file below the folder ``prefix`` (recursively; ``""`` = all)."""

    @abstractmethod
    def uri(self, rel: str = "") -> str:
        """The full location of ``rel`` (a local path or ``s3://bucket/key``) for messages and other tools."""


class LocalStorage(Storage):
    """A folder on the local file system. The folder need not exist until the first write.

    Args:
        root: the folder.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().absolute()

    def _path(self, rel: str, *, allow_root: bool = False) -> Path:
        rel = validate_rel(rel, allow_root=allow_root)
        return self.root.joinpath(*rel.split("/")) if rel else self.root

    def read_bytes(self, rel: str) -> bytes:
        path = self._path(rel)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such file") from None

    def write_bytes(self, rel: str, data: bytes) -> None:
        path = self._path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A temporary file in the same folder, then a rename: os.replace is atomic within one file system.
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
            os.replace(tmp_name, path)
        except BaseException:
            os.unlink(tmp_name)
            raise

    def exists(self, rel: str) -> bool:
        return self._path(rel).is_file()

    def list(self, prefix: str = "") -> list[str]:
        top = self._path(prefix, allow_root=True)
        return sorted(p.relative_to(self.root).as_posix() for p in top.rglob("*") if p.is_file())

    def uri(self, rel: str = "") -> str:
        return str(self._path(rel, allow_root=True))

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"


class S3Storage(Storage):
    """Objects under ``s3://bucket/prefix`` through boto3.

    Args:
        bucket: the bucket name.
        prefix: key prefix without leading or trailing ``/`` (``""`` for the whole bucket).

    The boto3 client is created on first use and not pickled, so a storage object can be shipped to other
    processes (Ray workers, data-loader workers), each of which opens its own client.
    """

    def __init__(self, bucket: str, prefix: str = ""):
        if not bucket or "/" in bucket:
            raise StoragePathError(f"S3 bucket {bucket!r}: must be a non-empty name without '/'")
        self.bucket = bucket
        self.prefix = validate_rel(prefix, allow_root=True)
        self._client = None

    @property
    def client(self):
        """The boto3 S3 client (endpoint and credentials from the environment, retries with backoff)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            retries = {"mode": "standard", "total_max_attempts": s3_attempts()}
            # A session of its own: boto3's default session is not safe to share between threads.
            self._client = boto3.session.Session().client("s3", config=Config(retries=retries))
        return self._client

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_client": None}

    def _key(self, rel: str, *, allow_root: bool = False) -> str:
        rel = validate_rel(rel, allow_root=allow_root)
        return "/".join(part for part in (self.prefix, rel) if part)

    @contextmanager
    def _unavailable_as_error(self, action: str, key: str) -> Iterator[None]:
        """Turn what is left after botocore's retries (no connection, dropped ones, 5xx) into
        :class:`StorageUnavailableError`; a missing object, bad credentials and the like pass unchanged."""
        from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

        try:
            yield
        except (ConnectionError, HTTPClientError, ClientError) as exc:
            if isinstance(exc, ClientError) and exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode",
                                                                                              0) < 500:
                raise
            raise StorageUnavailableError(
                f"s3://{self.bucket}/{key}: {action} failed after {s3_attempts()} attempts with backoff "
                f"({type(exc).__name__}: {exc})") from exc

    def read_bytes(self, rel: str) -> bytes:
        from botocore.exceptions import ClientError

        key = self._key(rel)
        try:
            with self._unavailable_as_error("reading", key):
                return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _is_not_found(exc):
                raise FileNotFoundError(f"s3://{self.bucket}/{key}: no such object") from None
            raise

    def write_bytes(self, rel: str, data: bytes) -> None:
        # A single PUT is atomic: the object appears whole or not at all. botocore sends a CRC32 of the body
        # that the server checks, so a body damaged on the way is refused rather than stored.
        key = self._key(rel)
        with self._unavailable_as_error("writing", key):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data))

    def exists(self, rel: str) -> bool:
        from botocore.exceptions import ClientError

        key = self._key(rel)
        try:
            with self._unavailable_as_error("looking up", key):
                self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_not_found(exc):
                return False
            raise
        return True

    def list(self, prefix: str = "") -> list[str]:
        folder = self._key(prefix, allow_root=True)
        key_prefix = f"{folder}/" if folder else ""
        skip = len(f"{self.prefix}/") if self.prefix else 0
        with self._unavailable_as_error("listing", key_prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=key_prefix)
            return sorted(obj["Key"][skip:] for page in pages for obj in page.get("Contents", []))

    def uri(self, rel: str = "") -> str:
        key = self._key(rel, allow_root=True)
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"

    def __repr__(self) -> str:
        return f"S3Storage({self.uri()!r})"


class MemoryStorage(Storage):
    """Files held in memory, e.g. the files of one shard row, so they go through the same readers.

    Args:
        files: relative path -> content.
        name: how ``uri`` names the root in messages.
    """

    def __init__(self, files: dict[str, bytes], name: str = "memory"):
        self.files = {validate_rel(rel): data for rel, data in files.items()}
        self.name = name

    def read_bytes(self, rel: str) -> bytes:
        try:
            return self.files[validate_rel(rel)]
        except KeyError:
            raise FileNotFoundError(f"{self.uri(rel)}: no such file") from None

    def write_bytes(self, rel: str, data: bytes) -> None:
        self.files[validate_rel(rel)] = bytes(data)

    def exists(self, rel: str) -> bool:
        return validate_rel(rel) in self.files

    def list(self, prefix: str = "") -> list[str]:
        prefix = validate_rel(prefix, allow_root=True)
        return sorted(rel for rel in self.files if not prefix or rel.startswith(prefix + "/"))

    def uri(self, rel: str = "") -> str:
        return f"{self.name}/{rel}" if rel else self.name


def _is_not_found(exc) -> bool:
    """Whether a botocore ``ClientError`` means the object (or its bucket) does not exist."""
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound", "NoSuchBucket")


def open_root(uri: str | os.PathLike[str]) -> Storage:
    """Open a storage root.

    Args:
        uri: ``s3://bucket`` or ``s3://bucket/prefix`` for S3 (a trailing ``/`` is ignored), otherwise a local
            folder path (``str`` or ``Path``; ``file://`` URIs and other schemes are refused).

    Raises ``StoragePathError`` for an unsupported scheme or a malformed S3 URI.
    """
    text = os.fspath(uri)
    if text.startswith(S3_SCHEME):
        bucket, _, prefix = text[len(S3_SCHEME):].partition("/")
        try:
            return S3Storage(bucket, prefix.rstrip("/"))
        except StoragePathError as exc:
            raise StoragePathError(f"storage root {text!r}: {exc}") from None
    if "://" in text:
        raise StoragePathError(f"storage root {text!r}: only local paths and s3://bucket/prefix are supported")
    return LocalStorage(text)
