"""Train one of the three KGI models (or the synthetic-only human parser) with Ray Train on Ray Data-streamed
shards.

The config file sets everything (data, storage, workers, GPUs, steps, model size); options given here override
it. Rerunning with the same run name and storage path resumes from the latest checkpoint. Per-step metrics
(loss, samples/s, data-wait fraction) are printed as the run reports them and plotted to
``<storage>/<run>/metrics.png`` (local storage) or ``./<run>-metrics.png`` (S3) at the end.

A problem with the data ends the run at once with one line naming the shard, the pair, the file and what is wrong
(``--verbose`` adds the trace): a missing or empty train split before any worker starts, a row that cannot be
decoded at the first batch that holds it. Ray Train's retries (``max_failures``) are kept for worker failures
such as a lost node. A split smaller than one batch per worker trains with each pair repeated in every pass.

Examples:
  kgi train keypoints --config training/configs/keypoints.yaml
  kgi train inpainter --config platform/train/inpainter-gpu.yaml --storage s3://runs --run-name inp-v2
  kgi train synth_parser --config training/configs/synth_parser.yaml --data data/synth-parser-shards
  kgi train parse --config training/configs/parse-finetune.yaml   # from models/default/parse.safetensors
"""

from __future__ import annotations

from pathlib import Path

from kgi.cli import CommandError
from training.config import MODELS

HELP = "train keypoints | parse | inpainter | synth_parser with Ray Train"


def add_arguments(parser):
    parser.add_argument("model", choices=MODELS)
    parser.add_argument("--config", required=True, metavar="FILE", help="YAML training config")
    parser.add_argument("--data", metavar="URI", help="shards written by kgi convert (overrides the config)")
    parser.add_argument("--storage", dest="storage_path", metavar="URI", help="runs folder or s3://bucket/prefix")
    parser.add_argument("--run-name", metavar="NAME", help="run name; an existing run resumes")
    parser.add_argument("--steps", type=int, help="total optimizer steps")
    parser.add_argument("--checkpoint-every", type=int, metavar="N", help="steps between checkpoints")
    parser.add_argument("--workers", dest="num_workers", type=int, help="Ray Train workers")
    parser.add_argument("--init-from", metavar="PATH",
                        help="fine-tune: a new run starts from these weights (e.g. models/default/parse.safetensors)")
    parser.add_argument("--verbose", action="store_true", help="show the full trace of a failure")


def run(args) -> int:
    import ray

    from kgi.data.vitonhd import DatasetError
    from training.config import TrainConfig
    from training.errors import one_line_errors
    from kgi.data.storage import is_s3
    from kgi.data.shards import count_rows

    overrides = {k: getattr(args, k)
                 for k in ("data", "storage_path", "run_name", "steps", "checkpoint_every", "num_workers", "init_from")}
    try:
        cfg = TrainConfig.from_yaml(args.config, **overrides)
    except (OSError, ValueError, TypeError) as exc:
        raise CommandError(str(exc)) from None
    if cfg.model != args.model:
        raise CommandError(f"{args.config} configures model {cfg.model!r}, not {args.model!r}")
    if cfg.init_from is not None:  # the workers may run elsewhere than the current folder: an absolute path
        if not Path(cfg.init_from).exists():
            raise CommandError(f"init_from: {cfg.init_from} does not exist")
        cfg.init_from = str(Path(cfg.init_from).resolve())
    try:
        count_rows(cfg.data)  # a missing or empty split is said before Ray starts
    except DatasetError as exc:
        raise CommandError(f"data: {exc}") from None
    from training.job import plot_history, read_history  # the model stack: imported once the data is there
    from training.job import run as run_training

    # Without --verbose the workers' logs (Ray's traces, progress bars) stay in Ray's log files; the loop's
    # progress lines are relayed (training.job.run).
    ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=args.verbose)
    with one_line_errors("training", args.verbose):
        result = run_training(cfg, quiet=not args.verbose)
    history = read_history(result.checkpoint)
    plot = (Path(f"{cfg.run_name}-metrics.png") if is_s3(cfg.storage_path)
            else Path(cfg.storage_path) / cfg.run_name / "metrics.png")
    plot_history(history, plot, f"{cfg.model} ({cfg.run_name})")
    last = history[-1]
    print(f"done: step {last['step']}, loss {last['loss']:.4f}, {last['samples_per_s']:.1f} samples/s; "
          f"checkpoint {result.checkpoint.path}; metrics plot {plot}")
    return 0
