"""S3 going away in the middle of a write: retried with backoff, then a clear error, never a partial object
or checkpoint that a later run would load.

The S3 server (moto, ``s3_server``) is reached through :class:`FlakyProxy`, a TCP proxy that can cut every
connection once it has carried a given number of request bytes: small requests (lookups, listings, reads,
small files) still pass, every upload of something larger dies mid-body, attempt after attempt. Shard writes
are exercised directly; checkpoints through a real Ray Train run (one local cluster for the module).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.fs
import pyarrow.parquet as pq
import pytest

from kgi.data import storage
from kgi.data.synth import generate
from kgi.data.storage import UploadError, arrow_filesystem, upload_directory
from training.shards import plan, write_shard

ATTEMPTS = 2  # AWS_MAX_ATTEMPTS in this module: S3 retries stay short
CUT_AFTER_BYTES = 64 * 1024  # bigger than any request's headers or small files; smaller than what gets cut
HEIGHT = 128


class FlakyProxy:
    """A localhost TCP proxy to ``target`` (host, port); ``cut_after`` set: each connection is reset once it
    has forwarded that many bytes from the client. ``cut`` counts the connections reset so far."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.cut_after: int | None = None
        self.cut = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        forwarded = 0
        try:
            while data := source.recv(65536):
                if from_client and self.cut_after is not None and forwarded + len(data) > self.cut_after:
                    sink.sendall(data[: self.cut_after - forwarded])  # the start of the body arrives, the rest never
                    self.cut += 1
                    for end in (source, sink):  # reset both ends, as a dying network would
                        end.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                        end.close()
                    return
                sink.sendall(data)
                forwarded += len(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def flaky_s3(s3_server) -> Iterator[FlakyProxy]:
    """:class:`FlakyProxy` in front of the S3 server, with boto3 and pyarrow pointed at it (short retries)."""
    proxy = FlakyProxy(("127.0.0.1", int(s3_server.endpoint.rsplit(":", 1)[1])))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        env.setenv("AWS_MAX_ATTEMPTS", str(ATTEMPTS))
        yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    generate(root, n_train=8, n_test=2, height=HEIGHT, seed=5, progress=False)
    return root


def objects(s3_server, bucket: str) -> dict[str, int]:
    """Key -> size of every object in ``bucket``, asked of the server directly (not through the proxy)."""
    listing = s3_server.client().list_objects_v2(Bucket=bucket)
    return {item["Key"]: item["Size"] for item in listing.get("Contents", [])}


def test_shard_write_cut_mid_body_fails_clearly_and_publishes_nothing(flaky_s3, s3_server, dataset):
    out = s3_server.bucket("flaky-shards") + "/v1"
    (spec,) = plan(str(dataset), out, "train", shard_size=8)
    flaky_s3.cut_after, flaky_s3.cut = CUT_AFTER_BYTES, 0
    try:
        with pytest.raises(storage.StorageUnavailableError) as failed:
            write_shard(spec)
    finally:
        flaky_s3.cut_after = None
    message = str(failed.value)
    assert message.startswith(f"{out}/train/part-00000.parquet: writing failed after {ATTEMPTS} attempts")
    assert flaky_s3.cut == ATTEMPTS  # every attempt began the upload and lost it
    assert objects(s3_server, "flaky-shards") == {}  # no partial shard is visible

    assert write_shard(spec)["written"]  # S3 is back: the rerun publishes the whole shard
    data = storage.open_root(out).read_bytes(spec.name)
    assert pq.read_table(pa.BufferReader(data)).num_rows == 8


def test_checkpoint_upload_retries_then_names_the_destination(flaky_s3, s3_server, tmp_path):
    checkpoint = tmp_path / "checkpoint"
    (checkpoint / "model").mkdir(parents=True)
    (checkpoint / "model" / "model.safetensors").write_bytes(bytes(range(256)) * 1024)  # 256 KiB: gets cut
    (checkpoint / "history.jsonl").write_text('{"step": 1}\n')  # small: gets through
    s3_server.bucket("flaky-runs")
    filesystem, _ = arrow_filesystem("s3://flaky-runs")
    flaky_s3.cut_after, flaky_s3.cut = CUT_AFTER_BYTES, 0
    try:
        with pytest.raises(UploadError, match=r"flaky-runs/run/checkpoint_1: upload failed after 2 attempts"):
            upload_directory(checkpoint, filesystem, "flaky-runs/run/checkpoint_1", attempts=2, backoff_s=0.1)
    finally:
        flaky_s3.cut_after = None
    assert flaky_s3.cut >= 2  # each attempt lost the big file (pyarrow retried it too)
    assert "run/checkpoint_1/model/model.safetensors" not in objects(s3_server, "flaky-runs")

    upload_directory(checkpoint, filesystem, "flaky-runs/run/checkpoint_1")  # S3 is back
    assert objects(s3_server, "flaky-runs")["run/checkpoint_1/model/model.safetensors"] == 256 * 1024


# ---------------------------------------------------------------- a real training run


@pytest.fixture(scope="module")
def cluster(flaky_s3):
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # workers inherit the proxy's endpoint
    yield
    ray.shutdown()


@pytest.mark.slow
def test_training_run_survives_s3_dying_during_a_checkpoint(cluster, flaky_s3, s3_server, dataset, tmp_path):
    """Run 1 records a checkpoint at step 4. Run 2 (same name, 8 steps) resumes from it, but S3 cuts every
    upload: its step-8 checkpoint fails with UploadError and is never recorded. Run 3 resumes from step 4
    again, not from the half-written step-8 folder, and finishes."""
    from training.config import TrainConfig
    from training.job import read_history, run
    from training.shards import convert

    import ray.train

    shards = tmp_path / "shards"
    convert(str(dataset), str(shards), shard_size=4, splits=("train",))
    bucket = s3_server.bucket("flaky-train")
    config = {"model": "keypoints", "data": str(shards), "storage_path": bucket, "run_name": "outage",
              "height": HEIGHT, "batch_size": 4, "num_workers": 1, "cpus_per_worker": 0.5, "max_failures": 0,
              "checkpoint_every": 4, "seed": 1, "model_config": {"garment_channels": 64, "pose_channels": 64}}

    first = run(TrainConfig(**config, steps=4))
    assert first.error is None and read_history(first.checkpoint)[-1]["step"] == 4

    flaky_s3.cut_after = CUT_AFTER_BYTES
    try:
        with pytest.raises(ray.train.TrainingFailedError) as failed:
            run(TrainConfig(**config, steps=8))
    finally:
        flaky_s3.cut_after = None
    assert "UploadError" in str(failed.value) and "upload failed after" in str(failed.value)
    keys = [key.split("/") for key in objects(s3_server, "flaky-train")]
    checkpoint_folders = {parts[1] for parts in keys if len(parts) > 2 and parts[1].startswith("checkpoint_")}
    assert len(checkpoint_folders) == 2  # the recorded one and the half-written one

    filesystem, path = arrow_filesystem(f"{bucket}/outage")
    recorded = ray.train.Result.from_path(path, storage_filesystem=filesystem).checkpoint
    assert read_history(recorded)[-1]["step"] == 4  # what an export or a rerun would load

    third = run(TrainConfig(**config, steps=8))
    assert third.error is None
    history = read_history(third.checkpoint)
    assert [h["step"] for h in history] == list(range(1, 9))
    assert history[:4] == read_history(first.checkpoint)  # resumed from step 4, not redone
