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


def _farthest_outside(points: np.ndarray, start: np.ndarray, end: np.ndarray, side: int) -> int:
    """Index of the point (of (N, 2)) that sticks out farthest from the segment start-end on the garment's outer
    side (``side`` -1: image left, +1: image right). A point beside the segment on the inner side counts
    negative; past either end, its distance to the segment counts."""
    chord = end - start
    along = (points - start) @ chord / max(chord @ chord, 1e-12)
    outer_sign = np.sign(_signed_side(np.array([start + np.array([side, 0.0])]), start, end)[0]) or 1.0
    inner = np.sign(_signed_side(points, start, end)) == -outer_sign
    beside = (along > 0) & (along < 1)
    return int(np.argmax(_point_segment_distance(points, start, end) * np.where(inner & beside, -1.0, 1.0)))


def _principal_direction(points: np.ndarray) -> np.ndarray:
    """Unit direction (2,) of the least-squares line through points (N, 2), oriented from the first to the last."""
    centred = points - points.mean(axis=0)
    direction = np.linalg.svd(centred, full_matrices=False)[2][0]
    return direction if (points[-1] - points[0]) @ direction >= 0 else -direction


def _crossing(points: np.ndarray, values: np.ndarray, level: float) -> np.ndarray | None:
    """Where the polyline ``points`` (N, 2) first crosses ``values`` (N,) == ``level``, linearly interpolated;
    None if it never does."""
    above = values >= level
    steps = np.flatnonzero(above[:-1] != above[1:])
    if not len(steps):
        return None
    i = steps[0]
    t = (level - values[i]) / (values[i + 1] - values[i])
    return points[i] + t * (points[i + 1] - points[i])


# Sleeve stations of nodes (6, 13), (7, 12), (8, 11): cross-sections of the sleeve axis at these fractions of
# the axis from the armhole centre (midpoint of shoulder and armpit) to the cuff centre. A short sleeve is
# split evenly; a long sleeve has its elbow (7, 12) at 0.545 (the upper arm is about one shoulder width and the
# sleeve covers 85-100% of an arm of two), the other two halfway to the armhole and to the cuff.
_SHORT_STATIONS = (0.25, 0.5, 0.75)
_LONG_STATIONS = (0.2725, 0.545, 0.7725)
# Side nodes (15, 16) and (21, 20): even thirds of the straight side from armpit to hem corner.
_SIDE_FRACTIONS = (1 / 3, 2 / 3)
# A sleeve axis (armhole centre -> cuff centre) at least this many shoulder widths (5-31) long is long.
LONG_SLEEVE_LENGTH = 1.0
# Concavities shallower than this fraction of the garment height are outline noise, not armpits.
MIN_ARMPIT_DEPTH = 0.01


@dataclass(frozen=True)
class _Sleeve:
    """A flat sleeve: its straight axis and its two edges, from which the cross-section nodes are cut.

    Attributes:
        centre: (2,) armhole centre, the axis origin (midpoint of shoulder and armpit).
        axis: (2,) unit direction toward the cuff; ``normal`` (2,) unit, toward the outer edge.
        length: distance along the axis from the armhole centre to the cuff centre.
        outer_edge, inner_edge: (M, 2) contour points, shoulder -> cuff outer and cuff inner -> armpit.
    """

    centre: np.ndarray
    axis: np.ndarray
    normal: np.ndarray
    length: float
    outer_edge: np.ndarray
    inner_edge: np.ndarray

    def nodes(self, stations: tuple[float, float, float]) -> np.ndarray:
        """(8, 2) sleeve nodes in the order of 6..13: the edges' crossings with the axis cross-sections at
        ``stations`` (fractions of ``length``), then the cuff corners. An edge that misses a station (a short
        inner edge starting past it) mirrors the other edge's offset."""
        outer_nodes, inner_nodes = [], []
        for fraction in stations:
            station = fraction * self.length
            on_axis = self.centre + station * self.axis
            outer = _crossing(self.outer_edge, (self.outer_edge - self.centre) @ self.axis, station)
            inner = _crossing(self.inner_edge[::-1], (self.inner_edge[::-1] - self.centre) @ self.axis, station)
            outer_offset = None if outer is None else float((outer - on_axis) @ self.normal)
            inner_offset = None if inner is None else float((on_axis - inner) @ self.normal)
            if outer_offset is None:
                outer_offset = 0.0 if inner_offset is None else inner_offset
            if inner_offset is None:
                inner_offset = outer_offset
            outer_nodes.append(on_axis + outer_offset * self.normal)
            inner_nodes.append(on_axis - inner_offset * self.normal)
        return np.stack([*outer_nodes, self.outer_edge[-1], self.inner_edge[0], *inner_nodes[::-1]])


@dataclass(frozen=True)
class _Side:
    """One side of a flat garment: shoulder point, armpit (a contour index) and the sleeve if there is one."""

    shoulder: np.ndarray
    armpit: int
    sleeve: _Sleeve | None


def flat_garment_keypoints(cloth_rgb: np.ndarray, cloth_mask: np.ndarray) -> FlatLandmarks:
    """The 32 keypoints of a flat, front-view product photo of an upper garment.

    Args:
        cloth_rgb: (H, W, 3) uint8 RGB garment photo (checked against the mask; the outline comes from the mask).
        cloth_mask: (H, W) bool garment silhouette; its largest connected part is the garment.

    Returns:
        :class:`FlatLandmarks`: (32, 2) float32 pixel keypoints and the detected sleeve type.

    Raises:
        LandmarkError: bad shapes, an empty or all-garment mask, or an outline with no neckline.
    """
    rgb = np.asarray(cloth_rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise LandmarkError(f"cloth_rgb must be an (H, W, 3) RGB image, got shape {rgb.shape}")
    mask = _check_mask(cloth_mask, "cloth_mask")
    if mask.shape != rgb.shape[:2]:
        raise LandmarkError(f"cloth_mask has size {mask.shape} but cloth_rgb has {rgb.shape[:2]}")
    contour = _outer_contour(mask, "cloth_mask")
    keypoints = np.zeros((NUM_GARMENT_NODES, 2), dtype=np.float64)

    neck_left, neck_right = _neck_corners(contour, "cloth_mask")
    neck_centre = _bisector_crossing(contour, neck_left, neck_right)
    keypoints[[0, 2, 4]] = contour.points[[neck_left, neck_centre, neck_right]]
    keypoints[1] = contour.resample(neck_left, neck_centre, [0.5])[0]
    keypoints[3] = contour.resample(neck_centre, neck_right, [0.5])[0]

    centre_x = int(round((keypoints[0, 0] + keypoints[4, 0]) / 2))
    left, right = (_flat_side(contour, mask, neck, centre_x, keypoints[2, 1], side)
                   for side, neck in ((-1, neck_left), (+1, neck_right)))
    keypoints[[5, 31]] = left.shoulder, right.shoulder
    keypoints[[14, 22]] = contour.points[[left.armpit, right.armpit]]

    # Body: armpit 22 -> hem -> armpit 14 is the clockwise path along the bottom.
    body = contour.path(right.armpit, left.armpit)
    hem_right = body[np.argmax(contour.points[body] @ np.array([1.0, 1.0]))]
    hem_left = body[np.argmax(contour.points[body] @ np.array([-1.0, 1.0]))]
    keypoints[19], keypoints[17] = contour.points[hem_right], contour.points[hem_left]
    keypoints[18] = contour.resample(hem_right, hem_left, [0.5])[0]
    keypoints[[21, 20]] = contour.resample(right.armpit, hem_right, _SIDE_FRACTIONS)
    keypoints[[16, 15]] = contour.resample(hem_left, left.armpit, _SIDE_FRACTIONS)

    shoulder_width = max(float(np.linalg.norm(keypoints[31] - keypoints[5])), 1.0)
    lengths = [side.sleeve.length for side in (left, right) if side.sleeve is not None]
    sleeve = "none" if not lengths else "long" if max(lengths) >= LONG_SLEEVE_LENGTH * shoulder_width else "short"
    stations = _LONG_STATIONS if sleeve == "long" else _SHORT_STATIONS
    for side, (shoulder_node, armpit_node), sleeve_nodes in ((left, (5, 14), range(6, 14)),
                                                             (right, (31, 22), range(30, 22, -1))):
        if side.sleeve is None:  # evenly on the straight armhole line, shoulder -> armpit
            shoulder, armpit = keypoints[shoulder_node], keypoints[armpit_node]
            keypoints[list(sleeve_nodes)] = shoulder + np.arange(1, 9)[:, None] / 9 * (armpit - shoulder)
        else:
            keypoints[list(sleeve_nodes)] = side.sleeve.nodes(stations)
    return FlatLandmarks(keypoints.astype(np.float32), sleeve)


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


def _flat_side(contour: _Contour, mask: np.ndarray, neck: int, centre_x: int, neck_y: float, side: int) -> _Side:
    """Shoulder, armpit and sleeve of one side (-1 image left, +1 image right) of a flat garment.

    A sleeve makes a concavity under it: the mask is cut at ``centre_x`` and the deepest convexity defect of
    that half below the neckline is the armpit candidate. The side has a sleeve if the contour between the
    neck corner and that armpit sticks out more than ``SLEEVELESS_PROTRUSION`` of the garment height.
    """
    garment_height = float(np.ptp(contour.points[:, 1]))
    candidate = _armpit_candidate(mask, centre_x, neck_y, side, MIN_ARMPIT_DEPTH * garment_height)
    if candidate is not None:
        armpit = contour.nearest(candidate)
        # Armpit first, neck corner last: the image-left half runs clockwise, the right half against it.
        path = contour.path(armpit, neck) if side < 0 else contour.path(neck, armpit)[::-1]
        points = contour.points[path]
        tip = _farthest_outside(points, points[-1], points[0], side)
        protrusion = _point_segment_distance(points[tip: tip + 1], points[-1], points[0])[0]
        if protrusion >= SLEEVELESS_PROTRUSION * garment_height:
            shoulder, sleeve = _flat_sleeve(points, tip)
            return _Side(shoulder, armpit, sleeve)
    # Sleeveless: the armpit is the corner of the side farthest out of the chord neck corner -> hem corner,
    # the shoulder the corner farthest out of the chord neck corner -> armpit.
    hem_corner = int(np.argmax(contour.points @ np.array([float(side), 1.0])))
    path = contour.path(hem_corner, neck) if side < 0 else contour.path(neck, hem_corner)[::-1]
    points = contour.points[path]  # hem corner first, neck corner last
    armpit_at = _farthest_outside(points, points[-1], points[0], side)
    shoulder_at = armpit_at + _farthest_outside(points[armpit_at:], points[-1], points[armpit_at], side)
    return _Side(points[shoulder_at], int(path[armpit_at]), None)


def _armpit_candidate(mask: np.ndarray, centre_x: int, neck_y: float, side: int, min_depth: float):
    """The farthest point (2,) of the deepest convexity defect of one half of the mask, or None.

    Only defects below the neckline, off the cut and at least ``min_depth`` deep count.
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


def _flat_sleeve(path: np.ndarray, tip: int) -> tuple[np.ndarray, _Sleeve]:
    """Shoulder point and sleeve from the contour ``path`` (M, 2) between armpit (first) and neck corner (last).

    ``tip`` indexes the sleeve point farthest out of the chord neck corner -> armpit. The cuff corners are the
    extreme points along the sleeve axis turned 45 degrees to the outer and to the inner side; the axis is
    first the direction chord midpoint -> tip, then the bisector of the sleeve's two edges (lines fitted from
    the cuff corners back along the inner edge's length). The shoulder is the corner of the outer edge
    farthest from the chord neck corner -> cuff outer.
    """
    armpit, neck = path[0], path[-1]

    def frame(direction: np.ndarray, outward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit axis and its unit normal on the side of ``outward``."""
        axis = direction / max(np.linalg.norm(direction), 1e-12)
        normal = np.array([-axis[1], axis[0]])
        return axis, (normal if outward @ normal >= 0 else -normal)

    # The outer side is where the contour after the tip (outer edge, shoulder) lies, the inner side before it.
    axis, normal = frame(path[tip] - (armpit + neck) / 2, path[tip:].mean(axis=0) - path[: tip + 1].mean(axis=0))
    for _ in range(2):  # the rough axis, then the edges' bisector
        cuff_inner = int(np.argmax(path[: tip + 1] @ (axis - normal)))
        cuff_outer = tip + int(np.argmax(path[tip:] @ (axis + normal)))
        inner_run = path[: cuff_inner + 1]
        run_length = float(np.linalg.norm(np.diff(inner_run, axis=0), axis=1).sum())
        outer_arc = np.cumsum(np.linalg.norm(np.diff(path[cuff_outer:], axis=0), axis=1))
        outer_end = cuff_outer + 1 + int(np.searchsorted(outer_arc, run_length))
        outer_run = path[cuff_outer: outer_end + 1][::-1]  # toward the cuff
        axis, normal = frame(_principal_direction(inner_run) + _principal_direction(outer_run), normal)
    # The armhole is centred on the sleeve axis: the shoulder is the last outer-edge point (walking from the cuff
    # to the neck) as far out of the axis as the armpit is on the other side. An outline that never gets that
    # far (a sleeve hanging beside the body, its armpit high up) takes the corner farthest from the chord
    # neck corner -> cuff outer.
    cuff_centre = (path[cuff_outer] + path[cuff_inner]) / 2
    outer_part = path[cuff_outer:]
    as_far_as_armpit = np.flatnonzero((outer_part - cuff_centre) @ normal >= (cuff_centre - armpit) @ normal - 1.5)
    if len(as_far_as_armpit):
        shoulder = cuff_outer + int(as_far_as_armpit[-1])
    else:
        shoulder = cuff_outer + int(np.argmax(np.abs(_signed_side(outer_part, neck, path[cuff_outer]))))
    centre = (path[shoulder] + armpit) / 2
    length = float((cuff_centre - centre) @ axis)
    sleeve = _Sleeve(centre, axis, normal, length, outer_edge=path[cuff_outer: shoulder + 1][::-1],
                     inner_edge=path[: cuff_inner + 1][::-1])
    return path[shoulder], sleeve


# Overlay colours (RGB) per garment part: neckline, image-left sleeve, image-right sleeve, body.
_PART_COLOURS = {"neck": (255, 200, 0), "left_sleeve": (230, 40, 40), "right_sleeve": (40, 90, 255),
                 "body": (0, 190, 90)}
_NODE_PART = ["neck"] * 5 + ["left_sleeve"] * 10 + ["body"] * 7 + ["right_sleeve"] * 10
_NODE_PART[5], _NODE_PART[14], _NODE_PART[22], _NODE_PART[31] = "body", "body", "body", "body"


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
    for a, b in GARMENT_CONTOUR_EDGES:
        cv2.line(canvas, pixel[a], pixel[b], _PART_COLOURS[_NODE_PART[b] if _NODE_PART[a] == "body" else
                                                           _NODE_PART[a]], unit, cv2.LINE_AA)
    for node, point in enumerate(pixel):
        cv2.circle(canvas, point, 2 * unit, _PART_COLOURS[_NODE_PART[node]], -1, cv2.LINE_AA)
        cv2.circle(canvas, point, 2 * unit, (255, 255, 255), max(1, unit // 2), cv2.LINE_AA)
        for colour, thickness in (((0, 0, 0), unit + 1), ((255, 255, 255), max(1, unit // 2))):  # outlined text
            cv2.putText(canvas, str(node), (point[0] + 2 * unit, point[1] - unit), cv2.FONT_HERSHEY_SIMPLEX,
                        0.25 * unit, colour, thickness, cv2.LINE_AA)
    return canvas
