"""Shared fixtures: the genuine VITON-HD sample, a real S3 server (moto) for the whole session, a local Ray
cluster per module that sees it, and one running service (``platform/serve/local.yaml`` on random weights) shared
by every test that asks for ``service``; those tests run last, together, so no other module's cluster meets it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from s3 import S3Server  # pytest puts tests/ (the folder of this conftest.py) on sys.path

VITONHD_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "vitonhd-sample"
# Variables that would send boto3 elsewhere than the test server or load a real profile.
AWS_VARIABLES_TO_CLEAR = ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


@pytest.fixture(scope="session")
def vitonhd_sample() -> Path:
    """The genuine VITON-HD test pair (person 00006_00, garments 00006_00 and 06396_00)."""
    if not (VITONHD_SAMPLE / "test_pairs.txt").is_file():
        pytest.skip(f"the genuine VITON-HD sample is not at {VITONHD_SAMPLE}")
    return VITONHD_SAMPLE


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 endpoint (``moto_server`` subprocess) with the AWS environment pointing at it.

    Sets ``AWS_ENDPOINT_URL``, dummy credentials and ``AWS_DEFAULT_REGION`` for the session (restored after) and
    yields the server: ``.endpoint`` (URL) and ``.bucket(name)`` (creates a bucket, returns ``s3://name``).
    """
    empty_config = tmp_path_factory.mktemp("aws") / "config"
    empty_config.write_text("")
    server = S3Server.start()
    with pytest.MonkeyPatch.context() as env:
        for name in AWS_VARIABLES_TO_CLEAR:
            env.delenv(name, raising=False)
        for name, value in server.environment().items():
            env.setenv(name, value)
        env.setenv("AWS_CONFIG_FILE", str(empty_config))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty_config))
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def ray_with_s3(s3_server: S3Server) -> Iterator[None]:
    """A local Ray cluster for one module, started after the S3 server so its workers inherit the server's
    environment."""
    import ray

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests of the shared ``service`` last (stable order otherwise): its cluster, started once, then
    lives until the session ends without overlapping the clusters other modules start and stop."""
    items.sort(key=lambda item: "service" in item.fixturenames)


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding one random-weights model version, "default" (2 sampler steps)."""
    from serving_support import write_random_version

    return write_random_version(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def service(model_root: Path) -> Iterator[str]:
    """``platform/serve/local.yaml`` serving ``model_root`` on its own local Ray cluster; yields the base URL."""
    from serving_support import running_service

    with running_service(model_root) as url:
        yield url
