"""Convert a VITON-HD root into Parquet shards for training (local folder or s3://, in and out).

Each row is one (person, own garment) pair with its files as stored plus garment landmarks (from the dataset's
landmark JSON, else extracted). Shards are written in parallel on the local Ray cluster (or the one
RAY_ADDRESS points to); a rerun skips finished shards and never leaves a half-written one visible.

Examples:
  kgi convert data/synth --out data/shards
  AWS_ENDPOINT_URL=http://127.0.0.1:9000 kgi convert s3://datasets/vitonhd --out s3://datasets/shards --shard-size 512
"""

from __future__ import annotations

from kgi.cli import CommandError

HELP = "VITON-HD root -> Parquet shards (local or s3://) with Ray Data"


def add_arguments(parser):
    parser.add_argument("root", metavar="ROOT", help="VITON-HD root: a folder or s3://bucket/prefix")
    parser.add_argument("--out", required=True, metavar="URI", help="where the shards go: a folder or s3://...")
    parser.add_argument("--shard-size", type=int, default=256, metavar="N", help="pairs per shard (default 256)")
    parser.add_argument("--splits", nargs="+", default=["train", "test"], help="splits to convert")


def run(args) -> int:
    import ray

    from training.shards import convert

    if args.shard_size < 1:
        raise CommandError("--shard-size must be at least 1")
    ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    try:
        results = convert(args.root, args.out, shard_size=args.shard_size, splits=tuple(args.splits))
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    written = sum(r["written"] for r in results)
    rows = sum(r["rows"] for r in results)
    print(f"{len(results)} shards ({written} written, {len(results) - written} already there), {rows} pairs -> "
          f"{args.out}")
    return 0
