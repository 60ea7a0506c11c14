"""GPU figures: images/s and peak GPU memory of the whole DAG with the fast sampler in bfloat16 at 256x192 and
512x384, and the inpainter's achieved fraction of the card's bfloat16 matrix rate.

Runs where ``torch.cuda`` sees a GPU; elsewhere it says so, records "not measured" and exits 0.

At each resolution the inpainter is the GPU-sized ``SpadeUNet`` preset ("base", random weights: the cost does not
depend on their values) working at that resolution, in a copy of the model version. Two measurements:

- **matrix-rate fraction**: the UNet alone in this process, bf16 autocast, at the batch the DAG forms; its
  floating-point operations per evaluation are counted (``torch.utils.flop_counter``) and divided by the
  evaluation's time, then compared with the rate of a large bf16 matrix multiplication timed on the same card
  in the same run (the practical peak; the datasheet's dense bf16 rate is printed beside it when known).
- **the DAG**: ``platform/serve/local.yaml`` with Inpaint on the GPU in bfloat16 (one replica on the card serving
  both versions, batches up to 32), more replicas of the CPU stages, the version's fast sampler (25 steps),
  under closed-loop HTTP load; images/s, latency, and the peak memory ``nvidia-smi`` reports for the card
  while it runs (CUDA contexts included).

Examples:
  kgi bench gpu                                     # 256x192 and 512x384, 256 requests at concurrency 64 each
  kgi bench gpu --heights 512 --requests 512 --concurrency 128
  kgi bench gpu --tiny                              # seconds; exits 0 without a GPU
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from bench.cluster import (INPAINT, free_port, local_serve_config, model_version, ray_cluster,
                           version_with_random_inpainter)
from bench.common import (LoadMonitor, PeriodicSampler, Table, benchmark_parser, closed_loop, example_form, out_dir,
                          positive_ints, send_one, version_argument, write_result)
from kgi.data.images import width_for
from kgi.data.labels import NUM_PARSE13
from kgi.models.inpainter import SpadeUNet

NAME = "gpu"
INPAINT_BATCH = {"max_batch_size": 32, "batch_wait_timeout_s": 0.02}
CPU_STAGE_REPLICAS = {"Preprocess": 4, "ParseWarp": 4}
# Dense bf16 tensor-core rates from the vendors' datasheets (TFLOP/s, without sparsity), by device-name prefix.
DATASHEET_BF16_TFLOPS = {"NVIDIA H100 80GB HBM3": 989.0, "NVIDIA H100 NVL": 835.0, "NVIDIA H100 PCIe": 756.0,
                         "NVIDIA H200": 989.0, "NVIDIA A100": 312.0, "NVIDIA L4": 121.0, "NVIDIA L40S": 362.0}


def build_parser():
    parser = benchmark_parser(NAME, __doc__)
    version_argument(parser)
    parser.add_argument("--heights", type=positive_ints, metavar="H,H", help="working heights (default 256,512)")
    parser.add_argument("--requests", type=int, help="requests per height (default 256; tiny 8)")
    parser.add_argument("--concurrency", type=int, help="closed-loop clients (default 64; tiny 4)")
    parser.add_argument("--preset", default="base", choices=["tiny", "base"], help="inpainter size (default base)")
    return parser


def synchronize(device: torch.device) -> None:
    """Wait for ``device``'s queued work (a no-op on the CPU, which runs synchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: torch.device, size: int = 8192, repeats: int = 20) -> float:
    """The bf16 rate of ``size x size`` matrix products on ``device``, TFLOP/s (2 n^3 per product)."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    a @ b  # warm-up
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e12


@torch.no_grad()
def inpainter_tflops(unet: torch.nn.Module, height: int, batch: int, device: torch.device, repeats: int = 10
                     ) -> dict:
    """The UNet's achieved bf16 rate at ``batch`` images of ``height x 3*height/4``: FLOPs counted once, time
    averaged over ``repeats`` evaluations after a warm-up."""
    from torch.utils.flop_counter import FlopCounterMode

    unet = unet.to(device).eval()
    sample = torch.randn(batch, 3, height, width_for(height), device=device)
    parse = torch.zeros(batch, NUM_PARSE13, height, width_for(height), device=device)
    parse[:, 0] = 1
    timesteps = torch.full((batch,), 500, device=device)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        counter = FlopCounterMode(display=False)
        with counter:
            unet(sample, timesteps, parse)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            unet(sample, timesteps, parse)
        synchronize(device)
    seconds = (time.perf_counter() - start) / repeats
    flops = counter.get_total_flops()
    return {"batch": batch, "gflop_per_evaluation": flops / 1e9, "ms_per_evaluation": seconds * 1000,
            "achieved_tflops": flops / seconds / 1e12}


class GpuMemoryPeak(PeriodicSampler):
    """The largest ``memory.used`` of GPU 0 that ``nvidia-smi`` reports while the ``with`` block runs, MiB
    (sampled every 0.2 s); ``peak_mib`` is None where nvidia-smi is missing."""

    def __init__(self):
        super().__init__(interval_s=0.2)

    def read(self) -> float | None:
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i",
                                  "0"], capture_output=True, text=True, check=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        return float(out.strip().splitlines()[0])

    @property
    def peak_mib(self) -> float | None:
        return max(self.samples, default=None)


def gpu_serve_config(version_dir: Path, height: int, port: int) -> dict:
    """local.yaml with Inpaint on the GPU in bfloat16 (one replica serves both versions), larger batches and
    more replicas of the heavy CPU stages."""
    config = local_serve_config(version_dir, working_height=height, port=port, inpaint_user_config=INPAINT_BATCH,
                                inpaint_replicas=1)
    (application,) = config["applications"]
    application["args"]["inpaint"] = {"device": "cuda", "dtype": "bfloat16"}
    for deployment in application["deployments"]:
        if deployment["name"] == INPAINT:
            deployment.update(ray_actor_options={"num_cpus": 1, "num_gpus": 1},
                              max_ongoing_requests=2 * INPAINT_BATCH["max_batch_size"], max_queued_requests=1024)
        elif deployment["name"] in CPU_STAGE_REPLICAS:
            deployment["num_replicas"] = CPU_STAGE_REPLICAS[deployment["name"]]
        if deployment["name"] == "Ingress":
            deployment["max_ongoing_requests"] = 1024
            deployment["max_queued_requests"] = 2048
    return config


def measure_dag(version_dir: Path, height: int, requests: int, concurrency: int) -> dict:
    """Closed-loop load on the GPU DAG at ``height``: images/s, latency percentiles, peak card memory."""
    from ray import serve

    from deployments.app import deploy

    port = free_port()
    idle_mib = GpuMemoryPeak().read()
    deploy(gpu_serve_config(version_dir, height, port), timeout_s=900)
    url = f"http://127.0.0.1:{port}/v1/tryon"
    try:
        form = example_form()
        send_one(url, form)
        with GpuMemoryPeak() as memory:
            result = asyncio.run(closed_loop(url, form, concurrency=concurrency, requests=requests,
                                             progress=f"DAG {height}"))
    finally:
        serve.shutdown()
    return {**result.summary(), "images_per_s": result.requests_per_s, "idle_gpu_memory_mib": idle_mib,
            "peak_gpu_memory_mib": memory.peak_mib}


def main(argv: list[str] | None = None) -> int:
    argv = list(argv or [])
    args = build_parser().parse_args(argv)
    directory = out_dir(args)
    if not torch.cuda.is_available():
        print(f"kgi bench gpu: no GPU here (torch {torch.__version__} sees no CUDA device): not measured. "
              f"Run `kgi bench gpu` on a machine with one.")
        write_result(directory, NAME, argv, settings={}, tables=[], figure=None, load=LoadMonitor(),
                     results={"measured": False, "reason": "torch.cuda.is_available() is False"})
        return 0
    heights = args.heights or ([128] if args.tiny else [256, 512])
    requests = args.requests or (8 if args.tiny else 256)
    concurrency = args.concurrency or (4 if args.tiny else 64)
    device = torch.device("cuda")
    rows = []
    with LoadMonitor() as load, tempfile.TemporaryDirectory(prefix="kgi-bench-gpu-") as scratch:
        peak_tflops = matmul_tflops(device)
        datasheet = next((rate for prefix, rate in DATASHEET_BF16_TFLOPS.items()
                          if torch.cuda.get_device_name(0).startswith(prefix)), None)
        with ray_cluster():
            for height in heights:
                version_dir = version_with_random_inpainter(args.version, args.preset, height,
                                                            Path(scratch) / str(height))
                rate = inpainter_tflops(SpadeUNet.from_pretrained(version_dir / "inpainter"), height,
                                        INPAINT_BATCH["max_batch_size"], device)
                torch.cuda.empty_cache()  # the UNet is gone: its memory goes back before the DAG starts
                rate["fraction_of_matmul_rate"] = rate["achieved_tflops"] / peak_tflops
                rate["fraction_of_datasheet"] = rate["achieved_tflops"] / datasheet if datasheet else None
                dag = measure_dag(version_dir, height, requests, concurrency)
                rows.append({"height": height, "width": width_for(height),
                             "steps": model_version(version_dir, height).sampler.num_steps, "inpainter": rate,
                             "dag": dag})
    settings = {"heights": heights, "requests": requests, "concurrency": concurrency, "preset": args.preset,
                "dtype": "bfloat16", "inpaint_batching": INPAINT_BATCH, "cpu_stage_replicas": CPU_STAGE_REPLICAS,
                "version": str(args.version)}
    results = {"measured": True, "gpu": torch.cuda.get_device_name(0), "matmul_bf16_tflops": peak_tflops,
               "datasheet_bf16_tflops": datasheet, "rows": rows}
    table = Table(f"GPU: {results['gpu']}, bf16, {args.preset} inpainter, fast sampler; bf16 matmul "
                  f"{peak_tflops:.0f} TFLOP/s measured" + (f", {datasheet:.0f} datasheet" if datasheet else ""),
                  ["resolution", "DAG images/s", "p50 ms", "p99 ms", "peak GPU memory MiB",
                   "UNet GFLOP/eval (batch 32)", "UNet TFLOP/s", "of matmul rate", "of datasheet"])
    for row in rows:
        rate, dag = row["inpainter"], row["dag"]
        table.rows.append([f"{row['height']}x{row['width']}", f"{dag['images_per_s']:.2f}", f"{dag['p50_ms']:.0f}",
                           f"{dag['p99_ms']:.0f}", f"{dag['peak_gpu_memory_mib']}",
                           f"{rate['gflop_per_evaluation']:.0f}", f"{rate['achieved_tflops']:.1f}",
                           f"{rate['fraction_of_matmul_rate']:.1%}",
                           f"{rate['fraction_of_datasheet']:.1%}" if rate["fraction_of_datasheet"] else "-"])
    write_result(directory, NAME, argv, settings=settings, results=results, tables=[table], figure=None, load=load)
    return 0
