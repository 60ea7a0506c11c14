"""Dynamic batching: the Inpaint deployment's throughput with ``max_batch_size`` 1 vs. 4, 8, 16, and the batch
sizes it actually formed.

One ``Inpaint`` replica (``deployments.stages.Inpaint``, the DAG's stage 3 with its ``Batcher``) runs alone
in a Serve app; the driver computes the example request's stage-2 output once and sends ``--images`` copies of it
(distinct seeds) through a deployment handle all at once, so the queue always holds enough requests to fill the
largest batch. Every ``max_batch_size`` is applied to the same replica (``user_config``, no restart) and gets
the same images; throughput is images over the wall time from the first send to the last answer, compared with
``max_batch_size`` 1 in the same run. The batch sizes come from the replica's ``batch_size_counts``.

On a GPU (``--device cuda``), the goal is at least 6x from batch 1 to batch 16 at 256x192: pass
``--random-inpainter base --inpaint-height 256`` to time the GPU-sized UNet at that resolution (random weights:
the cost does not depend on their values).

Examples:
  kgi bench batching                                   # CPU, shipped model, max_batch_size 1,4,8,16
  kgi bench batching --device cuda --dtype bfloat16 --random-inpainter base --inpaint-height 256 --images 128
  kgi bench batching --tiny
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from ray import serve
from tqdm.auto import tqdm

from bench.cluster import model_version, ray_cluster, version_with_random_inpainter
from bench.common import (LoadMonitor, Table, benchmark_parser, example_uploads, out_dir, positive_ints, pyplot,
                          version_argument, write_result)
from bench.monolith import InProcessTryOn
from deployments.stages import Inpaint, ParseWarpOutput
from kgi.data.images import width_for

NAME = "batching"
APP_NAME = "bench-batching"
BATCH_WAIT_S = 0.1  # long enough for the whole burst to arrive before the first batch closes
GPU_GOAL_SPEEDUP = 6.0


def build_parser():
    parser = benchmark_parser(NAME, __doc__)
    version_argument(parser)
    parser.add_argument("--batch-sizes", type=positive_ints, metavar="B,B,...",
                        help="max_batch_size values, the first is the baseline (default 1,4,8,16; tiny 1,2)")
    parser.add_argument("--images", type=int, help="images per batch size (default 3 x the largest; tiny 4)")
    parser.add_argument("--steps", type=int, help="sampler steps (default: the version's; tiny 2)")
    parser.add_argument("--working-height", type=int, help="the request's working height (default 256; tiny 128)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="the replica's torch threads (default 1, as platform/serve/local.yaml)")
    parser.add_argument("--random-inpainter", choices=["tiny", "base"], metavar="PRESET",
                        help="replace the version's inpainter by a random-weights preset (tiny | base)")
    parser.add_argument("--inpaint-height", type=int, help="with --random-inpainter: its resolution")
    return parser


def run_batch_size(version, stage_two, args, max_batch_size: int, images: int, steps: int) -> dict:
    """Deploy (or reconfigure) the replica with ``max_batch_size``, send ``images`` requests at once, wait."""
    deployment = Inpaint.options(
        name="Inpaint-bench", num_replicas=1, max_ongoing_requests=max(2 * max_batch_size, 8),
        max_queued_requests=-1,
        ray_actor_options={"num_cpus": 1, "num_gpus": 1 if args.device == "cuda" else 0},
        user_config={"max_batch_size": max_batch_size, "batch_wait_timeout_s": BATCH_WAIT_S})
    handle = serve.run(deployment.bind("~/.cache/kgi/registry", args.device, args.dtype, args.torch_threads),
                       name=APP_NAME, route_prefix=None)
    handle = handle.options(multiplexed_model_id=version.weights_id)
    parse_warp = ParseWarpOutput(stage_two, np.zeros((1, 32, 2), np.float32), {})  # keypoints only pass through
    sampler = replace(version.sampler, num_steps=steps)
    handle.inpaint.remote(parse_warp, 0, version.name, sampler).result()  # warm-up (and the reconfigure has landed)
    before = Counter(handle.batch_size_counts.remote().result().get(version.name, {}))
    start = time.perf_counter()
    responses = [handle.inpaint.remote(parse_warp, seed, version.name, sampler) for seed in range(images)]
    outputs = [response.result() for response in tqdm(responses, desc=f"max_batch_size {max_batch_size}",
                                                         unit="img", leave=False)]
    elapsed = time.perf_counter() - start
    formed = Counter(handle.batch_size_counts.remote().result()[version.name])
    formed.subtract(before)
    return {"max_batch_size": max_batch_size, "images": len(outputs), "elapsed_s": elapsed,
            "images_per_s": len(outputs) / elapsed,
            "batches_formed": {str(size): count for size, count in sorted(formed.items()) if count > 0},
            "mean_batch_size": sum(size * count for size, count in formed.items()) / sum(formed.values())}


def main(argv: list[str] | None = None) -> int:
    argv = list(argv or [])
    args = build_parser().parse_args(argv)
    if (args.random_inpainter is None) != (args.inpaint_height is None):
        raise SystemExit("kgi bench batching: error: --random-inpainter and --inpaint-height go together")
    batch_sizes = args.batch_sizes or ([1, 2] if args.tiny else [1, 4, 8, 16])
    images = args.images or (4 if args.tiny else 3 * max(batch_sizes))
    height = args.working_height or (128 if args.tiny else 256)
    with tempfile.TemporaryDirectory(prefix="kgi-bench-") as scratch:
        version_dir = args.version
        if args.random_inpainter:
            version_dir = version_with_random_inpainter(args.version, args.random_inpainter, args.inpaint_height,
                                                        Path(scratch))
        version = model_version(version_dir, height)
        steps = args.steps or (2 if args.tiny else version.sampler.num_steps)
        stage_two, _ = InProcessTryOn(version_dir, height).stage_two(example_uploads())
        settings = {"batch_sizes": batch_sizes, "images_per_batch_size": images, "steps": steps,
                    "working_height": height, "inpaint_height": version.inpaint_height, "device": args.device,
                    "dtype": args.dtype, "torch_threads": args.torch_threads, "batch_wait_timeout_s": BATCH_WAIT_S,
                    "version": str(args.version), "random_inpainter": args.random_inpainter}
        with LoadMonitor() as load, ray_cluster():
            try:
                rows = [run_batch_size(version, stage_two, args, size, images, steps) for size in batch_sizes]
            finally:
                serve.shutdown()
    baseline = rows[0]["images_per_s"]
    for row in rows:
        row["speedup"] = row["images_per_s"] / baseline
    results = {"rows": rows}
    if args.device == "cuda" and 16 in batch_sizes:
        speedup = next(row["speedup"] for row in rows if row["max_batch_size"] == 16)
        results["gpu_goal"] = {"speedup_16": speedup, "goal": GPU_GOAL_SPEEDUP, "met": speedup >= GPU_GOAL_SPEEDUP}

    inpaint_width = width_for(version.inpaint_height)
    table = Table(f"Inpaint deployment, {args.device} {args.dtype}, inpainter at {version.inpaint_height}x"
                  f"{inpaint_width}, {steps} steps, {images} images per setting",
                  ["max_batch_size", "images/s", f"speedup vs. {batch_sizes[0]}", "batches formed (size x count)",
                   "mean batch"])
    for row in rows:
        table.rows.append([str(row["max_batch_size"]), f"{row['images_per_s']:.3f}", f"{row['speedup']:.2f}x",
                           ", ".join(f"{size} x {count}" for size, count in row["batches_formed"].items()),
                           f"{row['mean_batch_size']:.1f}"])
    write_result(out_dir(args), NAME if args.device == "cpu" else f"{NAME}-{args.device}", argv, settings=settings,
                 results=results, tables=[table], figure=plot(rows, settings), load=load)
    return 0


def plot(rows: list[dict], settings: dict):
    """Images/s per max_batch_size (speedup over the first written on the bars) and the batch sizes formed."""
    plt = pyplot()
    figure, (rate_axis, formed_axis) = plt.subplots(1, 2, figsize=(11, 4))
    labels = [str(row["max_batch_size"]) for row in rows]
    bars = rate_axis.bar(labels, [row["images_per_s"] for row in rows], color="tab:blue")
    rate_axis.bar_label(bars, [f"{row['speedup']:.2f}x" for row in rows])
    rate_axis.set_xlabel("max_batch_size")
    rate_axis.set_ylabel("images / s")
    rate_axis.set_title(f"Inpaint throughput ({settings['device']}, {settings['dtype']}, "
                        f"{settings['inpaint_height']}x{width_for(settings['inpaint_height'])})")
    width = 0.8 / len(rows)
    for index, row in enumerate(rows):
        sizes = [int(size) for size in row["batches_formed"]]
        formed_axis.bar([size + (index - (len(rows) - 1) / 2) * width for size in sizes],
                        list(row["batches_formed"].values()), width=width,
                        label=f"max_batch_size {row['max_batch_size']}")
    formed_axis.set_xlabel("size of the batches formed")
    formed_axis.set_ylabel("sampler calls")
    formed_axis.set_title("Batches actually formed")
    formed_axis.legend(fontsize=8)
    figure.tight_layout()
    return figure
