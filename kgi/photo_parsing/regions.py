"""Body regions of the photo parser: limbs by skin region, skin split between parts along edges, where sleeves
may be, the upper/lower garment boundary line, shoes."""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from kgi.photo_parsing.geometry import is_visible
from kgi.photo_parsing.names import (LEFT_ANKLE, LEFT_ARM, LEFT_FOOT, LEFT_LEG, LEFT_SHOE, LEFT_WRIST, RIGHT_ANKLE,
                                     RIGHT_ARM, RIGHT_FOOT, RIGHT_LEG, RIGHT_SHOE, RIGHT_WRIST, TORSO_SKIN)

WATERSHED_BARRIER = 255  # split_skin's marker of what is not skin (no CIHP label)


def limbs_by_region(nearest: np.ndarray, skin: np.ndarray, chest_y: float) -> np.ndarray:
    """``nearest`` (H, W) part labels where, in each connected skin region most of whose limb pixels are nearest
    an arm, the leg pixels and the torso pixels below ``chest_y`` go to that arm: fingers that reach down a thigh
    or across the belly stay the hand's. (Not the other way: a hand resting on a bare thigh joins the two regions,
    and stays a hand.)"""
    limbs = np.array([LEFT_ARM, RIGHT_ARM, LEFT_LEG, RIGHT_LEG])
    count, regions = cv2.connectedComponents(skin.astype(np.uint8), connectivity=8)
    on_limb = skin & np.isin(nearest, limbs)
    votes = np.zeros((count, len(limbs)), np.int64)  # region -> pixels nearest to each limb
    np.add.at(votes, (regions[on_limb], np.searchsorted(limbs, nearest[on_limb])), 1)
    majority = limbs[np.argmax(votes, axis=1)]
    below_chest = np.arange(skin.shape[0])[:, None] > chest_y
    movable = skin & (np.isin(nearest, limbs[2:]) | (nearest == TORSO_SKIN) & below_chest)
    to_arm = movable & (votes.sum(axis=1) > 0)[regions] & np.isin(majority[regions], limbs[:2])
    return np.where(to_arm, majority[regions], nearest).astype(np.uint8)


def sleeve_mask(parts: dict[int, np.ndarray], skin: np.ndarray, marks: np.ndarray, limb: float) -> np.ndarray:
    """(H, W) bool: where a sleeve may be: within ``limb`` of an arm's line, above the arm's highest skin (a
    sleeve covers the arm from the shoulder down; below the first bare skin there is none), or above its
    wrist when the arm shows no skin (a row is bare when more than half a limb's width of it is skin)."""
    rows = np.arange(skin.shape[0])[:, None]
    sleeves = np.zeros(skin.shape, bool)
    for arm, wrist in ((LEFT_ARM, LEFT_WRIST), (RIGHT_ARM, RIGHT_WRIST)):
        band = parts[arm] < limb
        bare = np.nonzero((skin & band).sum(axis=1) > 0.5 * limb)[0]  # rows of a bare arm, not a lace's holes
        end = bare.min() if len(bare) else marks[wrist, 1]
        sleeves |= band & (rows < end)
    return sleeves


# Slopes (rows per column) the upper/lower garment boundary may take about the hips' own: a waistband follows the
# hips, which tilt with a person's weight on one leg (00055_00: hips -0.10, waistband about -0.15).
BOUNDARY_SLOPES = np.linspace(-0.1, 0.1, 9)


class BoundaryLine(NamedTuple):
    """The upper/lower garment boundary: row ``row`` at column ``column``, ``slope`` rows per column."""

    row: float
    column: float
    slope: float

    def rows_at(self, columns: np.ndarray) -> np.ndarray:
        """The line's rows (float) at ``columns`` (any shape)."""
        return self.row + self.slope * (columns - self.column)


def boundary_line(ratio: np.ndarray, mask: np.ndarray, low: float, high: float, default: float,
                  hips_slope: float = 0.0) -> BoundaryLine:
    r"""The line through ``mask`` that best splits its ``ratio`` into positive above (upper garment) and negative
    below; level at row ``default`` where the rows between ``low`` and ``high`` say nothing.

    For each slope :math:`s`, ``hips_slope`` (the pose's, rows per column) plus one of ``BOUNDARY_SLOPES``, pixels
    are binned by their row along that slope, :math:`t = y - s\,(x - \bar x)` (:math:`\bar x` the mask's mean
    column), and the slope's line is the bin :math:`b` between ``low`` and ``high`` maximising
    :math:`\sum_{t < b} m_t - \sum_{t \ge b} m_t`, with :math:`m_t` the bin's mean ratio (bins of more than 3
    pixels: every row counts alike, however wide). Slopes then compete by every pixel's ratio, the sum above
    their line less the sum below; the one closest to the hips' wins a tie."""
    rows, columns = np.nonzero(mask)
    centre = float(columns.mean()) if columns.size else 0.0
    level = BoundaryLine(default, centre, 0.0)
    low, high = int(max(low, 0)), int(min(high, mask.shape[0] - 1))
    if high <= low or not columns.size:
        return level
    values = ratio[rows, columns]
    best, best_score = level, -np.inf
    for slope in hips_slope + np.array(sorted(BOUNDARY_SLOPES, key=abs)):
        bins = np.round(rows - slope * (columns - centre)).astype(np.int64)
        keep = (bins >= low) & (bins <= high)
        counts = np.bincount(bins[keep] - low, minlength=high - low + 1)
        sums = np.bincount(bins[keep] - low, weights=values[keep], minlength=high - low + 1)
        means = np.where(counts > 3, sums / np.maximum(counts, 1), 0.0)
        if np.abs(means).max(initial=0) < 0.5:
            continue
        above = np.concatenate([[0.0], np.cumsum(means)])
        split = int(np.argmax(above - (above[-1] - above)))
        # Slopes compete by the pixels they put on the right side: every pixel's ratio counts.
        agreement = sums[:split].sum() - sums[split:].sum()
        if agreement > best_score + 1e-9:
            best, best_score = BoundaryLine(float(low + split), centre, float(slope)), agreement
    return best


# The boundary's seam (``boundary_seam``): how far either side of the fitted line it may run (torso lengths), the
# weight of the photo's edge against the garments' colours, and the cost of a row's step between columns.
SEAM_BAND = 0.25
SEAM_EDGE_WEIGHT = 4.0
SEAM_STEP_COST = 1.0
SEAM_MAX_STEP = 2


def boundary_seam(ratio: np.ndarray, garment: np.ndarray, lab: np.ndarray, line: BoundaryLine, band: int
                  ) -> np.ndarray:
    r"""(W,) float: the upper/lower garment boundary's row in every column, a seam within ``band`` rows of
    ``line`` that follows the photo's edge between the garments (a waistband, a hem).

    In column :math:`x` the seam's row is :math:`\ell(x) + k`, :math:`|k| \le` ``band``, with :math:`\ell` the
    line. A row scores the garments' colours, :math:`A = (\sum_{above} r - \sum_{below} r) / n` over the column's
    ``garment`` pixels in the band (:math:`r` the upper/lower log-likelihood ``ratio``, :math:`n` their count), plus
    ``SEAM_EDGE_WEIGHT`` times the photo's edge there: the CIE Lab distance between the two rows above and the two
    below (``lab``), over its 95th percentile in the band, at most 1, where both sides are garment. Dynamic
    programming finds the seam of highest total score less ``SEAM_STEP_COST`` per row that :math:`k` changes from
    one column to the next (at most ``SEAM_MAX_STEP``); of equal scores, the one nearer the line. Columns without
    garment in the band keep the line."""
    height, width = garment.shape
    rows = line.rows_at(np.arange(width, dtype=np.float64))
    if band < 1:
        return rows
    offsets = np.arange(-band, band + 1)  # (K,)
    band_rows = np.clip(np.round(rows)[:, None] + offsets[None, :], 2, height - 3).astype(np.int64)  # (W, K)
    columns = np.flatnonzero(garment[band_rows, np.arange(width)[:, None]].any(axis=1))  # garment in their band
    if columns.size < 2:
        return rows
    span = np.arange(columns.min(), columns.max() + 1)  # (X,)
    candidates = band_rows[span]  # (X, K)
    inside = garment[candidates, span[:, None]]  # (X, K)
    values = np.where(inside, ratio[candidates, span[:, None]], 0.0)
    above = np.concatenate([np.zeros((len(span), 1)), np.cumsum(values, axis=1)[:, :-1]], axis=1)
    agreement = (2 * above - values.sum(axis=1, keepdims=True)) / np.maximum(inside.sum(axis=1, keepdims=True), 1)
    upper_side = (lab[candidates - 2, span[:, None]] + lab[candidates - 1, span[:, None]]) / 2  # (X, K, 3)
    lower_side = (lab[candidates, span[:, None]] + lab[candidates + 1, span[:, None]]) / 2
    edge = np.linalg.norm(upper_side - lower_side, axis=2)
    edge = np.where(inside & garment[candidates - 2, span[:, None]] & garment[candidates + 1, span[:, None]], edge, 0.0)
    scale = np.percentile(edge[edge > 0], 95) if (edge > 0).any() else 1.0
    score = agreement + SEAM_EDGE_WEIGHT * np.minimum(edge / max(scale, 1e-6), 1.0)  # (X, K)
    score -= 1e-3 * np.abs(offsets)[None, :]  # a column that says nothing keeps the line
    # best[k]: the best total of a seam ending at offset k; came_from[x, k]: its offset in the column before.
    indices = np.arange(len(offsets))
    steps = np.arange(-SEAM_MAX_STEP, SEAM_MAX_STEP + 1)
    previous = np.clip(indices[:, None] + steps[None, :], 0, len(offsets) - 1)  # (K, S): where k may come from
    step_cost = SEAM_STEP_COST * np.abs(previous - indices[:, None])
    best = score[0].copy()
    came_from = np.zeros(score.shape, np.int64)
    for x in range(1, len(span)):
        totals = best[previous] - step_cost
        choice = np.argmax(totals, axis=1)
        came_from[x] = previous[indices, choice]
        best = score[x] + totals[indices, choice]
    path = np.empty(len(span), np.int64)
    path[-1] = int(np.argmax(best))
    for x in range(len(span) - 1, 0, -1):
        path[x - 1] = came_from[x, path[x]]
    seam = rows.copy()
    seam[span] = candidates[np.arange(len(span)), path]
    return seam


def label_shoes(labels: np.ndarray, marks: np.ndarray, garment: np.ndarray, limb: float) -> None:
    height, width = labels.shape
    for ankle, foot, shoe in ((LEFT_ANKLE, LEFT_FOOT, LEFT_SHOE), (RIGHT_ANKLE, RIGHT_FOOT, RIGHT_SHOE)):
        if not all(is_visible(marks, i, width, height) for i in (ankle, *foot)):
            continue
        region = np.full(labels.shape, 255, np.uint8)
        points = [marks[ankle, :2], *(marks[i, :2] for i in foot)]
        cv2.polylines(region, [np.round(np.stack(points)).astype(np.int32).reshape(-1, 1, 2)], True, 0, 1)
        near = cv2.distanceTransform(region, cv2.DIST_L2, 3) < limb
        rows = np.arange(height)[:, None]
        labels[near & garment & (rows > marks[ankle, 1] - 0.5 * limb)] = shoe


def split_skin(image: np.ndarray, skin: np.ndarray, cores: np.ndarray) -> np.ndarray:
    """The ``skin`` (H, W) bool split between body parts along the photo's edges: each part's core (``cores``
    (H, W) uint8: a part's label on its sure skin, 0 elsewhere) floods the skin around it, the part whose flood
    arrives first across the weakest colour edges taking a pixel (OpenCV's marker watershed of the lightly
    smoothed ``image`` (H, W, 3) uint8 RGB, the rest of the person and the background a barrier of their own).
    Returns (H, W) uint8: the part of each skin pixel, 0 where no core reached it (a skin region without a core,
    the one-pixel lines between floods and along the image's border)."""
    markers = np.where(skin, 0, WATERSHED_BARRIER).astype(np.int32)
    markers[cores > 0] = cores[cores > 0]
    cv2.watershed(np.ascontiguousarray(cv2.GaussianBlur(image, (0, 0), 1.0)[..., ::-1]), markers)
    return np.where(skin & (markers > 0) & (markers != WATERSHED_BARRIER), markers, 0).astype(np.uint8)
