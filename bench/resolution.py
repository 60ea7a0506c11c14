"""The whole try-on at 1024x768 against 256x192, in one process: what full resolution costs.

The same request (the bundled example, its photo, pose and parse scaled up to 1024x768) is tried on at both
working heights in alternation (so both see the same machine load), stage by stage as ``kgi tryon`` runs them:
preprocess, keypoints, parse_warp (target parse, warp, recomposition), inpaint (sampler and full-resolution
compositing) and output (pasting back into the photo and PNG encoding). The models run at their own sizes
either way; what grows with the resolution is everything image-to-image. Reported: the median seconds of each
stage and of the whole, and the ratio 1024 / 256; and the median of each round's own ratio of the whole (its
two try-ons run back to back, so a machine whose speed drifts between rounds moves both alike).

Examples:
  kgi bench resolution                   # 7 rounds, the version's sampler steps, one torch thread
  kgi bench resolution --rounds 3 --steps 10
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from bench.common import (LoadMonitor, Table, benchmark_parser, example_files, out_dir, version_argument,
                          write_result)
from kgi.data.images import decode_rgb, encode_png, width_for
from kgi.pipeline import TryOnPipeline, keypoint_inputs
from kgi.preprocess import Preprocessor, Uploads, paste_back
from kgi.runtime import configure_inference_process

NAME = "resolution"
HEIGHTS = (256, 1024)
STAGES = ("preprocess", "keypoints", "parse_warp", "inpaint", "output")


def build_parser():
    parser = benchmark_parser(NAME, __doc__)
    version_argument(parser)
    parser.add_argument("--rounds", type=int, help="rounds, each trying on at every height (default 7; tiny 1)")
    parser.add_argument("--steps", type=int, help="sampler steps (default: the version's; tiny 2)")
    parser.add_argument("--torch-threads", type=int, default=1, help="intra-op threads (default 1, as a replica)")
    return parser


def example_at_1024() -> Uploads:
    """The bundled example scaled to 1024x768: photo (bicubic), parse (nearest), pose (coordinates)."""
    files = example_files()
    person = Image.open(io.BytesIO(files["person"])).convert("RGB")
    scale = 1024 / person.height
    size = (round(person.width * scale), 1024)
    photo, parse = io.BytesIO(), io.BytesIO()
    person.resize(size, Image.BICUBIC).save(photo, format="JPEG", quality=95)
    Image.open(io.BytesIO(files["parse"])).resize(size, Image.NEAREST).save(parse, format="PNG")
    pose = json.loads(files["pose"])
    for body in pose["people"]:
        joints = np.asarray(body["pose_keypoints_2d"], dtype=float).reshape(-1, 3)
        joints[:, :2] *= scale
        body["pose_keypoints_2d"] = joints.ravel().tolist()
    return Uploads(person=photo.getvalue(), garment=files["garment"], pose=json.dumps(pose).encode(),
                   parse=parse.getvalue())


def try_on(pipeline: TryOnPipeline, uploads: Uploads, height: int, steps: int) -> dict[str, float]:
    """One try-on at ``height`` rows; the seconds of each of ``STAGES`` and the total."""
    timings, start = {}, time.perf_counter()
    sample = Preprocessor()(uploads, height)
    timings["preprocess"] = time.perf_counter() - start
    mark = time.perf_counter()
    garment_kp = pipeline.predict_keypoints(*keypoint_inputs([sample]))
    timings["keypoints"] = time.perf_counter() - mark
    mark = time.perf_counter()
    stage_two = pipeline.parse_and_warp([sample], garment_kp)
    timings["parse_warp"] = time.perf_counter() - mark
    mark = time.perf_counter()
    images, _ = pipeline.inpaint(stage_two, [0], replace(pipeline.info.sampler, num_steps=steps))
    timings["inpaint"] = time.perf_counter() - mark
    mark = time.perf_counter()
    image = (images[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    encode_png(paste_back(image, sample, decode_rgb(uploads.person, source="person")))
    timings["output"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - start
    return timings


def main(argv: list[str] | None = None) -> int:
    argv = list(argv or [])
    args = build_parser().parse_args(argv)
    rounds = args.rounds or (1 if args.tiny else 7)
    configure_inference_process(args.torch_threads)
    pipeline = TryOnPipeline.from_pretrained(args.version)
    steps = args.steps or (2 if args.tiny else pipeline.info.sampler.num_steps)
    uploads = example_at_1024()
    for height in HEIGHTS:  # warm-up: first calls allocate and load kernels
        try_on(pipeline, uploads, height, steps)
    runs: dict[int, list[dict[str, float]]] = {height: [] for height in HEIGHTS}
    with LoadMonitor() as load:
        for _ in range(rounds):
            for height in HEIGHTS:
                runs[height].append(try_on(pipeline, uploads, height, steps))
    medians = {height: {stage: float(np.median([run[stage] for run in runs[height]])) for stage in (*STAGES, "total")}
               for height in HEIGHTS}
    low, high = HEIGHTS
    table = Table(f"Whole try-on at {high}x{width_for(high)} vs {low}x{width_for(low)}, one process, "
                  f"{torch.get_num_threads()} torch thread(s), {steps} sampler steps, median of {rounds} rounds (s)",
                  ["stage", f"{low} rows", f"{high} rows", "ratio"])
    for stage in (*STAGES, "total"):
        table.rows.append([stage, f"{medians[low][stage]:.3f}", f"{medians[high][stage]:.3f}",
                           f"{medians[high][stage] / medians[low][stage]:.2f}x"])
    paired = float(np.median([high_run["total"] / low_run["total"]
                              for low_run, high_run in zip(runs[low], runs[high])]))  # each round's own ratio
    table.rows.append(["total, median of the rounds' ratios", "", "", f"{paired:.2f}x"])
    settings = {"rounds": rounds, "steps": steps, "heights": list(HEIGHTS), "version": str(args.version),
                "torch_threads": torch.get_num_threads()}
    write_result(out_dir(args), NAME, argv, settings=settings,
                 results={"medians": {str(h): m for h, m in medians.items()},
                          "ratio_total": medians[high]["total"] / medians[low]["total"],
                          "ratio_total_paired": paired},
                 tables=[table], figure=None, load=load)
    return 0
