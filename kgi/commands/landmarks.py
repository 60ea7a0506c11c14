"""Extract the 32 garment landmarks of a VITON-HD split: flat (cloth + mask) and worn (parse + pose).

For each pair of the split, in the paired setting (each person with their own garment), writes

    OUT/cloth-landmark-json/{cloth}.json    keypoints of the flat garment photo
    OUT/image-landmark-json/{person}.json   keypoints of the garment as the person wears it
    OUT/overlay/{person}.png                garment and person side by side with their keypoints drawn

in the dataset's landmark format ({"width": W, "height": H, "sleeve": "long"|"short"|"none",
"keypoints": [[x, y] x 32]}, pixels); each file carries the sleeve type found on it (the garment's outline,
the person's arms). Use --out ROOT/SPLIT to add the landmarks to the dataset itself.

With --eval, pairs that have ground-truth landmarks are scored: the mean keypoint distance as a fraction of the
image height, flat and worn, and the sleeve type's accuracy, over all pairs, per sleeve type, per garment kind
(synthetic data tags it: tank, camisole, deep V, three-quarter sleeves, bodysuit, ties) and on the crossed-arms
pairs; pairs whose garment was refused (``kgi.landmarks.checks``) are counted apart.

With --photos, ROOT is a folder of flat garment photos (a VITON-HD ``cloth`` folder, its masks taken from
``cloth-mask`` beside it, or shop photos, masked from the photo): each garment's landmarks, its overlay, a
line with the sleeve type and the heights of nodes 2, 14, 22 and 18, and OUT/sheet.png with every overlay, to be
checked by eye. A refused garment prints its reason.

Examples:

    kgi landmarks data/vitonhd --split test --out runs/landmarks --eval --limit 200
    kgi landmarks ../shared/photos/garments --photos --out runs/garment-landmarks
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from tqdm import tqdm

from kgi.cli import CommandError
from kgi.data.garment import GARMENT_KINDS
from kgi.data.images import decode_gray, decode_rgb, encode_png
from kgi.data.synth import GARMENT_TAG
from kgi.data.vitonhd import SPLITS, VitonHD
from kgi.graphs import SLEEVE_TYPES
from kgi.landmarks import LandmarkError, flat_garment_keypoints, worn_garment_keypoints
from kgi.models.keypoints import mean_keypoint_error
from kgi.pictures import draw_garment_keypoints

HELP = "extract flat and worn garment landmarks of a VITON-HD split (JSON + overlays), optionally scored"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", help="dataset root (local folder or s3://bucket/prefix) in the VITON-HD layout, or "
                                     "with --photos a local folder of garment photos")
    parser.add_argument("--photos", action="store_true",
                        help="ROOT is a folder of flat garment photos: write each one's landmarks and overlay, print "
                             "the heights of nodes 2, 14, 22 and 18, and draw all overlays on OUT/sheet.png")
    parser.add_argument("--split", choices=SPLITS, default="test", help="which split (default: test)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    parser.add_argument("--eval", action="store_true",
                        help="score against the dataset's cloth-landmark-json / image-landmark-json")
    parser.add_argument("--limit", type=_positive_int, metavar="N", help="only the first N pairs")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    """Extract, write and optionally score. Returns 0, or 1 when some pairs had no landmarks (listed)."""
    if args.photos:
        return _run_photos(args)
    try:
        dataset = VitonHD(args.root, split=args.split, mode="paired")
    except ValueError as exc:  # DatasetError and bad arguments alike
        raise CommandError(str(exc)) from None
    folders = {name: args.out / name for name in ("cloth-landmark-json", "image-landmark-json", "overlay")}
    try:
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"--out: cannot create {exc.filename}: {exc.strerror}") from None

    count = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    scores: list[dict] = []
    failures: list[str] = []
    for index in tqdm(range(count), desc="landmarks", unit="pair"):
        try:
            sample = dataset[index]
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        scored = args.eval and sample.cloth_keypoints is not None and sample.worn_keypoints is not None
        kind = next((tag.removeprefix(GARMENT_TAG) for tag in sample.tags if tag.startswith(GARMENT_TAG)), None)
        try:
            flat = flat_garment_keypoints(sample.cloth, sample.cloth_mask)
            worn = worn_garment_keypoints(sample.parse, sample.pose, sample.person)
        except LandmarkError as exc:
            failures.append(f"{sample.person_name}: {exc}")
            if scored:
                scores.append({"refused": True, "sleeve": sample.sleeve, "kind": kind,
                               "crossed_arms": "crossed_arms" in sample.tags})
            continue
        height, width = sample.size
        cloth_stem, person_stem = PurePosixPath(sample.cloth_name).stem, PurePosixPath(sample.person_name).stem
        _write_json(folders["cloth-landmark-json"] / f"{cloth_stem}.json", width, height, flat.sleeve,
                    flat.keypoints)
        _write_json(folders["image-landmark-json"] / f"{person_stem}.json", width, height, worn.sleeve,
                    worn.keypoints)
        side_by_side = np.concatenate([draw_garment_keypoints(sample.cloth, flat.keypoints),
                                       draw_garment_keypoints(sample.person, worn.keypoints)], axis=1)
        (folders["overlay"] / f"{person_stem}.png").write_bytes(encode_png(side_by_side))
        if scored:
            scores.append({"refused": False, "flat": _error(flat.keypoints, sample.cloth_keypoints, height, width),
                           "worn": _error(worn.keypoints, sample.worn_keypoints, height, width),
                           "sleeve": sample.sleeve, "detected": flat.sleeve, "worn_detected": worn.sleeve,
                           "kind": kind, "crossed_arms": "crossed_arms" in sample.tags})

    print(f"wrote landmarks of {count - len(failures)} pairs to {args.out}")
    if args.eval:
        if not scores:
            raise CommandError(f"--eval: no pair of {args.root} ({args.split}) has ground-truth landmarks")
        print(_score_table(scores))
    for failure in failures:
        print(f"no landmarks: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _run_photos(args: argparse.Namespace) -> int:
    """Landmarks of each garment photo in ``args.root``; its mask from a ``cloth-mask`` folder beside the photos'
    (VITON-HD's layout) or, without one, from the photo (``kgi.preprocess.cloth_mask_from_photo``)."""
    from kgi.preprocess import cloth_mask_from_photo
    from kgi.pictures import contact_sheet

    folder = Path(args.root)
    photos = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    if not photos:
        raise CommandError(f"--photos: no .jpg, .jpeg, .png or .webp file in {folder}")
    for name in ("cloth-landmark-json", "overlay"):
        (args.out / name).mkdir(parents=True, exist_ok=True)
    tiles, refused = [], 0
    print(f"{'garment':<24}{'sleeve':>8}{'node 2':>8}{'14':>7}{'22':>7}{'18':>7}   (heights / image height)")
    for photo in photos[: args.limit]:
        try:
            rgb = decode_rgb(photo.read_bytes(), source=str(photo))
            mask_file = folder.parent / "cloth-mask" / photo.name
            mask = (decode_gray(mask_file.read_bytes(), source=str(mask_file)) >= 128 if mask_file.is_file()
                    else cloth_mask_from_photo(rgb))
            found = flat_garment_keypoints(rgb, mask)
        except ValueError as exc:  # an unreadable photo or mask, a refused garment
            refused += 1
            print(f"{photo.stem:<24} refused: {exc}")
            continue
        height, width = mask.shape
        heights = found.keypoints[[2, 14, 22, 18], 1] / height
        print(f"{photo.stem:<24}{found.sleeve:>8}" + "".join(f"{h:>7.2f}" if i else f"{h:>8.2f}"
                                                             for i, h in enumerate(heights)))
        _write_json(args.out / "cloth-landmark-json" / f"{photo.stem}.json", width, height, found.sleeve,
                    found.keypoints)
        drawn = draw_garment_keypoints(rgb, found.keypoints)
        (args.out / "overlay" / f"{photo.stem}.png").write_bytes(encode_png(drawn))
        tiles.append((f"{photo.stem} {found.sleeve}", drawn))
    if tiles:
        rows = [tiles[i: i + 5] for i in range(0, len(tiles), 5)]
        (args.out / "sheet.png").write_bytes(encode_png(contact_sheet(rows, tile_height=400)))
    print(f"wrote landmarks of {len(tiles)} garments to {args.out} ({refused} refused)")
    return 1 if refused else 0


def _write_json(path: Path, width: int, height: int, sleeve: str, keypoints: np.ndarray) -> None:
    doc = {"width": width, "height": height, "sleeve": sleeve,
           "keypoints": [[round(float(x), 2), round(float(y), 2)] for x, y in keypoints]}
    path.write_text(json.dumps(doc))


def _error(pred: np.ndarray, target: np.ndarray, height: int, width: int) -> float:
    """Mean keypoint distance of two (32, 2) pixel keypoint sets, as a fraction of the image height."""
    size = np.array([width, height], dtype=np.float32)
    pred_normalised = torch.from_numpy(np.asarray(pred, dtype=np.float32) / size)[None]
    target_normalised = torch.from_numpy(np.asarray(target, dtype=np.float32) / size)[None]
    return float(mean_keypoint_error(pred_normalised, target_normalised, aspect=width / height)[0])


def _score_table(scores: list[dict]) -> str:
    """Rows: all pairs, each sleeve type, each garment kind (synthetic data names it), crossed arms; columns:
    pairs, refused, flat and worn error and sleeve accuracy of the rest."""
    groups = [("all", scores)]
    groups += [(f"sleeve {kind}", [s for s in scores if s["sleeve"] == kind]) for kind in SLEEVE_TYPES]
    groups += [(f"kind {kind}", [s for s in scores if s["kind"] == kind]) for kind in GARMENT_KINDS]
    groups.append(("crossed arms", [s for s in scores if s["crossed_arms"]]))
    lines = [f"{'pairs':<20}{'n':>5}{'refused':>9}{'flat err':>10}{'worn err':>10}{'flat sleeve':>13}"
             f"{'worn sleeve':>13}", "(errors: mean keypoint distance / image height; sleeve: accuracy)"]
    for name, group in groups:
        if not group:
            continue
        kept = [s for s in group if not s["refused"]]
        refused = len(group) - len(kept)
        if not kept:
            lines.append(f"{name:<20}{len(group):>5}{refused:>9}")
            continue
        flat, worn = np.mean([s["flat"] for s in kept]), np.mean([s["worn"] for s in kept])
        flat_sleeve = np.mean([s["sleeve"] == s["detected"] for s in kept])
        worn_sleeve = np.mean([s["sleeve"] == s["worn_detected"] for s in kept])
        lines.append(f"{name:<20}{len(group):>5}{refused:>9}{flat:>10.2%}{worn:>10.2%}{flat_sleeve:>13.1%}"
                     f"{worn_sleeve:>13.1%}")
    return "\n".join(lines)
