"""Try on every pair of a dataset split offline with Ray Data, writing images, a manifest and metrics.

ROOT_OR_SHARDS is a VITON-HD root or the Parquet shards of `kgi convert` (local or s3://). Stages 1-2 run in a CPU actor
pool, the inpainter in a pool with one GPU per actor when the cluster has GPUs (otherwise on the CPU). Under
--out: images/{person}__{cloth}.png, records/ (one JSON per pair), manifest.csv (pair -> file, version, seed,
seconds) and, in the paired setting, metrics.md / metrics.json (SSIM and PSNR, and SSIM and L1 inside the
inpainted region, beside two plain fills of the same holes). A pair whose files cannot be read is reported (exit
code 1) while the others go on; a rerun skips the pairs already done. Runs on the local Ray cluster (or the one
RAY_ADDRESS points to); Ray Data shows a progress bar per stage.

Examples:
  kgi infer data/synth --out results/synth-test --limit 64
  kgi infer data/shards --out s3://results/v1-test --version /data/kgi-models/v1 --steps 25 --batch-size 8
  kgi infer data/vitonhd --mode unpaired --height 512 --out results/unpaired
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kgi.cli import CommandError
from kgi.shipped import LOCAL_MODELS_DIR, MODELS_DIR

HELP = "batch try-on of a whole split with Ray Data: images, manifest, metrics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="ROOT_OR_SHARDS",
                        help="VITON-HD root or kgi convert shards: a folder or s3://bucket/prefix")
    parser.add_argument("--out", required=True, metavar="URI", help="output folder or s3://bucket/prefix")
    parser.add_argument("--version", default="default", metavar="DIR_OR_NAME",
                        help=f"model version folder, or the name of one in {LOCAL_MODELS_DIR} (kgi export's) or "
                             "among the shipped versions (default: default)")
    parser.add_argument("--split", default="test", choices=["train", "test"])
    parser.add_argument("--mode", default="paired", choices=["paired", "unpaired"],
                        help="paired: own garment, scored against the photo; unpaired: the pairs file's garment")
    parser.add_argument("--height", type=int, default=256, help="working height, width = 3/4 (default 256)")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N pairs")
    parser.add_argument("--steps", type=int, metavar="N", help="sampler steps (default: the version's)")
    parser.add_argument("--batch-size", type=int, default=4, metavar="N", help="pairs per model call (default 4)")
    parser.add_argument("--parse-warp-actors", type=int, default=1, metavar="N",
                        help="CPU actors for keypoints, parse and warp (default 1); one inpainter per GPU")


def resolve_version(text: str) -> Path:
    """A version folder given as a path, or as a name: the version of that name ``kgi export`` wrote
    (``kgi.shipped.LOCAL_MODELS_DIR``), else the shipped one."""
    path = Path(text).expanduser()
    if path.is_dir() or "/" in text:
        return path
    exported = LOCAL_MODELS_DIR / text
    return exported if exported.is_dir() else MODELS_DIR / text


def run(args: argparse.Namespace) -> int:
    import ray

    from jobs.batch_inference import run_inference
    from jobs.results import KGI_ROW

    ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_inference(args.source, args.out, resolve_version(args.version), split=args.split,
                                mode=args.mode, height=args.height, limit=args.limit, steps=args.steps,
                                batch_size=args.batch_size, parse_warp_actors=args.parse_warp_actors)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    print(summary.line())
    if summary.metrics is not None:
        kgi = summary.metrics["methods"][KGI_ROW]
        print("KGI: " + ", ".join(f"{metric} {value['mean']:.4f}" for metric, value in kgi.items())
              + f"; table: {summary.out}/metrics.md")
    for (person_name, cloth_name), error in summary.failed.items():
        print(f"failed: {person_name} {cloth_name}: {error}", file=sys.stderr)
    return 1 if summary.failed else 0
