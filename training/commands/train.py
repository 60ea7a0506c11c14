"""Train one of the three KGI models with Ray Train on Ray Data-streamed shards.

The config file sets everything (data, storage, workers, GPUs, steps, model size); options given here override
it. Rerunning with the same run name and storage path resumes from the latest checkpoint. Per-step metrics
(loss, samples/s, data-wait fraction) are printed as the run reports them and plotted to
``<storage>/<run>/metrics.png`` (local storage) or ``./<run>-metrics.png`` (S3) at the end.

Examples:
  kgi train keypoints --config training/configs/keypoints.yaml
  kgi train inpainter --config platform/train/inpainter-gpu.yaml --storage s3://runs --run-name inp-v2
"""

from __future__ import annotations

from pathlib import Path

from kgi.cli import CommandError

HELP = "train keypoints | parse | inpainter with Ray Train"


def add_arguments(parser):
    parser.add_argument("model", choices=["keypoints", "parse", "inpainter"])
    parser.add_argument("--config", required=True, metavar="FILE", help="YAML training config")
    parser.add_argument("--data", metavar="URI", help="shards written by kgi convert (overrides the config)")
    parser.add_argument("--storage", dest="storage_path", metavar="URI", help="runs folder or s3://bucket/prefix")
    parser.add_argument("--run-name", metavar="NAME", help="run name; an existing run resumes")
    parser.add_argument("--steps", type=int, help="total optimizer steps")
    parser.add_argument("--workers", dest="num_workers", type=int, help="Ray Train workers")


def run(args) -> int:
    import ray

    from training.config import TrainConfig
    from training.fs import is_s3
    from training.job import plot_history, read_history
    from training.job import run as run_training

    overrides = {k: getattr(args, k) for k in ("data", "storage_path", "run_name", "steps", "num_workers")}
    try:
        cfg = TrainConfig.from_yaml(args.config, **overrides)
    except (OSError, ValueError, TypeError) as exc:
        raise CommandError(str(exc)) from None
    if cfg.model != args.model:
        raise CommandError(f"{args.config} configures model {cfg.model!r}, not {args.model!r}")
    ray.init(ignore_reinit_error=True, include_dashboard=False)
    result = run_training(cfg)
    if result.error:
        raise CommandError(f"training failed: {result.error}")
    history = read_history(result.checkpoint)
    plot = (Path(f"{cfg.run_name}-metrics.png") if is_s3(cfg.storage_path)
            else Path(cfg.storage_path) / cfg.run_name / "metrics.png")
    plot_history(history, plot, f"{cfg.model} ({cfg.run_name})")
    last = history[-1]
    print(f"done: step {last['step']}, loss {last['loss']:.4f}, {last['samples_per_s']:.1f} samples/s; "
          f"checkpoint {result.checkpoint.path}; metrics plot {plot}")
    return 0
