"""Sampler cost: UNet evaluations and wall time per image vs. inpainting quality, with KGI's public 410-evaluation
setting (DDPM 50 steps, RePaint jumps 10 x 10) as the reference row.

``kgi.sampling.sampler_curve`` over held-out synthetic test pairs (paired: the person's own garment): stages 1-2
of the model version build each pair's keep mask (the pipeline's own holes), and every sampler setting inpaints
the same holes of the ground-truth person photo, conditioned on its ground-truth parse, with the same seeds.
Quality is SSIM and L1 inside the holes against the ground truth (mean ± standard error over images). Everything
runs at the inpainter's resolution, as ``TryOnPipeline.inpaint`` does.

The pairs come from ``--data`` (a VITON-HD root: the test split), by default ``data/synth`` when it exists,
else a synthetic set generated once into ``bench/.cache/``.

Examples:
  kgi bench sampler                                  # 12 test pairs, the six settings of DEFAULT_CURVE_SETTINGS
  kgi bench sampler --data data/synth --images 64 --batch-size 16
  kgi bench sampler --tiny
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from bench.common import (REPO, LoadMonitor, Table, benchmark_parser, cache_dir, out_dir, pyplot, version_argument,
                          write_result)
from kgi.data.images import width_for
from kgi.data.vitonhd import VitonHD
from kgi.pipeline import TryOnPipeline, keypoint_inputs, to_tensor_images
from kgi.runtime import configure_inference_process
from kgi.sampling import DEFAULT_CURVE_SETTINGS, REFERENCE_SETTING, SamplerSetting, sampler_curve

NAME = "sampler"
DEFAULT_DATA = REPO / "data" / "synth"
SYNTH_SEED = 2024  # the cached set's seed; its pairs are new people and garments, never trained on
# --tiny: two cheap settings in the reference's and the fast sampler's styles (jumps / none).
TINY_SETTINGS = (SamplerSetting("repaint-ddpm-6-j2x2", "ddpm", 6, jump_length=2, jump_n_sample=2),
                 SamplerSetting("repaint-ddpm-3", "ddpm", 3))


def build_parser():
    parser = benchmark_parser(NAME, __doc__)
    version_argument(parser)
    parser.add_argument("--data", type=Path, metavar="ROOT",
                        help="VITON-HD root whose test split is used (default: data/synth, else a cached "
                             "synthetic set)")
    parser.add_argument("--images", type=int, help="test pairs (default 24; tiny 2)")
    parser.add_argument("--height", type=int, default=256, help="stage 1-2 resolution (default 256)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per sampler call (default 8)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch threads (default 1: on a shared machine more threads than free cores "
                             "make every thread wait)")
    return parser


def held_out_root(data: Path | None, images: int, height: int) -> Path:
    """``data``, else ``data/synth`` when it has a test split, else a synthetic set of ``images`` test pairs
    generated once under ``bench/.cache/``."""
    from kgi.data.synth import generate

    if data is not None:
        return data
    if (DEFAULT_DATA / "test_pairs.txt").is_file():
        return DEFAULT_DATA
    root = cache_dir() / f"synth-{SYNTH_SEED}-{height}-{images}"
    if not (root / "test_pairs.txt").is_file():
        generate(str(root), n_train=1, n_test=max(images, 2), height=height, seed=SYNTH_SEED)
    return root


@torch.no_grad()
def curve_inputs(pipeline: TryOnPipeline, dataset: VitonHD, images: int, batch_size: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``sampler_curve``'s inputs at the inpainter's resolution from the first ``images`` pairs with a hole.

    Returns ``(target01 (N, 3, h, w), keep_mask (N, 1, h, w), parse_onehot (N, 13, h, w))``: the person photo,
    the pipeline's keep mask (stages 1-2, reduced as ``TryOnPipeline.inpaint`` reduces it: a pixel is kept only
    where all of it was), and the ground-truth parse.
    """
    targets, keeps, parses = [], [], []
    bar = tqdm(total=images, desc="stages 1-2", unit="pair", leave=False)
    for start in range(0, len(dataset), batch_size):
        samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        garment_kp = pipeline.predict_keypoints(*keypoint_inputs(samples))
        stage_two = pipeline.parse_and_warp(samples, garment_kp)
        person = to_tensor_images([s.person for s in samples], "cpu")
        parse13 = torch.from_numpy(np.stack([s.parse13 for s in samples])).long()  # (B, H, W)
        target, keep, parse_onehot = pipeline.inpainter_inputs(person, stage_two.keep_mask, parse13)
        has_hole = (keep < 1).flatten(1).any(1)
        targets.append(target[has_hole])
        keeps.append(keep[has_hole])
        parses.append(parse_onehot[has_hole])
        found = sum(len(k) for k in keeps)
        bar.update(min(found, images) - bar.n)
        if found >= images:
            break
    bar.close()
    return tuple(torch.cat(parts)[:images] for parts in (targets, keeps, parses))


def main(argv: list[str] | None = None) -> int:
    argv = list(argv or [])
    args = build_parser().parse_args(argv)
    images = args.images or (2 if args.tiny else 12)
    settings_run = TINY_SETTINGS if args.tiny else DEFAULT_CURVE_SETTINGS
    root = held_out_root(args.data, images, args.height)
    configure_inference_process(args.torch_threads)
    pipeline = TryOnPipeline.from_pretrained(args.version)
    with LoadMonitor() as load:
        target01, keep_mask, parse_onehot = curve_inputs(
            pipeline, VitonHD(root, split="test", mode="paired", height=args.height), images, args.batch_size)
        rows = [row for setting in tqdm(settings_run, desc="sampler settings", unit="setting", leave=False)
                for row in sampler_curve(pipeline.unet, pipeline.scheduler, target01, keep_mask, parse_onehot,
                                         settings=(setting,), batch_size=args.batch_size)]
    reference = rows[0]
    for row in rows:
        row["evaluations_vs_reference"] = row["unet_evaluations"] / reference["unet_evaluations"]
        row["time_vs_reference"] = row["seconds_per_image"] / reference["seconds_per_image"]
    inpaint_size = f"{pipeline.info.inpaint_height}x{width_for(pipeline.info.inpaint_height)}"
    settings = {"images": len(target01), "data": str(root), "stage_height": args.height,
                "inpaint_size": inpaint_size, "batch_size": args.batch_size, "version": str(args.version),
                "torch_threads": torch.get_num_threads(), "reference": reference["name"],
                "hole_fraction_mean": float((1 - keep_mask).mean())}
    table = Table(f"Sampler cost vs. quality, {len(target01)} held-out pairs, inpainter at {inpaint_size}, "
                  f"batch {args.batch_size} (SSIM and L1 inside the holes, mean ± s.e.)",
                  ["setting", "UNet evaluations", "s / image", "time vs. reference", "SSIM", "L1"])
    for row in rows:
        name = row["name"] + (" (reference: KGI's public setting)" if row["name"] == REFERENCE_SETTING.name else "")
        table.rows.append([name, str(row["unet_evaluations"]), f"{row['seconds_per_image']:.2f}",
                           f"{row['time_vs_reference']:.3f}", f"{row['ssim_mean']:.4f} ± {row['ssim_se']:.4f}",
                           f"{row['l1_mean']:.4f} ± {row['l1_se']:.4f}"])
    write_result(out_dir(args), NAME, argv, settings=settings, results={"rows": rows}, tables=[table],
                 figure=plot(rows), load=load)
    return 0


def plot(rows: list[dict]):
    """SSIM and L1 in the holes against UNet evaluations per image (log scale), one marker per setting, named in
    the legend with its seconds per image; the first row (the reference) is the red star."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    markers = "*osD^vP"
    colours = ("tab:red", "tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:olive")
    for axis, metric, label in zip(axes, ("ssim", "l1"), ("SSIM in the holes (higher is better)",
                                                          "L1 in the holes (lower is better)"), strict=True):
        for index, row in enumerate(rows):
            axis.errorbar(row["unet_evaluations"], row[f"{metric}_mean"], yerr=row[f"{metric}_se"],
                          fmt=markers[index % len(markers)], color=colours[index % len(colours)],
                          markersize=11 if index == 0 else 7, capsize=3,
                          label=f"{row['name']}: {row['unet_evaluations']} evals, {row['seconds_per_image']:.2f} s/img")
        axis.set_xscale("log")
        axis.set_xlabel("UNet evaluations per image")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.suptitle("Sampler cost vs. quality (mean ± s.e. over the same images and seeds)")
    figure.tight_layout()
    return figure
