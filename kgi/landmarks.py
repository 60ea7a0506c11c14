"""Garment landmark extraction: the 32 garment-graph keypoints of a flat garment photo and of a worn garment.

KGI's public code never said how its garment landmarks were made; this module is our answer. Node numbering
is ``kgi.graphs``'s. Outlines are closed contours traversed *clockwise on screen* (along the top from image
left to image right, down the image-right side, back along the bottom), the order of the garment graph's
contour loop ``0-1-2-3-4-31-30-...-6-5-0``. "Side -1" is the image-left half of a garment (nodes 5-17),
"side +1" the image-right half (nodes 19-31).

**Flat garment** (:func:`flat_garment_keypoints`), from the mask's outer contour:

1. *Neckline.* The convex-hull edge over the top centre spans the neckline dip; the neck corners 0/4 are where
   the outline leaves that edge, node 2 is where it crosses their perpendicular bisector, 1/3 the arc midpoints.
2. *Armpits.* The mask is cut at the centre line; the deepest convexity defect of each half below the neckline
   is the armpit candidate. The side has a sleeve if the contour between neck corner and candidate sticks out
   of their chord by ``SLEEVELESS_PROTRUSION`` of the garment height. A sleeve hanging close to the body leaves
   a slit the mask closes, so the armpit is where the lines of the body's side and the sleeve's inner edge
   meet. A sleeveless side bends twice between neck corner and hem corner: at the shoulder strap and the
   armpit (:func:`_bare_armhole`).
3. *Sleeves.* The cuff corners are the extreme points along the sleeve axis turned 45 degrees to either side;
   the axis is the bisector of the sleeve's two edges. The shoulder is the corner farthest out of the chord
   from the neck corner to the outer edge abreast of the armpit. Nodes 6-8 and 11-13 lie on cross-sections of
   the axis from the armhole centre (midpoint of shoulder and armpit) to the cuff centre, at
   ``SHORT_STATIONS`` or ``LONG_STATIONS``; a sleeve is long if its cuff reaches ``LONG_SLEEVE_REACH`` body
   lengths (neck to hem centre) from the neck.
4. *Body.* Between the armpits along the bottom, the hem corners 17/19 are the extreme points down-left and
   down-right, the hem centre 18 the hem's arc-length midpoint, the side nodes thirds of the side.

A sleeveless garment spreads its eight sleeve nodes evenly on the straight armhole line shoulder -> armpit, as
``kgi.graphs`` documents. Product photos whose mask covers the garment's back show the *back* neckline as the
top edge; the nodes 0-4 follow the mask, not the front neckline seen through it.

**Worn garment** (:func:`worn_garment_keypoints`): the pose gives a frame and the arms, the parse the outline;
see that function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from kgi.graphs import GARMENT_CONTOUR_EDGES, GARMENT_SYMMETRY_EDGES, NUM_GARMENT_NODES

# --- flat garments ---
# A sleeve tip closer than this fraction of the garment height outside the chord neck corner -> armpit is no
# sleeve (a sleeveless top's shoulder strap).
SLEEVELESS_PROTRUSION = 0.08
# Concavities shallower than this fraction of the garment height are outline noise, not armpits.
MIN_ARMPIT_DEPTH = 0.01
# A sleeve whose cuff centre is at least this many body lengths (neck -> hem centre) from the neck is long.
LONG_SLEEVE_REACH = 0.95
# Stations of the sleeve nodes (6, 13), (7, 12), (8, 11): fractions of the sleeve axis from the armhole centre
# to the cuff centre. A short sleeve is split evenly; a long one has its elbow (7, 12) at 0.545 (the upper arm
# is about one shoulder width and the sleeve covers 85-100% of an arm of two), the others halfway to either end.
SHORT_STATIONS = (0.25, 0.5, 0.75)
LONG_STATIONS = (0.2725, 0.545, 0.7725)

# --- worn garments (lengths in torso-frame units: shoulder joint to shoulder joint = 1) ---
# CIHP labels of an upper garment (upper-clothes, dress, coat) and of arm skin (left-arm, right-arm).
UPPER_GARMENT_LABELS = (5, 6, 7)
ARM_SKIN_LABELS = (14, 15)
# Arm joints (elbows, wrists) OpenPose reports below this confidence are treated as undetected.
MIN_JOINT_CONFIDENCE = 0.2
# Where the armpit sits when the outline does not show it (an arm against the body): beside the chest, below
# the shoulder line, as (|x|, y) in the torso frame.
ARMPIT_PRIOR = (0.49, 0.42)
# A neckline is at most this deep below the chord of the shoulder points.
NECKLINE_DEPTH = 0.6
# An arm's own skin starting closer than this to the shoulder joint along the bone means no sleeve.
SLEEVELESS_REACH = 0.1

# Per garment side: shoulder node, armpit node, and the sleeve nodes in the order outer edge (from the
# shoulder) -> cuff outer, cuff inner -> inner edge (to the armpit).
_SIDE_NODES = {-1: (5, 14, list(range(6, 14))), +1: (31, 22, list(range(30, 22, -1)))}
# Side nodes between armpit and hem corner, at even thirds of the straight side.
_SIDE_FRACTIONS = (1 / 3, 2 / 3)
_SIDE_BETWEEN = {-1: [15, 16], +1: [21, 20]}


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


# --- geometry ----------------------------------------------------------------------------------------------------

class _Contour:
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
        return _resample_polyline(self.points[self.path(start, end)], fractions)


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
    """The outer contour of the mask's largest part."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    largest = max(contours, key=cv2.contourArea)
    if len(largest) < 16 or cv2.contourArea(largest) < 64:
        raise LandmarkError(f"{name}: the garment is too small to outline ({cv2.contourArea(largest):.0f} px)")
    return _Contour(largest[:, 0].astype(np.float64))


def _convexity_defects(points: np.ndarray) -> np.ndarray:
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


def _unit_vector(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _point_segment_distance(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Distance (N,) of points (N, 2) to the segment start-end."""
    direction = end - start
    t = np.clip((points - start) @ direction / max(direction @ direction, 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (start + t[:, None] * direction), axis=1)


def _signed_side(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Signed distance (N,) of points (N, 2) from the line start -> end: > 0 on its right on screen (y down)."""
    direction = _unit_vector(end - start)
    offset = points - start
    return direction[0] * offset[:, 1] - direction[1] * offset[:, 0]


def _outside_distance(points: np.ndarray, start: np.ndarray, end: np.ndarray, side: int) -> np.ndarray:
    """How far each point of ``points`` (N, 2) sticks out of the segment start-end toward the garment's
    ``side`` (-1 image left, +1 image right): (N,) distances to the segment, negative for points beside it on
    the inner side."""
    chord = end - start
    along = (points - start) @ chord / max(chord @ chord, 1e-12)
    outward = np.sign(_signed_side((start + [side, 0.0])[None], start, end)[0]) or 1.0  # the outer side's sign
    inner_beside = (np.sign(_signed_side(points, start, end)) == -outward) & (along > 0) & (along < 1)
    return _point_segment_distance(points, start, end) * np.where(inner_beside, -1.0, 1.0)


def _farthest_outside(points: np.ndarray, start: np.ndarray, end: np.ndarray, side: int) -> int:
    """Index of the point of ``points`` (N, 2) sticking out farthest of the segment start-end toward the
    garment's ``side`` (:func:`_outside_distance`)."""
    return int(np.argmax(_outside_distance(points, start, end, side)))


def _corner_between(contour: _Contour, upper: int, lower: int, side: int) -> int:
    """Contour index of the point between ``lower`` and ``upper`` on the garment's ``side`` farthest out of
    their chord (the corners of a bare armhole: neck corner -> shoulder strap -> armpit -> hem corner)."""
    path = contour.up_the_side(lower, upper, side)
    points = contour.points[path]
    return int(path[_farthest_outside(points, points[-1], points[0], side)])


def _principal_direction(points: np.ndarray) -> np.ndarray:
    """Unit direction (2,) of the least-squares line through points (N, 2), oriented from the first to the last."""
    direction = np.linalg.svd(points - points.mean(axis=0), full_matrices=False)[2][0]
    return direction if (points[-1] - points[0]) @ direction >= 0 else -direction


def _resample_polyline(points: np.ndarray, fractions) -> np.ndarray:
    """Points (K, 2) at arc-length ``fractions`` (K,) in [0, 1] of the open polyline ``points`` (M, 2)."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])  # (M,)
    targets = np.asarray(fractions, dtype=np.float64) * arc[-1]
    return np.stack([np.interp(targets, arc, points[:, 0]), np.interp(targets, arc, points[:, 1])], axis=1)


def _crossing(points: np.ndarray, values: np.ndarray, level: float) -> np.ndarray | None:
    """Where the polyline ``points`` (N, 2) first has ``values`` (N,) == ``level``, linearly interpolated;
    None if it never does."""
    above = values >= level
    steps = np.flatnonzero(above[:-1] != above[1:])
    if not len(steps):
        return None
    i = steps[0]
    t = (level - values[i]) / (values[i + 1] - values[i])
    return points[i] + t * (points[i + 1] - points[i])


# --- flat garments -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Sleeve:
    """A flat sleeve: its straight axis and its two edges, from which the cross-section nodes are cut.

    Attributes:
        centre: (2,) armhole centre, the axis origin (midpoint of shoulder and armpit).
        axis: (2,) unit direction toward the cuff; ``normal`` (2,) unit, toward the outer edge.
        length: distance along the axis from the armhole centre to the cuff centre.
        outer_edge: (M, 2) contour points from the shoulder to the cuff outer corner.
        inner_edge: (K, 2) contour points from the cuff inner corner to the armpit.
    """

    centre: np.ndarray
    axis: np.ndarray
    normal: np.ndarray
    length: float
    outer_edge: np.ndarray
    inner_edge: np.ndarray

    @property
    def cuff_centre(self) -> np.ndarray:
        """(2,) midpoint of the cuff corners."""
        return (self.outer_edge[-1] + self.inner_edge[0]) / 2

    def nodes(self, stations: tuple[float, float, float]) -> np.ndarray:
        """(8, 2) sleeve nodes in the order of 6..13: each edge's crossing with the axis cross-sections at
        ``stations`` (fractions of ``length``), and the cuff corners. An edge that misses a station (a short
        inner edge that starts past it) mirrors the other edge's distance from the axis."""
        outer_nodes, inner_nodes = [], []
        armpit_first = self.inner_edge[::-1]
        for fraction in stations:
            station = fraction * self.length
            on_axis = self.centre + station * self.axis
            outer = _crossing(self.outer_edge, (self.outer_edge - self.centre) @ self.axis, station)
            inner = _crossing(armpit_first, (armpit_first - self.centre) @ self.axis, station)
            outer_offset = None if outer is None else float((outer - on_axis) @ self.normal)
            inner_offset = None if inner is None else float((on_axis - inner) @ self.normal)
            if outer_offset is None:
                outer_offset = 0.0 if inner_offset is None else inner_offset
            if inner_offset is None:
                inner_offset = outer_offset
            outer_nodes.append(on_axis + outer_offset * self.normal)
            inner_nodes.append(on_axis - inner_offset * self.normal)
        return np.stack([*outer_nodes, self.outer_edge[-1], self.inner_edge[0], *inner_nodes[::-1]])


def flat_garment_keypoints(cloth_rgb: np.ndarray, cloth_mask: np.ndarray) -> FlatLandmarks:
    """The 32 keypoints of a flat, front-view product photo of an upper garment (method: module docstring).

    Args:
        cloth_rgb: (H, W, 3) uint8 RGB garment photo; checked against the mask, the outline comes from the mask.
        cloth_mask: (H, W) bool garment silhouette; its largest connected part is the garment.

    Returns:
        :class:`FlatLandmarks`: (32, 2) float32 pixel keypoints and the detected sleeve type.

    Raises:
        LandmarkError: bad shapes, an empty or all-garment mask, or an outline with no top edge.
    """
    rgb = np.asarray(cloth_rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise LandmarkError(f"cloth_rgb must be an (H, W, 3) RGB image, got shape {rgb.shape}")
    if np.shape(cloth_mask) != rgb.shape[:2]:
        raise LandmarkError(f"cloth_mask has size {np.shape(cloth_mask)} but cloth_rgb has {rgb.shape[:2]}")
    mask = _check_mask(cloth_mask, "cloth_mask")
    contour = _outer_contour(mask, "cloth_mask")
    garment_height = float(np.ptp(contour.points[:, 1]))
    keypoints = np.zeros((NUM_GARMENT_NODES, 2), dtype=np.float64)

    # 1. Neckline.
    neck = dict(zip((-1, +1), _neck_corners(contour)))
    neck_centre = _bisector_crossing(contour, neck[-1], neck[+1])
    keypoints[[0, 2, 4]] = contour.points[[neck[-1], neck_centre, neck[+1]]]
    keypoints[1] = contour.resample(neck[-1], neck_centre, [0.5])[0]
    keypoints[3] = contour.resample(neck_centre, neck[+1], [0.5])[0]

    # 2. Armpit candidates; a sleeve sticks out of the chord neck corner -> armpit.
    centre_x = int(round((keypoints[0, 0] + keypoints[4, 0]) / 2))
    sleeve_paths, tips, armpits = {}, {}, {}
    for side in (-1, +1):
        candidate = _armpit_candidate(mask, centre_x, keypoints[2, 1], side, MIN_ARMPIT_DEPTH * garment_height)
        if candidate is None:
            continue
        armpit = contour.nearest(candidate)
        path = contour.up_the_side(armpit, neck[side], side)
        points = contour.points[path]
        tip = _farthest_outside(points, points[-1], points[0], side)
        if _point_segment_distance(points[[tip]], points[-1], points[0])[0] >= SLEEVELESS_PROTRUSION * garment_height:
            sleeve_paths[side], tips[side], armpits[side] = path, tip, armpit
    shoulders = {}
    for side in (-1, +1):
        if side not in armpits:  # sleeveless
            hem_corner = int(np.argmax(contour.points @ np.array([float(side), 1.0])))
            shoulders[side], armpits[side] = _bare_armhole(contour, neck[side], hem_corner, side)

    # 3. Hem: on the clockwise path armpit 22 -> hem -> armpit 14.
    body = contour.path(armpits[+1], armpits[-1])
    hem = {side: int(body[np.argmax(contour.points[body] @ np.array([float(side), 1.0]))]) for side in (-1, +1)}
    keypoints[17], keypoints[19] = contour.points[hem[-1]], contour.points[hem[+1]]
    keypoints[18] = contour.resample(hem[+1], hem[-1], [0.5])[0]

    # 4. Shoulders, armpits, sides, sleeves.
    sleeves = {}
    for side, (shoulder_node, armpit_node, _) in _SIDE_NODES.items():
        body_side = contour.points[contour.up_the_side(hem[side], armpits[side], side)]
        if side in sleeve_paths:
            armpit, keypoints[shoulder_node], sleeves[side] = _flat_sleeve(contour.points[sleeve_paths[side]],
                                                                           tips[side], body_side)
        else:
            keypoints[shoulder_node], armpit = contour.points[shoulders[side]], contour.points[armpits[side]]
        keypoints[armpit_node] = armpit
        keypoints[_SIDE_BETWEEN[side]] = _resample_polyline(np.concatenate([armpit[None], body_side[::-1]]),
                                                            _SIDE_FRACTIONS)
    neck_middle = (keypoints[0] + keypoints[4]) / 2
    body_length = max(float(np.linalg.norm(keypoints[18] - neck_middle)), 1.0)
    reach = max((float(np.linalg.norm(s.cuff_centre - neck_middle)) for s in sleeves.values()), default=0.0)
    sleeve = "none" if not sleeves else "long" if reach >= LONG_SLEEVE_REACH * body_length else "short"
    for side, (shoulder_node, armpit_node, sleeve_nodes) in _SIDE_NODES.items():
        if side in sleeves:
            keypoints[sleeve_nodes] = sleeves[side].nodes(LONG_STATIONS if sleeve == "long" else SHORT_STATIONS)
        else:
            keypoints[sleeve_nodes] = _armhole_nodes(keypoints[shoulder_node], keypoints[armpit_node])
    return FlatLandmarks(keypoints.astype(np.float32), sleeve)


def _bare_armhole(contour: _Contour, neck: int, hem_corner: int, side: int) -> tuple[int, int]:
    """Contour indices of the shoulder (strap corner) and armpit of a sleeveless side.

    The outline from the hem corner up to the neck corner bends at both; the corner farthest out of the chord
    hem corner -> neck corner is one of them, the other is the corner farthest out of the chord over whichever
    part (below or above the first) bends more. The upper corner is the shoulder.
    """
    path = contour.up_the_side(hem_corner, neck, side)
    points = contour.points[path]  # hem corner first
    first = _farthest_outside(points, points[-1], points[0], side)
    below = _outside_distance(points[: first + 1], points[0], points[first], side)
    above = _outside_distance(points[first:], points[first], points[-1], side)
    if below.max() > above.max():
        return int(path[first]), int(path[np.argmax(below)])
    return int(path[first + np.argmax(above)]), int(path[first])


def _armhole_nodes(shoulder: np.ndarray, armpit: np.ndarray) -> np.ndarray:
    """A sleeveless side's eight sleeve nodes (order of 6..13): evenly on the straight line shoulder -> armpit."""
    return shoulder + np.arange(1, 9)[:, None] / 9 * (armpit - shoulder)


def _neck_corners(contour: _Contour) -> tuple[int, int]:
    """Contour indices of the neck corners: where the outline leaves the convex-hull edge that spans the
    garment's top centre (more than a pixel below it), walking in from either end of that edge."""
    hull = np.sort(cv2.convexHull(np.round(contour.points).astype(np.int32), returnPoints=False)[:, 0])
    centre_x, centre_y = contour.points.mean(axis=0)
    for start, end in zip(hull, np.roll(hull, -1)):
        (start_x, start_y), (end_x, end_y) = contour.points[start], contour.points[end]
        if start_x < centre_x < end_x and start_y < centre_y and end_y < centre_y:  # clockwise: the top edge
            top = contour.path(start, end)
            below = np.abs(_signed_side(contour.points[top], contour.points[start], contour.points[end])) > 1.0
            if not below.any():  # a straight top: no neckline dip
                return int(start), int(end)
            return int(top[np.argmax(below) - 1]), int(top[len(top) - np.argmax(below[::-1])])
    raise LandmarkError("cloth_mask: no neckline found (the outline has no top edge over its centre)")


def _bisector_crossing(contour: _Contour, start: int, end: int) -> int:
    """Index of the contour point on the path ``start`` -> ``end`` nearest the perpendicular bisector of the two."""
    path = contour.path(start, end)
    a, b = contour.points[start], contour.points[end]
    along = (contour.points[path] - (a + b) / 2) @ _unit_vector(b - a)
    return int(path[np.argmin(np.abs(along))])


def _armpit_candidate(mask: np.ndarray, centre_x: int, neck_y: float, side: int,
                      min_depth: float) -> np.ndarray | None:
    """The farthest point (2,) of the deepest convexity defect of one half of the mask, or None.

    The mask is cut at ``centre_x``; only defects below the neckline, off the cut and at least ``min_depth``
    deep count.
    """
    half = mask.copy()
    if side < 0:
        half[:, centre_x:] = False
    else:
        half[:, :centre_x + 1] = False
    if not half.any():
        return None
    half_contour = _outer_contour(half, "cloth_mask half")
    defects = _convexity_defects(half_contour.points)
    far = half_contour.points[defects[:, 2]]
    usable = (far[:, 1] > neck_y) & (np.abs(far[:, 0] - centre_x) > 2) & (defects[:, 3] >= min_depth)
    if not usable.any():
        return None
    return far[np.flatnonzero(usable)[np.argmax(defects[usable, 3])]]


def _open_slit(body_side: np.ndarray, inner_edge: np.ndarray) -> np.ndarray:
    """The armpit (2,) where the body's side meets the sleeve's inner edge.

    A sleeve hanging close to the body leaves a slit that the mask closes where it is thinner than a pixel,
    so the concavity (the last point of both runs) ends below the real armpit. Where the side and the inner
    edge meet at less than 30 degrees, the armpit is the intersection of the lines fitted on them if that lies
    up the slit; else the concavity itself.

    Args:
        body_side: (N, 2) the body's side from the hem corner up to the concavity.
        inner_edge: (M, 2) the sleeve's inner edge from the cuff up to the concavity.
    """
    corner = body_side[-1]
    if len(body_side) < 8 or len(inner_edge) < 8:
        return corner
    side_run = body_side[len(body_side) // 10:]  # off the hem corner's rounding
    inner_run = inner_edge[len(inner_edge) // 10:]  # off the cuff's
    side_direction, inner_direction = _principal_direction(side_run), _principal_direction(inner_run)  # upward
    system = np.stack([side_direction, -inner_direction], axis=1)  # side point + a d_side = inner point + b d_inner
    if side_direction @ inner_direction < np.cos(np.radians(30)) or abs(np.linalg.det(system)) < 1e-6:
        return corner
    a, _ = np.linalg.solve(system, inner_run.mean(axis=0) - side_run.mean(axis=0))
    meeting = side_run.mean(axis=0) + a * side_direction
    up_the_slit = (meeting - corner) @ (side_direction + inner_direction) / 2
    return meeting if 0 < up_the_slit < 0.5 * np.linalg.norm(body_side[0] - corner) else corner


def _flat_sleeve(path: np.ndarray, tip: int, body_side: np.ndarray) -> tuple[np.ndarray, np.ndarray, _Sleeve]:
    """Armpit, shoulder and sleeve of one side of a flat garment.

    Args:
        path: (M, 2) contour from the armpit's concavity (first) over the sleeve to the neck corner (last).
        tip: index in ``path`` of the sleeve point farthest out of the chord neck corner -> armpit.
        body_side: (N, 2) contour up the body's side from the hem corner to the concavity.

    Returns ``(armpit, shoulder, sleeve)``: two (2,) points and the :class:`_Sleeve`.
    """
    concavity, neck = path[0], path[-1]

    def frame(direction: np.ndarray, outward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit axis along ``direction`` and its unit normal on the side of ``outward``."""
        axis = _unit_vector(direction)
        normal = np.array([-axis[1], axis[0]])
        return axis, (normal if outward @ normal >= 0 else -normal)

    # The outer side is where the contour after the tip lies (outer edge, shoulder), the inner side before it.
    axis, normal = frame(path[tip] - (concavity + neck) / 2, path[tip:].mean(axis=0) - path[: tip + 1].mean(axis=0))
    for _ in range(2):  # cuff corners on the rough axis, then on the bisector of the edges fitted from them
        cuff_inner = int(np.argmax(path[: tip + 1] @ (axis - normal)))
        cuff_outer = tip + int(np.argmax(path[tip:] @ (axis + normal)))
        inner_run = path[: cuff_inner + 1]
        run_length = float(np.linalg.norm(np.diff(inner_run, axis=0), axis=1).sum())
        outer_arc = np.cumsum(np.linalg.norm(np.diff(path[cuff_outer:], axis=0), axis=1))
        outer_run = path[cuff_outer: cuff_outer + 2 + int(np.searchsorted(outer_arc, run_length))][::-1]
        axis, normal = frame(_principal_direction(inner_run) + _principal_direction(outer_run), normal)
    armpit = _open_slit(body_side, path[: cuff_inner + 1][::-1])
    # The shoulder: the corner farthest out of the chord from the outer edge abreast of the armpit to the neck.
    outer_part = path[cuff_outer:]
    behind_armpit = (outer_part - armpit) @ axis <= 0
    abreast = int(np.argmax(behind_armpit)) if behind_armpit.any() else 0
    corner = outer_part[abreast:]
    shoulder = cuff_outer + abreast + int(np.argmax(np.abs(_signed_side(corner, corner[0], neck))))
    centre = (path[shoulder] + armpit) / 2
    cuff_centre = (path[cuff_outer] + path[cuff_inner]) / 2
    sleeve = _Sleeve(centre, axis, normal, length=float((cuff_centre - centre) @ axis),
                     outer_edge=path[cuff_outer: shoulder + 1][::-1],
                     inner_edge=np.concatenate([path[cuff_inner: 0: -1], armpit[None]]))
    return armpit, path[shoulder], sleeve


# --- worn garments -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _TorsoFrame:
    """The frame of the shoulder joints: origin at their midpoint, x toward the person's left shoulder (image
    right), y perpendicular (down the torso), one unit = their distance."""

    origin: np.ndarray
    axes: np.ndarray  # (2, 2) rows: the x axis and the y axis, unit vectors in pixels
    unit: float

    def to_image(self, points) -> np.ndarray:
        """Frame coordinates (..., 2) to pixels."""
        return self.origin + self.unit * np.asarray(points, dtype=np.float64) @ self.axes

    def to_frame(self, points) -> np.ndarray:
        """Pixels (..., 2) to frame coordinates."""
        return (np.asarray(points, dtype=np.float64) - self.origin) @ self.axes.T / self.unit

    def direction(self, x: float, y: float) -> np.ndarray:
        """The unit pixel direction (2,) of the frame direction (x, y)."""
        return _unit_vector(self.axes.T @ np.array([x, y], dtype=np.float64))


@dataclass(frozen=True)
class _Arm:
    """One arm and the garment side it carries.

    Attributes:
        side: -1 for the image-left garment side (the person's right arm, BODY_25 2-3-4), +1 for the other.
        joints: (3, 2) shoulder, elbow, wrist in pixels (undetected ones filled).
        skin_label: the CIHP label of this arm's skin (15 right arm, 14 left arm).
    """

    side: int
    joints: np.ndarray
    skin_label: int


class _Cuff(NamedTuple):
    """Where a sleeve ends on its arm: the point, its distance along the bone (units), whether past the elbow."""

    point: np.ndarray
    reach: float
    past_elbow: bool


def fill_garment_keypoints(sample):
    """Give a ``TryOnSample`` without garment keypoints (a VITON-HD root has no landmark files; the synthetic
    generator writes them) the ones :func:`flat_garment_keypoints` finds in its garment photo; returns it.

    Raises:
        LandmarkError: naming the garment, when its landmarks cannot be found.
    """
    if sample.cloth_keypoints is None:
        try:
            sample.cloth_keypoints = flat_garment_keypoints(sample.cloth, sample.cloth_mask).keypoints
        except LandmarkError as exc:
            raise LandmarkError(f"{sample.cloth_name}: its landmarks cannot be found ({exc})") from None
    return sample


def worn_garment_keypoints(parse: np.ndarray, body25: np.ndarray) -> np.ndarray:
    """The 32 keypoints of the upper garment a person wears, from their parse and pose.

    The pose gives a torso frame (shoulder joints; unit = their distance) and the arms; the parse's
    upper-garment region (``UPPER_GARMENT_LABELS``, with arm skin lying across it filled in) gives the outline.

    * Sleeve type: the sleeve ends where the arm's own skin label first shows on the bone shoulder -> elbow ->
      wrist (none within ``SLEEVELESS_REACH``: sleeveless; past the elbow: long; no skin: long).
    * Shoulders 5/31: where the diagonal ray up and out from the shoulder joint leaves the garment, or for a
      sleeveless garment where the shoulder line leaves the strap.
    * Neckline 0-4: on the outline over the top from shoulder to shoulder, the centre front 2 is the point
      deepest below their chord, each neck corner the point farthest above the chord shoulder -> centre front.
    * Armpits 14/22: the concavity between sleeve and side within 0.2 units of ``ARMPIT_PRIOR``, else the
      prior (an arm against the body hides it); sleeveless: the corner farthest out of the chord shoulder -> hem
      corner.
    * Sleeves: the axis runs from the armhole centre (midpoint of shoulder and armpit) through elbow and wrist;
      the nodes sit on its cross-sections (short: quarters of the way to the cuff; long: halfway to the elbow,
      the elbow, halfway to the cuff, the cuff), each edge measured where it borders something other than
      garment and mirrored from the other edge where it runs into more garment (an arm against the body, a
      forearm across the torso).
    * Hem 17-19: the garment without its sleeves gives the extreme points down and out (corners) and the lowest
      point on their perpendicular bisector (centre); the side nodes are thirds of the straight side.

    Args:
        parse: (H, W) uint8 CIHP labels 0..19.
        body25: (25, 3) OpenPose BODY_25 joints (x px, y px, confidence); undetected joints are (0, 0, 0).

    Returns:
        (32, 2) float32 pixel keypoints, numbered as ``kgi.graphs`` documents.

    Raises:
        LandmarkError: bad shapes, no upper garment in the parse, a pose without shoulders, or an outline with
            no neckline.
    """
    parse = np.asarray(parse)
    if parse.ndim != 2:
        raise LandmarkError(f"parse must be an (H, W) label map, got shape {parse.shape}")
    garment = np.isin(parse, UPPER_GARMENT_LABELS)
    if not garment.any():
        raise LandmarkError(f"parse has no upper garment (CIHP labels {UPPER_GARMENT_LABELS})")
    frame, arms = _body_from_pose(body25, parse)
    garment = _bridge_arms(garment, parse, frame)
    contour = _outer_contour(garment, "parse upper garment")
    keypoints = np.zeros((NUM_GARMENT_NODES, 2), dtype=np.float64)

    cuffs = {arm.side: _find_cuff(parse, arm, frame) for arm in arms}
    longest = max(cuffs.values(), key=lambda cuff: cuff.reach)
    sleeve = "none" if longest.reach < SLEEVELESS_REACH else "long" if longest.past_elbow else "short"
    for arm in arms:
        shoulder_node = _SIDE_NODES[arm.side][0]
        if sleeve == "none":  # the strap's outer end on the shoulder line
            keypoints[shoulder_node] = _last_inside(garment, frame.origin, frame.direction(arm.side, 0.0),
                                                    0.75 * frame.unit)
        else:  # on top of the arm's rounded shoulder
            keypoints[shoulder_node] = _last_inside(garment, arm.joints[0], frame.direction(arm.side, -1.0),
                                                    0.4 * frame.unit)

    neck_left, neck_centre, neck_right = _worn_neckline(contour, keypoints[5], keypoints[31], frame.unit)
    keypoints[[0, 2, 4]] = contour.points[[neck_left, neck_centre, neck_right]]
    keypoints[1] = contour.resample(neck_left, neck_centre, [0.5])[0]
    keypoints[3] = contour.resample(neck_centre, neck_right, [0.5])[0]

    torso = garment.astype(np.uint8)  # the garment without its sleeves
    if sleeve != "none":
        for arm in arms:
            shoulder_node, armpit_node, sleeve_nodes = _SIDE_NODES[arm.side]
            keypoints[armpit_node] = _worn_armpit(contour, frame, arm.side)
            keypoints[sleeve_nodes] = _worn_sleeve(garment, arm, frame, keypoints[shoulder_node],
                                                   keypoints[armpit_node], cuffs[arm.side].point, sleeve)
            outline = np.round(keypoints[[shoulder_node, *sleeve_nodes, armpit_node]] * 16).astype(np.int32)
            cv2.fillPoly(torso, [outline], 0, cv2.LINE_8, 4)
            cv2.polylines(torso, [outline], True, 0, max(1, round(0.03 * frame.unit)), cv2.LINE_8, 4)
    keypoints[17], keypoints[19], keypoints[18] = _worn_hem(torso.astype(bool), frame)

    for arm in arms:
        shoulder_node, armpit_node, sleeve_nodes = _SIDE_NODES[arm.side]
        hem_corner = keypoints[17 if arm.side < 0 else 19]
        if sleeve == "none":
            keypoints[armpit_node] = contour.points[_corner_between(
                contour, contour.nearest(keypoints[shoulder_node]), contour.nearest(hem_corner), arm.side)]
            keypoints[sleeve_nodes] = _armhole_nodes(keypoints[shoulder_node], keypoints[armpit_node])
        armpit = keypoints[armpit_node]
        keypoints[_SIDE_BETWEEN[arm.side]] = armpit + np.array(_SIDE_FRACTIONS)[:, None] * (hem_corner - armpit)
    return keypoints.astype(np.float32)


def _body_from_pose(body25: np.ndarray, parse: np.ndarray) -> tuple[_TorsoFrame, list[_Arm]]:
    """The torso frame and both arms from a BODY_25 pose, undetected joints filled.

    A missing shoulder mirrors the other through the neck. An elbow or wrist below ``MIN_JOINT_CONFIDENCE``
    is undetected: a wrist is put back from the arm's skin in the parse (its point farthest from the elbow,
    less a hand's length), else the arm is straightened; an elbow lies halfway to the wrist, else one unit
    below the shoulder.
    """
    joints = np.asarray(body25, dtype=np.float64)
    if joints.shape != (25, 3) or not np.isfinite(joints).all():
        raise LandmarkError(f"body25 must be a finite (25, 3) array of (x, y, confidence), got shape {joints.shape}")
    found = joints[:, 2] > 0
    points = joints[:, :2]
    if not (found[2] and found[5]) and not ((found[2] or found[5]) and found[1]):
        raise LandmarkError("body25: the shoulders (joints 2 and 5) are not detected")
    right = points[2] if found[2] else 2 * points[1] - points[5]
    left = points[5] if found[5] else 2 * points[1] - points[2]
    unit = float(np.linalg.norm(left - right))
    if unit < 2:
        raise LandmarkError("body25: the shoulders (joints 2 and 5) coincide")
    x_axis = (left - right) / unit
    frame = _TorsoFrame((left + right) / 2, np.stack([x_axis, [-x_axis[1], x_axis[0]]]), unit)
    arms = []
    for side, shoulder, (elbow_joint, wrist_joint), skin_label in ((-1, right, (3, 4), 15), (+1, left, (6, 7), 14)):
        reliable = joints[[elbow_joint, wrist_joint], 2] >= MIN_JOINT_CONFIDENCE
        elbow, wrist = points[elbow_joint].copy(), points[wrist_joint].copy()
        if not reliable[0]:
            elbow = (shoulder + wrist) / 2 if reliable[1] else shoulder + unit * frame.axes[1]
        if not reliable[1]:
            skin_rows, skin_columns = np.nonzero(parse == skin_label)
            skin = np.stack([skin_columns, skin_rows], axis=1).astype(np.float64)
            near = skin[np.linalg.norm(skin - elbow, axis=1) < 1.6 * unit]
            if len(near):
                hand_tip = near[np.argmax(np.linalg.norm(near - elbow, axis=1))]
                reach = max(float(np.linalg.norm(hand_tip - elbow)) - 0.25 * unit, 0.0)
                wrist = elbow + reach * _unit_vector(hand_tip - elbow)
            else:
                wrist = 2 * elbow - shoulder
        arms.append(_Arm(side, np.stack([shoulder, elbow, wrist]), skin_label))
    return frame, arms


def _bridge_arms(garment: np.ndarray, parse: np.ndarray, frame: _TorsoFrame) -> np.ndarray:
    """The garment with the arm skin lying across it filled in: arm pixels (``ARM_SKIN_LABELS``) within 0.7
    units of the torso's centre line with garment both above and below them in their image column (forearms
    crossed in front of the torso would otherwise cut the garment in two)."""
    arm = np.isin(parse, ARM_SKIN_LABELS)
    garment_above = np.maximum.accumulate(garment, axis=0)
    garment_below = np.maximum.accumulate(garment[::-1], axis=0)[::-1]
    columns = np.arange(garment.shape[1], dtype=np.float64)
    central = np.abs((columns - frame.origin[0]) * frame.axes[0, 0]) < 0.7 * frame.unit  # (W,)
    return garment | (arm & garment_above & garment_below & central[None, :])


def _worn_neckline(contour: _Contour, left_shoulder: np.ndarray, right_shoulder: np.ndarray,
                   unit: float) -> tuple[int, int, int]:
    """Contour indices of the neck corners and the centre front of a worn garment.

    Worn, the shoulder seams run level or rise to the shoulders, so the neck corners are no hull points. On the
    outline over the top from shoulder to shoulder, the centre front is the point deepest below their chord
    (at most ``NECKLINE_DEPTH``: a neckline running into a forearm stops there); each neck corner is the point
    farthest above the chord from its shoulder to the centre front.
    """
    top = contour.path(contour.nearest(left_shoulder), contour.nearest(right_shoulder))
    if len(top) > len(contour) / 2:
        raise LandmarkError("parse: no neckline between the shoulders of the upper garment")
    points = contour.points[top]
    centre = int(np.argmax(np.minimum(_signed_side(points, points[0], points[-1]), NECKLINE_DEPTH * unit)))
    if centre in (0, len(top) - 1):
        raise LandmarkError("parse: the upper garment's outline has no neckline between the shoulders")
    left = int(np.argmax(-_signed_side(points[: centre + 1], points[0], points[centre])))
    right = centre + int(np.argmax(-_signed_side(points[centre:], points[centre], points[-1])))
    return int(top[left]), int(top[centre]), int(top[right])


def _find_cuff(parse: np.ndarray, arm: _Arm, frame: _TorsoFrame) -> _Cuff:
    """The first point of the bone shoulder -> elbow -> wrist (-> hand) on the arm's own skin (two samples in a
    row); an arm with no skin showing on its bone is covered to the wrist."""
    hand = arm.joints[2] + 0.2 * frame.unit * _unit_vector(arm.joints[2] - arm.joints[1])
    samples, arc = _sample_polyline(np.concatenate([arm.joints, hand[None]]), step=0.5)
    own = _labels_at(parse, samples) == arm.skin_label
    starts = np.flatnonzero(own[:-1] & own[1:])
    if not len(starts):
        return _Cuff(arm.joints[2], float(arc[-1]) / frame.unit, True)
    first = int(starts[0])
    upper_arm = float(np.linalg.norm(arm.joints[1] - arm.joints[0]))
    return _Cuff(samples[first], float(arc[first]) / frame.unit, bool(arc[first] > upper_arm))


def _worn_armpit(contour: _Contour, frame: _TorsoFrame, side: int) -> np.ndarray:
    """The armpit (2,) of a sleeved side: the deepest concavity of the outline (at least 0.04 units deep)
    within 0.2 units of ``ARMPIT_PRIOR`` (an arm held away from the body), else the prior itself."""
    prior = frame.to_image([side * ARMPIT_PRIOR[0], ARMPIT_PRIOR[1]])
    defects = _convexity_defects(contour.points)
    far = contour.points[defects[:, 2]]
    near = (np.linalg.norm(far - prior, axis=1) < 0.2 * frame.unit) & (defects[:, 3] >= 0.04 * frame.unit)
    if not near.any():
        return prior
    return far[np.flatnonzero(near)[np.argmax(defects[near, 3])]]


def _worn_sleeve(garment: np.ndarray, arm: _Arm, frame: _TorsoFrame, shoulder: np.ndarray, armpit: np.ndarray,
                 cuff: np.ndarray, sleeve: str) -> np.ndarray:
    """The eight nodes (order of 6..13) of a worn sleeve on cross-sections of the axis armhole centre -> elbow
    -> wrist: 3 outer-edge nodes, cuff outer, cuff inner, 3 inner-edge nodes.

    At the elbow the cross-section follows the bisector of the two bones. Each edge is the first pixel off the
    garment along the section (the cuff is measured a little inside the sleeve); a side blocked by more garment
    mirrors the other (:func:`_mirror_blocked_edges`).
    """
    axis_path = np.stack([(shoulder + armpit) / 2, arm.joints[1], arm.joints[2]])
    bones = np.diff(axis_path, axis=0)
    bone_lengths = np.maximum(np.linalg.norm(bones, axis=1), 1e-6)
    cuff_station = _project_on_polyline(axis_path, cuff)
    if sleeve == "long":
        elbow = min(bone_lengths[0], 0.9 * cuff_station)
        stations = np.array([elbow / 2, elbow, (elbow + cuff_station) / 2, cuff_station])
    else:
        stations = cuff_station * np.array([0.25, 0.5, 0.75, 1.0])
    knots = np.concatenate([[0.0], np.cumsum(bone_lengths)])
    centres = np.stack([np.interp(stations, knots, axis_path[:, k]) for k in range(2)], axis=1)  # (4, 2)
    directions = bones / bone_lengths[:, None]
    axes = directions[(stations > bone_lengths[0] + 1e-9).astype(int)]  # (4, 2) the bone each station is on
    bisector = directions[0] + directions[1]
    if np.linalg.norm(bisector) > 1e-6:
        axes[np.isclose(stations, bone_lengths[0])] = _unit_vector(bisector)
    normals = arm.side * np.stack([axes[:, 1], -axes[:, 0]], axis=1)  # (4, 2) toward the outer edge
    probes = centres.copy()
    probes[-1] -= axes[-1] * min(2.0, 0.25 * cuff_station)
    outer = _ray_exits(garment, probes, normals, 0.45 * frame.unit)
    inner = _ray_exits(garment, probes, -normals, 0.45 * frame.unit)
    lost = ~_labels_at(garment, probes, outside=False)  # the parse lost the sleeve here: nothing to measure
    outer[lost], inner[lost] = np.inf, np.inf
    outer, inner = _mirror_blocked_edges(outer, inner, default=0.22 * frame.unit)
    return np.concatenate([centres + outer[:, None] * normals, (centres - inner[:, None] * normals)[::-1]])


def _mirror_blocked_edges(outer: np.ndarray, inner: np.ndarray, default: float) -> tuple[np.ndarray, np.ndarray]:
    """A sleeve's edge distances (K,) on both sides of its axis, blocked ones replaced.

    A side is blocked when its ray ran into more garment: no exit (``inf``) or more than twice the other side.
    It takes the other side's distance; where both are blocked, the median of the clear distances, else
    ``default``.
    """
    outer_blocked = ~np.isfinite(outer) | (outer > 2 * inner + 2)
    inner_blocked = ~np.isfinite(inner) | (inner > 2 * outer + 2)
    clear = np.concatenate([outer[~outer_blocked], inner[~inner_blocked]])
    fallback = float(np.median(clear)) if len(clear) else default
    both = outer_blocked & inner_blocked
    return (np.where(outer_blocked, np.where(both, fallback, inner), outer),
            np.where(inner_blocked, np.where(both, fallback, outer), inner))


def _worn_hem(torso: np.ndarray, frame: _TorsoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hem corners (image left, image right) and hem centre of the garment without its sleeves.

    After an opening (0.05 units), the torso is the largest piece plus pieces at least 0.4 units wide with 2% of
    its area (sleeves across the body may cut it), within 0.8 units of the centre line. The corners are its
    extreme points down and out in the torso frame; the centre is its lowest point on their perpendicular
    bisector.
    """
    size = max(3, int(round(0.05 * frame.unit)) | 1)
    opened = cv2.morphologyEx(torso.astype(np.uint8), cv2.MORPH_OPEN, np.ones((size, size), np.uint8))
    _, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=4)
    areas, widths = stats[1:, cv2.CC_STAT_AREA], stats[1:, cv2.CC_STAT_WIDTH]
    if not len(areas):
        raise LandmarkError("parse: nothing of the upper garment is left beside its sleeves (no torso part)")
    kept = (areas == areas.max()) | ((areas >= 0.02 * areas.max()) & (widths >= 0.4 * frame.unit))
    body = np.isin(labels, np.flatnonzero(kept) + 1)
    rows, columns = np.nonzero(body)
    pixels = np.stack([columns, rows], axis=1).astype(np.float64)
    local = frame.to_frame(pixels)
    central = np.abs(local[:, 0]) < 0.8
    pixels, local = pixels[central], local[central]
    left = pixels[np.argmax(local @ np.array([-1.0, 1.0]))]
    right = pixels[np.argmax(local @ np.array([1.0, 1.0]))]
    down = _unit_vector(np.array([left[1] - right[1], right[0] - left[0]]))  # perpendicular to the hem
    centre = _last_inside(body, (left + right) / 2 - 0.5 * frame.unit * down, down, frame.unit)
    return left, right, centre


def _sample_polyline(points: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Points (K, 2) every ``step`` pixels along an open polyline (M, 2), and their arc lengths (K,)."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    at = np.arange(0.0, arc[-1] + 1e-9, step)
    return np.stack([np.interp(at, arc, points[:, 0]), np.interp(at, arc, points[:, 1])], axis=1), at


def _project_on_polyline(points: np.ndarray, point: np.ndarray) -> float:
    """Arc length along the open polyline ``points`` (M, 2) of its point closest to ``point`` (2,)."""
    starts, segments = points[:-1], np.diff(points, axis=0)
    lengths = np.maximum(np.linalg.norm(segments, axis=1), 1e-6)
    t = np.clip(((point - starts) * segments).sum(axis=1) / lengths ** 2, 0.0, 1.0)
    best = int(np.argmin(np.linalg.norm(starts + t[:, None] * segments - point, axis=1)))
    return float(lengths[:best].sum() + t[best] * lengths[best])


def _labels_at(labels: np.ndarray, points: np.ndarray, outside=0) -> np.ndarray:
    """Values of ``labels`` (H, W) at the pixels nearest ``points`` (..., 2); ``outside`` off the image."""
    height, width = labels.shape
    columns, rows = np.round(points[..., 0]).astype(np.int64), np.round(points[..., 1]).astype(np.int64)
    inside = (columns >= 0) & (columns < width) & (rows >= 0) & (rows < height)
    values = np.full(points.shape[:-1], outside, dtype=labels.dtype)
    values[inside] = labels[rows[inside], columns[inside]]
    return values


def _ray_exits(mask: np.ndarray, starts: np.ndarray, directions: np.ndarray, max_length: float) -> np.ndarray:
    """Distance (K,) from each start (K, 2) along its unit direction (K, 2) to the first pixel off ``mask``;
    ``inf`` if the ray stays on the mask for ``max_length`` pixels. Samples every half pixel."""
    steps = np.arange(0.0, max_length + 0.5, 0.5)  # (S,)
    samples = starts[:, None, :] + steps[None, :, None] * directions[:, None, :]  # (K, S, 2)
    off = ~_labels_at(mask, samples, outside=False)
    return np.where(off.any(axis=1), steps[off.argmax(axis=1)], np.inf)


def _last_inside(mask: np.ndarray, start: np.ndarray, direction: np.ndarray, max_length: float) -> np.ndarray:
    """The farthest point on ``mask`` along the ray from ``start`` (2,) in the unit ``direction`` (2,) within
    ``max_length`` pixels; ``start`` itself if the ray never touches the mask."""
    samples = start + np.arange(0.0, max_length + 0.5, 0.5)[:, None] * direction
    inside = np.flatnonzero(_labels_at(mask, samples, outside=False))
    return samples[inside[-1]] if len(inside) else np.asarray(start, dtype=np.float64)


# --- drawing -----------------------------------------------------------------------------------------------------

# Overlay colours (RGB) per garment part, and each node's part (shoulders and armpits belong to the body).
_PART_COLOURS = {"neck": (255, 200, 0), "left_sleeve": (230, 40, 40), "right_sleeve": (40, 90, 255),
                 "body": (0, 190, 90)}
_NODE_PART = tuple("neck" if node < 5 else "left_sleeve" if 6 <= node <= 13 else
                   "right_sleeve" if 23 <= node <= 30 else "body" for node in range(NUM_GARMENT_NODES))


def overlay(image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Draw garment keypoints on an image for a person to check.

    Contour edges are solid, symmetry edges thin grey; each node is a dot coloured by part (neckline yellow,
    image-left sleeve red, image-right sleeve blue, body green) with its number beside it.

    Args:
        image: (H, W, 3) uint8 RGB image or (H, W) uint8 grey image, left unchanged.
        keypoints: (32, 2) pixel (x, y) in ``image``.

    Returns:
        (H, W, 3) uint8 RGB drawing.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise LandmarkError(f"image must be (H, W, 3) RGB or (H, W) grey, got shape {image.shape}")
    points = np.asarray(keypoints, dtype=np.float64)
    if points.shape != (NUM_GARMENT_NODES, 2) or not np.isfinite(points).all():
        raise LandmarkError(f"keypoints must be {NUM_GARMENT_NODES} finite (x, y) pairs, got shape {points.shape}")
    canvas = np.ascontiguousarray(image, dtype=np.uint8).copy()
    unit = max(1, round(canvas.shape[0] / 256))  # 1 px at 256 rows, 4 px at 1024
    pixel = [tuple(int(v) for v in p) for p in np.round(points)]
    for a, b in GARMENT_SYMMETRY_EDGES:
        cv2.line(canvas, pixel[a], pixel[b], (150, 150, 150), max(1, unit // 2), cv2.LINE_AA)
    for a, b in GARMENT_CONTOUR_EDGES:  # an edge takes its sleeve's or neckline's colour, else the body's
        part = _NODE_PART[a] if _NODE_PART[a] != "body" else _NODE_PART[b]
        cv2.line(canvas, pixel[a], pixel[b], _PART_COLOURS[part], unit, cv2.LINE_AA)
    for node, point in enumerate(pixel):
        cv2.circle(canvas, point, 2 * unit, _PART_COLOURS[_NODE_PART[node]], -1, cv2.LINE_AA)
        cv2.circle(canvas, point, 2 * unit, (255, 255, 255), max(1, unit // 2), cv2.LINE_AA)
        for colour, thickness in (((0, 0, 0), unit + 1), ((255, 255, 255), max(1, unit // 2))):  # outlined
            cv2.putText(canvas, str(node), (point[0] + 2 * unit, point[1] - unit), cv2.FONT_HERSHEY_SIMPLEX,
                        0.25 * unit, colour, thickness, cv2.LINE_AA)
    return canvas
