"""Garment landmark extraction: the 32 garment-graph keypoints of a flat garment photo and of a worn garment.

KGI's public code never said how its garment landmarks were made; this module is our answer. Node numbering
is ``kgi.graphs``'s. Everything works on the garment's outline, a closed contour traversed *clockwise on
screen* (along the top from image left to image right, down the image-right side, back along the bottom),
which is the order of the garment graph's contour loop ``0-1-2-3-4-31-30-...-6-5-0``.

**Flat garment** (:func:`flat_garment_keypoints`), from the mask's outer contour:

1. *Neckline.* The convexity defect of the top hull edge above the garment's centre: its hull points are the
   neck corners 0 and 4, node 2 is where the contour crosses the perpendicular bisector of 0-4.
2. *Armpits.* The mask is cut at the centre line (the bisector of 0-4); the deepest convexity defect of each
   half below the neckline is that side's armpit (14 image left, 22 image right).
3. *Sleeves.* On the contour between neck corner and armpit, the sleeve tip is the point farthest outside
   the chord neck corner-armpit; a tip less than ``SLEEVELESS_PROTRUSION`` of the garment height outside
   means no sleeve. The shoulder (5, 31) is the corner farthest from the chord neck corner-tip; the cuff
   corners are the extreme contour points along the sleeve axis (armhole midpoint -> tip) turned by 45
   degrees to the outer and the inner side. A sleeve longer than ``LONG_SLEEVE_RATIO`` of the body (shoulder
   to hem corner) is long.
4. *Body.* Between the armpits along the bottom, the hem corners (17, 19) are the extreme points down-left and
   down-right; the hem centre 18 is the hem's arc-length midpoint.
5. *In between*, nodes are resampled at even arc-length fractions between these anchors (neckline 1 and 3,
   sleeve edges, sides). A sleeveless garment spreads its eight sleeve nodes evenly along the straight armhole
   line shoulder -> armpit, as ``kgi.graphs`` documents.

**Worn garment** (:func:`worn_garment_keypoints`): see that function.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kgi.graphs import GARMENT_CONTOUR_EDGES, GARMENT_SYMMETRY_EDGES, NUM_GARMENT_NODES


class LandmarkError(ValueError):
    """Input from which no garment landmarks can be extracted: bad shapes, an empty or full mask, no garment."""


@dataclass(frozen=True)
class FlatLandmarks:
    """Keypoints of a flat garment photo.

    Attributes:
        keypoints: (32, 2) float32 pixel (x, y), numbered as ``kgi.graphs`` documents.
        sleeve: ``"long"``, ``"short"`` or ``"none"``.
    """

    keypoints: np.ndarray
    sleeve: str


# A sleeve tip closer than this fraction of the garment height outside the chord neck corner -> armpit
# is no sleeve (a sleeveless top's shoulder strap).
SLEEVELESS_PROTRUSION = 0.08
# A sleeve (shoulder -> outer cuff) at least this fraction of the body (shoulder -> hem corner) is long.
LONG_SLEEVE_RATIO = 0.6
# Connected mask parts smaller than this fraction of the largest are noise.
_MIN_AREA_FRACTION = 0.01


class _Contour:
    """A closed outline, clockwise on screen, with arc-length resampling between its points.

    Args:
        points: (N, 2) float64 pixel (x, y) of the outline, in either direction.
    """

    def __init__(self, points: np.ndarray):
        x, y = points[:, 0], points[:, 1]
        twice_area = np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)  # > 0 clockwise on screen (y down)
        self.points = points if twice_area > 0 else points[::-1].copy()
        steps = np.linalg.norm(np.roll(self.points, -1, axis=0) - self.points, axis=1)  # (N,) i -> i+1
        self.arc = np.concatenate([[0.0], np.cumsum(steps)])  # (N+1,) arc length at each point, last = perimeter

    def __len__(self) -> int:
        return len(self.points)

    def path(self, start: int, end: int) -> np.ndarray:
        """Indices from ``start`` forward (clockwise) to ``end``, both included."""
        count = (end - start) % len(self) + 1
        return (start + np.arange(count)) % len(self)

    def nearest(self, point: np.ndarray) -> int:
        """Index of the contour point nearest ``point`` (2,)."""
        return int(np.argmin(np.linalg.norm(self.points - point, axis=1)))

    def resample(self, start: int, end: int, fractions) -> np.ndarray:
        """Points (K, 2) at arc-length ``fractions`` (K,) of the forward path ``start`` -> ``end``."""
        indices = self.path(start, end)
        length_from_start = (self.arc[indices] - self.arc[start]) % self.arc[-1]
        length_from_start[-1] = (self.arc[end] - self.arc[start]) % self.arc[-1] or 0.0
        targets = np.asarray(fractions, dtype=np.float64) * length_from_start[-1]
        xs = np.interp(targets, length_from_start, self.points[indices, 0])
        ys = np.interp(targets, length_from_start, self.points[indices, 1])
        return np.stack([xs, ys], axis=1)


def _check_mask(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise LandmarkError(f"{name} must be an (H, W) array, got shape {mask.shape}")
    mask = mask.astype(bool)
    if not mask.any():
        raise LandmarkError(f"{name} is empty: no garment pixel")
    if mask.all():
        raise LandmarkError(f"{name} covers the whole image: no garment silhouette to follow")
    return mask


def _outer_contour(mask: np.ndarray, name: str) -> _Contour:
    """The outer contour of the mask's largest part, as a clockwise :class:`_Contour`."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    largest = max(contours, key=cv2.contourArea)
    if len(largest) < 16 or cv2.contourArea(largest) < 64:
        raise LandmarkError(f"{name}: the garment is too small to outline ({cv2.contourArea(largest):.0f} px)")
    return _Contour(largest[:, 0].astype(np.float64))


def _convexity_defects(points: np.ndarray) -> np.ndarray:
    """Convexity defects (K, 4) int of a closed polyline (N, 2): start, end, farthest index and depth in px."""
    polygon = np.round(points).astype(np.int32).reshape(-1, 1, 2)
    hull = cv2.convexHull(polygon, returnPoints=False, clockwise=False)
    hull = np.sort(hull[:, 0])[:, None]  # convexityDefects wants monotonous hull indices
    try:
        defects = cv2.convexityDefects(polygon, hull)
    except cv2.error:  # self-intersecting outline: treat as convex
        return np.zeros((0, 4), dtype=np.int64)
    if defects is None:
        return np.zeros((0, 4), dtype=np.int64)
    defects = defects.reshape(-1, 4).astype(np.int64)
    defects[:, 3] //= 256  # fixed point 8.8 -> pixels
    return defects


def _point_segment_distance(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Distance (N,) of points (N, 2) to the segment start-end."""
    direction = end - start
    t = np.clip((points - start) @ direction / max(direction @ direction, 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (start + t[:, None] * direction), axis=1)


def _signed_side(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Signed distance (N,) of points (N, 2) from the line start -> end: > 0 on its right on screen (y down)."""
    direction = (end - start) / max(float(np.linalg.norm(end - start)), 1e-12)
    offset = points - start
    return direction[0] * offset[:, 1] - direction[1] * offset[:, 0]


def _resample_polyline(points: np.ndarray, fractions) -> np.ndarray:
    """Points (K, 2) at arc-length ``fractions`` (K,) in [0, 1] of the open polyline ``points`` (M, 2)."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])  # (M,)
    targets = np.asarray(fractions, dtype=np.float64) * arc[-1]
    return np.stack([np.interp(targets, arc, points[:, 0]), np.interp(targets, arc, points[:, 1])], axis=1)


# Where the three nodes between an edge's two anchors sit, as arc-length fractions from the first anchor:
# sleeve edges (shoulder -> cuff, cuff -> armpit) and the sides (armpit -> hem corner) and neckline halves.
_SLEEVE_EDGE_FRACTIONS = (0.25, 0.5, 0.75)
_SIDE_FRACTIONS = (1 / 3, 2 / 3)
# The garment's left (image-left) and right halves: node numbers of
# shoulder, 3 outer-edge nodes, cuff outer, cuff inner, 3 inner-edge nodes, armpit.
_SLEEVE_CHAIN = {-1: (5, 6, 7, 8, 9, 10, 11, 12, 13, 14), +1: (31, 30, 29, 28, 27, 26, 25, 24, 23, 22)}


def flat_garment_keypoints(cloth_rgb: np.ndarray, cloth_mask: np.ndarray) -> FlatLandmarks:
    """The 32 keypoints of a flat, front-view product photo of an upper garment.

    Args:
        cloth_rgb: (H, W, 3) uint8 RGB garment photo (checked against the mask; the outline comes from the mask).
        cloth_mask: (H, W) bool garment silhouette; its largest connected part is the garment.

    Returns:
        :class:`FlatLandmarks`: (32, 2) float32 pixel keypoints and the detected sleeve type.

    Raises:
        LandmarkError: bad shapes, an empty or all-garment mask, or an outline with no neckline or armpit.
    """
    rgb = np.asarray(cloth_rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise LandmarkError(f"cloth_rgb must be an (H, W, 3) RGB image, got shape {rgb.shape}")
    mask = _check_mask(cloth_mask, "cloth_mask")
    if mask.shape != rgb.shape[:2]:
        raise LandmarkError(f"cloth_mask has size {mask.shape} but cloth_rgb has {rgb.shape[:2]}")
    contour = _outer_contour(mask, "cloth_mask")
    garment_height = float(np.ptp(contour.points[:, 1]))
    keypoints = np.zeros((NUM_GARMENT_NODES, 2), dtype=np.float64)

    neck_left, neck_right = _neck_corners(contour, "cloth_mask")
    keypoints[[0, 2, 4]] = contour.points[[neck_left, _bisector_crossing(contour, neck_left, neck_right),
                                           neck_right]]
    neck_centre = contour.nearest(keypoints[2])
    keypoints[1] = contour.resample(neck_left, neck_centre, [0.5])[0]
    keypoints[3] = contour.resample(neck_centre, neck_right, [0.5])[0]

    centre_x = int(round((keypoints[0, 0] + keypoints[4, 0]) / 2))
    armpits = {side: _armpit(contour, mask, centre_x, keypoints[2, 1], side) for side in (-1, +1)}

    # Body: armpit 22 -> hem -> armpit 14 is the clockwise path along the bottom.
    body = contour.path(armpits[+1], armpits[-1])
    hem_right = body[np.argmax(contour.points[body] @ np.array([1.0, 1.0]))]
    hem_left = body[np.argmax(contour.points[body] @ np.array([-1.0, 1.0]))]
    keypoints[19], keypoints[17] = contour.points[hem_right], contour.points[hem_left]
    keypoints[18] = contour.resample(hem_right, hem_left, [0.5])[0]
    keypoints[[21, 20]] = contour.resample(armpits[+1], hem_right, _SIDE_FRACTIONS)
    keypoints[[16, 15]] = contour.resample(hem_left, armpits[-1], _SIDE_FRACTIONS)

    sleeve_lengths = []
    for side, neck in ((-1, neck_left), (+1, neck_right)):
        # Armpit first, neck corner last: the left half runs clockwise, the right half against it.
        path = contour.path(armpits[side], neck) if side < 0 else contour.path(neck, armpits[side])[::-1]
        chain, has_sleeve = _flat_sleeve(contour.points[path], side, garment_height)
        keypoints[list(_SLEEVE_CHAIN[side])] = chain
        shoulder, cuff_outer, hem_corner = chain[0], chain[4], keypoints[17 if side < 0 else 19]
        sleeve_lengths.append(np.linalg.norm(cuff_outer - shoulder) / max(np.linalg.norm(hem_corner - shoulder), 1.0)
                              if has_sleeve else 0.0)
    sleeve = _sleeve_type(sleeve_lengths)
    return FlatLandmarks(keypoints.astype(np.float32), sleeve)


def _sleeve_type(length_ratios: list[float]) -> str:
    """"none" when neither side has a sleeve, else "long" or "short" by the longer sleeve's length ratio."""
    longest = max(length_ratios)
    if longest == 0.0:
        return "none"
    return "long" if longest >= LONG_SLEEVE_RATIO else "short"


def _neck_corners(contour: _Contour, name: str) -> tuple[int, int]:
    """Contour indices of the neck corners: the convex-hull edge that spans the garment's top centre."""
    hull = np.sort(cv2.convexHull(np.round(contour.points).astype(np.int32), returnPoints=False)[:, 0])
    centre_x, centre_y = contour.points.mean(axis=0)
    for start, end in zip(hull, np.roll(hull, -1)):
        (start_x, start_y), (end_x, end_y) = contour.points[start], contour.points[end]
        if start_x < centre_x < end_x and start_y < centre_y and end_y < centre_y:  # clockwise: top edge
            return int(start), int(end)
    raise LandmarkError(f"{name}: no neckline found (the outline has no top edge over its centre)")


def _bisector_crossing(contour: _Contour, start: int, end: int) -> int:
    """Index of the contour point on the path ``start`` -> ``end`` nearest the perpendicular bisector of the two."""
    path = contour.path(start, end)
    a, b = contour.points[start], contour.points[end]
    along = (contour.points[path] - (a + b) / 2) @ ((b - a) / max(np.linalg.norm(b - a), 1e-12))
    return int(path[np.argmin(np.abs(along))])


def _armpit(contour: _Contour, mask: np.ndarray, centre_x: int, neck_y: float, side: int) -> int:
    """Contour index of the armpit on one side (-1 image left, +1 image right).

    The mask is cut at ``centre_x``; the deepest convexity defect of that half whose farthest point is below
    the neckline and off the cut is the armpit.
    """
    half = mask.copy()
    if side < 0:
        half[:, centre_x:] = False
    else:
        half[:, :centre_x + 1] = False
    half_contour = _outer_contour(half, "cloth_mask half")
    defects = _convexity_defects(half_contour.points)
    far = half_contour.points[defects[:, 2]]
    usable = (far[:, 1] > neck_y) & (np.abs(far[:, 0] - centre_x) > 2)
    if not usable.any():
        name = "image-left" if side < 0 else "image-right"
        raise LandmarkError(f"cloth_mask: no armpit found on the {name} side (no concavity below the neckline)")
    deepest = np.flatnonzero(usable)[np.argmax(defects[usable, 3])]
    return contour.nearest(half_contour.points[defects[deepest, 2]])


def _flat_sleeve(path: np.ndarray, side: int, garment_height: float) -> tuple[np.ndarray, bool]:
    """One sleeve's 10-node chain from the contour between armpit and neck corner.

    Args:
        path: (M, 2) contour points from the armpit (first) to the neck corner (last).
        side: -1 for the image-left sleeve, +1 for the image-right one.
        garment_height: the garment's height in pixels (the protrusion threshold scales with it).

    Returns:
        (10, 2) shoulder, 3 outer-edge nodes, cuff outer, cuff inner, 3 inner-edge nodes, armpit; and whether
        the garment has a sleeve on this side.
    """
    armpit, neck = path[0], path[-1]
    # How far each point sticks out of the chord neck corner -> armpit: its distance to the chord, negative
    # for points beside the chord on the garment's inner side (a sleeveless armhole).
    inner = _signed_side(path, neck, armpit) * (1 if side < 0 else -1) < 0
    beside = (0 < (path - neck) @ (armpit - neck)) & ((path - neck) @ (armpit - neck) < (armpit - neck) @ (armpit - neck))
    outward = _point_segment_distance(path, neck, armpit) * np.where(inner & beside, -1.0, 1.0)
    tip = int(np.argmax(outward))
    if outward[tip] < SLEEVELESS_PROTRUSION * garment_height:  # a shoulder strap, no sleeve
        shoulder = path[tip]
        armhole = _resample_polyline(np.stack([shoulder, armpit]), np.arange(1, 9) / 9)
        return np.concatenate([shoulder[None], armhole, armpit[None]]), False
    # Shoulder: the corner of the outer edge tip -> neck corner, farthest outside the chord neck corner -> tip.
    outer_part = path[tip:]
    shoulder = outer_part[np.argmax(np.abs(_signed_side(outer_part, neck, path[tip])))]
    axis = path[tip] - (shoulder + armpit) / 2
    axis /= max(np.linalg.norm(axis), 1e-12)
    normal = np.array([-axis[1], axis[0]])
    if (shoulder - armpit) @ normal < 0:  # normal points to the outer edge (the shoulder's side)
        normal = -normal
    cuff_inner = int(np.argmax(path[: tip + 1] @ (axis - normal)))
    cuff_outer = tip + int(np.argmax(outer_part @ (axis + normal)))
    shoulder_index = tip + int(np.argmax(np.abs(_signed_side(outer_part, neck, path[tip]))))
    outer_edge = _resample_polyline(path[cuff_outer: shoulder_index + 1][::-1], _SLEEVE_EDGE_FRACTIONS)
    inner_edge = _resample_polyline(path[: cuff_inner + 1][::-1], _SLEEVE_EDGE_FRACTIONS)
    return np.concatenate([shoulder[None], outer_edge, path[cuff_outer][None], path[cuff_inner][None], inner_edge,
                           armpit[None]]), True
