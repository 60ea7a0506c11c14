"""One storage layer over a local folder, an S3 prefix or files held in memory, on ``pyarrow.fs``.

``open_root("data/vitonhd")`` and ``open_root("s3://bucket/vitonhd")`` return a :class:`Storage` with the same
five methods; everything above this module (readers, the synthetic generator, checkpoints) speaks only in
*relative paths* such as ``"test/image/00006_00.jpg"``, always with ``/`` separators. :class:`MemoryStorage`
holds one shard row's files the same way. Ray Data and Ray Train take the same file systems as
``(filesystem, path)`` from :func:`arrow_filesystem`, and a training checkpoint reaches its storage through
:func:`upload_directory`.

Relative paths are validated before any I/O: no ``..`` or ``.`` parts, no absolute paths, no backslashes, no
empty parts (``a//b``, a trailing ``/``). A bad path raises :class:`StoragePathError`, so a file name taken
from user input (a pairs file, a request) cannot reach outside the root.

S3 goes through ``pyarrow.fs.S3FileSystem``. The endpoint comes from the standard ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL`` variables (moto, MinIO, Ceph), credentials and region from the usual AWS chain. Every
request is retried with the AWS SDK's "standard" strategy (exponential backoff with jitter), ``AWS_MAX_ATTEMPTS``
attempts in all (default :data:`DEFAULT_S3_ATTEMPTS`): the one retry setting of every S3 access here. When the
last attempt fails, :class:`StorageUnavailableError` names the object and the cause. A write is published whole or
not at all: locally a temporary file renamed into place, on S3 one object that appears when its upload completes.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.fs

S3_SCHEME = "s3://"
DEFAULT_S3_ATTEMPTS = 8  # the AWS SDK's "standard" retries: up to ~1 minute of backoff (each wait at most 20 s)
UPLOAD_ATTEMPTS = 3  # whole-directory attempts of upload_directory, each after S3's own per-request retries
UPLOAD_BACKOFF_S = 1.0  # wait before the second attempt, doubled before each further one


class StoragePathError(ValueError):
    """A storage root or relative path that is malformed or would escape the root."""


class StorageUnavailableError(OSError):
    """The storage did not answer, or kept failing, through every retry; the message names the location."""


class UploadError(OSError):
    """A directory could not be copied and verified at its destination; the message names it and the cause."""


def s3_attempts() -> int:
    """Attempts per S3 request, first one included: ``AWS_MAX_ATTEMPTS`` (the AWS variable), else the default."""
    value = os.environ.get("AWS_MAX_ATTEMPTS", "")
    return int(value) if value.strip().isdigit() and int(value) > 0 else DEFAULT_S3_ATTEMPTS


def is_s3(uri: str) -> bool:
    return uri.startswith(S3_SCHEME)


def s3_filesystem() -> pyarrow.fs.S3FileSystem:
    """An S3 file system for the endpoint, credentials and retry setting of this process's environment."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    scheme = "https"
    if endpoint and "://" in endpoint:
        scheme, endpoint = endpoint.split("://", 1)
    return pyarrow.fs.S3FileSystem(
        endpoint_override=endpoint, scheme=scheme,
        region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        retry_strategy=pyarrow.fs.AwsStandardS3RetryStrategy(max_attempts=s3_attempts()),
    )


def arrow_filesystem(uri: str) -> tuple[pyarrow.fs.FileSystem | None, str]:
    """``(filesystem, path)`` for pyarrow-based readers and writers (Ray Data, Ray Train); ``filesystem`` is None
    for local paths, which those tools open themselves."""
    if not is_s3(uri):
        return None, str(Path(uri).expanduser().resolve())
    return s3_filesystem(), uri[len(S3_SCHEME):].rstrip("/")


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


class FileSystemStorage(Storage):
    """Files below ``base`` on a ``pyarrow.fs`` file system: what :class:`LocalStorage` and :class:`S3Storage`
    share. Subclasses say how the file system is made (:meth:`_filesystem`), how a path is named (``uri``) and
    how a write is published (:meth:`write_bytes`).

    The file system is made on first use and not pickled, so a storage object shipped to another process (a Ray
    worker, a data-loader worker) opens its own there, with that process's environment.
    """

    def __init__(self, base: str):
        self.base = base
        self._fs: pyarrow.fs.FileSystem | None = None

    @abstractmethod
    def _filesystem(self) -> pyarrow.fs.FileSystem:
        """A new file system for this storage."""

    @property
    def filesystem(self) -> pyarrow.fs.FileSystem:
        if self._fs is None:
            self._fs = self._filesystem()
        return self._fs

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fs": None}

    def _path(self, rel: str, *, allow_root: bool = False) -> str:
        """The file system path of ``rel`` (validated)."""
        rel = validate_rel(rel, allow_root=allow_root)
        return f"{self.base}/{rel}" if rel else self.base

    @contextmanager
    def _failures(self, action: str, rel: str) -> Iterator[None]:
        """Errors of ``action`` on ``rel`` as this module raises them (see :class:`S3Storage`)."""
        yield

    def read_bytes(self, rel: str) -> bytes:
        path = self._path(rel)
        try:
            with self._failures("reading", rel), self.filesystem.open_input_stream(path) as stream:
                return stream.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.uri(rel)}: no such file") from None

    def exists(self, rel: str) -> bool:
        path = self._path(rel)
        with self._failures("looking up", rel):
            return self.filesystem.get_file_info(path).type == pyarrow.fs.FileType.File

    def list(self, prefix: str = "") -> list[str]:
        top = self._path(prefix, allow_root=True)
        selector = pyarrow.fs.FileSelector(top, recursive=True, allow_not_found=True)
        with self._failures("listing", prefix):
            infos = self.filesystem.get_file_info(selector)
        skip = len(self.base) + 1
        return sorted(info.path[skip:] for info in infos if info.type == pyarrow.fs.FileType.File)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri()!r})"


class LocalStorage(FileSystemStorage):
    """A folder on the local file system. The folder need not exist until the first write.

    Args:
        root: the folder.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().absolute()
        super().__init__(self.root.as_posix())

    def _filesystem(self) -> pyarrow.fs.FileSystem:
        return pyarrow.fs.LocalFileSystem()

    def write_bytes(self, rel: str, data: bytes) -> None:
        path = self._path(rel)
        folder, _, name = path.rpartition("/")
        self.filesystem.create_dir(folder)
        # A temporary file in the same folder, then a rename: atomic within one file system.
        temporary = f"{folder}/.{name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        try:
            with self.filesystem.open_output_stream(temporary) as stream:
                stream.write(data)
            self.filesystem.move(temporary, path)
        except BaseException:
            if self.filesystem.get_file_info(temporary).type != pyarrow.fs.FileType.NotFound:
                self.filesystem.delete_file(temporary)
            raise

    def uri(self, rel: str = "") -> str:
        return str(Path(self._path(rel, allow_root=True)))


class S3Storage(FileSystemStorage):
    """Objects under ``s3://bucket/prefix``.

    Args:
        bucket: the bucket name.
        prefix: key prefix without leading or trailing ``/`` (``""`` for the whole bucket).
    """

    def __init__(self, bucket: str, prefix: str = ""):
        if not bucket or "/" in bucket:
            raise StoragePathError(f"S3 bucket {bucket!r}: must be a non-empty name without '/'")
        self.bucket = bucket
        self.prefix = validate_rel(prefix, allow_root=True)
        super().__init__("/".join(part for part in (bucket, self.prefix) if part))

    def _filesystem(self) -> pyarrow.fs.FileSystem:
        return s3_filesystem()

    @contextmanager
    def _failures(self, action: str, rel: str) -> Iterator[None]:
        """What is left after the retries (no connection, dropped ones, 5xx, throttling) as
        :class:`StorageUnavailableError`; a missing object and a refused request (4xx) pass unchanged."""
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as exc:
            if _is_refusal(str(exc)):
                raise
            raise StorageUnavailableError(f"{self.uri(rel)}: {action} failed after {s3_attempts()} attempts with "
                                          f"backoff ({type(exc).__name__}: {exc})") from exc

    def write_bytes(self, rel: str, data: bytes) -> None:
        # An object appears when its upload completes (one PUT for a small object, a multipart upload completed
        # last for a large one): whole or not at all. A failed upload leaves nothing.
        path = self._path(rel)
        with self._failures("writing", rel), self.filesystem.open_output_stream(path) as stream:
            stream.write(data)

    def uri(self, rel: str = "") -> str:
        return f"{S3_SCHEME}{self._path(rel, allow_root=True)}"


def _is_refusal(message: str) -> bool:
    """Whether a pyarrow S3 error is the server refusing the request (4xx: credentials, permissions, a bad
    request), which no retry cures, rather than the storage being unavailable."""
    return any(code in message for code in ("ACCESS_DENIED", "INVALID_ACCESS_KEY", "SIGNATURE_DOES_NOT_MATCH",
                                            "HTTP status 400", "HTTP status 401", "HTTP status 403"))


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


def open_root(uri: str | os.PathLike[str]) -> Storage:
    """Open a storage root.

    Args:
        uri: ``s3://bucket`` or ``s3://bucket/prefix`` for S3 (a trailing ``/`` is ignored), otherwise a local
            folder path (``str`` or ``Path``; ``file://`` URIs and other schemes are refused).

    Raises ``StoragePathError`` for an unsupported scheme or a malformed S3 URI.
    """
    text = os.fspath(uri)
    if is_s3(text):
        bucket, _, prefix = text[len(S3_SCHEME):].partition("/")
        try:
            return S3Storage(bucket, prefix.rstrip("/"))
        except StoragePathError as exc:
            raise StoragePathError(f"storage root {text!r}: {exc}") from None
    if "://" in text:
        raise StoragePathError(f"storage root {text!r}: only local paths and s3://bucket/prefix are supported")
    return LocalStorage(text)


def _file_sizes(filesystem: pyarrow.fs.FileSystem, directory: str) -> dict[str, int]:
    """Relative path -> size of every file below ``directory``."""
    infos = filesystem.get_file_info(pyarrow.fs.FileSelector(directory, recursive=True, allow_not_found=True))
    return {info.path[len(directory):].lstrip("/"): info.size for info in infos
            if info.type == pyarrow.fs.FileType.File}


def upload_directory(source: str | os.PathLike[str], filesystem: pyarrow.fs.FileSystem, destination: str, *,
                     attempts: int = UPLOAD_ATTEMPTS, backoff_s: float = UPLOAD_BACKOFF_S) -> None:
    """Copy the local folder ``source`` to ``destination`` on ``filesystem`` and verify it arrived whole.

    This is how a training checkpoint reaches its storage: copied, verified file by file, and only then handed to
    Ray Train, which records it (publishes it) after that; so a half-written checkpoint is never recorded and no
    later run or export loads it.

    Args:
        source: a local folder (a checkpoint Ray Train is about to record).
        filesystem, destination: where it goes (a Ray Train storage filesystem and a path on it).
        attempts: whole copies tried, waiting ``backoff_s``, then twice as long, ... between them.
        backoff_s: the first wait, seconds.

    Verification lists the destination and compares every file's size with the source's. Raises
    :class:`UploadError` naming ``destination`` and the last problem when no attempt verifies.
    """
    source = Path(source)
    expected = {path.relative_to(source).as_posix(): path.stat().st_size for path in source.rglob("*")
                if path.is_file()}
    problem = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            filesystem.create_dir(destination)
            pyarrow.fs.copy_files(str(source), destination, source_filesystem=pyarrow.fs.LocalFileSystem(),
                                  destination_filesystem=filesystem)
            found = _file_sizes(filesystem, destination)
        except OSError as exc:  # pyarrow raises OSError for every I/O failure, after its own retries
            problem = f"{type(exc).__name__}: {exc}"
            continue
        wrong = sorted(name for name, size in expected.items() if found.get(name) != size)
        if not wrong:
            return
        problem = f"verification found {len(wrong)} missing or incomplete file(s), e.g. {wrong[0]}"
    raise UploadError(f"{destination}: upload failed after {attempts} attempts with backoff ({problem})")
