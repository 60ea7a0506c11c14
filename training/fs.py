"""Turning a storage URI into what pyarrow (Ray Data, Ray Train) needs, and uploading checkpoints safely.

Local paths pass through. ``s3://bucket/prefix`` becomes a ``pyarrow.fs.S3FileSystem`` and the path without the
scheme, with the endpoint taken from ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (the variables boto3 reads
too), so a MinIO or moto server works exactly like AWS. Every S3 request is retried with backoff as boto3's are
(``AWS_MAX_ATTEMPTS`` attempts, ``kgi.data.storage.s3_attempts``).

:func:`upload_directory` is how a training checkpoint reaches its storage: copied, verified file by file, and
only then handed to Ray Train, which records it (publishes it) after that; a copy that keeps failing raises
:class:`UploadError`, so a half-written checkpoint is never recorded and no later run or export loads it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow.fs

from kgi.data.storage import s3_attempts

UPLOAD_ATTEMPTS = 3  # whole-directory attempts, each after S3's own per-request retries
UPLOAD_BACKOFF_S = 1.0  # wait before the second attempt, doubled before each further one


class UploadError(OSError):
    """A directory could not be copied and verified at its destination; the message names it and the cause."""


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def arrow_filesystem(uri: str) -> tuple[pyarrow.fs.FileSystem | None, str]:
    """``(filesystem, path)`` for pyarrow-based readers and writers; ``filesystem`` is None for local paths."""
    if not is_s3(uri):
        return None, str(Path(uri).expanduser().resolve())
    endpoint = s3_endpoint()
    scheme = "https"
    if endpoint and "://" in endpoint:
        scheme, endpoint = endpoint.split("://", 1)
    filesystem = pyarrow.fs.S3FileSystem(
        endpoint_override=endpoint, scheme=scheme,
        region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        retry_strategy=pyarrow.fs.AwsStandardS3RetryStrategy(max_attempts=s3_attempts()),
    )
    return filesystem, uri[len("s3://"):].rstrip("/")


def _file_sizes(filesystem: pyarrow.fs.FileSystem, directory: str) -> dict[str, int]:
    """Relative path -> size of every file below ``directory``."""
    infos = filesystem.get_file_info(pyarrow.fs.FileSelector(directory, recursive=True, allow_not_found=True))
    return {info.path[len(directory):].lstrip("/"): info.size for info in infos
            if info.type == pyarrow.fs.FileType.File}


def upload_directory(source: str | os.PathLike[str], filesystem: pyarrow.fs.FileSystem, destination: str, *,
                     attempts: int = UPLOAD_ATTEMPTS, backoff_s: float = UPLOAD_BACKOFF_S) -> None:
    """Copy the local folder ``source`` to ``destination`` on ``filesystem`` and verify it arrived whole.

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
