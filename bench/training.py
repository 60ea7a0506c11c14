"""Training: samples/s and the fraction of step time spent waiting for data, with Ray Data streaming shards from
local disk and from a local S3 server, with 1 and 2 Ray Train workers.

Each run is a real ``kgi train`` job (``training.job.run``) of ``training/configs/MODEL.yaml`` (``--model``; by
default the inpainter, whose shipped CPU setting is the tiny SPADE UNet at 64x48, batch 8 per worker) for
``--steps`` steps on the same synthetic shards, written once by ``kgi convert`` to a local folder and to the S3
server. The figures come from the run's per-step history (``history.jsonl``: samples/s and data-wait fraction of
each step of rank 0); the steady state leaves out the first ``--warmup`` steps, where Ray Data's pipeline starts.
Every epoch starts the pipeline again (one ``iter_torch_batches`` per epoch), so the default data set is large
enough for the whole run to be one epoch; the table says how many steps an epoch has. Goal: data wait under 5% of
step time.

The S3 server is ``AWS_ENDPOINT_URL`` when set (start Ray after setting it: workers read it), else a moto server
this command starts on a free local port.

Examples:
  kgi bench training                                   # 60 steps per run on 1024 pairs, 4 runs
  kgi bench training --steps 100 --pairs 2048
  kgi bench training --sources s3 --workers 2          # one run: S3 shards, 2 workers
  kgi bench training --model parse --sources local --workers 2 --pairs 128 --steps 40   # 5 epochs of 8 steps
  AWS_ENDPOINT_URL=http://127.0.0.1:9000 kgi bench training     # an S3 server of your own (MinIO, moto)
  kgi bench training --tiny
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from bench.cluster import free_port, ray_cluster
from bench.common import (REPO, BenchmarkError, LoadMonitor, Table, benchmark_parser, cache_dir, out_dir,
                          positive_ints, pyplot, write_result)

NAME = "training"
CONFIGS = REPO / "training" / "configs"  # one MODEL.yaml per model
MODELS = ("keypoints", "parse", "inpainter")
SYNTH_SEED = 7
GOAL_FRACTION = 0.05
S3_BUCKET = "kgi-bench"
SOURCES = ("local", "s3")
MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1"}


def build_parser():
    parser = benchmark_parser(NAME, __doc__)
    parser.add_argument("--model", choices=MODELS, default="inpainter",
                        help="the model trained, with its config training/configs/MODEL.yaml (default inpainter)")
    parser.add_argument("--steps", type=int, help="optimizer steps per run (default 60; tiny 3)")
    parser.add_argument("--warmup", type=int, help="first steps left out of the steady state (default 5; tiny 1)")
    parser.add_argument("--workers", type=positive_ints, metavar="N,N", help="worker counts (default 1,2; tiny 1)")
    parser.add_argument("--sources", type=source_list, metavar="S,S",
                        help="where the shards stream from: local, s3 or both (default local,s3; tiny s3)")
    parser.add_argument("--pairs", type=int, help="synthetic training pairs (default 1024; tiny 8)")
    parser.add_argument("--height", type=int, help="stored image height of the pairs (default 256; tiny 128)")
    return parser


def source_list(text: str) -> list[str]:
    """An argparse type: ``"local,s3"`` -> ``["local", "s3"]``."""
    sources = [part.strip() for part in text.split(",") if part.strip()]
    if not sources or not set(sources) <= set(SOURCES):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(SOURCES)}, got {text!r}")
    return sources


@contextmanager
def s3_endpoint() -> Iterator[str]:
    """``AWS_ENDPOINT_URL`` when set; else a moto S3 server subprocess, with the AWS variables pointing at it
    for this process and the Ray workers started after it."""
    if os.environ.get("AWS_ENDPOINT_URL"):
        yield os.environ["AWS_ENDPOINT_URL"]
        return
    import ray

    if ray.is_initialized():
        raise BenchmarkError("the S3 runs need AWS_ENDPOINT_URL set before Ray starts (its workers read it); "
                             "set it, or let this command start Ray")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saved = {name: os.environ.get(name) for name in ("AWS_ENDPOINT_URL", *MOTO_CREDENTIALS)}
    try:
        _wait_for_http(endpoint, server)
        os.environ.update({"AWS_ENDPOINT_URL": endpoint, **MOTO_CREDENTIALS})
        yield endpoint
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.terminate()
        server.wait(timeout=20)


def _wait_for_http(url: str, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer: the server is up
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkError(f"the S3 server at {url} did not start") from None
            time.sleep(0.3)


def shards(pairs: int, height: int, sources: list[str], s3_endpoint_url: str | None) -> dict[str, str]:
    """The same synthetic training shards in each of ``sources``: ``{"local": path, "s3": uri}``.

    The pairs are generated once under the benchmarks' cache folder; ``kgi convert`` skips shards that exist.
    """
    from kgi.data.synth import generate
    from training.shards import convert

    root = cache_dir() / f"synth-{SYNTH_SEED}-{height}-{pairs}"
    if not (root / "train_pairs.txt").is_file():
        generate(str(root), n_train=pairs, n_test=2, height=height, seed=SYNTH_SEED)
    name = f"shards-{SYNTH_SEED}-{height}-{pairs}"
    uris = {"local": str(cache_dir() / name), "s3": f"s3://{S3_BUCKET}/{name}"}
    if "s3" in sources:
        import boto3

        client = boto3.client("s3", endpoint_url=s3_endpoint_url)
        if S3_BUCKET not in {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=S3_BUCKET)
    for source in sources:
        convert(str(root), uris[source], shard_size=32, splits=("train",))
    return {source: uris[source] for source in sources}


def train_once(config: Path, data: str, workers: int, steps: int, storage: Path,
               run_name: str) -> tuple[list[dict], int]:
    """One ``kgi train`` run of ``config`` on ``data``; returns rank 0's per-step history and the samples per step
    (over all workers)."""
    from training.config import TrainConfig
    from training.job import read_history, run

    cfg = TrainConfig.from_yaml(config, data=data, storage_path=str(storage), run_name=run_name, steps=steps,
                                num_workers=workers, checkpoint_every=steps)
    result = run(cfg)
    if result.error:
        raise RuntimeError(f"training run {run_name} failed: {result.error}")
    return read_history(result.checkpoint), cfg.batch_size * workers


def summarise(history: list[dict], samples_per_step: int, warmup: int) -> dict:
    """Samples/s and data-wait fraction over the steps after ``warmup`` (steady) and over all steps, the first
    step's seconds, and the median seconds of the first step of each later pass over the data (None when the run
    made one pass): the time Ray Data's pipeline takes to start again each epoch.

    Both fractions are ratios of sums (samples / seconds, waiting seconds / step seconds), not means of per-step
    ratios.
    """
    step_s = samples_per_step / np.array([h["samples_per_s"] for h in history])  # seconds of each step
    wait_s = step_s * np.array([h["data_wait_fraction"] for h in history])
    passes = [h["data_pass"] for h in history]
    restarts = [seconds for i, seconds in enumerate(step_s) if i > 0 and passes[i] != passes[i - 1]]
    steady = slice(warmup, None)
    return {"steps": len(history), "steady_steps": len(step_s[steady]),
            "samples_per_s": samples_per_step * len(step_s[steady]) / float(step_s[steady].sum()),
            "data_wait_fraction": float(wait_s[steady].sum() / step_s[steady].sum()),
            "data_wait_fraction_all_steps": float(wait_s.sum() / step_s.sum()),
            "first_step_s": float(step_s[0]),
            "pass_restart_s": float(np.median(restarts)) if restarts else None, "pass_restarts": len(restarts)}


def main(argv: list[str] | None = None) -> int:
    argv = list(argv or [])
    args = build_parser().parse_args(argv)
    config = CONFIGS / f"{args.model}.yaml"
    steps = args.steps or (3 if args.tiny else 60)
    warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 5)
    workers = args.workers or ([1] if args.tiny else [1, 2])
    sources = args.sources or (["s3"] if args.tiny else list(SOURCES))
    pairs = args.pairs or (8 if args.tiny else 1024)
    height = args.height or (128 if args.tiny else 256)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # one INFO line per dataset operator otherwise
    if warmup >= steps:
        raise BenchmarkError(f"--warmup {warmup} leaves no steady steps of --steps {steps}")
    rows = []
    s3 = s3_endpoint() if "s3" in sources else nullcontext()
    with LoadMonitor() as load, s3 as endpoint, ray_cluster(), \
            tempfile.TemporaryDirectory(prefix="kgi-bench-runs-") as storage:
        uris = shards(pairs, height, sources, endpoint)
        runs = [(source, count) for source in sources for count in workers]
        for source, count in tqdm(runs, desc="training runs", unit="run"):
            history, samples_per_step = train_once(config, uris[source], count, steps, Path(storage),
                                                   f"bench-{source}-{count}")
            rows.append({"source": source, "workers": count, "steps_per_epoch": pairs // samples_per_step,
                         **summarise(history, samples_per_step, warmup)})
    settings = {"model": args.model, "config": str(config.relative_to(REPO)), "steps": steps, "warmup_steps": warmup,
                "workers": workers, "sources": sources, "pairs": pairs, "stored_height": height,
                "s3_endpoint": endpoint}
    table = Table(f"Ray Train, {args.model} ({config.relative_to(REPO)}), {steps} steps per run, steady state "
                  f"after {warmup} steps",
                  ["shards", "workers", "steps per epoch", "samples/s", "data wait (steady)", "data wait (all steps)",
                   "first step s", "later epochs' first step s (median)", f"goal < {GOAL_FRACTION:.0%}"])
    for row in rows:
        table.rows.append([row["source"], str(row["workers"]), str(row["steps_per_epoch"]),
                           f"{row['samples_per_s']:.1f}", f"{row['data_wait_fraction']:.1%}",
                           f"{row['data_wait_fraction_all_steps']:.1%}",
                           f"{row['first_step_s']:.1f}",
                           "-" if row["pass_restart_s"] is None else
                           f"{row['pass_restart_s']:.1f} ({row['pass_restarts']} epochs)",
                           "met" if row["data_wait_fraction"] < GOAL_FRACTION else "not met"])
    write_result(out_dir(args), NAME, argv, settings=settings, results={"rows": rows}, tables=[table],
                 figure=plot(rows), load=load)
    return 0


def plot(rows: list[dict]):
    """Samples/s and steady data-wait fraction per (shards, workers), with the 5% goal."""
    plt = pyplot()
    figure, (rate_axis, wait_axis) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = [f"{row['source']}\n{row['workers']} worker{'s' if row['workers'] > 1 else ''}" for row in rows]
    colours = ["tab:blue" if row["source"] == "local" else "tab:orange" for row in rows]
    rate_axis.bar(labels, [row["samples_per_s"] for row in rows], color=colours)
    rate_axis.set_ylabel("samples / s (steady)")
    wait_axis.bar(labels, [100 * row["data_wait_fraction"] for row in rows], color=colours)
    wait_axis.axhline(100 * GOAL_FRACTION, color="tab:red", ls="--", label="goal")
    wait_axis.set_ylabel("data wait, % of step time (steady)")
    wait_axis.legend()
    figure.suptitle("Ray Train + Ray Data: local vs. S3 shards")
    figure.tight_layout()
    return figure
