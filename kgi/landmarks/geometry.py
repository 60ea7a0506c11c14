"""Outline geometry shared by the flat and worn extractors: the clockwise contour, distances to chords, polylines.

Outlines are closed contours traversed *clockwise on screen* (along the top from image left to image right, down
the image-right side, back along the bottom), the order of the garment graph's contour loop
``0-1-2-3-4-31-30-...-6-5-0``. "Side -1" is the image-left half of a garment (nodes 5-17), "side +1" the
image-right half (nodes 19-31).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Per garment side: shoulder node, armpit node, and the sleeve nodes in the order outer edge (from the
# shoulder) -> cuff outer, cuff inner -> inner edge (to the armpit).
SIDE_NODES = {-1: (5, 14, list(range(6, 14))), +1: (31, 22, list(range(30, 22, -1)))}
# Side nodes between armpit and hem corner, at even thirds of the straight side.
SIDE_FRACTIONS = (1 / 3, 2 / 3)
SIDE_BETWEEN = {-1: [15, 16], +1: [21, 20]}


class LandmarkError(ValueError):
    """Input from which no garment landmarks can be extracted: bad shapes, an empty or full mask, no garment."""


@dataclass(frozen=True)
class GarmentLandmarks:
    """Keypoints of a garment, flat or worn.

    Attributes:
        keypoints: (32, 2) float32 pixel (x, y), numbered as ``kgi.graphs`` documents.
        sleeve: ``"long"``, ``"short"`` or ``"none"``.
    """

    keypoints: np.ndarray
    sleeve: str



# --- geometry ----------------------------------------------------------------------------------------------------

class Contour:
    """A closed outline, clockwise on screen.

    Args:
        points: (N, 2) float64 pixel (x, y) of the outline, in either direction.
    """

    def __init__(self, points: np.ndarray):
        x, y = points[:, 0], points[:, 1]
        twice_area = np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)  # > 0 clockwise on screen (y down)
        self.points = points if twice_area > 0 else points[::-1].copy()

    def __len__(self) -> int:
        return len(self.points)

    def path(self, start: int, end: int) -> np.ndarray:
        """Indices from ``start`` forward (clockwise) to ``end``, both included."""
        count = (end - start) % len(self) + 1
        return (start + np.arange(count)) % len(self)

    def up_the_side(self, lower: int, upper: int, side: int) -> np.ndarray:
        """Indices from ``lower`` up the garment's ``side`` to ``upper``: clockwise on the image-left side,
        against it on the image-right side."""
        return self.path(lower, upper) if side < 0 else self.path(upper, lower)[::-1]

    def nearest(self, point: np.ndarray) -> int:
        """Index of the contour point nearest ``point`` (2,)."""
        return int(np.argmin(np.linalg.norm(self.points - point, axis=1)))

    def resample(self, start: int, end: int, fractions) -> np.ndarray:
        """Points (K, 2) at arc-length ``fractions`` (K,) of the forward path ``start`` -> ``end``."""
        return resample_polyline(self.points[self.path(start, end)], fractions)


def check_mask(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise LandmarkError(f"{name} must be an (H, W) array, got shape {mask.shape}")
    mask = mask.astype(bool)
    if not mask.any():
        raise LandmarkError(f"{name} is empty: no garment pixel")
    if mask.all():
        raise LandmarkError(f"{name} covers the whole image: no garment silhouette to follow")
    return mask


def outer_contour(mask: np.ndarray, name: str) -> Contour:
    """The outer contour of the mask's largest part."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    largest = max(contours, key=cv2.contourArea)
    if len(largest) < 16 or cv2.contourArea(largest) < 64:
        raise LandmarkError(f"{name}: the garment is too small to outline ({cv2.contourArea(largest):.0f} px)")
    return Contour(largest[:, 0].astype(np.float64))


def convexity_defects(points: np.ndarray) -> np.ndarray:
    """Convexity defects (K, 4) int of a closed polyline (N, 2): start, end, farthest index and depth in px."""
    polygon = np.round(points).astype(np.int32).reshape(-1, 1, 2)
    hull = np.sort(cv2.convexHull(polygon, returnPoints=False)[:, 0])[:, None]  # monotonous, as required
    try:
        defects = cv2.convexityDefects(polygon, hull)
    except cv2.error:  # a self-touching outline: no usable defects
        return np.zeros((0, 4), dtype=np.int64)
    if defects is None:
        return np.zeros((0, 4), dtype=np.int64)
    defects = defects.reshape(-1, 4).astype(np.int64)
    defects[:, 3] //= 256  # fixed point 8.8 -> pixels
    return defects


def unit_vector(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def point_segment_distance(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Distance (N,) of points (N, 2) to the segment start-end."""
    direction = end - start
    t = np.clip((points - start) @ direction / max(direction @ direction, 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (start + t[:, None] * direction), axis=1)


def signed_side(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Signed distance (N,) of points (N, 2) from the line start -> end: > 0 on its right on screen (y down)."""
    direction = unit_vector(end - start)
    offset = points - start
    return direction[0] * offset[:, 1] - direction[1] * offset[:, 0]


def outside_distance(points: np.ndarray, start: np.ndarray, end: np.ndarray, side: int) -> np.ndarray:
    """How far each point of ``points`` (N, 2) sticks out of the segment start-end toward the garment's
    ``side`` (-1 image left, +1 image right): (N,) distances to the segment, negative for points beside it on
    the inner side."""
    chord = end - start
    along = (points - start) @ chord / max(chord @ chord, 1e-12)
    outward = np.sign(signed_side((start + [side, 0.0])[None], start, end)[0]) or 1.0  # the outer side's sign
    inner_beside = (np.sign(signed_side(points, start, end)) == -outward) & (along > 0) & (along < 1)
    return point_segment_distance(points, start, end) * np.where(inner_beside, -1.0, 1.0)


def farthest_outside(points: np.ndarray, start: np.ndarray, end: np.ndarray, side: int) -> int:
    """Index of the point of ``points`` (N, 2) sticking out farthest of the segment start-end toward the
    garment's ``side`` (:func:`outside_distance`)."""
    return int(np.argmax(outside_distance(points, start, end, side)))


def corner_between(contour: Contour, upper: int, lower: int, side: int) -> int:
    """Contour index of the point between ``lower`` and ``upper`` on the garment's ``side`` farthest out of
    their chord (the corners of a bare armhole: neck corner -> shoulder strap -> armpit -> hem corner)."""
    path = contour.up_the_side(lower, upper, side)
    points = contour.points[path]
    return int(path[farthest_outside(points, points[-1], points[0], side)])


def principal_direction(points: np.ndarray) -> np.ndarray:
    """Unit direction (2,) of the least-squares line through points (N, 2), oriented from the first to the last."""
    direction = np.linalg.svd(points - points.mean(axis=0), full_matrices=False)[2][0]
    return direction if (points[-1] - points[0]) @ direction >= 0 else -direction


def smooth_curve(points: np.ndarray, samples: int = 8) -> np.ndarray:
    """The cubic Hermite curve through ``points`` (N, 2), tangents the central differences (one-sided at the
    ends): ``samples`` points per span, from each point on, then the last point: ((N - 1) samples + 1, 2). A
    round neckline through nodes 0-4 is drawn this way (the synthetic product photos' and the warp's neck hole)."""
    points = np.asarray(points, np.float64)
    tangent = np.gradient(points, axis=0)
    t = np.linspace(0, 1, samples, endpoint=False)[:, None]
    h00, h10, h01, h11 = 2 * t ** 3 - 3 * t ** 2 + 1, t ** 3 - 2 * t ** 2 + t, -2 * t ** 3 + 3 * t ** 2, t ** 3 - t ** 2
    spans = [h00 * points[k] + h10 * tangent[k] + h01 * points[k + 1] + h11 * tangent[k + 1]
             for k in range(len(points) - 1)]
    return np.concatenate([*spans, points[-1:]])


def resample_polyline(points: np.ndarray, fractions) -> np.ndarray:
    """Points (K, 2) at arc-length ``fractions`` (K,) in [0, 1] of the open polyline ``points`` (M, 2)."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])  # (M,)
    targets = np.asarray(fractions, dtype=np.float64) * arc[-1]
    return np.stack([np.interp(targets, arc, points[:, 0]), np.interp(targets, arc, points[:, 1])], axis=1)


def crossing(points: np.ndarray, values: np.ndarray, level: float) -> np.ndarray | None:
    """Where the polyline ``points`` (N, 2) first has ``values`` (N,) == ``level``, linearly interpolated;
    None if it never does."""
    above = values >= level
    steps = np.flatnonzero(above[:-1] != above[1:])
    if not len(steps):
        return None
    i = steps[0]
    t = (level - values[i]) / (values[i + 1] - values[i])
    return points[i] + t * (points[i + 1] - points[i])



def armhole_nodes(shoulder: np.ndarray, armpit: np.ndarray) -> np.ndarray:
    """A sleeveless side's eight sleeve nodes (order of 6..13): evenly on the straight line shoulder -> armpit."""
    return shoulder + np.arange(1, 9)[:, None] / 9 * (armpit - shoulder)



def labels_at(labels: np.ndarray, points: np.ndarray, outside=0) -> np.ndarray:
    """Values of ``labels`` (H, W) at the pixels nearest ``points`` (..., 2); ``outside`` off the image."""
    height, width = labels.shape
    columns, rows = np.round(points[..., 0]).astype(np.int64), np.round(points[..., 1]).astype(np.int64)
    inside = (columns >= 0) & (columns < width) & (rows >= 0) & (rows < height)
    values = np.full(points.shape[:-1], outside, dtype=labels.dtype)
    values[inside] = labels[rows[inside], columns[inside]]
    return values



def last_inside(mask: np.ndarray, start: np.ndarray, direction: np.ndarray, max_length: float) -> np.ndarray:
    """The farthest point on ``mask`` along the ray from ``start`` (2,) in the unit ``direction`` (2,) within
    ``max_length`` pixels; ``start`` itself if the ray never touches the mask."""
    samples = start + np.arange(0.0, max_length + 0.5, 0.5)[:, None] * direction
    inside = np.flatnonzero(labels_at(mask, samples, outside=False))
    return samples[inside[-1]] if len(inside) else np.asarray(start, dtype=np.float64)
