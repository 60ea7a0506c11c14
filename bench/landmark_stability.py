"""How far the flat landmarks of genuine garment photos move when the photo is taken a little differently.

A further set of genuine garments is judged on the sleeve type and the heights of nodes 2 (front neckline),
14 and 22 (armpits) and 18 (hem centre), within 5-8% of the height. Those photos are framed, lit and compressed
as their shop chose, so each genuine garment of ``../shared`` (its cloth mask made from the photo, as a user
who sends the photo alone gets it) is read again from six versions of its photo:

    shrink    scaled to 0.7 and centred on the backdrop's colour (the garment smaller in the frame)
    shift     moved 8% of the width right and 5% of the height down
    rotate    turned 2 degrees about the centre
    jpeg      re-encoded as JPEG at quality 60
    dim       every pixel at 0.92 of its brightness (a darker exposure: the white backdrop light grey)
    mirror    flipped left to right (the garment laid or photographed the other way round), its nodes
              renumbered as the mirror image's (armpit 14 is the flipped photo's 22)

With ``--framings``, eight versions that frame the photo a little differently instead (where a threshold sits
near a garment's own value, the reading comes and goes with the framing):

    0.8, 0.9        scaled to that size about the centre
    -3, -2, -1, 1, 3  turned by that many degrees about the centre
    mirror+2        flipped left to right and turned 2 degrees

and for each, the largest move of the four nodes' heights (mapped back into the original photo) over the photo's
height (with ``--all-nodes``: the largest distance any of the 32 nodes moved, which a warp feels), and whether the
sleeve type stayed; a refusal is counted as such, but for "cut off": a version that moves
the garment's collar or hem off the photo is refused as a photo of part of a garment, which is the right answer
(``kgi.landmarks.checks.framing_problems``). Nothing is tuned here: it is a measurement of the extractor
(``kgi.landmarks.flat_garment_keypoints``) as it is.

Example:
  python -m bench.landmark_stability              # the 18 garments of ../shared, one table
  python -m bench.landmark_stability --all-nodes  # the same, every node's move
  python -m bench.landmark_stability --framings --all-nodes  # eight framings, every node's move
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from bench.common import REPO
from kgi.data.images import decode_rgb, encode_jpeg
from kgi.landmarks import LandmarkError, check_framing, flat_garment_keypoints
from kgi.models.keypoints import GARMENT_MIRROR
from kgi.preprocess import border_colour, cloth_mask_from_photo

SHARED = REPO.parent / "shared"
GARMENT_FOLDERS = ("photos/garments", "vitonhd-extra/test/cloth", "vitonhd-sample/test/cloth")
NODES = [2, 14, 22, 18]  # the nodes a held-out garment is judged by: front neckline, armpits, hem centre
TOLERANCE = 0.05  # of the height: the stricter end of the 5-8% a held-out garment is held to
CUT_OFF = "cut off"  # a variant's reading: refused, as the variant moved the garment's collar or hem off the photo

# A version of a photo, and the map from its pixel coordinates back to the original's.
Variant = tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]


def variants(rgb: np.ndarray, framings: bool = False) -> dict[str, Variant]:
    """The module docstring's six versions of ``rgb`` (H, W, 3 uint8), or with ``framings`` its eight framings,
    each with its map back."""
    height, width = rgb.shape[:2]
    backdrop = border_colour(rgb).tolist()

    def affine(matrix: np.ndarray, photo: np.ndarray = rgb) -> Variant:
        inverse = cv2.invertAffineTransform(matrix)
        image = cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=backdrop)
        return image, lambda points: points @ inverse[:, :2].T + inverse[:, 2]

    def turned(degrees: float) -> np.ndarray:
        return cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)

    def scaled(scale: float) -> np.ndarray:  # about the centre
        return np.float32([[scale, 0, (1 - scale) * width / 2], [0, scale, (1 - scale) * height / 2]])

    def same(points: np.ndarray) -> np.ndarray:  # the pixels stay where they were
        return points

    def unmirrored(points: np.ndarray) -> np.ndarray:  # flipped back, each node renamed as its mirror image
        back = np.array(points, np.float64)[list(GARMENT_MIRROR)]
        back[:, 0] = width - 1 - back[:, 0]
        return back

    mirrored = np.ascontiguousarray(rgb[:, ::-1])
    if framings:
        mirrored_turned, turned_back = affine(turned(2.0), mirrored)
        return {**{f"{scale}": affine(scaled(scale)) for scale in (0.8, 0.9)},
                **{f"{degrees:+d}": affine(turned(degrees)) for degrees in (-3, -2, -1, 1, 3)},
                "mirror+2": (mirrored_turned, lambda points: unmirrored(turned_back(points)))}
    shift = np.float32([[1, 0, 0.08 * width], [0, 1, 0.05 * height]])
    jpeg = decode_rgb(encode_jpeg(rgb, quality=60), source="the photo at JPEG quality 60")
    dim = np.clip(rgb.astype(np.float32) * 0.92, 0, 255).round().astype(np.uint8)
    return {"shrink": affine(scaled(0.7)), "shift": affine(shift), "rotate": affine(turned(2.0)),
            "jpeg": (jpeg, same), "dim": (dim, same), "mirror": (mirrored, unmirrored)}


def stability(rgb: np.ndarray, all_nodes: bool = False, framings: bool = False) -> dict[str, str | float | None]:
    """For one photo: its sleeve type (``"sleeve"``), then per variant (``variants``, its framings with
    ``framings``) the largest move of ``NODES``' heights over the height (float), "cut off" (refused: the variant
    cut the garment off), "refused", or "sleeve: KIND" when the sleeve type changed; with ``all_nodes``, the
    largest distance any node moved instead. Raises ``LandmarkError`` when the original itself is refused."""
    height = rgb.shape[0]
    original = flat_garment_keypoints(rgb, cloth_mask_from_photo(rgb))  # masks made from the photos throughout
    found = np.asarray(original.keypoints, np.float64)
    row: dict[str, str | float | None] = {"sleeve": original.sleeve}
    for name, (image, back) in variants(rgb, framings).items():
        mask = cloth_mask_from_photo(image)
        try:
            check_framing(mask)
        except LandmarkError:
            row[name] = CUT_OFF
            continue
        try:
            moved = flat_garment_keypoints(image, mask)
        except LandmarkError:
            row[name] = "refused"
            continue
        if moved.sleeve != original.sleeve:
            row[name] = f"sleeve: {moved.sleeve}"
            continue
        points = back(np.asarray(moved.keypoints, np.float64))
        moves = (np.linalg.norm(points - found, axis=1) if all_nodes
                 else np.abs(points[NODES, 1] - found[NODES, 1]))
        row[name] = float(moves.max() / height)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.landmark_stability", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="*", type=Path,
                        help="garment photos (default: every one in ../shared's garment folders)")
    parser.add_argument("--all-nodes", action="store_true",
                        help="measure the largest move of any of the 32 nodes, not the heights of nodes 2, 14, 22, 18")
    parser.add_argument("--framings", action="store_true",
                        help="read eight framings of each photo (scaled 0.8 and 0.9, turned -3 to 3 degrees, "
                             "mirrored and turned) instead of the six versions")
    args = parser.parse_args(argv)
    photos = args.photos or [path for folder in GARMENT_FOLDERS for path in sorted((SHARED / folder).glob("*.jpg"))]
    if not photos:
        parser.error(f"no garment photos given and none found under {SHARED}")
    names = list(variants(np.zeros((8, 8, 3), np.uint8), args.framings))
    print("| garment | sleeve | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    within = right_refusals = total = 0
    for path in photos:
        try:
            row = stability(decode_rgb(path.read_bytes(), source=str(path)), args.all_nodes, args.framings)
        except LandmarkError as error:
            print(f"| {path.stem} | refused: {error} |" + " |" * len(names))
            continue
        cells = []
        for name in names:
            value = row[name]
            total += 1
            if isinstance(value, float):
                within += value <= TOLERANCE
                cells.append(f"{value:.3f}" if value <= TOLERANCE else f"**{value:.3f}**")
            elif value == CUT_OFF:
                right_refusals += 1
                cells.append(value)
            else:
                cells.append(f"**{value}**")
        print(f"| {path.stem} | {row['sleeve']} | " + " | ".join(cells) + " |", flush=True)
    what = "every node" if args.all_nodes else "nodes 2, 14, 22 and 18"
    print(f"\n{within} of {total} readings with {what} within {TOLERANCE:.0%} of the height, the same sleeve type; "
          f"{right_refusals} refused as cut off by the photo's edge")
    return 0


if __name__ == "__main__":
    sys.exit(main())
