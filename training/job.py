"""Launching a training run on the Ray cluster: Ray Data pipeline in, ``TorchTrainer`` run, metrics plot out."""

from __future__ import annotations

import functools
import json
import math
import threading
from pathlib import Path

import ray
import ray.data
from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.util.queue import Empty, Queue

from training.config import TrainConfig
from training.errors import StopOnDataError
from kgi.data.storage import arrow_filesystem
from training.loop import HISTORY_FILE, PROGRESS_QUEUE, train_loop_per_worker
from training.preprocess import repeat_rows
from kgi.data.shards import count_rows
from training.tasks import TASKS


def training_dataset(cfg: TrainConfig, rows: int) -> ray.data.Dataset:
    """The ``train`` split of ``cfg.data`` (``rows`` rows) as a Ray Dataset of model-ready columns.

    Decoding, resizing, augmentation and sketch drawing run here, as CPU ``map_batches`` stages that Ray Data
    streams ahead of the training workers, so the workers (GPUs) never wait on them. A split smaller than one
    batch per worker (a one-pair smoke test) has each row repeated until every worker gets a full batch in each
    pass over it, so the configured batch size holds whatever the split's size.
    """
    filesystem, path = arrow_filesystem(cfg.data)
    task = TASKS[cfg.model](cfg)
    # Ray 2.60's new Parquet reader (DataSourceV2) lists the files in one task (~5 s here) and merges the shards
    # into a couple of large blocks, so every epoch waited 5-8 s for its first batch; the classic reader makes
    # many smaller blocks that stream: 2 s (BENCHMARKS.md, "Training"). read_parquet picks the reader from this
    # process's DataContext, and the dataset keeps its own copy, so the setting is restored right after.
    context = ray.data.DataContext.get_current()
    use_datasource_v2, context.use_datasource_v2 = context.use_datasource_v2, False
    try:  # include_paths: each row carries its shard file, which data errors name
        dataset = ray.data.read_parquet(f"{path}/train", filesystem=filesystem, file_extensions=["parquet"],
                                        include_paths=True)
    finally:
        context.use_datasource_v2 = use_datasource_v2
    dataset = dataset.randomize_block_order(seed=cfg.seed)
    repeats = repeats_for_full_batches(rows, cfg.num_workers, cfg.batch_size)
    if repeats > 1:
        print(f"[{cfg.model}] the train split has {rows} pair(s), fewer than one batch per worker "
              f"({cfg.num_workers} x {cfg.batch_size}): each pass over it repeats every pair {repeats} times",
              flush=True)
        dataset = dataset.map_batches(functools.partial(repeat_rows, times=repeats), batch_size=None, num_cpus=0.5)
    dataset = dataset.map_batches(task.preprocessor(), batch_size=32, num_cpus=0.5)
    # A deterministic, small preprocessing output is computed once instead of once per epoch.
    return dataset.materialize() if task.cache_preprocessed else dataset


def repeats_for_full_batches(rows: int, num_workers: int, batch_size: int) -> int:
    """How many times each row must appear so that every worker's equal share holds a full batch."""
    return max(1, math.ceil(num_workers * batch_size / rows))


def run(cfg: TrainConfig, *, quiet: bool = False) -> ray.train.Result:
    """Train ``cfg.model``; rerunning with the same ``run_name`` and ``storage_path`` resumes the run.

    ``quiet=True`` is for a driver that does not show the workers' logs (``ray.init(log_to_driver=False)``): it
    leaves out Ray Data's progress bars and Ray Train's logs below errors, and the training loop's progress lines
    reach this process through a queue and are printed here.

    Raises:
        DatasetError: before any worker starts, for a missing or empty train split.
        ray.train.TrainingFailedError: at the first row that cannot be used, without the retries that worker
            failures get; ``training.errors.data_error`` finds the one-line message in it.
    """
    rows = count_rows(cfg.data)
    context = ray.data.DataContext.get_current()  # the dataset keeps a copy of the context it was made in
    progress_bars, context.enable_progress_bars = context.enable_progress_bars, not quiet
    try:
        dataset = training_dataset(cfg, rows)
    finally:
        context.enable_progress_bars = progress_bars
    progress = Queue(actor_options={"num_cpus": 0}) if quiet else None
    filesystem, storage = arrow_filesystem(cfg.storage_path)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={**cfg.to_dict(), PROGRESS_QUEUE: progress},
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                                     resources_per_worker={"CPU": cfg.cpus_per_worker},
                                     placement_strategy=cfg.placement_strategy),
        run_config=RunConfig(name=cfg.run_name, storage_path=storage, storage_filesystem=filesystem,
                             failure_config=FailureConfig(max_failures=cfg.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2), callbacks=[StopOnDataError()],
                             logging_config=LoggingConfig(log_level="ERROR" if quiet else "INFO")),
        datasets={"train": dataset},
    )
    if progress is None:
        return trainer.fit()
    done = threading.Event()
    printer = threading.Thread(target=_print_lines, args=(progress, done), daemon=True)
    printer.start()
    try:
        return trainer.fit()
    finally:
        done.set()
        printer.join()
        ray.kill(progress.actor)


def _print_lines(queue: Queue, done: threading.Event) -> None:
    """Print what arrives in ``queue`` until ``done`` is set and the queue is empty."""
    while not (done.is_set() and queue.empty()):
        try:
            print(queue.get(timeout=0.5), flush=True)
        except Empty:
            pass


def read_history(checkpoint: ray.train.Checkpoint) -> list[dict]:
    """Per-step metrics stored in a checkpoint (the whole run up to that checkpoint)."""
    with checkpoint.as_directory() as directory:
        return [json.loads(line) for line in (Path(directory) / HISTORY_FILE).read_text().splitlines()]


def plot_history(history: list[dict], path: Path, title: str) -> None:
    """Loss, samples/s and data-wait fraction per step, one panel each, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    panels = [("loss", "loss"), ("samples_per_s", "samples / s"), ("data_wait_fraction", "data-wait fraction")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, (key, label) in zip(axes, panels):
        ax.plot(steps, [h[key] for h in history], lw=1)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
