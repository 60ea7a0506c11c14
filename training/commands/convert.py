"""Convert a VITON-HD root into Parquet shards for training (local folder or s3://, in and out), or check one.

Each row is one (person, own garment) pair with its files as stored plus garment landmarks (from the dataset's
landmark JSON, else extracted; the worn garment's sleeve kind is the flat garment's). Every pair is decoded and
checked on the way, so a pair that training could not use stops the conversion with one line naming its file.
Shards are written in parallel on the local Ray cluster (or the one RAY_ADDRESS points to); a rerun skips
finished shards and never leaves a half-written one visible.

--check ROOT checks every pair of a root (or of shards already written) without converting anything: files
present and decodable, parse labels in range, pose readable, landmarks usable and consistent. It prints a table
of the failures per check and the first failing pairs, and exits with 1 when any pair fails. No Ray cluster is needed.

Examples:
  kgi convert --check data/vitonhd
  kgi convert data/vitonhd --out data/shards
  kgi convert --check data/shards --splits train
  AWS_ENDPOINT_URL=http://127.0.0.1:9000 kgi convert s3://datasets/vitonhd --out s3://datasets/shards --shard-size 512
"""

from __future__ import annotations

from kgi.cli import CommandError

HELP = "VITON-HD root -> Parquet shards (local or s3://) with Ray Data; --check validates a root or shards"


def add_arguments(parser):
    parser.add_argument("root", metavar="ROOT", help="VITON-HD root (or, with --check, shards): a folder or s3://...")
    parser.add_argument("--out", metavar="URI", help="where the shards go: a folder or s3://...")
    parser.add_argument("--check", action="store_true", help="check every pair of ROOT instead of converting")
    parser.add_argument("--shard-size", type=int, default=256, metavar="N", help="pairs per shard (default 256)")
    parser.add_argument("--splits", nargs="+", default=["train", "test"], help="splits to convert or check")
    parser.add_argument("--workers", type=int, metavar="N", help="--check: processes (default: all CPUs)")
    parser.add_argument("--show", type=int, default=10, metavar="N", help="--check: failing pairs listed (default 10)")
    parser.add_argument("--verbose", action="store_true", help="show the full trace of a failure")


def run(args) -> int:
    if args.check:
        return _check(args)
    if not args.out:
        raise CommandError("--out is required (or --check to only check ROOT)")
    if args.shard_size < 1:
        raise CommandError("--shard-size must be at least 1")
    import ray

    from training.errors import one_line_errors
    from training.shards import convert

    ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    with one_line_errors("conversion", args.verbose, f" ('kgi convert --check {args.root}' lists every bad pair)"):
        results = convert(args.root, args.out, shard_size=args.shard_size, splits=tuple(args.splits))
    written = sum(r["written"] for r in results)
    rows = sum(r["rows"] for r in results)
    print(f"{len(results)} shards ({written} written, {len(results) - written} already there), {rows} pairs -> "
          f"{args.out}")
    return 0


def _check(args) -> int:
    from training.check import check

    if args.workers is not None and args.workers < 1:
        raise CommandError("--workers must be at least 1")
    report = check(args.root, tuple(args.splits), workers=args.workers)
    print(report.table(first=args.show))
    if not report.splits:
        raise CommandError(f"{args.root}: none of the splits {', '.join(args.splits)} is there")
    return 0 if report.ok else 1
