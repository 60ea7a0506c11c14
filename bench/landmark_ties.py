"""How the flat landmarks of a top hold when a wide tie hangs past its hem.

Wrap tops are tied at a side, tie-front tops at the middle of the hem, and the tie hangs past the hem, as wide as a
tenth of the garment (the genuine wrap top 04469's is 9%): wider than the thin ties the outline always cuts
(``kgi.landmarks.flat``). Synthetic short-sleeved and sleeveless tops of every kind the generator draws with those
sleeves (``kgi.data.garment.KINDS_BY_SLEEVE``) are read without a tie and with one (7-14% of the width, hanging
8-20% of the height past the hem) knotted at the image-right side, or at the middle (its centre within 5% of the
width of the hem centre). Reported per place: how many read within 1% and 3% of the height of the reading
without the tie (the largest move of any keypoint), how many are refused, and how many change sleeve type.
Nothing is tuned here: it is a measurement of ``kgi.landmarks.flat_garment_keypoints`` as it is.

Examples:
  python -m bench.landmark_ties                  # 40 tops per place
  python -m bench.landmark_ties --tops 100 --seed 7
"""

from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from kgi.data.garment import KINDS_BY_SLEEVE, GarmentParams, sample_garment, with_kind
from kgi.data.synth import render_cloth
from kgi.landmarks import LandmarkError, flat_garment_keypoints

HEIGHT = 256  # the synthetic photos' height
PLACES = ("side", "middle")
TIE_WIDTHS = (0.07, 0.14)  # of the garment's width
TIE_LENGTHS = (0.08, 0.2)  # past the hem, of the garment's height
MIDDLE_OFFSET = 0.05  # of the garment's width: a tie-front knot's centre from the hem centre, at most
WITHIN = (0.01, 0.03)  # of the photo's height: the moves counted


def sample_top(rng: np.random.Generator, sleeve: str) -> GarmentParams:
    """A synthetic top with ``sleeve`` ("short" or "none"), of a kind drawn from those that sleeve comes in."""
    params = sample_garment(rng)
    while params.sleeve != sleeve:
        params = sample_garment(rng)
    kinds = [kind for kind in KINDS_BY_SLEEVE[sleeve] if kind != "ties"]  # the generator's own ties are thin
    return with_kind(params, rng, kinds[rng.integers(len(kinds))])


def tied_top(params: GarmentParams, rng: np.random.Generator, place: str, tie_width: float, tie_length: float,
             offset: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The product photo of ``params`` with a third of its height of backdrop added below the hem, its mask, and
    its mask with a tie ``tie_width`` of the garment's width wide hanging ``tie_length`` of its height past the
    hem, knotted at the image-right side or at the ``middle`` (moved ``offset`` of the width from the hem centre):
    (H, W, 3) uint8 photo (the tie the fabric's median colour), (H, W) bool, (H, W) bool."""
    _, alpha, photo, truth, _ = render_cloth(params, rng, HEIGHT)
    below = HEIGHT // 3
    mask = np.pad(alpha >= 0.5, ((0, below), (0, 0)))
    photo = np.pad(photo, ((0, below), (0, 0), (0, 0)), mode="edge")
    columns, rows = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
    width, height = np.ptp(columns) + 1, np.ptp(rows) + 1
    if place == "side":  # from the side above the hem corner 19, inside the garment's sides
        knot, corner = truth[20], truth[19]
        tie = np.array([knot - [(0.02 + tie_width) * width, 0], knot - [0.02 * width, 0],
                        corner + [-0.02 * width, tie_length * height],
                        corner + [-(0.02 + tie_width) * width, tie_length * height]])
    else:  # from the hem's middle, its knot a little above the hem
        half = tie_width / 2
        tie = truth[18] + np.array([[offset - half, -0.05], [offset + half, -0.05], [offset + half, tie_length],
                                    [offset - half, tie_length]]) * [width, height]
    tied_mask = mask.copy().view(np.uint8)
    cv2.fillPoly(tied_mask, [np.round(tie).astype(np.int32)], 1)
    tied_mask = tied_mask.view(bool)
    fabric = np.median(photo[mask], axis=0)  # a tie is cut from the garment's fabric
    photo = np.where(tied_mask[..., None] & ~mask[..., None], fabric, photo).astype(np.uint8)
    return photo, mask, tied_mask


def trial(rng: np.random.Generator, place: str) -> str | float:
    """One top read without and with a tie at ``place``: the largest keypoint move over the photo's height, or
    "refused" / "sleeve" (the reading with the tie refused, or of another sleeve type); "plain refused" where the
    top without a tie is refused already (not counted)."""
    params = sample_top(rng, ("short", "none")[rng.integers(2)])
    offset = rng.uniform(-MIDDLE_OFFSET, MIDDLE_OFFSET)
    photo, mask, tied_mask = tied_top(params, rng, place, rng.uniform(*TIE_WIDTHS), rng.uniform(*TIE_LENGTHS),
                                      offset)
    try:
        plain = flat_garment_keypoints(photo, mask)
    except LandmarkError:
        return "plain refused"
    try:
        tied = flat_garment_keypoints(photo, tied_mask)
    except LandmarkError:
        return "refused"
    if tied.sleeve != plain.sleeve:
        return "sleeve"
    return float(np.linalg.norm(tied.keypoints - plain.keypoints, axis=1).max() / photo.shape[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.landmark_ties", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tops", type=int, default=40, help="tops per place (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.tops < 1:
        parser.error("--tops must be at least 1")
    print(f"| tie at | tops | within {WITHIN[0]:.0%} | within {WITHIN[1]:.0%} | refused | other sleeve type "
          "| largest move |")
    print("|---|---|---|---|---|---|---|")
    for place in PLACES:
        rng = np.random.default_rng([args.seed, PLACES.index(place)])
        results = [trial(rng, place) for _ in range(args.tops)]
        moves = [result for result in results if isinstance(result, float)]
        counted = len(results) - results.count("plain refused")
        print(f"| {place} | {counted} | {sum(move <= WITHIN[0] for move in moves)} | "
              f"{sum(move <= WITHIN[1] for move in moves)} | {results.count('refused')} | {results.count('sleeve')} "
              f"| {max(moves, default=float('nan')):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
