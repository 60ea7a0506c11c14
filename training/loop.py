"""The training loop every Ray Train worker runs, the same for the three models.

A model is plugged in through a ``training.tasks.Task``: it builds the model, turns shard rows into tensors
(a CPU Ray Data stage, run before the data reaches the worker) and computes the loss. This module owns the rest:
data-parallel wrapping, mixed precision, EMA, checkpoints with resume, and per-step metrics.

A checkpoint directory holds::

    model/                  the model in its own save format (safetensors + JSON config), ready to export
    ema/                    the EMA weights in the same format, when EMA is on
    training_state.pt       optimizer / scaler state and the step (loaded with ``weights_only=True``)
    history.jsonl           one line of metrics per step since the run began (kept across resumes); ``data_pass``
                            counts the passes over the data since the worker (re)started
    train_config.json       the run's TrainConfig

Checkpoints reach the run's storage through ``kgi.data.storage.upload_directory`` (retried with backoff, verified
file by file) before Ray Train records them, so a storage outage ends the run with a clear ``UploadError``
and the last recorded checkpoint stays the one a rerun resumes from.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

import ray.train
import ray.train.torch
from kgi.runtime import retain_freed_memory
from training.config import TrainConfig
from training.errors import DataError, data_error
from kgi.data.storage import upload_directory
from training.tasks import TASKS

STATE_FILE = "training_state.pt"
HISTORY_FILE = "history.jsonl"
CONFIG_FILE = "train_config.json"
LOG_EVERY = 20  # steps between progress lines on the driver's console
PROGRESS_QUEUE = "progress_queue"  # the train_loop_config key of the queue progress lines go to (training.job)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def train_loop_per_worker(config: dict) -> None:
    """Ray Train entry point: train ``config['model']`` until ``steps``, resuming from the latest checkpoint
    (a new run starts from ``init_from``'s weights when it is set).

    ``config`` is a ``TrainConfig`` as a dict, plus ``PROGRESS_QUEUE``: a ``ray.util.queue.Queue`` that rank 0's
    progress lines go to instead of its stdout, or None.
    """
    config = dict(config)
    progress = config.pop(PROGRESS_QUEUE, None)
    cfg = TrainConfig(**config)
    retain_freed_memory()  # a CPU step of the parse network faulted in ~8,000-10,000 fresh pages, 5-7% of its time
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(cfg.seed)
    task = TASKS[cfg.model](cfg)
    device = ray.train.torch.get_device()

    model = task.build_model()
    step, history, optimizer_state, ema_weights = 0, [], None, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        # A private copy for each worker: the directory that ``Checkpoint.as_directory`` shares between the workers
        # of a node is downloaded again over itself when a second worker arrives after the first download, and a
        # worker reading it then found ``history.jsonl`` truncated (a resumed run that lost its history).
        with tempfile.TemporaryDirectory() as directory:
            directory = Path(checkpoint.to_directory(directory))
            model.load_state_dict(task.load_model(directory / "model").state_dict())
            ema_weights = task.load_model(directory / "ema").state_dict() if (directory / "ema").exists() else None
            optimizer_state = torch.load(directory / STATE_FILE, weights_only=True)
            step = int(optimizer_state["step"])
            history = [json.loads(line) for line in (directory / HISTORY_FILE).read_text().splitlines()]
    elif cfg.init_from:
        model.load_state_dict(task.load_pretrained(Path(cfg.init_from)).state_dict())  # fine-tuning
    model = ray.train.torch.prepare_model(model)  # moves to the device, wraps in DDP when world > 1

    ema = None
    if cfg.ema_decay:
        ema = torch.optim.swa_utils.AveragedModel(
            _unwrap(model), multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay))
        if ema_weights is not None:
            ema.module.load_state_dict(ema_weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    use_amp = device.type == "cuda" and cfg.precision != "fp32"
    amp_dtype = torch.bfloat16 if cfg.precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(enabled=use_amp and cfg.precision == "fp16")
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state["optimizer"])
        scaler.load_state_dict(optimizer_state["scaler"])

    shard = ray.train.get_dataset_shard("train")
    generator = torch.Generator(device=device).manual_seed(cfg.seed * 1000 + rank + step)
    data_pass = 0  # passes over the data this worker started; each starts Ray Data's pipeline anew
    while step < cfg.steps:
        data_pass += 1
        batches = _batches(shard, cfg.batch_size, device)
        wait_start = time.perf_counter()
        steps_before = step
        for batch in batches:
            data_wait = time.perf_counter() - wait_start
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                loss, parts = task.loss(model, batch, generator)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update_parameters(_unwrap(model))
            step += 1
            step_time = time.perf_counter() - wait_start
            history.append({"step": step, "loss": float(loss.detach()), **{k: float(v) for k, v in parts.items()},
                            "samples_per_s": cfg.batch_size * world / step_time,
                            "data_wait_fraction": data_wait / step_time, "data_pass": data_pass})
            if rank == 0 and (step % LOG_EVERY == 0 or step == cfg.steps):
                last = history[-1]
                line = (f"[{cfg.model}] step {step}/{cfg.steps}  loss {last['loss']:.4f}  "
                        f"{last['samples_per_s']:.1f} samples/s  data wait {last['data_wait_fraction']:.0%}")
                if progress is None:
                    print(line, flush=True)
                else:
                    progress.put(line)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                _report(task, _unwrap(model), ema, optimizer, scaler, step, history, rank)
            if step >= cfg.steps:
                break
            wait_start = time.perf_counter()
        if step == steps_before:  # another pass would give no batch either: end the run instead of spinning
            raise DataError(f"worker {rank} got no full batch of {cfg.batch_size} in a pass over the train split "
                            f"of {cfg.data}")


def _batches(shard, batch_size: int, device: torch.device):
    """One pass over this worker's shard in full batches; a row that cannot be used raises a one-line ``DataError``
    (instead of Ray Data's nested task errors), which ends the run without retries (``training.errors``)."""
    try:
        yield from shard.iter_torch_batches(batch_size=batch_size, drop_last=True, device=device)
    except Exception as exc:
        found = data_error(exc)
        if found is None:
            raise
        raise found from None


def _report(task, model, ema, optimizer, scaler, step: int, history: list[dict], rank: int) -> None:
    """Report the latest metrics with a checkpoint written by rank 0 (other ranks report metrics only)."""
    recent = history[-min(len(history), 20):]
    metrics = {key: sum(h[key] for h in recent) / len(recent) for key in recent[-1] if key != "step"}
    metrics["step"] = step
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as directory:
        directory = Path(directory)
        task.save_model(model, directory / "model")
        if ema is not None:
            task.save_model(ema.module, directory / "ema")
        torch.save({"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "step": step},
                   directory / STATE_FILE)
        (directory / HISTORY_FILE).write_text("".join(json.dumps(h) + "\n" for h in history))
        (directory / CONFIG_FILE).write_text(json.dumps(task.cfg.to_dict(), indent=1))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory),
                         checkpoint_upload_fn=_upload_checkpoint)


def _upload_checkpoint(checkpoint: ray.train.Checkpoint, directory_name: str) -> ray.train.Checkpoint:
    """Ray Train's checkpoint upload, with retries and verification (``kgi.data.storage.upload_directory``)."""
    storage = ray.train.get_context().get_storage()
    destination = f"{storage.experiment_fs_path}/{directory_name}"
    upload_directory(checkpoint.path, storage.storage_filesystem, destination)
    return ray.train.Checkpoint(path=destination, filesystem=storage.storage_filesystem)
