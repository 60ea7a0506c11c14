"""Photo parse: seconds per genuine 1024x768 photo of the photo parser (pose, parse and photo checks in one call of
the pose environment's worker), beside the synthetic parser on the same photos.

The photos are the genuine VITON-HD people of ``../shared/vitonhd-sample`` and ``../shared/vitonhd-extra`` (read
at run time, never shipped), each parsed ``--rounds`` times, interleaved with the synthetic parser; the first
call of each parser is a warm-up and is not counted. Beside the wall-clock times, the mean CPU time of a call (this
process's and, for the photo parser, its pose worker's, from Linux's ``/proc``): what a call costs on a machine
that is not shared, where the wall-clock time grows with the load. The photo parser needs ``$KGI_POSE_PYTHON``
(an environment with mediapipe); without it the benchmark says so and exits 0.

Examples:
  kgi bench parse                     # 4 photos x 5 rounds
  kgi bench parse --rounds 20
  kgi bench parse --tiny
"""

from __future__ import annotations

import os
import time

from bench.common import REPO, LoadMonitor, Table, benchmark_parser, out_dir, percentiles_ms, write_result
from kgi.data.images import decode_rgb
from kgi.parsing import SynthParser, make_parser
from kgi.pose_estimation import POSE_PYTHON_ENV
from kgi.runtime import configure_inference_process

NAME = "parse"
SHARED = REPO.parent / "shared"
PEOPLE = (("vitonhd-sample", "00006_00"), ("vitonhd-extra", "00891_00"), ("vitonhd-extra", "07445_00"),
          ("vitonhd-extra", "08909_00"))


def build_parser():
    parser = benchmark_parser(NAME, __doc__)
    parser.add_argument("--rounds", type=int, help="passes over the photos (default 5; tiny 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(argv or [])
    args = build_parser().parse_args(argv)
    rounds = args.rounds or (1 if args.tiny else 5)
    python = os.environ.get(POSE_PYTHON_ENV)
    paths = [SHARED / root / "test" / "image" / f"{name}.jpg" for root, name in PEOPLE]
    paths = [path for path in paths if path.is_file()][:1 if args.tiny else None]
    if not python or not paths:
        print(f"kgi bench {NAME}: skipped (needs ${POSE_PYTHON_ENV} and the genuine photos in {SHARED})")
        return 0
    configure_inference_process(1)  # the synthetic parser on one torch thread, as the service runs it
    photos = [decode_rgb(path.read_bytes(), source=path.name) for path in paths]
    parsers = {"photo parser (pose + parse + checks)": make_parser("mediapipe", python=python),
               "synthetic parser (baseline)": SynthParser()}
    seconds = {name: [] for name in parsers}
    cpu_seconds = {name: [] for name in parsers}  # this process's and the pose worker's, less sensitive to load
    try:
        with LoadMonitor() as load:
            for parser in parsers.values():
                parser.parse(photos[0])  # warm-up
            for _ in range(rounds):
                for photo in photos:
                    for name, parser in parsers.items():
                        cpu_start = time.process_time() + _worker_cpu(parser)
                        start = time.perf_counter()
                        parser.parse(photo)
                        seconds[name].append(time.perf_counter() - start)
                        cpu_seconds[name].append(time.process_time() + _worker_cpu(parser) - cpu_start)
    finally:
        parsers["photo parser (pose + parse + checks)"].close()
    size = f"{photos[0].shape[0]}x{photos[0].shape[1]}"
    table = Table(f"Parse of one genuine {size} photo, {len(photos)} photos x {rounds} rounds (ms)",
                  ["parser", "mean", "p50", "p95", "max", "CPU mean"])
    results = {}
    for name, values in seconds.items():
        results[name] = {**percentiles_ms(values), "max_ms": float(max(values) * 1000),
                         "cpu_mean_ms": float(sum(cpu_seconds[name]) / len(cpu_seconds[name]) * 1000)}
        figures = results[name]
        table.rows.append([name, f"{figures['mean_ms']:.0f}", f"{figures['p50_ms']:.0f}", f"{figures['p95_ms']:.0f}",
                           f"{figures['max_ms']:.0f}", f"{figures['cpu_mean_ms']:.0f}"])
    write_result(out_dir(args), NAME, argv, settings={"photos": [p.name for p in paths], "rounds": rounds,
                                                      "size": size},
                 results=results, tables=[table], figure=None, load=load)
    return 0


def _worker_cpu(parser) -> float:
    """CPU seconds used so far by the parser's pose worker process (0 for a parser without one)."""
    cpu_seconds = getattr(getattr(parser, "worker", None), "cpu_seconds", None)
    return (cpu_seconds() or 0.0) if cpu_seconds is not None else 0.0
