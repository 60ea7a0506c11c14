"""Serving overhead: one request at a time through the HTTP DAG vs. the same pipeline called in-process.

The DAG is ``platform/serve/local.yaml`` as shipped (every stage replica on one torch thread); the in-process
baseline is ``bench.monolith.InProcessTryOn`` on the same model version, example inputs, seed and thread count,
called in this process without HTTP or Ray. Requests alternate (DAG, in-process, DAG, ...) so that both see the
same background load.

The overhead is split with the service's ``X-KGI-Timings`` header: outside the ingress (client latency minus the
ingress's total: HTTP, Serve's proxy, PNG encoding) and inside it (the ingress's total minus the stages' own
compute: form parsing, routing, four deployment-handle calls, any batch wait). Goal: the DAG adds under 5% to the
in-process p50 latency at the default resolution (256x192).

Examples:
  kgi bench serving_overhead                      # 60 requests per path at 256x192, the version's 25 steps
  kgi bench serving_overhead --requests 100 --working-height 512
  kgi bench serving_overhead --tiny
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from bench.common import (LoadMonitor, Table, benchmark_parser, example_form, example_uploads, out_dir,
                          percentiles_ms, pyplot, ray_cluster, send_one, serve_dag, version_argument, write_result)
from bench.monolith import InProcessTryOn

NAME = "serving_overhead"
STAGES = ("preprocess", "keypoints", "parse_warp", "inpaint")
GOAL_PERCENT = 5.0


def build_parser():
    parser = benchmark_parser(NAME, __doc__)
    version_argument(parser)
    parser.add_argument("--requests", type=int, help="requests per path (default 60; tiny 3)")
    parser.add_argument("--working-height", type=int, help="requests' working height (default 256; tiny 128)")
    parser.add_argument("--steps", type=int, help="sampler steps (default: the version's; tiny 2)")
    return parser


def measure(url: str, tryon: InProcessTryOn, requests: int, steps: int | None, label: str) -> dict:
    """``requests`` alternating DAG and in-process try-ons (after one warm-up each); latencies and stage times."""
    form = example_form(steps=steps)
    uploads = example_uploads()
    send_one(url, form)
    tryon(uploads, 0, steps)
    dag, dag_server, in_process, in_process_stages = [], [], [], []
    for _ in tqdm(range(requests), desc=label, unit="pair", leave=False):
        answer = send_one(url, form)
        if answer.errors:
            raise RuntimeError(f"the DAG answered an error: {answer.errors}")
        dag += answer.latencies_s
        dag_server += answer.server_timings
        _, timings = tryon(uploads, 0, steps)
        in_process.append(timings["total"])
        in_process_stages.append(timings)
    dag_stats, in_process_stats = percentiles_ms(dag), percentiles_ms(in_process)
    return {
        "dag": dag_stats,
        "in_process": in_process_stats,
        "overhead_p50_ms": dag_stats["p50_ms"] - in_process_stats["p50_ms"],
        "overhead_p99_ms": dag_stats["p99_ms"] - in_process_stats["p99_ms"],
        "overhead_p50_percent": 100 * (dag_stats["p50_ms"] / in_process_stats["p50_ms"] - 1),
        # Medians of the per-request split (ms): where the DAG's extra time goes.
        "dag_stage_compute_p50_ms": _median_ms([sum(t[s] for s in STAGES) for t in dag_server]),
        "in_process_stage_compute_p50_ms": _median_ms([sum(t[s] for s in STAGES) for t in in_process_stages]),
        "outside_ingress_p50_ms": _median_ms([client - server["total"]
                                            for client, server in zip(dag, dag_server, strict=True)]),
        "ingress_and_handoffs_p50_ms": _median_ms([t["total"] - sum(t[s] for s in STAGES) for t in dag_server]),
        "dag_stages_p50_ms": {s: _median_ms([t[s] for t in dag_server]) for s in STAGES},
        "in_process_stages_p50_ms": {s: _median_ms([t[s] for t in in_process_stages]) for s in STAGES},
    }


def _median_ms(seconds: list[float]) -> float:
    return float(np.median(seconds)) * 1000


def main(argv: list[str] | None = None) -> int:
    argv = list(argv or [])
    args = build_parser().parse_args(argv)
    requests = args.requests or (3 if args.tiny else 60)
    height = args.working_height or (128 if args.tiny else 256)
    steps = args.steps or (2 if args.tiny else None)
    settings = {"requests_per_path": requests, "working_height": height, "steps": steps,
                "version": str(args.version), "dag_config": "platform/serve/local.yaml (torch_threads 1)",
                "in_process_torch_threads": 1}
    tryon = InProcessTryOn(args.version, height, torch_threads=1)  # local.yaml's torch_threads
    settings["steps"] = steps or tryon.version.sampler.num_steps
    results = {}
    with LoadMonitor() as load, ray_cluster(), serve_dag(args.version, working_height=height) as dag:
        results["local.yaml"] = {"inpaint_batching": dag.inpaint_batching,
                                 **measure(dag.url, tryon, requests, steps, "DAG and in-process")}

    table = Table(f"Serving overhead, one request at a time, {height}x{height * 3 // 4}, {settings['steps']} "
                  f"sampler steps, {requests} requests per path (ms)",
                  ["DAG setting", "in-process p50", "in-process p99", "DAG p50", "DAG p99", "added p50",
                   "added p99", "HTTP + proxy p50", "form + hand-offs p50", f"goal < {GOAL_PERCENT:g}%"])
    for label, row in results.items():
        table.rows.append([
            f"{label} (wait {row['inpaint_batching']['batch_wait_timeout_s']:g} s)",
            f"{row['in_process']['p50_ms']:.0f}", f"{row['in_process']['p99_ms']:.0f}",
            f"{row['dag']['p50_ms']:.0f}", f"{row['dag']['p99_ms']:.0f}",
            f"{row['overhead_p50_ms']:+.0f} ({row['overhead_p50_percent']:+.1f}%)", f"{row['overhead_p99_ms']:+.0f}",
            f"{row['outside_ingress_p50_ms']:.0f}", f"{row['ingress_and_handoffs_p50_ms']:.0f}",
            "met" if row["overhead_p50_percent"] < GOAL_PERCENT else "not met"])
    write_result(out_dir(args), NAME, argv, settings=settings, results=results, tables=[table],
                 figure=plot(results), load=load)
    return 0


def plot(results: dict):
    """p50 latency of each path as stacked stage compute plus the DAG's extra time, one pair of bars per setting."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(10, 4))
    labels, bars = [], []  # bars: (stage -> p50 ms, p50 total ms)
    for label, row in results.items():
        for path in ("in_process", "dag"):
            labels.append(f"{label}\n{path.replace('_', '-')}")
            bars.append((row[f"{path}_stages_p50_ms"], row[path]["p50_ms"]))
    positions = np.arange(len(labels))
    base = np.zeros(len(labels))
    for stage in STAGES:
        heights = np.array([stages[stage] for stages, _ in bars])
        axis.bar(positions, heights, bottom=base, label=stage)
        base += heights
    rest = np.maximum(np.array([total for _, total in bars]) - base, 0)  # medians do not add up exactly
    axis.bar(positions, rest, bottom=base, label="everything else (HTTP, form, hand-offs, batch wait)", color="0.6")
    axis.set_xticks(positions, labels, fontsize=8)
    axis.set_ylabel("p50 latency (ms)")
    axis.set_title("Serving overhead: DAG vs. in-process, one request at a time")
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    return figure
