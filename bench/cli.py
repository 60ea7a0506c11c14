"""Run the platform's benchmarks: each writes bench/results/NAME.json and NAME.png and prints a Markdown table.

Every figure is measured beside its baseline in the same run; BENCHMARKS.md records the results. Arguments
after NAME go to that benchmark (see `kgi bench NAME --help`); `all` takes only --tiny and --out.

Examples:
  kgi bench list                                   # the benchmarks and what each measures
  kgi bench all --tiny                             # every benchmark on a tiny setting (what CI checks)
  kgi bench serving_overhead --requests 50
  kgi bench throughput --concurrency 1,4,16,64
  kgi bench batching --device cuda --dtype bfloat16 --random-inpainter base --inpaint-height 256
  kgi bench sampler --images 24
  kgi bench parse --rounds 10                      # needs $KGI_POSE_PYTHON
  kgi bench training --steps 100
  kgi bench gpu                                    # only where a GPU is; elsewhere it says so and exits 0
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import traceback

from kgi.cli import CommandError

HELP = "benchmarks: serving overhead, throughput, batching, sampler cost, photo parse, resolution, training, GPU"
# In the order `kgi bench all` runs them (quick ones first).
BENCHMARKS = ("sampler", "parse", "resolution", "serving_overhead", "batching", "throughput", "training", "gpu")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=[*BENCHMARKS, "all", "list"], metavar="NAME",
                        help=f"one of {', '.join(BENCHMARKS)}; all; list")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, metavar="ARGS",
                        help="the benchmark's own options (kgi bench NAME --help)")


def summary(name: str) -> str:
    """First paragraph of benchmark ``name``'s module docstring on one line, read without importing the module
    (nor Ray, nor torch)."""
    spec = importlib.util.find_spec(f"bench.{name}")
    with open(spec.origin, encoding="utf-8") as source:
        docstring = ast.get_docstring(ast.parse(source.read())) or ""
    return " ".join(docstring.strip().split("\n\n")[0].split())


def run_benchmark(name: str, arguments: list[str]) -> int:
    """Import ``bench.NAME`` and call its ``main(arguments)``; returns its exit code."""
    from bench.common import BenchmarkError

    try:
        return int(importlib.import_module(f"bench.{name}").main(arguments) or 0)
    except BenchmarkError as exc:
        raise CommandError(str(exc)) from None


def run_all(arguments: list[str]) -> int:
    """Every benchmark with the same ``--tiny`` / ``--out``; runs them all and fails if any failed."""
    common = argparse.ArgumentParser(prog="kgi bench all")
    common.add_argument("--tiny", action="store_true")
    common.add_argument("--out", metavar="DIR")
    options, unknown = common.parse_known_args(arguments)
    if unknown:
        raise CommandError(f"all takes only --tiny and --out DIR, not {' '.join(unknown)}")
    passed = (["--tiny"] if options.tiny else []) + (["--out", options.out] if options.out else [])
    failed = []
    for name in BENCHMARKS:
        print(f"\n=== kgi bench {name} {' '.join(passed)}", flush=True)
        try:
            code = run_benchmark(name, passed)
        except Exception:  # noqa: BLE001 - report it (CommandError included) and go on with the next one
            traceback.print_exc()
            code = 1
        if code:
            failed.append(name)
    if failed:
        raise CommandError(f"failed: {', '.join(failed)}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.name == "list":
        for name in BENCHMARKS:
            print(f"{name:17} {summary(name)}")
        return 0
    if args.name == "all":
        return run_all(args.arguments)
    return run_benchmark(args.name, args.arguments)
