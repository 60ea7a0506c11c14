"""Evaluation of the stages against the synthetic ground truth, and of whole try-ons, as tables and sheets.

``evaluate_stages`` reports the three figures the method's stage-1/2 claims rest on, each beside its baseline
in the same run: keypoint error of the graph network vs. the geometric transfer (overall, per sleeve type and on
the crossed-arms subset), target-parse IoU per class with PREDICTED keypoints, and the garment region of the
five-segment vs. the single-TPS warp against the ground-truth person. ``evaluate_tryon`` runs the whole
pipeline and measures SSIM/PSNR (whole image and inpainted region) beside two plain fills of the same holes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from kgi.baseline import geometric_transfer
from kgi.data.images import width_for
from kgi.data.labels import NUM_PARSE13, PARSE13_LABELS, UPPER
from kgi.data.sample import TryOnSample
from kgi.data.synth import GARMENT_TAG
from kgi.metrics import masked_l1, mean_and_standard_error, psnr, ssim
from kgi.models.keypoints import mean_keypoint_error
from kgi.models.parse import iou_counts
from kgi.pipeline import TryOnPipeline, to_tensor_images, to_uint8_images
from kgi.pictures import colorize_parse13, contact_sheet, draw_garment_keypoints, draw_pose, mask_tile


@dataclass
class Table:
    """A titled table of rows (lists of cells); ``markdown()`` renders it."""

    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.header) + " |",
                 "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"


def _fmt(values: list[float], digits: int = 4) -> str:
    """Mean ± standard error; the mean alone for a single value (it has no standard error)."""
    mean, se = mean_and_standard_error(torch.tensor(values))
    return f"{mean:.{digits}f} ± {se:.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"


def _batches(samples, batch_size: int):
    batch = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class StageReport:
    tables: list[Table]
    sheet: np.ndarray
    figures: dict[str, float]


def evaluate_stages(pipeline: TryOnPipeline, samples, batch_size: int = 8, sheet_rows: int = 4) -> StageReport:
    """Stage 1 and 2 figures on paired samples with ground-truth keypoints (``VitonHD(..., mode="paired")``).

    Args:
        pipeline: the model version under test.
        samples: iterable of ``TryOnSample`` with ``cloth_keypoints`` and ``worn_keypoints``.
        batch_size: samples per forward pass.
        sheet_rows: examples drawn on the sheet.
    """
    errors = defaultdict(lambda: defaultdict(list))  # subset -> method -> per-sample errors
    # parse -> class -> pixel counts, for the network's raw output and the target parse ("network", "target")
    intersection = defaultdict(lambda: torch.zeros(NUM_PARSE13, dtype=torch.long))
    union = defaultdict(lambda: torch.zeros(NUM_PARSE13, dtype=torch.long))
    # "parse|subset" -> [upper-garment intersection, union, samples], the upper garment's IoU per subset
    upper_counts = defaultdict(lambda: np.zeros(3, np.int64))
    warp_scores = defaultdict(lambda: defaultdict(list))  # "keypoints/method/subset" -> metric -> values
    sheet = []
    for batch in _batches(samples, batch_size):
        height, width = batch[0].size
        if any(s.worn_keypoints is None or s.cloth_keypoints is None for s in batch):
            names = ", ".join(s.cloth_name for s in batch if s.worn_keypoints is None or s.cloth_keypoints is None)
            raise ValueError(f"the stage figures need ground-truth garment landmarks (the landmark files kgi synth "
                             f"writes), and {names} has none; whole try-ons need none: kgi eval tryon")
        cloth_kp = np.stack([s.normalised(s.cloth_keypoints) for s in batch]).astype(np.float32)
        pose_nodes = np.stack([s.pose_nodes for s in batch])
        truth = torch.from_numpy(np.stack([s.normalised(s.worn_keypoints) for s in batch]).astype(np.float32))
        predicted = pipeline.predict_keypoints(cloth_kp, pose_nodes)
        baseline = geometric_transfer(torch.from_numpy(cloth_kp), torch.from_numpy(pose_nodes))
        aspect = width / height
        for method, kp in (("graph network", torch.from_numpy(predicted)), ("geometric baseline", baseline)):
            per_sample = mean_keypoint_error(kp, truth, aspect).tolist()
            for sample, error in zip(batch, per_sample):
                for subset in _subsets(sample):
                    errors[subset][method].append(error)

        raw_parse, target_parse = pipeline.predict_parse(batch, predicted)
        gt_parse = torch.from_numpy(np.stack([s.parse13 for s in batch])).long()
        for parse_name, parse in (("network", raw_parse), ("target", target_parse)):
            i, u = iou_counts(parse.cpu(), gt_parse)
            intersection[parse_name] += i
            union[parse_name] += u
            for sample, sample_parse, sample_truth in zip(batch, parse.cpu(), gt_parse):
                i, u = iou_counts(sample_parse[None], sample_truth[None])
                for subset in _subsets(sample):
                    upper_counts[f"{parse_name}|{subset}"] += (int(i[UPPER]), int(u[UPPER]), 1)

        person = to_tensor_images([s.person for s in batch], "cpu")
        region = (gt_parse == UPPER)[:, None].float()
        for kp_name, kp, parse in (("ground-truth keypoints", truth.numpy(), gt_parse.to(pipeline.device)),
                                   ("predicted keypoints", predicted, target_parse)):
            for method, warp_method in (("five-segment", "five_segments"), ("single TPS", "single_tps")):
                out = pipeline.warp_and_recompose(batch, kp, parse, warp_method)
                garment = out.warped_garment.cpu()
                valid = region.flatten(1).sum(1) > 0
                scores = {"ssim": ssim(garment[valid], person[valid], region[valid]).tolist(),
                          "l1": masked_l1(garment[valid], person[valid], region[valid]).tolist()}
                for sample, s_ssim, s_l1 in zip([s for s, v in zip(batch, valid) if v], scores["ssim"], scores["l1"]):
                    for subset in _subsets(sample):
                        key = f"{kp_name}|{method}|{subset}"
                        warp_scores[key]["ssim"].append(s_ssim)
                        warp_scores[key]["l1"].append(s_l1)
                if kp_name == "predicted keypoints" and len(sheet) < sheet_rows:
                    if method == "five-segment":
                        five = out
                    else:
                        sheet += _stage_rows(batch, predicted, five, out, sheet_rows - len(sheet))

    keypoint_table = Table("Stage 1: garment keypoint error (fraction of image height, mean ± s.e.)",
                           ["subset", "n", "graph network", "geometric baseline", "reduction"])
    figures = {}
    for subset in sorted(errors, key=lambda s: (s != "all", s)):
        net, base = errors[subset]["graph network"], errors[subset]["geometric baseline"]
        reduction = 1 - np.mean(net) / np.mean(base)
        figures[f"keypoints/{subset}/reduction"] = float(reduction)
        keypoint_table.rows.append([subset, str(len(net)), _fmt(net), _fmt(base), f"{reduction:+.1%}"])

    # "network": the parse network's output at every pixel; "target": the parse stage 2 hands on, which keeps the
    # person's own labels wherever neither they nor the network say garment or arm (TryOnPipeline.predict_parse).
    parse_table = Table("Stage 2a: parse IoU with predicted keypoints",
                        ["class", "network output", "target parse (known labels kept)"])
    iou = {name: intersection[name].double() / union[name].double().clamp(min=1) for name in intersection}
    present = union["target"] > 0
    for c in range(NUM_PARSE13):
        if present[c]:
            parse_table.rows.append([PARSE13_LABELS[c], f"{iou['network'][c]:.3f}", f"{iou['target'][c]:.3f}"])
    for name in iou:
        figures[f"parse/{name}/miou"] = float(iou[name][present].mean())
        figures[f"parse/{name}/upper_iou"] = float(iou[name][UPPER])
    parse_table.rows.append(["**mIoU**", f"**{figures['parse/network/miou']:.3f}**",
                             f"**{figures['parse/target/miou']:.3f}**"])
    upper_table = Table("Stage 2a: upper-garment IoU per subset, with predicted keypoints",
                        ["subset", "n", "network output", "target parse (known labels kept)"])
    for subset in sorted({key.split("|")[1] for key in upper_counts}, key=lambda s: (s != "all", s)):
        row = [subset, str(upper_counts[f"target|{subset}"][2])]
        for parse_name in ("network", "target"):
            inter, uni, _ = upper_counts[f"{parse_name}|{subset}"]
            figures[f"parse/{parse_name}/{subset}/upper_iou"] = float(inter / max(uni, 1))
            row.append(f"{inter / max(uni, 1):.3f}")
        upper_table.rows.append(row)

    warp_table = Table("Stage 2b: warped garment vs. ground-truth person inside the true garment region",
                       ["keypoints", "warp", "subset", "n", "SSIM ↑", "L1 ↓"])
    for key in sorted(warp_scores):
        kp_name, method, subset = key.split("|")
        values = warp_scores[key]
        warp_table.rows.append([kp_name, method, subset, str(len(values["ssim"])), _fmt(values["ssim"]),
                                _fmt(values["l1"])])
        figures[f"warp/{kp_name}/{method}/{subset}/ssim"] = float(np.mean(values["ssim"]))
        figures[f"warp/{kp_name}/{method}/{subset}/l1"] = float(np.mean(values["l1"]))
    tables = [keypoint_table, parse_table, upper_table, warp_table]
    return StageReport(tables, contact_sheet(sheet) if sheet else None, figures)


def _subsets(sample: TryOnSample) -> list[str]:
    subsets = ["all"]
    if sample.sleeve:
        subsets.append(f"sleeve={sample.sleeve}")
    subsets += [tag for tag in sample.tags if tag == "crossed_arms"]
    subsets += [f"garment={tag.removeprefix(GARMENT_TAG)}" for tag in sample.tags if tag.startswith(GARMENT_TAG)]
    return subsets


def _stage_rows(batch, predicted, five, single, limit: int) -> list[list[tuple[str, np.ndarray]]]:
    rows = []
    five_garment, single_garment = to_uint8_images(five.warped_garment), to_uint8_images(single.warped_garment)
    recomposed = to_uint8_images(five.recomposed)
    for i, sample in enumerate(batch[:limit]):
        height, width = sample.size
        kp_px = predicted[i] * [width, height]
        rows.append([
            ("person", sample.person),
            ("garment", draw_garment_keypoints(sample.cloth, sample.cloth_keypoints)),
            ("pose + keypoints",
             draw_garment_keypoints(draw_pose(sample.person, sample.pose_nodes), kp_px)),
            ("target parse", colorize_parse13(five.target_parse13[i].cpu().numpy().astype(np.uint8))),
            ("five-segment warp", five_garment[i]),
            ("single-TPS warp", single_garment[i]),
            ("recomposed", recomposed[i]),
            ("keep mask", mask_tile(five.keep_mask[i, 0].bool().cpu().numpy())),
        ])
    return rows


TRYON_METRICS = ["ssim", "psnr", "ssim (inpainted)", "l1 (inpainted)"]


@dataclass
class TryOnReport:
    tables: list[Table]
    sheet: np.ndarray


def plain_fills(recomposed: np.ndarray, keep: np.ndarray, inpaint_height: int) -> dict[str, np.ndarray]:
    """The plain fills the inpainter is compared with, of the same holes: the kept pixels' mean colour, OpenCV's
    Telea inpainting at the image's resolution, and Telea at the inpainter's resolution, composited the way the
    pipeline composites the inpainter's output (``TryOnPipeline.inpaint``).

    Args:
        recomposed: (H, W, 3) uint8 the recomposed image. keep: (H, W) bool its kept pixels.
        inpaint_height: the version's ``inpaint_height`` (its width is 3/4 of it).

    Returns method name -> (H, W, 3) uint8 image, kept pixels untouched.
    """
    height, width = keep.shape
    holes = (~keep).astype(np.uint8) * 255
    mean_fill = recomposed.copy()
    mean_fill[~keep] = recomposed[keep].mean(axis=0).round().astype(np.uint8) if keep.any() else 128
    telea = cv2.inpaint(recomposed, holes, 5, cv2.INPAINT_TELEA)
    # As TryOnPipeline.inpainter_inputs: area-averaged, a pixel kept only where all of it was known.
    small_size = (width_for(inpaint_height), inpaint_height)  # OpenCV's (width, height)
    small = cv2.resize(recomposed, small_size, interpolation=cv2.INTER_AREA)
    small_keep = cv2.resize(keep.astype(np.float32), small_size, interpolation=cv2.INTER_AREA) > 0.999
    small_telea = cv2.inpaint(small, (~small_keep).astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
    telea_small = recomposed.copy()
    telea_small[~keep] = cv2.resize(small_telea, (width, height), interpolation=cv2.INTER_LINEAR)[~keep]
    return {"mean colour": mean_fill, "OpenCV Telea": telea,
            f"OpenCV Telea at {small_size[0]}x{small_size[1]}": telea_small}


def paired_scores(image: np.ndarray, person: np.ndarray, keep_mask: np.ndarray) -> dict[str, float]:
    """One try-on scored against the person photo it reconstructs (the paired setting).

    Args:
        image: (H, W, 3) uint8 the try-on (or a plain fill of the same holes).
        person: (H, W, 3) uint8 the ground-truth person photo.
        keep_mask: (H, W) bool pixels kept from the recomposed image; the rest was inpainted.

    Returns SSIM and PSNR over the whole image and, when anything was inpainted, SSIM and L1 inside the inpainted
    region (the keys of ``TRYON_METRICS``).
    """
    tensor, truth = to_tensor_images([image], "cpu"), to_tensor_images([person], "cpu")
    scores = {"ssim": float(ssim(tensor, truth)), "psnr": float(psnr(tensor, truth))}
    hole = torch.from_numpy(~keep_mask)[None, None].float()
    if hole.sum() > 0:
        scores["ssim (inpainted)"] = float(ssim(tensor, truth, hole))
        scores["l1 (inpainted)"] = float(masked_l1(tensor, truth, hole))
    return scores


def evaluate_tryon(pipeline: TryOnPipeline, samples, paired: bool, batch_size: int = 8, sheet_rows: int = 4
                   ) -> TryOnReport:
    """Whole-pipeline try-on on ``samples``; paired mode scores against the person photo itself.

    In the paired setting SSIM and PSNR are reported over the whole image and inside the inpainted region, for
    the KGI result and for the plain fills of the same recomposed image (so the inpainter's own contribution is
    visible). The unpaired setting has no ground truth: it reports only what needs none (and FID/KID when
    feature-network weights are given to ``kgi.metrics.perceptual_metrics``).
    """
    scores = defaultdict(lambda: defaultdict(list))
    sheet = []
    evaluations = 0
    for start, batch in enumerate(_batches(samples, batch_size)):
        results = pipeline(batch, seeds=list(range(start * batch_size, start * batch_size + len(batch))))
        evaluations = results[0].unet_evaluations
        for sample, result in zip(batch, results):
            candidates = {"KGI (ours)": result.image,
                          **plain_fills(result.recomposed, result.keep_mask, pipeline.info.inpaint_height)}
            if paired:
                for name, image in candidates.items():
                    for metric, value in paired_scores(image, sample.person, result.keep_mask).items():
                        scores[name][metric].append(value)
            if len(sheet) < sheet_rows:
                sheet.append([("person", sample.person), ("garment", sample.cloth),
                              ("recomposed", result.recomposed), ("keep mask", mask_tile(result.keep_mask)),
                              ("mean fill", candidates["mean colour"]), ("OpenCV Telea", candidates["OpenCV Telea"]),
                              ("KGI", result.image)])
    return TryOnReport([tryon_table(scores, evaluations)] if paired else [], contact_sheet(sheet))


def tryon_table(scores: dict[str, dict[str, list[float]]], unet_evaluations: int) -> Table:
    """The paired-setting table: one row per method, mean ± s.e. of each of ``TRYON_METRICS``.

    Args:
        scores: method -> metric -> per-image values (``paired_scores`` of each image).
        unet_evaluations: UNet calls per image, shown in the title.
    """
    table = Table(f"Try-on, paired setting ({unet_evaluations} UNet evaluations per image; mean ± s.e.)",
                  ["method", *TRYON_METRICS])
    for name, values in scores.items():
        table.rows.append([name, *(_fmt(values[m], 3) for m in TRYON_METRICS)])
    return table
