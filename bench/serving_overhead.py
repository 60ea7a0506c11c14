"""Serving overhead: one request at a time through the HTTP DAG vs. the same pipeline called in-process.

The DAG is ``platform/serve/local.yaml`` as shipped (every stage replica on one torch thread); the in-process
baseline is ``bench.monolith.InProcessTryOn`` on the same model version, example inputs, seed and thread count,
called in this process without HTTP or Ray. Requests alternate (DAG, in-process, DAG, ...) so that both see the
same background load.

The overhead is split with the service's ``X-KGI-Timings`` header: outside the ingress (client latency minus the
ingress's total: HTTP, Serve's proxy, PNG encoding) and inside it (the ingress's total minus the stages' own
compute: form parsing, routing, four deployment-handle calls, any batch wait). Goal: the DAG adds under 5% to the
in-process p50 latency at the default resolution (256x192).

A second figure prices one hand-off on this machine, the unit the DAG pays per stage: a Serve handle call from
one replica to another that answers at once (the default transport through Ray's object store, and Serve's gRPC
transport, ``handle.options(_by_reference=False)``), against a plain Ray actor call as the baseline, with an
argument of a few hundred bytes (stage 1's keypoints) and of 1.8 MB (the stage-two output Inpaint receives).

Examples:
  kgi bench serving_overhead                      # 60 requests per path at 256x192, the version's 25 steps
  kgi bench serving_overhead --requests 100 --working-height 512
  kgi bench serving_overhead --tiny
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from tqdm.auto import tqdm

from bench.cluster import ray_cluster, serve_dag
from bench.common import (LoadMonitor, Table, benchmark_parser, example_form, example_uploads, out_dir, percentiles_ms,
                          pyplot, send_one, version_argument, write_result)
from bench.monolith import InProcessTryOn
from kgi.data.images import width_for

NAME = "serving_overhead"
STAGES = ("preprocess", "keypoints", "parse_warp", "inpaint")
GOAL_PERCENT = 5.0
HAND_OFF_PAYLOADS = {"300 B": 300, "1.8 MB": 1_800_000}  # stage 1's keypoints; the stage-two output
HAND_OFF_GAP_S = 0.02  # between calls, as a request's hand-offs are spaced by the stages' compute


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


class Echo:
    """The far end of a hand-off: answers a few bytes at once, whatever it is given."""

    def __call__(self, payload: np.ndarray) -> int:
        return payload.size


class HandOffProbe:
    """Times ``calls`` hand-offs of each payload to ``echo`` from inside a replica, as the ingress makes them."""

    def __init__(self, echo):
        self.transports = {"Serve handle, object store (default)": echo,
                           "Serve handle, gRPC": echo.options(_by_reference=False)}

    async def __call__(self, calls: int) -> dict[str, dict[str, float]]:
        return {transport: {label: await _time_calls(handle.remote, size, calls)
                            for label, size in HAND_OFF_PAYLOADS.items()}
                for transport, handle in self.transports.items()}


class PlainEcho:
    """:class:`Echo` as a plain Ray actor."""

    async def echo(self, payload: np.ndarray) -> int:
        return payload.size


class PlainProbe:
    """:class:`HandOffProbe` with plain Ray actor calls: the baseline."""

    async def run(self, echo, calls: int) -> dict[str, float]:
        return {label: await _time_calls(echo.echo.remote, size, calls)
                for label, size in HAND_OFF_PAYLOADS.items()}


async def _time_calls(call, size: int, calls: int) -> float:
    """p50 ms of ``await call(payload)`` for a ``size``-byte payload, after 3 warm-up calls, spaced apart."""
    payload = np.ones(size, np.uint8)
    seconds = []
    for index in range(calls + 3):
        start = time.perf_counter()
        await call(payload)
        if index >= 3:
            seconds.append(time.perf_counter() - start)
        await asyncio.sleep(HAND_OFF_GAP_S)
    return _median_ms(seconds)


def hand_off_costs(calls: int) -> dict[str, dict[str, float]]:
    """p50 ms of one hand-off per transport and payload (see the module docstring), on the current Ray cluster."""
    import ray
    from ray import serve

    plain_probe = ray.remote(num_cpus=0.05)(PlainProbe).remote()
    plain_echo = ray.remote(num_cpus=0.05)(PlainEcho).remote()
    costs = {"Ray actor call (baseline)": ray.get(plain_probe.run.remote(plain_echo, calls))}
    echo = serve.deployment(Echo, ray_actor_options={"num_cpus": 0.05}).bind()
    probe = serve.run(serve.deployment(HandOffProbe, ray_actor_options={"num_cpus": 0.05}).bind(echo),
                      name="hand-off-probe", route_prefix=None)
    try:
        costs.update(probe.remote(calls).result())
    finally:
        serve.shutdown()
    return costs


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
    hand_off_calls = 10 if args.tiny else 150
    settings["hand_off_calls"] = hand_off_calls
    with LoadMonitor() as load, ray_cluster():
        with serve_dag(args.version, working_height=height) as dag:
            results["local.yaml"] = {"inpaint_batching": dag.inpaint_batching,
                                     **measure(dag.url, tryon, requests, steps, "DAG and in-process")}
        hand_offs = hand_off_costs(hand_off_calls)

    table = Table(f"Serving overhead, one request at a time, {height}x{width_for(height)}, {settings['steps']} "
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
    hand_off_table = Table(f"One hand-off, p50 of {hand_off_calls} calls from inside a replica (ms)",
                           ["transport", *(f"argument {label}" for label in HAND_OFF_PAYLOADS)])
    hand_off_table.rows += [[transport, *(f"{costs[label]:.1f}" for label in HAND_OFF_PAYLOADS)]
                            for transport, costs in hand_offs.items()]
    write_result(out_dir(args), NAME, argv, settings=settings,
                 results={"requests": results, "hand_off_p50_ms": hand_offs}, tables=[table, hand_off_table],
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
