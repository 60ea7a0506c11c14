"""Training for real: synthetic data -> shards on a real S3 server -> Ray Train runs of all three models.

One local Ray cluster for the module. Each model trains for a few steps with two workers streaming shards
from S3 with checkpoints to S3; the tests check that the loss goes down, that a rerun resumes at the saved
step, and that killing a worker process mid-run still ends in a finished run.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest
import ray
from ray import cloudpickle

from kgi.data import storage
from kgi.data.synth import generate
from kgi.models.keypoints import KeypointGNN
from kgi.data.storage import arrow_filesystem
from training.config import TrainConfig
from training.job import read_history, run
from training.shards import convert
from training.tasks import TASKS

HEIGHT = 128
pytestmark = pytest.mark.slow  # Ray Train runs on a local cluster


@pytest.fixture(scope="module")
def shards(ray_with_s3, s3_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate(root, n_train=24, n_test=4, height=HEIGHT, seed=3, progress=False)
    out = s3_server.bucket("kgi-shards") + "/v1"
    results = convert(str(root), out, shard_size=8)
    return {"root": root, "uri": out, "results": results}


def test_convert_writes_verified_shards_and_is_idempotent(shards):
    assert [r["shard"] for r in shards["results"]] == [
        "test/part-00000.parquet", "train/part-00000.parquet", "train/part-00001.parquet", "train/part-00002.parquet"]
    assert all(r["written"] for r in shards["results"])
    out = storage.open_root(shards["uri"])
    manifest = json.loads(out.read_bytes("train/_manifest.json"))
    assert manifest["rows"] == 24 and len(manifest["shards"]) == 3
    filesystem, path = arrow_filesystem(shards["uri"])
    table = pq.read_table(f"{path}/train/part-00001.parquet", filesystem=filesystem)
    assert table.num_rows == 8
    assert table.column("person_name")[0].as_py() == "00008_00.jpg"
    assert json.loads(table.column("cloth_landmarks_json")[0].as_py())["keypoints"]
    rerun = convert(str(shards["root"]), shards["uri"], shard_size=8)
    assert not any(r["written"] for r in rerun)


def _config(model, shards, s3_server, run_name, steps, **extra):
    options = {"checkpoint_every": steps // 2, **extra}
    return TrainConfig(model=model, data=shards["uri"], storage_path=s3_server.bucket("kgi-runs"),
                       run_name=run_name, height=HEIGHT, steps=steps, batch_size=4, num_workers=2,
                       cpus_per_worker=0.5, max_failures=2, seed=1, **options)


def _loss_goes_down(history):
    losses = [h["loss"] for h in history]
    third = max(1, len(losses) // 3)
    return sum(losses[-third:]) / third < sum(losses[:third]) / third


def test_keypoints_trains_and_a_rerun_resumes(shards, s3_server):
    steps = 12
    cfg = _config("keypoints", shards, s3_server, "keypoints-resume", steps, learning_rate=3e-3,
                  model_config={"garment_channels": 32, "pose_channels": 32})
    result = run(cfg)
    assert result.error is None
    history = read_history(result.checkpoint)
    assert [h["step"] for h in history] == list(range(1, steps + 1))
    assert _loss_goes_down(history), [round(h["loss"], 4) for h in history]
    assert all(0 <= h["data_wait_fraction"] <= 1 and h["samples_per_s"] > 0 for h in history)

    more = run(TrainConfig(**{**cfg.to_dict(), "steps": steps + 4}))
    resumed = read_history(more.checkpoint)
    assert resumed[:steps] == history  # the first run's steps are kept, not redone
    assert [h["step"] for h in resumed] == list(range(1, steps + 5))


def test_a_new_run_starts_from_init_from_weights(shards, s3_server, tmp_path):
    """Fine-tuning: a new run given ``init_from`` starts from those weights (after two steps at a tiny learning
    rate it still holds them), one without it from its own random init (the same seed for both)."""
    sizes = {"garment_channels": 32, "pose_channels": 32}
    trained = run(_config("keypoints", shards, s3_server, "keypoints-source", 12, learning_rate=3e-3,
                          model_config=sizes))
    weights = tmp_path / "keypoints.safetensors"
    with trained.checkpoint.as_directory() as directory:
        shutil.copy(Path(directory) / "model" / "model.safetensors", weights)
    source = dict(KeypointGNN.load(weights).named_parameters())  # the learnt weights (no buffers, no counts)
    distance = {}
    for name, init_from in (("keypoints-random", None), ("keypoints-finetune", str(weights))):
        result = run(_config("keypoints", shards, s3_server, name, 2, learning_rate=1e-7, model_config=sizes,
                             init_from=init_from))
        with result.checkpoint.as_directory() as directory:
            state = dict(KeypointGNN.load(Path(directory) / "model" / "model.safetensors").named_parameters())
        distance[name] = max(float((state[key] - source[key]).detach().abs().max()) for key in source)
    assert distance["keypoints-finetune"] < 1e-4 < distance["keypoints-random"], distance


@pytest.mark.parametrize("model, lr, model_config", [
    ("parse", 3e-3, {"base_channels": 8, "max_channels": 32}),
    ("inpainter", 1e-3, {"preset": "tiny"}),
    ("synth_parser", 3e-3, {"base_channels": 8, "max_channels": 16, "levels": 2}),
])
def test_image_models_train_from_s3_shards(shards, s3_server, model, lr, model_config):
    cfg = _config(model, shards, s3_server, f"{model}-run", 12, learning_rate=lr, model_config=model_config)
    result = run(cfg)
    assert result.error is None
    history = read_history(result.checkpoint)
    assert len(history) == 12
    assert _loss_goes_down(history), [round(h["loss"], 4) for h in history]


def _train_workers() -> list[psutil.Process]:
    """The Ray Train worker processes of this test's cluster (its raylet's children), never those of another Ray
    cluster on the same machine (a training run of the developer's own)."""
    node = ray._private.worker.global_worker.node
    raylet = psutil.Process(node.all_processes[ray._private.ray_constants.PROCESS_TYPE_RAYLET][0].process.pid)
    workers = []
    for process in raylet.children(recursive=True):
        with contextlib.suppress(psutil.Error):  # a process that ended meanwhile
            if any("RayTrainWorker" in part for part in process.cmdline()):
                workers.append(process)
    return workers


def test_killing_a_worker_mid_run_still_finishes(shards, s3_server):
    cfg = _config("keypoints", shards, s3_server, "keypoints-fault", 40, checkpoint_every=8,
                  model_config={"garment_channels": 16, "pose_channels": 16})
    killed, finished = [], threading.Event()

    def kill_one_worker_after_first_checkpoint():
        out = storage.open_root(cfg.storage_path)
        while not finished.is_set() and not killed:
            if any("checkpoint" in rel for rel in out.list(cfg.run_name)):
                workers = _train_workers()
                if workers:
                    os.kill(workers[-1].pid, signal.SIGKILL)
                    killed.append(workers[-1].pid)
            time.sleep(0.2)

    killer = threading.Thread(target=kill_one_worker_after_first_checkpoint, daemon=True)
    killer.start()
    result = run(cfg)
    finished.set()
    killer.join()
    assert killed, "no worker was killed: the test did not exercise a failure"
    assert result.error is None
    assert read_history(result.checkpoint)[-1]["step"] == 40


# What a fresh Ray Data worker may import to run each task's preprocessing stage (training.preprocess): the model
# stack (torch, torch-geometric, diffusers) cost every such worker ~4 s of CPU before its first batch.
MODEL_STACK = ["torch", "torch_geometric", "diffusers", "training.tasks"]
DATA_WORKER = f"""
import json, pickle, sys
stage_bytes, batch_bytes = pickle.load(sys.stdin.buffer)
stage = pickle.loads(stage_bytes)
imported_by_unpickling = [m for m in {MODEL_STACK!r} if m in sys.modules]
columns = stage(pickle.loads(batch_bytes))
print(json.dumps({{"unpickling": imported_by_unpickling, "running": [m for m in {MODEL_STACK!r} if m in sys.modules],
                  "rows": sorted({{name: len(column) for name, column in columns.items()}}.items())}}))
"""


@pytest.mark.parametrize("model, columns, may_import", [
    ("keypoints", ["cloth_kp", "pose_nodes", "worn_kp"], []),
    ("inpainter", ["images", "parse13"], []),
    ("parse", ["inputs", "target"], ["torch"]),  # builds its inputs with the inference code's torch functions
])
def test_a_data_worker_runs_the_preprocessing_stage_without_the_model_stack(shards, model, columns, may_import):
    stage = TASKS[model](TrainConfig(model=model, data=shards["uri"], height=HEIGHT)).preprocessor()
    filesystem, path = arrow_filesystem(shards["uri"])
    rows = pq.read_table(f"{path}/train/part-00000.parquet", filesystem=filesystem).slice(0, 2).to_pydict()
    batch = {name: np.asarray(values, dtype=object) for name, values in rows.items()}  # as map_batches hands it
    worker_input = pickle.dumps((cloudpickle.dumps(stage), pickle.dumps(batch)))
    done = subprocess.run([sys.executable, "-c", DATA_WORKER], input=worker_input, capture_output=True, check=True)
    report = json.loads(done.stdout)
    assert report["unpickling"] == []
    assert report["running"] == may_import
    assert report["rows"] == [[name, 2] for name in columns]
