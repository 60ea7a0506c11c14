"""Turning a storage URI into what pyarrow (Ray Data, Ray Train) needs.

Local paths pass through. ``s3://bucket/prefix`` becomes a ``pyarrow.fs.S3FileSystem`` and the path without the
scheme, with the endpoint taken from ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (the variables boto3 reads
too), so a MinIO or moto server works exactly like AWS.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs


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
        retry_strategy=pyarrow.fs.AwsStandardS3RetryStrategy(max_attempts=5),
    )
    return filesystem, uri[len("s3://"):].rstrip("/")
