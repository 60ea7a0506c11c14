"""Throughput under load: closed-loop HTTP load at several concurrencies, the Serve DAG vs. a monolithic server.

The DAG is ``platform/serve/local.yaml`` as shipped (stage replicas on one torch thread each, Inpaint batching up to
8 requests and autoscaling from 1 to 2 replicas; the table shows how many ran at each level's end); the monolith is
``bench.monolith`` (the same pipeline in ONE process behind a minimal HTTP server, one request at a time, on one
torch thread like the DAG's stages unless ``--monolith-threads``). Both answer the same request: the bundled
example, same seed. At each concurrency C, C clients each send a request, wait for the answer and send the next,
until ``max(rounds * C, --min-requests)`` requests are answered; requests/s is answered requests over the level's
wall time (the last round's ramp-down included). Each server gets one warm-up request first.

Examples:
  kgi bench throughput                                 # concurrency 1, 4, 16, 64
  kgi bench throughput --concurrency 1,8,32 --rounds 3
  kgi bench throughput --concurrency 64 --rounds 3 --inpaint-replicas 1   # against local.yaml's autoscaling
  kgi bench throughput --tiny
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from bench.cluster import INPAINT, model_version, ray_cluster, serve_dag
from bench.common import (LoadMonitor, Table, benchmark_parser, closed_loop, example_form, out_dir, positive_ints,
                          pyplot, send_one, version_argument, write_result)
from bench.monolith import monolith_server
from kgi.data.images import width_for

NAME = "throughput"
SYSTEMS = ("dag", "monolith")
SYSTEM_LABELS = {"dag": "Serve DAG (local.yaml)", "monolith": "monolith (1 process)"}
SHORT_LABELS = {"dag": "DAG", "monolith": "monolith"}


def build_parser():
    parser = benchmark_parser(NAME, __doc__)
    version_argument(parser)
    parser.add_argument("--concurrency", type=positive_ints, metavar="C,C,...",
                        help="concurrency levels (default 1,4,16,64; tiny 1,2)")
    parser.add_argument("--rounds", type=int, default=2, help="requests per client at each level (default 2)")
    parser.add_argument("--min-requests", type=int, help="at least this many requests per level (default 8; "
                                                         "tiny 2)")
    parser.add_argument("--working-height", type=int, help="requests' working height (default 256; tiny 128)")
    parser.add_argument("--steps", type=int, help="sampler steps (default: the version's; tiny 2)")
    parser.add_argument("--inpaint-replicas", type=int, metavar="N",
                        help="the DAG's Inpaint runs N fixed replicas (default: local.yaml's autoscaling, 1 to 2)")
    parser.add_argument("--monolith-threads", type=int, default=1,
                        help="the monolith's torch threads (default 1, as the DAG's stage replicas)")
    return parser


def run_levels(url: str, form: tuple[dict, dict], levels: list[int], rounds: int, min_requests: int,
               label: str, observe: Callable[[], dict] = dict) -> list[dict]:
    """One warm-up request, then a closed loop at each concurrency; one summary per level, with what
    ``observe()`` returns at the level's end."""
    send_one(url, form)
    rows = []
    for concurrency in levels:
        result = asyncio.run(closed_loop(url, form, concurrency=concurrency,
                                         requests=max(rounds * concurrency, min_requests),
                                         progress=f"{label} c={concurrency}"))
        rows.append({"concurrency": concurrency, **result.summary(), **observe()})
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = list(argv or [])
    args = build_parser().parse_args(argv)
    levels = args.concurrency or ([1, 2] if args.tiny else [1, 4, 16, 64])
    min_requests = args.min_requests or (2 if args.tiny else 8)
    height = args.working_height or (128 if args.tiny else 256)
    steps = args.steps or (2 if args.tiny else None)
    form = example_form(steps=steps)
    settings = {"concurrency": levels, "rounds": args.rounds, "min_requests": min_requests, "working_height": height,
                "steps": steps or model_version(args.version).sampler.num_steps, "version": str(args.version),
                "dag": "platform/serve/local.yaml as shipped",
                "inpaint_replicas": args.inpaint_replicas or "autoscaling",
                "monolith_torch_threads": args.monolith_threads}
    results = {}
    with LoadMonitor() as load:
        with ray_cluster(), serve_dag(args.version, working_height=height,
                                      inpaint_replicas=args.inpaint_replicas) as dag:
            results["dag"] = run_levels(dag.url, form, levels, args.rounds, min_requests, "dag", observe=lambda: {
                "inpaint_replicas": dag.running_replicas(INPAINT)})
        with monolith_server(args.version, working_height=height, torch_threads=args.monolith_threads) as url:
            results["monolith"] = run_levels(url, form, levels, args.rounds, min_requests, "monolith")

    table = Table(f"Closed-loop throughput, {height}x{width_for(height)}, example request",
                  ["concurrency", *(f"{SHORT_LABELS[s]} {col}" for s in SYSTEMS
                                    for col in ("req/s", "p50 ms", "p95 ms", "p99 ms")), "DAG / monolith req/s",
                   "DAG Inpaint replicas at the end", "errors"])
    for dag_row, mono_row in zip(results["dag"], results["monolith"], strict=True):
        table.rows.append([
            str(dag_row["concurrency"]),
            *(value for row in (dag_row, mono_row) for value in (
                f"{row['requests_per_s']:.2f}", f"{row['p50_ms']:.0f}", f"{row['p95_ms']:.0f}",
                f"{row['p99_ms']:.0f}")),
            f"{dag_row['requests_per_s'] / mono_row['requests_per_s']:.2f}x", str(dag_row["inpaint_replicas"]),
            f"{sum(dag_row['errors'].values())} / {sum(mono_row['errors'].values())}"])
    write_result(out_dir(args), NAME, argv, settings=settings, results=results, tables=[table],
                 figure=plot(results), load=load)
    return 0


def plot(results: dict):
    """Requests/s and p50/p99 latency against concurrency, DAG and monolith."""
    plt = pyplot()
    figure, (rate_axis, latency_axis) = plt.subplots(1, 2, figsize=(11, 4))
    for system, colour in zip(SYSTEMS, ("tab:blue", "tab:orange"), strict=True):
        rows = results[system]
        levels = np.array([row["concurrency"] for row in rows])
        rate_axis.plot(levels, [row["requests_per_s"] for row in rows], "o-", color=colour,
                       label=SYSTEM_LABELS[system])
        latency_axis.plot(levels, [row["p50_ms"] / 1000 for row in rows], "o-", color=colour,
                          label=f"{SYSTEM_LABELS[system]} p50")
        latency_axis.plot(levels, [row["p99_ms"] / 1000 for row in rows], "s--", color=colour,
                          label=f"{SYSTEM_LABELS[system]} p99")
    for axis in (rate_axis, latency_axis):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent clients")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    rate_axis.set_ylabel("requests / s")
    rate_axis.set_ylim(bottom=0)
    latency_axis.set_ylabel("latency (s)")
    latency_axis.set_yscale("log")
    figure.suptitle("Closed-loop throughput: Serve DAG vs. monolithic server")
    figure.tight_layout()
    return figure
