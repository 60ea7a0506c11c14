"""Landmarks of the upper garment a person wears (parse + pose): see :func:`worn_garment_keypoints`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from kgi.graphs import NUM_GARMENT_NODES
from kgi.landmarks.geometry import (SIDE_BETWEEN, SIDE_FRACTIONS, SIDE_NODES, Contour, GarmentLandmarks, LandmarkError,
                                    armhole_nodes, convexity_defects, corner_between, labels_at, last_inside,
                                    outer_contour, resample_polyline, signed_side, unit_vector)

# --- worn garments (lengths in torso-frame units: shoulder joint to shoulder joint = 1) ---
# CIHP labels of an upper garment (upper-clothes, dress, coat) and of arm skin (left-arm, right-arm).
UPPER_GARMENT_LABELS = (5, 6, 7)
ARM_SKIN_LABELS = (14, 15)
# CIHP labels whose colour is the person's skin (face, neck), and how far apart (CIE Lab, 0-255 scales) the skin
# and the garment must be for arm pixels to be told apart by colour.
SKIN_REFERENCE_LABELS = (10, 13)
MIN_SKIN_CONTRAST = 25.0
# Arm joints (elbows, wrists) OpenPose reports below this confidence are treated as undetected.
MIN_JOINT_CONFIDENCE = 0.2
# Where the armpit sits when the outline does not show it (an arm against the body): beside the chest, below
# the shoulder line, as (|x|, y) in the torso frame.
ARMPIT_PRIOR = (0.49, 0.55)
# A neckline is at most this deep below the chord of the shoulder points.
NECKLINE_DEPTH = 0.6
# A high neck's corners lie this far either side of the torso's centre line.
NECK_HALF_WIDTH = 0.2
# An arm's own skin starting closer than this to the shoulder joint along the bone means no sleeve.
SLEEVELESS_REACH = 0.1


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
        return unit_vector(self.axes.T @ np.array([x, y], dtype=np.float64))


@dataclass(frozen=True)
class _Arm:
    """One arm and the garment side it carries.

    Attributes:
        side: -1 for the image-left garment side (the person's right arm, BODY_25 2-3-4), +1 for the other.
        joints: (3, 2) shoulder, elbow, wrist in pixels (undetected ones filled).
        skin_label: the CIHP label of this arm's skin (15 right arm, 14 left arm).
        detected: whether the pose found its elbow and wrist (else its bone may miss the arm).
    """

    side: int
    joints: np.ndarray
    skin_label: int
    detected: bool


class _Cuff(NamedTuple):
    """Where a sleeve ends on its arm: the point, its distance along the bone (units), whether past the elbow."""

    point: np.ndarray
    reach: float
    past_elbow: bool
    skin_seen: bool


def worn_garment_keypoints(parse: np.ndarray, body25: np.ndarray,
                           person_rgb: np.ndarray | None = None) -> GarmentLandmarks:
    """The 32 keypoints of the upper garment a person wears, from their parse and pose.

    The pose gives a torso frame (shoulder joints; unit = their distance) and the arms; the parse's
    upper-garment region (``UPPER_GARMENT_LABELS``, with arm skin lying across it filled in) gives the outline.

    * Sleeve type: the sleeve ends where the arm's own skin label first shows on the bone shoulder -> elbow ->
      wrist (none within ``SLEEVELESS_REACH``: sleeveless; past the elbow: long; no skin: long); an arm the
      pose found that shows skin outweighs one it did not find (its bone may cross the body), and an arm that
      shows skin one that does not (a forearm across the body). Given the
      photo, arm pixels the colour of the garment are sleeve (:func:`sleeves_labelled_as_arms`).
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
        person_rgb: optional (H, W, 3) uint8 photo of the person, the parse's size.

    Returns:
        :class:`GarmentLandmarks`: (32, 2) float32 pixel keypoints, numbered as ``kgi.graphs`` documents, and
        the sleeve type found on the arms.

    Raises:
        LandmarkError: bad shapes, no upper garment in the parse, a pose without shoulders, or an outline with
            no neckline.
    """
    parse = np.asarray(parse)
    if parse.ndim != 2:
        raise LandmarkError(f"parse must be an (H, W) label map, got shape {parse.shape}")
    if person_rgb is not None:
        parse = sleeves_labelled_as_arms(parse, person_rgb)
    garment = np.isin(parse, UPPER_GARMENT_LABELS)
    if not garment.any():
        raise LandmarkError(f"parse has no upper garment (CIHP labels {UPPER_GARMENT_LABELS})")
    frame, arms = _body_from_pose(body25, parse)
    garment = _bridge_arms(garment, parse, frame)
    contour = outer_contour(garment, "parse upper garment")
    keypoints = np.zeros((NUM_GARMENT_NODES, 2), dtype=np.float64)

    cuffs = {arm.side: _find_cuff(parse, arm, frame) for arm in arms}
    # The evidence: an arm the pose found that shows skin, else any arm that shows skin, else any arm.
    found = [cuffs[arm.side] for arm in arms if arm.detected and cuffs[arm.side].skin_seen]
    seen = [cuff for cuff in cuffs.values() if cuff.skin_seen]
    longest = max(found or seen or cuffs.values(), key=lambda cuff: cuff.reach)
    sleeve = "none" if longest.reach < SLEEVELESS_REACH else "long" if longest.past_elbow else "short"
    for arm in arms:  # a short sleeve on an arm that shows no skin: as long as the other
        if sleeve == "short" and not cuffs[arm.side].skin_seen:
            bone_length = float(np.linalg.norm(np.diff(arm.joints, axis=0), axis=1).sum())
            fraction = min(longest.reach * frame.unit / max(bone_length, 1e-6), 1.0)
            cuffs[arm.side] = longest._replace(point=resample_polyline(arm.joints, [fraction])[0])
    for arm in arms:
        shoulder_node = SIDE_NODES[arm.side][0]
        if sleeve == "none":  # the strap's outer end on the shoulder line
            keypoints[shoulder_node] = last_inside(garment, frame.origin, frame.direction(arm.side, 0.0),
                                                    0.75 * frame.unit)
        else:  # on top of the arm's rounded shoulder
            keypoints[shoulder_node] = last_inside(garment, arm.joints[0], frame.direction(arm.side, -1.0),
                                                    0.4 * frame.unit)

    neck_left, neck_centre, neck_right = _worn_neckline(contour, keypoints[5], keypoints[31], frame)
    keypoints[[0, 2, 4]] = contour.points[[neck_left, neck_centre, neck_right]]
    keypoints[1] = contour.resample(neck_left, neck_centre, [0.5])[0]
    keypoints[3] = contour.resample(neck_centre, neck_right, [0.5])[0]

    torso = garment.astype(np.uint8)  # the garment without its sleeves
    if sleeve != "none":
        for arm in arms:
            shoulder_node, armpit_node, sleeve_nodes = SIDE_NODES[arm.side]
            keypoints[armpit_node] = _worn_armpit(contour, frame, arm.side)
            keypoints[sleeve_nodes] = _worn_sleeve(garment, arm, frame, keypoints[shoulder_node],
                                                   keypoints[armpit_node], cuffs[arm.side].point, sleeve)
            outline = np.round(keypoints[[shoulder_node, *sleeve_nodes, armpit_node]] * 16).astype(np.int32)
            cv2.fillPoly(torso, [outline], 0, cv2.LINE_8, 4)
            cv2.polylines(torso, [outline], True, 0, max(1, round(0.03 * frame.unit)), cv2.LINE_8, 4)
    keypoints[17], keypoints[19], keypoints[18] = _worn_hem(torso.astype(bool), frame)

    for arm in arms:
        shoulder_node, armpit_node, sleeve_nodes = SIDE_NODES[arm.side]
        hem_corner = keypoints[17 if arm.side < 0 else 19]
        if sleeve == "none":
            keypoints[armpit_node] = contour.points[corner_between(
                contour, contour.nearest(keypoints[shoulder_node]), contour.nearest(hem_corner), arm.side)]
            keypoints[sleeve_nodes] = armhole_nodes(keypoints[shoulder_node], keypoints[armpit_node])
        armpit = keypoints[armpit_node]
        keypoints[SIDE_BETWEEN[arm.side]] = armpit + np.array(SIDE_FRACTIONS)[:, None] * (hem_corner - armpit)
    return GarmentLandmarks(keypoints.astype(np.float32), sleeve)


def sleeves_labelled_as_arms(parse: np.ndarray, person_rgb: np.ndarray) -> np.ndarray:
    """The parse with the arm pixels that show the garment, not skin, labelled upper-clothes.

    Human parsers (VITON-HD's own ``image-parse-v3`` among them) often label a tight sleeve as the arm inside
    it. An arm pixel (``ARM_SKIN_LABELS``) closer in CIE Lab to the garment's median colour than to the skin's
    (the face's and neck's median) is sleeve, where those two differ by ``MIN_SKIN_CONTRAST``; only sleeve
    pixels joined to the garment count.

    Args:
        parse: (H, W) uint8 CIHP labels. person_rgb: (H, W, 3) uint8 photo of the same person.

    Returns:
        (H, W) uint8 CIHP labels, a copy; the parse itself where skin and garment cannot be told apart.
    """
    rgb = np.asarray(person_rgb)
    if rgb.shape != (*parse.shape, 3):
        raise LandmarkError(f"person_rgb has shape {rgb.shape} but the parse is {parse.shape}")
    skin, garment, arm = np.isin(parse, SKIN_REFERENCE_LABELS), np.isin(parse, UPPER_GARMENT_LABELS), \
        np.isin(parse, ARM_SKIN_LABELS)
    if skin.sum() < 50 or garment.sum() < 50 or not arm.any():
        return parse
    lab = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)
    skin_colour, garment_colour = np.median(lab[skin], axis=0), np.median(lab[garment], axis=0)
    if np.linalg.norm(skin_colour - garment_colour) < MIN_SKIN_CONTRAST:
        return parse
    colours = lab[arm]
    sleeve = np.zeros(parse.shape, np.uint8)
    sleeve[arm] = np.linalg.norm(colours - garment_colour, axis=1) < np.linalg.norm(colours - skin_colour, axis=1)
    sleeve = cv2.morphologyEx(sleeve, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    _, labels = cv2.connectedComponents((sleeve | garment).astype(np.uint8), connectivity=8)
    joined = np.isin(labels, np.unique(labels[garment])) & (sleeve > 0)
    relabelled = parse.copy()
    relabelled[joined] = UPPER_GARMENT_LABELS[0]
    return relabelled


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
                wrist = elbow + reach * unit_vector(hand_tip - elbow)
            else:
                wrist = 2 * elbow - shoulder
        arms.append(_Arm(side, np.stack([shoulder, elbow, wrist]), skin_label, bool(reliable.all())))
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


def _worn_neckline(contour: Contour, left_shoulder: np.ndarray, right_shoulder: np.ndarray,
                   frame: _TorsoFrame) -> tuple[int, int, int]:
    """Contour indices of the neck corners and the centre front of a worn garment.

    Worn, the shoulder seams run level or rise to the shoulders, so the neck corners are no hull points. On the
    outline over the top from shoulder to shoulder, the centre front is the point deepest below their chord
    (at most ``NECKLINE_DEPTH``: a neckline running into a forearm stops there); each neck corner is the point
    farthest above the chord from its shoulder to the centre front. An outline with no point below the chord
    (a high neck, a collar round the neck) has its centre front on the torso's centre line and its neck corners
    ``NECK_HALF_WIDTH`` to either side.
    """
    unit = frame.unit
    top = contour.path(contour.nearest(left_shoulder), contour.nearest(right_shoulder))
    if len(top) > len(contour) / 2:
        raise LandmarkError("parse: no neckline between the shoulders of the upper garment")
    points = contour.points[top]
    centre = int(np.argmax(np.minimum(signed_side(points, points[0], points[-1]), NECKLINE_DEPTH * unit)))
    if centre in (0, len(top) - 1):  # no dip: a high neck
        across = frame.to_frame(points)[:, 0]
        left, centre, right = (int(np.argmin(np.abs(across - x))) for x in (-NECK_HALF_WIDTH, 0.0, NECK_HALF_WIDTH))
        if not left < centre < right:
            raise LandmarkError("parse: the upper garment's outline has no neckline between the shoulders")
        return int(top[left]), int(top[centre]), int(top[right])
    left = int(np.argmax(-signed_side(points[: centre + 1], points[0], points[centre])))
    right = centre + int(np.argmax(-signed_side(points[centre:], points[centre], points[-1])))
    return int(top[left]), int(top[centre]), int(top[right])


def _find_cuff(parse: np.ndarray, arm: _Arm, frame: _TorsoFrame) -> _Cuff:
    """The first point of the bone shoulder -> elbow -> wrist (-> hand) on the arm's own skin (two samples in a
    row); an arm with no skin showing on its bone is covered to the wrist."""
    hand = arm.joints[2] + 0.2 * frame.unit * unit_vector(arm.joints[2] - arm.joints[1])
    samples, arc = _sample_polyline(np.concatenate([arm.joints, hand[None]]), step=0.5)
    own = labels_at(parse, samples) == arm.skin_label
    starts = np.flatnonzero(own[:-1] & own[1:])
    if not len(starts):
        return _Cuff(arm.joints[2], float(arc[-1]) / frame.unit, True, False)
    first = int(starts[0])
    upper_arm = float(np.linalg.norm(arm.joints[1] - arm.joints[0]))
    return _Cuff(samples[first], float(arc[first]) / frame.unit, bool(arc[first] > upper_arm), True)


def _worn_armpit(contour: Contour, frame: _TorsoFrame, side: int) -> np.ndarray:
    """The armpit (2,) of a sleeved side: the deepest concavity of the outline (at least 0.04 units deep)
    within 0.2 units of ``ARMPIT_PRIOR`` (an arm held away from the body), else the prior itself."""
    prior = frame.to_image([side * ARMPIT_PRIOR[0], ARMPIT_PRIOR[1]])
    defects = convexity_defects(contour.points)
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
        axes[np.isclose(stations, bone_lengths[0])] = unit_vector(bisector)
    normals = arm.side * np.stack([axes[:, 1], -axes[:, 0]], axis=1)  # (4, 2) toward the outer edge
    probes = centres.copy()
    probes[-1] -= axes[-1] * min(2.0, 0.25 * cuff_station)
    outer = _ray_exits(garment, probes, normals, 0.45 * frame.unit)
    inner = _ray_exits(garment, probes, -normals, 0.45 * frame.unit)
    lost = ~labels_at(garment, probes, outside=False)  # the parse lost the sleeve here: nothing to measure
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
    down = unit_vector(np.array([left[1] - right[1], right[0] - left[0]]))  # perpendicular to the hem
    centre = last_inside(body, (left + right) / 2 - 0.5 * frame.unit * down, down, frame.unit)
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


def _ray_exits(mask: np.ndarray, starts: np.ndarray, directions: np.ndarray, max_length: float) -> np.ndarray:
    """Distance (K,) from each start (K, 2) along its unit direction (K, 2) to the first pixel off ``mask``;
    ``inf`` if the ray stays on the mask for ``max_length`` pixels. Samples every half pixel."""
    steps = np.arange(0.0, max_length + 0.5, 0.5)  # (S,)
    samples = starts[:, None, :] + steps[None, :, None] * directions[:, None, :]  # (K, S, 2)
    off = ~labels_at(mask, samples, outside=False)
    return np.where(off.any(axis=1), steps[off.argmax(axis=1)], np.inf)

