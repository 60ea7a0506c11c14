"""Whole try-ons of genuine VITON-HD people, with their genuine pose and parse, scored by the issue's four
figures and one more.

Runs ``kgi tryon`` at its defaults (plus ``--stages-dir``) on each pair and measures, from the files it writes
and the person's photo and CIHP parse:

    size ok            the result has the photo's size
    garment painted    share of the target garment region (``target_parse.png`` == upper) the inpainter painted
                       (``keep_mask.png`` black); beside it, painted pixels as a share of the photo
    old garment left   pixels of the old garment (CIHP upper clothes, dress, coat) outside the new garment that
                       the result leaves unchanged (every channel within 8 of the photo), share of the old garment;
                       beside it, those of them that were kept rather than painted (a white t-shirt on a white
                       background is "unchanged" where the background is painted back), and those of them whose
                       own colour in the photo is not the wall's (every channel within 12 of the median of the
                       parse's background): the genuine parse's garment reaches a few pixels onto the wall around
                       its outline, and the wall painted back there is "unchanged" too
    painted sharpness  mean gradient (Sobel, luminance) of the result's painted pixels over that of the photo's
                       kept pixels, both away from the keep mask's border (3 pixels: the Sobel window across
                       the border measures the seam, not the pixels)
    skin sharpness     the same for skin alone: painted pixels of the target's skin classes (face-neck, arms)
                       over the visible skin the recomposition kept (``skin_mask.png``). The photo's kept pixels
                       are mostly garment, hair and edges, so painted skin and wall, smooth in any photo, fall
                       below 0.8 of them by nature; this one compares painted skin with skin
    skin detail        the fine detail of painted skin over that of the visible skin kept: the spread of the
                       luminance's band between Gaussians of 0.7 and 2 pixels (pores, fine hair, the photo's
                       grain), over the mean luminance, both away from their outline (6 pixels: the band's reach).
                       The Sobel figures above also count the shading across a limb; this one does not.
                       A ratio is a dash where nothing of its kind is painted (no painted skin 6 pixels
                       inside its outline, say)
    seam step          the colour step where painted skin meets kept skin, in levels of 255: at each painted
                       skin pixel (the target's skin classes) touching kept skin, the difference between the
                       means of painted and of kept skin in its 7x7 window (each at least 8 pixels there),
                       averaged over the three channels and over those pixels; a dash where there are none.
                       Shading and the photo's own texture keep it above 0; a painted forearm ending in a
                       line above a kept hand raises it

and writes a sheet: photo, garment, the "before" result when ``--before DIR`` holds ``PERSON_GARMENT.png`` files
(any earlier version's results), and the result. The data is licensed for testing only: keep the sheet and the
results outside the repository.

Example:
  python -m bench.genuine_tryon --out /tmp/genuine --sheet /tmp/genuine/sheet.png --before /tmp/before
  python -m bench.genuine_tryon --out /tmp/before --scored-only   # files an earlier version wrote there
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from bench.common import REPO
from kgi.composite import SKIN_CLASSES
from kgi.data.labels import GARMENT_CIHP, UPPER
from kgi.data.vitonhd import VitonHD

SHARED = REPO.parent / "shared"
DATASETS = ("vitonhd-sample", "vitonhd-extra")  # folders of SHARED whose test pairs are run
# Person -> garment: the extra set's people with three more of its garments (a near-white one, a sleeveless one,
# a long-sleeve one).
EXTRA_GARMENTS = {"00891_00": "06429_00", "07445_00": "03751_00", "08909_00": "02783_00"}
UNCHANGED_TOLERANCE = 8  # a result pixel within this of the photo's, every channel, is the photo's
WALL_TOLERANCE = 12  # a photo pixel within this of the wall's median colour, every channel, is the wall's colour
DETAIL_REACH = 6  # pixels: the skin detail figure's band (Gaussians up to 2 pixels) reaches 3 sigma
SEAM_WINDOW = 7  # pixels: the seam step's window
SEAM_MIN_PIXELS = 8  # of painted and of kept skin in that window


def genuine_pairs() -> list[tuple[str, str, str]]:
    """(dataset folder, person, garment) of every pair run: each of ``DATASETS``' test pairs as its
    ``test_pairs.txt`` lists them, then the extra set's people with ``EXTRA_GARMENTS``."""
    pairs = [(dataset, Path(person).stem, Path(garment).stem) for dataset in DATASETS
             for person, garment in VitonHD(SHARED / dataset, split="test", mode="unpaired").pairs]
    return pairs + [("vitonhd-extra", person, garment) for person, garment in EXTRA_GARMENTS.items()]


def _read(path: Path) -> np.ndarray:
    return np.array(Image.open(path))


def _gradient(rgb: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))


def _fine_detail(rgb: np.ndarray, pixels: np.ndarray) -> float:
    """The spread of ``rgb``'s luminance band between Gaussians of 0.7 and 2 pixels over its mean, on ``pixels``
    (H, W bool) less their outline (``DETAIL_REACH``); NaN where none are left."""
    inside = cv2.erode(pixels.astype(np.uint8), np.ones((2 * DETAIL_REACH + 1,) * 2, np.uint8)).astype(bool)
    if not inside.any():
        return float("nan")
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    band = cv2.GaussianBlur(gray, (0, 0), 0.7) - cv2.GaussianBlur(gray, (0, 0), 2.0)
    return float(band[inside].std() / max(gray[inside].mean(), 1e-6))


def _seam_step(result: np.ndarray, keep: np.ndarray, skin: np.ndarray) -> float:
    """The seam step (module docstring) of the (H, W, 3) ``result`` with its (H, W) bool kept pixels and target
    skin; NaN where no painted skin touches kept skin."""
    colours = result.astype(np.float32)

    def window_mean(member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # (H, W, 3) means, (H, W) counts
        weight = member.astype(np.float32)
        count = cv2.boxFilter(weight, -1, (SEAM_WINDOW, SEAM_WINDOW), normalize=False)
        total = cv2.boxFilter(colours * weight[..., None], -1, (SEAM_WINDOW, SEAM_WINDOW), normalize=False)
        return total / np.maximum(count, 1)[..., None], count

    kept, painted = skin & keep, skin & ~keep
    kept_mean, kept_count = window_mean(kept)
    painted_mean, painted_count = window_mean(painted)
    seam = painted & cv2.dilate(kept.view(np.uint8), np.ones((3, 3), np.uint8)).view(bool) \
        & (kept_count >= SEAM_MIN_PIXELS) & (painted_count >= SEAM_MIN_PIXELS)
    if not seam.any():
        return float("nan")
    return float(np.abs(painted_mean[seam] - kept_mean[seam]).mean())


def figures(photo: np.ndarray, parse_cihp: np.ndarray, result: np.ndarray, keep: np.ndarray,
            target_parse13: np.ndarray, warped_garment: np.ndarray, skin: np.ndarray | None = None) -> dict:
    """The figures of one try-on (the module docstring), all arrays at the photo's size but ``result``.

    Args:
        photo: (H, W, 3) uint8. parse_cihp: (H, W) CIHP labels. result: the try-on, any size (a size other
            than the photo's fails the first figure and skips the rest). keep: (H, W) bool kept pixels.
        target_parse13: (H, W) 13-class target parse. warped_garment: (H, W, 3), black where no garment.
        skin: (H, W) bool visible skin kept, or None (no skin sharpness or detail).
    """
    if result.shape != photo.shape:
        return {"size_ok": False}
    garment = target_parse13 == UPPER
    new_garment = garment | (warped_garment > 0).any(axis=2)
    painted = ~keep
    old = np.isin(parse_cihp, GARMENT_CIHP)
    unchanged = (np.abs(result.astype(int) - photo.astype(int)) <= UNCHANGED_TOLERANCE).all(axis=2)
    wall = parse_cihp == 0
    wall_coloured = (np.abs(photo.astype(int) - np.median(photo[wall], axis=0)) <= WALL_TOLERANCE).all(axis=2) \
        if wall.any() else np.zeros_like(wall)
    left = old & ~new_garment & unchanged
    square = np.ones((7, 7), np.uint8)
    painted_inside = cv2.erode(painted.astype(np.uint8), square).astype(bool)
    kept_inside = cv2.erode(keep.astype(np.uint8), square).astype(bool)
    result_gradient, photo_gradient = _gradient(result), _gradient(photo)
    painted_skin = painted_inside & np.isin(target_parse13, SKIN_CLASSES)
    skin_inside = None if skin is None else cv2.erode(skin.astype(np.uint8), square).astype(bool) & keep
    return {
        "size_ok": True,
        "garment_painted": float(painted[garment].mean()) if garment.any() else 0.0,
        "painted_of_photo": float(painted.mean()),
        "old_garment_left": float(left.sum() / max(old.sum(), 1)),
        "old_garment_kept": float((left & keep).sum() / max(old.sum(), 1)),
        "old_garment_not_wall_coloured": float((left & ~wall_coloured).sum() / max(old.sum(), 1)),
        "painted_sharpness": float(result_gradient[painted_inside].mean() / photo_gradient[kept_inside].mean())
        if painted_inside.any() else float("nan"),
        "skin_sharpness": float(result_gradient[painted_skin].mean() / photo_gradient[skin_inside].mean())
        if painted_skin.any() and skin_inside is not None and skin_inside.any() else float("nan"),
        "skin_detail": float("nan") if skin is None else
        _fine_detail(result, painted & np.isin(target_parse13, SKIN_CLASSES)) / _fine_detail(photo, skin & keep),
        "seam_step": _seam_step(result, keep, np.isin(target_parse13, SKIN_CLASSES)),
    }


def pair_files(dataset: str, person: str, garment: str) -> dict[str, Path]:
    root = SHARED / dataset / "test"
    return {"person": root / "image" / f"{person}.jpg", "garment": root / "cloth" / f"{garment}.jpg",
            "pose": root / "openpose_json" / f"{person}_keypoints.json",
            "parse": root / "image-parse-v3" / f"{person}.png", "cloth_mask": root / "cloth-mask" / f"{garment}.jpg"}


def run_pair(files: dict[str, Path], stages: Path, kgi: str | None) -> dict:
    """``kgi tryon`` at its defaults on one pair (unless ``kgi`` is None: ``stages`` holds its files), then its
    figures."""
    if kgi is not None:
        command = [kgi, "tryon", str(files["person"]), str(files["garment"]), "-o", str(stages / "result.png"),
                   "--pose", str(files["pose"]), "--parse", str(files["parse"]), "--cloth-mask",
                   str(files["cloth_mask"]), "--stages-dir", str(stages)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    skin = stages / "skin_mask.png"  # an earlier version's stages may lack it
    return figures(_read(files["person"]), _read(files["parse"]), _read(stages / "result.png"),
                   _read(stages / "keep_mask.png") > 127, _read(stages / "target_parse.png"),
                   _read(stages / "warped_garment.png"), _read(skin) > 127 if skin.is_file() else None)


def sheet(rows: list[list[np.ndarray]], height: int = 384) -> np.ndarray:
    """Rows of images, each scaled to ``height`` rows, side by side; rows stacked (padded white)."""
    lines = [np.concatenate([cv2.resize(image if image.ndim == 3 else np.dstack([image] * 3),
                                        (round(image.shape[1] * height / image.shape[0]), height),
                                        interpolation=cv2.INTER_AREA) for image in row], axis=1) for row in rows]
    width = max(line.shape[1] for line in lines)
    return np.concatenate([np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0)), constant_values=255)
                           for line in lines])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.genuine_tryon", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for each pair's stages and figures.json")
    parser.add_argument("--sheet", type=Path, help="write the sheet (PNG) here")
    parser.add_argument("--before", type=Path, help="folder of earlier results PERSON_GARMENT.png for the sheet")
    parser.add_argument("--kgi", default=str(Path(sys.executable).with_name("kgi")), help="the kgi command")
    parser.add_argument("--scored-only", action="store_true",
                        help="score the --stages-dir files already in OUT/PERSON_GARMENT/ (another version's) "
                             "instead of running kgi tryon")
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        parser.error(f"{SHARED} is missing: the genuine pairs live there")
    rows, results = [], {}
    print("| pair | size ok | garment painted | painted (of photo) | old garment left (kept; not the wall's colour) "
          "| painted sharpness | skin sharpness | skin detail | seam step |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dataset, person, garment in genuine_pairs():
        name = f"{person}_{garment}"
        files = pair_files(dataset, person, garment)
        results[name] = scores = run_pair(files, args.out / name, None if args.scored_only else args.kgi)
        shown = {key: scores.get(key, float("nan")) for key in ("garment_painted", "painted_of_photo",
                                                                "old_garment_left", "old_garment_kept",
                                                                "old_garment_not_wall_coloured",
                                                                "painted_sharpness", "skin_sharpness",
                                                                "skin_detail", "seam_step")}
        ratios = " | ".join("-" if np.isnan(shown[key]) else f"{shown[key]:.2f}"  # -: nothing of that kind painted
                            for key in ("painted_sharpness", "skin_sharpness", "skin_detail"))
        step = "-" if np.isnan(shown["seam_step"]) else f"{shown['seam_step']:.1f}"
        print(f"| {name} | {scores['size_ok']} | {shown['garment_painted']:.1%} | {shown['painted_of_photo']:.1%} | "
              f"{shown['old_garment_left']:.2%} ({shown['old_garment_kept']:.2%}; "
              f"{shown['old_garment_not_wall_coloured']:.2%}) | {ratios} | {step} |", flush=True)
        row = [_read(files["person"]), _read(files["garment"])]
        before = args.before / f"{name}.png" if args.before else None
        if before is not None and before.is_file():
            row.append(_read(before))
        rows.append(row + [_read(args.out / name / "result.png")])
    (args.out / "figures.json").write_text(json.dumps(results, indent=2))
    if args.sheet:
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sheet(rows)).save(args.sheet)
        print(f"{args.sheet}: photo, garment, {'before, ' if args.before else ''}result per pair")
    return 0


if __name__ == "__main__":
    sys.exit(main())
