"""The person's arms as the pose draws them, at full resolution: tapered capsules along shoulder-elbow-wrist.

Where the old garment hid an arm (a long sleeve replaced by a short one), the target parse network guesses the
arm's shape from a garment-agnostic parse at 128 rows. Trained on synthetic people, on genuine photos it draws
the arm as wide as the old sleeve, with 8-pixel steps at 1024 rows. ``arm_layout`` draws each arm instead as
the union of a disc at every joint and a tapered quad along every bone, radii

    r_shoulder, r_elbow, r_wrist = s * (0.12, 0.10, 0.075) * span

with span the shoulder span (at least 0.77 of the neck-to-hips length, so a person turned sideways keeps arms)
and s the person's own scale: the median, over points of the bones that lie on the person's visible arm, of
the arm's half width there (its distance transform's maximum near the point) over the radius above (clipped to
[0.6, 1.5]); where no arm is visible, 1, or less where the sleeve that hides the arm is narrower (the same ratio
on the sleeve, its 10th percentile: a tight sleeve's arm fits inside it). The proportions are an adult's (upper
arm about 9.5 cm across for 40 cm of shoulders). The outline is drawn with 1/16-pixel vertices at the image's own
size: no steps. Where part of an arm shows (below a short sleeve), each bone's upper joint's disc and the arm's
visible pixels along that bone are joined by their convex hull as well: the pose's bone is often a radius off the
arm, and the arm's hidden part must run into the arm where it shows, not beside it with a step; so are the
wrist's disc and the hand's first rows below a long sleeve's cuff.

``torso`` is the quad of the shoulders and hips grown by the elbow radius (``TORSO``): where the old garment
covered the body rather than an arm (skin there, where the new garment is shorter, rather than the background);
its core (``TORSO_CORE``), the quad with its corners moved the elbow radius towards its centre, is where an arm
in front of the body would show in the photo: where the photo shows the old garment there, it is the body's.

Before any of this, ``wrists_on_hands`` moves a wrist that OpenPose put far short of the hand the parse shows
(a forearm lost in a dark sleeve) onto that hand.

The worn garment's keypoints (stage 1's) are corrected against the body: ``seat_shoulder_seams`` puts the
shoulder seams on the body's top, ``widen_neckline_to_neck`` spreads a neckline narrower than the neck around
it, ``fit_short_sleeves`` rebuilds a short sleeve that disagrees with the
flat sleeve and the pose as a tube along the upper arm and turns every short sleeve around its upper arm,
``centre_long_sleeves`` moves each long sleeve's cuff across onto its forearm, ``lengthen_short_body`` gives a
body shorter, for its shoulder width, than the flat garment's its flat length, and ``widen_hem_to_lower_garment``
moves a hem corner that lies on the photo's lower garment out to its side.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from kgi.data.labels import LEFT_ARM, RIGHT_ARM
from kgi.graphs import BODY_SIDES, HEM_CENTRE, NECKLINE, WARP_SEGMENTS
from kgi.labelmaps import bounding_box, pixels_of, to_parse13

# Pose-graph nodes (``kgi.graphs.POSE_BODY25_INDEX``) of each arm, shoulder to wrist; CIHP's left arm (14) is
# OpenPose's left (BODY_25 5-7).
ARM_NODES = {LEFT_ARM: (5, 6, 7), RIGHT_ARM: (2, 3, 4)}
TORSO_NODES = (2, 5, 9, 8)  # right shoulder, left shoulder, left hip, right hip
ARM_RADII = (0.12, 0.10, 0.075)  # shoulder, elbow, wrist: fractions of the span
MIN_SPAN_OF_TORSO = 0.77  # the span is at least this fraction of the neck-to-hips length
SCALE_RANGE = (0.6, 1.5)
MIN_BONE_SAMPLES = 6  # bone points on the visible arm needed to measure its width
SLEEVE_PERCENTILE = 10  # an arm hidden in a sleeve fits inside it at all but a tenth of its bones' points
BRIDGE_REACH = 2.0  # visible arm pixels this many capsule radii from a bone are that bone's (a pose is a radius off)
HAND_REACH = 3.0  # the hand starts within this many wrist radii past the wrist (``_bridge_to_visible``)
_SUBPIXEL = 4  # cv2 drawing's fractional bits: vertices at 1/16 pixel
TORSO, TORSO_CORE = 1, 2  # values of arm_layout's torso map
# ``wrists_on_hands``: a wrist whose hand starts farther from the shoulder than the wrist by more than this many
# forearms (elbow to wrist) is misplaced; the hand must start within MAX_FOREARM upper arms of the elbow.
HAND_BEYOND_WRIST = 0.5
MAX_FOREARM = 2.0
MOVED_WRIST_CONFIDENCE = 0.5


def wrists_on_hands(body25: np.ndarray, parse_cihp: np.ndarray) -> np.ndarray:
    """The (25, 3) BODY_25 pose with each wrist that lies far short of its own hand moved onto the hand.

    OpenPose loses a forearm in a dark sleeve against a dark background: it puts the wrist (and often the elbow)
    high, by a hand and more, at a low confidence. The arm the pose draws then ends above the hand the photo
    shows, and a hidden forearm is painted short of it. The hand is the arm's piece of the (H, W) uint8 CIHP
    parse (its arm label; pixels, like the pose) that reaches farthest from the shoulder; where its point
    nearest the elbow (where the hand leaves the sleeve) lies farther from the shoulder than the wrist does, by
    more than ``HAND_BEYOND_WRIST`` of the forearm, and within ``MAX_FOREARM`` upper arms of the elbow, the wrist
    moves there (an undetected wrist too, confidence ``MOVED_WRIST_CONFIDENCE``). A bare forearm that shows
    from its sleeve down starts above the wrist and is left alone.
    """
    pose = np.array(body25, dtype=np.float32)
    parse13 = to_parse13(parse_cihp)
    found = pose[:, 2] > 0
    upper_arms = [float(np.linalg.norm(pose[a, :2] - pose[b, :2])) for a, b, *_ in ARM_NODES.values()
                  if found[a] and found[b]]
    if not upper_arms:
        return pose
    upper_arm = max(upper_arms)
    for label, (shoulder_joint, elbow_joint, wrist_joint) in ARM_NODES.items():  # arm nodes are BODY_25's joints
        if not (found[shoulder_joint] and found[elbow_joint]):
            continue
        arm = parse13 == label
        box = bounding_box(arm)
        if box is None:
            continue
        shoulder, elbow, wrist = pose[[shoulder_joint, elbow_joint, wrist_joint], :2]
        _, pieces = cv2.connectedComponents(arm[box].view(np.uint8), connectivity=8)
        rows, columns = np.nonzero(pieces)
        points = np.stack([columns + box[1].start, rows + box[0].start], 1).astype(np.float32)  # (N, 2) x, y
        piece_of = pieces[rows, columns]  # (N,)
        hand = points[piece_of == piece_of[np.argmax(np.linalg.norm(points - shoulder, axis=1))]]
        top = hand[np.argmin(np.linalg.norm(hand - elbow, axis=1))]  # where the hand leaves the sleeve
        short_of_hand = not found[wrist_joint] or (np.linalg.norm(top - shoulder) - np.linalg.norm(wrist - shoulder)
                                                   > HAND_BEYOND_WRIST * np.linalg.norm(wrist - elbow))
        if short_of_hand and np.linalg.norm(top - elbow) <= MAX_FOREARM * upper_arm:
            pose[wrist_joint] = (*top, max(float(pose[wrist_joint, 2]), MOVED_WRIST_CONFIDENCE))
    return pose


def body_span(nodes: np.ndarray) -> float:
    """The shoulder span in pixels, at least ``MIN_SPAN_OF_TORSO`` of the neck-to-hips length; ``nodes`` (10, 2)."""
    shoulders = float(np.linalg.norm(nodes[2] - nodes[5]))
    torso = float(np.linalg.norm(nodes[1] - (nodes[8] + nodes[9]) / 2))
    return max(shoulders, MIN_SPAN_OF_TORSO * torso, 1.0)


def _bone_points(joints: np.ndarray, radii: np.ndarray, count: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Points along each bone (10-90% of its length) and the radius the capsule has there: (N, 2), (N,)."""
    ts = np.linspace(0.1, 0.9, count)[:, None]
    points = [joints[i] * (1 - ts) + joints[i + 1] * ts for i in range(len(joints) - 1)]
    expected = [radii[i] * (1 - ts[:, 0]) + radii[i + 1] * ts[:, 0] for i in range(len(joints) - 1)]
    return np.concatenate(points), np.concatenate(expected)


def arm_scale(joints: np.ndarray, radii: np.ndarray, visible: np.ndarray, percentile: float = 50.0
              ) -> float | None:
    """The arm's width over the default (module docstring), measured on ``visible``, clipped to ``SCALE_RANGE``;
    None when fewer than ``MIN_BONE_SAMPLES`` points of the bones lie on it.

    Args:
        joints: (3, 2) shoulder, elbow, wrist in pixels. radii: (3,) the default radii there.
        visible: (H, W) bool the arm's visible skin (or the sleeve around it).
        percentile: of the ratios over the bones' points: the median for the arm's own skin, a low one for the
            sleeve the arm must fit inside everywhere.
    """
    if np.count_nonzero(visible) < 4 * MIN_BONE_SAMPLES:
        return None
    height, width = visible.shape
    # On the arm's box and a pixel more (zero: every arm pixel's nearest zero is in it), the whole image's
    # transform; zero elsewhere, as outside the arm, so a window's largest distance is found on the box.
    box = bounding_box(visible, 1)
    top, left = box[0].start, box[1].start
    distance = cv2.distanceTransform(visible[box].astype(np.uint8), cv2.DIST_L2, 3)
    points, expected = _bone_points(joints, radii)
    ratios = []
    for (x, y), radius in zip(points, expected):
        reach = max(int(radius), 1)  # the bone may run off the arm's middle: the largest distance nearby
        column, row = int(round(x)), int(round(y))
        if not (0 <= row < height and 0 <= column < width) or not visible[row, column]:
            continue
        window = distance[max(row - reach - top, 0):row + reach + 1 - top,
                          max(column - reach - left, 0):column + reach + 1 - left]  # (row, column) is in the box
        ratios.append(float(window.max()) / max(radius, 1.0))
    if len(ratios) < MIN_BONE_SAMPLES:
        return None
    return float(np.clip(np.percentile(ratios, percentile), *SCALE_RANGE))


def _draw_capsules(canvas: np.ndarray, joints: np.ndarray, radii: np.ndarray, value: int) -> None:
    """Draw discs at ``joints`` (N, 2) and tapered quads between consecutive ones into ``canvas`` (uint8)."""
    scale = 1 << _SUBPIXEL
    for (x, y), radius in zip(joints, radii):
        cv2.circle(canvas, (int(round(x * scale)), int(round(y * scale))), int(round(radius * scale)), value, -1,
                   cv2.LINE_8, _SUBPIXEL)
    for start, end, r_start, r_end in zip(joints[:-1], joints[1:], radii[:-1], radii[1:]):
        direction = end - start
        length = float(np.linalg.norm(direction))
        if length < 1e-3:
            continue
        normal = np.array([-direction[1], direction[0]]) / length
        quad = np.stack([start + normal * r_start, end + normal * r_end, end - normal * r_end,
                         start - normal * r_start])
        cv2.fillConvexPoly(canvas, np.round(quad * scale).astype(np.int32), value, cv2.LINE_8, _SUBPIXEL)


def _fill_hull_with_disc(canvas: np.ndarray, points: np.ndarray, centre: np.ndarray, radius: float,
                         value: int) -> None:
    """Fill into ``canvas`` (uint8) the convex hull of ``points`` (N, 2) x, y and the disc of ``radius`` at
    ``centre``."""
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)], 1)  # (24, 2)
    hull = cv2.convexHull(np.round(np.concatenate([points, centre + radius * circle]) * (1 << _SUBPIXEL))
                          .astype(np.int32))
    cv2.fillConvexPoly(canvas, hull, value, cv2.LINE_8, _SUBPIXEL)


def _bridge_to_visible(canvas: np.ndarray, joints: np.ndarray, radii: np.ndarray, visible: np.ndarray,
                       value: int) -> None:
    """Draw into ``canvas`` (uint8), for each bone, the convex hull of its upper joint's disc and the visible arm
    along it (``visible`` (H, W) bool; each row's first and last pixel, which have the same hull): the arm's hidden
    part runs from the joint into the arm where it shows, whatever the pose's bone says (``BRIDGE_REACH``). Past
    the wrist, the hull of the wrist's disc and the first wrist radius of the visible arm within ``HAND_REACH``
    wrist radii (the hand below a long sleeve's cuff, wider than the wrist's disc): the painted forearm runs into
    the hand, where the disc's round end left a notch of background on either side. ``joints`` (3, 2) pixels,
    ``radii`` (3,)."""
    box = bounding_box(visible)
    if box is None:
        return
    rows, columns = pixels_of(visible[box])  # row by row
    ends = np.r_[True, rows[1:] != rows[:-1]] | np.r_[rows[1:] != rows[:-1], True]  # each row's first and last
    pixels = np.stack([columns[ends] + box[1].start, rows[ends] + box[0].start], 1).astype(np.float64)  # (N, 2) x, y
    for bone, (start, end, r_start, r_end) in enumerate(zip(joints[:-1], joints[1:], radii[:-1], radii[1:])):
        direction = end - start
        length2 = float(direction @ direction)
        if length2 < 1e-6:
            continue
        along = (pixels - start) @ direction / length2  # 0 at the upper joint, 1 at the lower
        across = np.abs((pixels - start) @ np.array([-direction[1], direction[0]])) / np.sqrt(length2)
        near = (along >= 0) & (along <= 1) & (across <= BRIDGE_REACH * (r_start + (r_end - r_start) * along))
        if np.count_nonzero(near) >= MIN_BONE_SAMPLES:  # rows of visible arm along the bone
            _fill_hull_with_disc(canvas, pixels[near], start, r_start, value)
        if bone == len(joints) - 2:  # the forearm
            past = (pixels - end) @ direction / np.sqrt(length2)  # pixels past the wrist along the forearm
            hand = (past >= 0) & (past <= HAND_REACH * r_end) & (across <= BRIDGE_REACH * r_end)
            if np.count_nonzero(hand) >= MIN_BONE_SAMPLES:
                _fill_hull_with_disc(canvas, pixels[hand & (past <= past[hand].min() + r_end)], end, r_end, value)


def arm_layout(nodes: np.ndarray, visible_arms: np.ndarray, clothing: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Each arm's silhouette and the torso, at the image's size.

    Args:
        nodes: (10, 2) pose-graph nodes in pixels (``TryOnSample.pose_nodes`` times width and height).
        visible_arms: (H, W) uint8 13-class labels: ``LEFT_ARM`` / ``RIGHT_ARM`` on the person's visible arm
            skin, anything else elsewhere (measures each arm's width).
        clothing: (H, W) bool the photo's upper garment, or None: an arm too little of which shows to measure
            is no wider than the sleeve that hides it (``arm_scale`` on the sleeve at ``SLEEVE_PERCENTILE``, at
            most 1). The default radii stuck out of a tight sleeve: the painted arm, clipped by the sleeve's
            outline, stepped in at the cuff.

    Returns ``(arms, torso)``: (H, W) uint8 ``LEFT_ARM`` / ``RIGHT_ARM`` inside each arm's capsules, 0 elsewhere
    (the right arm drawn last), and (H, W) uint8 ``TORSO_CORE`` on the torso's core, ``TORSO`` on the rest of the
    torso grown by the elbow radius, 0 elsewhere.
    """
    nodes = np.asarray(nodes, dtype=np.float64)
    default = np.array(ARM_RADII) * body_span(nodes)
    arms = np.zeros(visible_arms.shape, np.uint8)
    for label, indices in ARM_NODES.items():
        joints = nodes[list(indices)]
        visible = visible_arms == label
        scale = arm_scale(joints, default, visible)
        if scale is None and clothing is not None:
            in_sleeve = arm_scale(joints, default, clothing | visible, SLEEVE_PERCENTILE)
            scale = None if in_sleeve is None else min(in_sleeve, 1.0)
        radii = default * (1.0 if scale is None else scale)
        _draw_capsules(arms, joints, radii, label)
        _bridge_to_visible(arms, joints, radii, visible, label)
    torso = np.zeros(visible_arms.shape, np.uint8)
    corners = nodes[list(TORSO_NODES)]
    quad = np.round(corners * (1 << _SUBPIXEL)).astype(np.int32)
    cv2.fillPoly(torso, [quad], TORSO, cv2.LINE_8, _SUBPIXEL)
    cv2.polylines(torso, [quad], True, TORSO, max(int(round(2 * default[1])), 1), cv2.LINE_8, _SUBPIXEL)
    centre = corners.mean(0)
    reach = np.linalg.norm(corners - centre, axis=1, keepdims=True)
    core = centre + (corners - centre) * np.clip(1 - default[1] / np.maximum(reach, 1e-6), 0, 1)
    cv2.fillPoly(torso, [np.round(core * (1 << _SUBPIXEL)).astype(np.int32)], TORSO_CORE, cv2.LINE_8, _SUBPIXEL)
    return arms, torso


# The garment's outline as its keypoints draw it (``kgi.graphs``): neckline, image-right shoulder, sleeve and side
# down to the hem, back up the image-left side and sleeve to the image-left shoulder.
GARMENT_OUTLINE = (0, 1, 2, 3, 4, 31, *range(30, 5, -1), 5)
NECK_TO_SHOULDER_NODES = (0, 1, 2, 5)  # nose, neck, both shoulders
SLEEVE_SEGMENTS = ("left_up", "left_low", "right_up", "right_low")
# The shoulder's top reaches this many shoulder radii above the joint: it is 0.75-1.33 radii above it on four
# genuine VITON-HD people, 0.4-1.1 half a radius outside it (their parses against their OpenPose joints).
SHOULDER_CAP = 1.25


def shoulder_zone(nodes: np.ndarray, garment_keypoints: np.ndarray, shape: tuple[int, int]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the body is between the neck and the arms, where the new garment covers it and where its sleeves
    are: three (H, W) bool.

    Args:
        nodes: (10, 2) pose-graph nodes in pixels. garment_keypoints: (32, 2) the worn garment's keypoints in
            pixels (stage 1's output). shape: (H, W).

    Returns ``(zone, covered, sleeves)``: the convex hull of the nose, neck and shoulders with a disc of the
    shoulder radius (``ARM_RADII[0]`` of the span) around each shoulder and a half ellipse above it, as wide and
    ``SHOULDER_CAP`` times as tall (the neck, the trapezius and the shoulders' tops); the garment's keypoint outline
    (``GARMENT_OUTLINE``) filled, where the new garment lies; and its four sleeve segments
    (``kgi.graphs.WARP_SEGMENTS``) filled.
    """
    nodes = np.asarray(nodes, dtype=np.float64)
    radius = ARM_RADII[0] * body_span(nodes)
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    circle = radius * np.stack([np.cos(angles), np.sin(angles)], 1)  # (24, 2)
    # The upper half, as tall as SHOULDER_CAP radii and one radius wide: the shoulder's top, not the arm below it
    # nor a loose sleeve beside or above it.
    cap = circle[circle[:, 1] <= 0] * [1.0, SHOULDER_CAP]
    points = np.concatenate([nodes[list(NECK_TO_SHOULDER_NODES)], nodes[2] + circle, nodes[5] + circle,
                             nodes[2] + cap, nodes[5] + cap])
    scale = 1 << _SUBPIXEL
    zone = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.round(points * scale).astype(np.int32))
    cv2.fillConvexPoly(zone, hull, 1, cv2.LINE_8, _SUBPIXEL)
    keypoints = np.asarray(garment_keypoints, np.float64)
    sleeves = _filled([keypoints[list(WARP_SEGMENTS[name])] for name in SLEEVE_SEGMENTS], shape)
    return zone.astype(bool), garment_outline(keypoints, shape), sleeves


def garment_outline(garment_keypoints: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: where the worn garment lies, its keypoint outline (``GARMENT_OUTLINE``) filled; (32, 2)
    pixel ``garment_keypoints``, ``shape`` (H, W)."""
    return _filled([np.asarray(garment_keypoints, np.float64)[list(GARMENT_OUTLINE)]], shape)


def _filled(polygons: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the union of ``polygons``, each (N, 2) pixel vertices, filled at 1/16-pixel precision."""
    canvas = np.zeros(shape, np.uint8)
    for polygon in polygons:
        cv2.fillPoly(canvas, [np.round(polygon * (1 << _SUBPIXEL)).astype(np.int32)], 1, cv2.LINE_8, _SUBPIXEL)
    return canvas.astype(bool)


def sleeved_arm_pixels(nodes: np.ndarray, garment: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """Pixels whose nearest point on an arm's bones is garment: (H, W) bool. An arm drawn there is inside a
    sleeve, so what shows is the sleeve (or the body beside it), never the arm's skin.

    The nearest point of each pixel on the four bones (shoulder-elbow and elbow-wrist of each arm,
    ``_nearest_on_bones``) is read at the pixel that holds it.

    Args:
        nodes: (10, 2) pose-graph nodes in pixels. garment: (H, W) bool where the target parse is garment.
        where: (H, W) bool the pixels asked about (default: all), the others False.
    """
    height, width = garment.shape
    sleeved = np.zeros(garment.shape, bool)
    rows, columns = pixels_of(np.ones(garment.shape, bool) if where is None else where)
    if not len(rows):
        return sleeved
    points = np.stack([columns, rows], 1).astype(np.float32)  # (N, 2) x, y
    (best, nearest), *others = (_nearest_on_bones(points, np.asarray(nodes, np.float32)[list(indices)])
                                for indices in ARM_NODES.values())
    for distance, on_bones in others:
        closer = distance < best
        best[closer], nearest[closer] = distance[closer], on_bones[closer]
    nearest_columns = np.clip(np.round(nearest[:, 0]).astype(np.int64), 0, width - 1)
    nearest_rows = np.clip(np.round(nearest[:, 1]).astype(np.int64), 0, height - 1)
    sleeved[rows, columns] = garment[nearest_rows, nearest_columns]
    return sleeved


# Per shoulder seam of the worn garment (``kgi.graphs``): its neckline end with the neckline node beside it, and
# its shoulder end with the sleeve's outer node beside it.
SHOULDER_SEAMS = (((0, 1), (5, 6)), ((4, 3), (31, 30)))
SEAM_SAMPLES = np.linspace(0.3, 0.9, 7)  # along the seam from its neckline end: the neck rises near that end
SEAM_REACH = 2.0  # a seam this many shoulder radii off the body's top is seated on it; farther, it sits there
SEAM_REACH_PAIRED = 4.0  # ... unless the other seam was seated: then this many
HAIR_ABOVE = 0.005  # of the height (at least 2 pixels): a body top this close under hair is the hair's edge
# A body top steeper than this (rows per column, measured an eighth of the reach to either side) is the side of
# the arm past the shoulder's end, not the shoulder's top.
MAX_TOP_SLOPE = 1.0


def seat_shoulder_seams(garment_keypoints: np.ndarray, nodes: np.ndarray, body: np.ndarray,
                        hair: np.ndarray | None = None, face: np.ndarray | None = None) -> np.ndarray:
    """The worn garment's keypoints with its shoulder seams on the body's top: (32, 2) pixels.

    Stage 1, trained on synthetic people, places a garment on a genuine person up to 5% of the height low or
    high (more on one side of a person turned to the camera), and its seams do not follow a sloping shoulder; a
    seam below the shoulders' top leaves a band of body the garment should cover (painted as bare skin: a "cold
    shoulder"), one above them floats over the background. Per seam, at ``SEAM_SAMPLES`` t of the way along it,
    the body's top is the first ``body`` pixel of that column within ``SEAM_REACH`` shoulder radii (of
    ``ARM_RADII``) above or below the seam; a column whose body starts above that window (an off-shoulder top
    sits well below the shoulders), that has none, or whose body starts right under ``hair`` (``HAIR_ABOVE``)
    below the seam gives no estimate: hair hides the body's top, which is at the hair's lower edge or above it
    (long hair hanging in front of the chest), so it may raise a seam but not lower it, and only where fewer than
    half the columns see the body's top clear of hair (hair's edge on a collar standing up the neck raised a crew
    neckline to the jaw); nor does a column whose body starts right under the ``face``: that is the neck under the
    jaw (a head tilted over a shoulder), not the shoulder's top; nor does a column where the body's top is steeper
    than ``MAX_TOP_SLOPE``: that is the side of the arm past the shoulder's end, where stage 1 put the seam's end
    beyond it (the seam was lowered down the arm, and the shoulder above painted bare). With estimates from at
    least half the columns, a line fitted to offset(t), within the offsets found, gives the seam's offset at its
    neckline end, offset(0), and at its shoulder end, offset(1); the shoulder end (and the sleeve's outer node
    beside it) moves by offset(1), vertically. The neckline is a ring around the neck: its five nodes move as one,
    by the mean of the seams' offset(0), and turn as the line through the two shoulder ends' offset(1) does (moved
    end by end, with the neck rising beside each end, a crew neckline stood 30-40 pixels higher on one side than
    on the other on genuine people with a raised shoulder or hair over one, a horn up the side of the neck). A
    shoulder rounds off below the line's end: where the body's top in the shoulder end's own column
    (``_body_top_below``) lies lower still, the end goes down onto it (a tee's square shoulder corner stood 15-40
    pixels above genuine people's shoulders at 1024 rows). A garment on one shoulder is on both: where one seam is
    seated and the other is not, the other is looked for within ``SEAM_REACH_PAIRED`` radii.

    Args:
        garment_keypoints: (32, 2) the worn garment's keypoints in pixels (stage 1's output).
        nodes: (10, 2) pose-graph nodes in pixels.
        body: (H, W) bool, where the photo shows the upper body (its old garment, neck and arms).
        hair: (H, W) bool, where the photo shows hair: a column whose body starts right under hair, below the
            seam, gives no estimate (long hair over a shoulder hides its top).
        face: (H, W) bool, where the photo shows the face: a column whose body starts right under it gives no
            estimate.
    """
    seated = np.asarray(garment_keypoints, np.float64).copy()
    radius = ARM_RADII[0] * body_span(np.asarray(nodes, np.float64))
    offsets = [_seam_offsets(seated, seam, body, hair, face, SEAM_REACH * radius) for seam in SHOULDER_SEAMS]
    if any(found is not None for found in offsets):
        offsets = [found if found is not None
                   else _seam_offsets(seated, seam, body, hair, face, SEAM_REACH_PAIRED * radius)
                   for found, seam in zip(offsets, SHOULDER_SEAMS)]
    # The neckline is a ring around the neck: it moves as one, by the mean of the seams' neckline-end offsets, and
    # turns as the line through the shoulder ends' offsets does (the torso tilting).
    neck_offsets = [found[0] for found in offsets if found is not None]
    shift = float(np.mean(neck_offsets)) if neck_offsets else 0.0
    tilt = 0.0  # rows per column
    if all(found is not None for found in offsets):
        (_, (left_end, _)), (_, (right_end, _)) = SHOULDER_SEAMS
        columns = seated[right_end, 0] - seated[left_end, 0]
        tilt = (offsets[1][1] - offsets[0][1]) / columns if abs(columns) >= 1 else 0.0
    centre = (seated[0, 0] + seated[4, 0]) / 2
    seated[list(NECKLINE), 1] += shift + tilt * (seated[list(NECKLINE), 0] - centre)
    for (_, shoulder_end), found in zip(SHOULDER_SEAMS, offsets):
        if found is not None:
            seated[list(shoulder_end), 1] += found[1]
        # The line is straight; a shoulder rounds off at its end, below the line's end.
        end_seen = _body_top_below(seated[shoulder_end[0]], body, hair, face, SEAM_REACH * radius)
        if end_seen is not None and end_seen[0] > 0:
            seated[list(shoulder_end), 1] += end_seen[0]
    return seated


# ``widen_neckline_to_neck``: the neck's width is read this far (a fraction of the height) above the worn
# neckline's corners, where it is the neck's own and not its flare into the shoulders; the ring is widened at most
# this many times.
NECK_PROBE = 0.02
MAX_NECKLINE_WIDENING = 1.5


def widen_neckline_to_neck(garment_keypoints: np.ndarray, neck: np.ndarray) -> np.ndarray:
    """The worn garment's keypoints with its neckline at least as wide as the neck: (32, 2) pixels.

    A neckline goes around the neck, so its corners (nodes 0 and 4) lie at the neck's sides or outside them, never
    on its front. Stage 1 draws the worn neckline narrower, for the shoulders, than the flat one (about 0.8 times on
    the shop photos), and a crew neck whose flat opening is a third of its shoulders' span then had its corners 3-25
    pixels inside the neck at 1024 rows: the garment's shoulders climbed the neck's sides as two points beside the
    collar. Where the photo shows the neck (``neck``, (H, W) bool) ``NECK_PROBE`` of the height above the higher
    corner and its extent on that row is wider than the corners are apart, the five neckline nodes are spread
    horizontally about the corners' midpoint until the corners are that far apart (at most
    ``MAX_NECKLINE_WIDENING`` times); rows are kept. A neck the photo does not show there (a collar, hair, a turned
    head) changes nothing.
    """
    widened = np.asarray(garment_keypoints, np.float64).copy()
    corners = widened[[0, 4]]  # (2, 2) x, y
    row = int(round(corners[:, 1].min() - NECK_PROBE * neck.shape[0]))
    if not 0 <= row < neck.shape[0]:
        return widened
    columns = np.flatnonzero(neck[row])
    span = corners[1, 0] - corners[0, 0]
    if not columns.size or span <= 0:
        return widened
    scale = min((columns[-1] - columns[0] + 1) / span, MAX_NECKLINE_WIDENING)
    if scale > 1:
        centre = corners[:, 0].mean()
        widened[list(NECKLINE), 0] = centre + (widened[list(NECKLINE), 0] - centre) * scale
    return widened


def _seam_offsets(keypoints: np.ndarray, seam: tuple[tuple[int, int], tuple[int, int]], body: np.ndarray,
                  hair: np.ndarray | None, face: np.ndarray | None, reach: float) -> tuple[float, float] | None:
    """How far down the body's top lies from a seam's neckline end and shoulder end, in pixels, within
    ``reach``; None where fewer than half the columns along the seam give an estimate
    (``seat_shoulder_seams``)."""
    (neck_end, _), (shoulder_end, _) = seam
    start, end = keypoints[neck_end], keypoints[shoulder_end]
    found_t, found_offset, clear = [], [], []  # clear: the body's top is not right under hair
    for t in SEAM_SAMPLES:
        seen = _body_top_below(start + t * (end - start), body, hair, face, reach)
        if seen is None:
            continue
        offset, under_hair = seen
        found_t.append(t)
        found_offset.append(offset)
        clear.append(not under_hair)
    if 2 * len(found_t) < len(SEAM_SAMPLES):
        return None
    if 2 * sum(clear) >= len(SEAM_SAMPLES):  # enough of the body's top in sight: the hair's edge is left out
        found_t, found_offset = np.compress(clear, found_t), np.compress(clear, found_offset)
    slope, intercept = np.polyfit(found_t, found_offset, 1)
    # Within the offsets found: the line extrapolated from the seam's outer half to its neckline end (hair over the
    # inner half) would tilt the seam by what it never saw.
    low, high = max(min(found_offset), -reach), min(max(found_offset), reach)
    neck_offset, shoulder_offset = np.clip([intercept, intercept + slope], low, high)
    return float(neck_offset), float(shoulder_offset)


def _body_top_below(point: np.ndarray, body: np.ndarray, hair: np.ndarray | None, face: np.ndarray | None,
                    reach: float) -> tuple[int, bool] | None:
    """How far down the body's top lies from a (2,) pixel ``point`` in its column, within ``reach`` above or
    below it, and whether it lies right under hair; None where the column gives no estimate: the body starts
    above that window or not in it, the top is steeper than ``MAX_TOP_SLOPE`` (the arm's side past the
    shoulder's end), lies right under the face (the neck under the jaw), or right under hair below the point
    (hair hides the body's top, which is at the hair's lower edge or above it: it may raise a seam, never lower
    one). See ``seat_shoulder_seams``."""
    height, width = body.shape
    hair_rows = max(round(HAIR_ABOVE * height), 2)
    step = max(round(reach / 8), 1)
    x, y = np.round(point).astype(int)
    top, bottom = y - int(reach), y + int(reach) + 1
    if not (step <= x < width - step and 0 < top and bottom <= height) or body[top, x]:
        return None
    # The body's top in the window: in the column, and a step to either side.
    found = [np.flatnonzero(body[top:bottom, column])[:1] for column in (x - step, x, x + step)]
    if any(not rows.size for rows in found):
        return None
    left, first, right = (top + int(rows[0]) for rows in found)
    if abs(right - left) > 2 * step * MAX_TOP_SLOPE:
        return None
    offset = first - y
    above = slice(max(first - hair_rows, 0), first)
    under_hair = hair is not None and bool(hair[above, x].any())
    if (offset > 0 and under_hair) or (face is not None and face[above, x].any()):
        return None
    return offset, under_hair


class WornSleeve(NamedTuple):
    """One sleeve's garment nodes (``kgi.graphs``) and the arm it is worn on (pose nodes shoulder, elbow, wrist)."""

    nodes: tuple[int, ...]  # all eight sleeve nodes
    armhole: tuple[int, int]  # the garment's shoulder node and armpit node
    outer_edge: tuple[int, int, int, int]  # the outer edge: near the shoulder, elbow, near the cuff, cuff
    elbow: tuple[int, int]  # outer and inner elbow nodes
    cuff: tuple[int, int]  # outer and inner cuff nodes
    off_armhole: tuple[int, ...]  # the nodes away from the armhole: elbows, near the cuff and the cuff
    inner_top: int  # the inner edge's node next to the armpit
    arm: tuple[int, int, int]
    near_cuff: tuple[int, int]  # outer and inner nodes between the elbow and the cuff


WORN_SLEEVES = (
    WornSleeve(tuple(range(6, 14)), (5, 14), (6, 7, 8, 9), (7, 12), (9, 10), (7, 8, 9, 10, 11, 12), 13, (2, 3, 4),
               (8, 11)),
    WornSleeve(tuple(range(23, 31)), (31, 22), (30, 29, 28, 27), (29, 24), (27, 26), (24, 25, 26, 27, 28, 29), 23,
               (5, 6, 7), (28, 25)),
)
GARMENT_TORSO_NODES = (0, 2, 4, 5, 14, 15, 16, 17, 18, 19, 20, 21, 22, 31)  # neckline, shoulders, armpits, sides
SLEEVE_LENGTH_RANGE = (0.35, 1.6)  # a worn sleeve's length over the flat one's times the torso scale (a long one bends)
SLEEVE_WIDTH_RANGE = (0.5, 2.0)  # the same for its cuff's width
OUTER_EDGE_RANGE = (0.5, 1.75)  # the same for its outer edge's length (``WornSleeve.outer_edge``)
# A short sleeve is at most this many times the flat one's length times the torso scale. On 300 held-out synthetic
# pairs stage 1's short sleeves, right to 0.0097 of the height on average, measure 0.97-1.39 by its own torso
# scale (95th percentile 1.29; the ground truth's 0.92-1.10 by its own); on the shop photos of ``../shared``, up
# to 1.45 (a wrap top's sleeve down to near the elbow).
MAX_SHORT_SLEEVE_LENGTH = 1.3
TUBE_ACROSS = 2 / np.pi  # a tube's width seen from the front over its width laid flat (a cylinder)
OFF_ARM_REACH = 3.0  # a sleeve node lies within this many half cuff widths (at least elbow radii) of the arm's bones
# A sleeved garment's shoulder node lies at least this fraction of the span outside the shoulder joint, across the
# upper arm (the shoulder's edge; synthetic ground truth: 0.124 at the 5th percentile, 0.145 the median)
SHOULDER_OUTSIDE = 0.10
MIN_BONE = 0.1  # of the span: a sleeve axis or a bone shorter than this has no direction (a lost wrist is its elbow)


def _scale_between(source: np.ndarray, target: np.ndarray) -> float:
    r"""The scale :math:`|a|` of the least-squares similarity :math:`z' = a z + b` from (K, 2) ``source`` to
    ``target`` points (``kgi.baseline.fit_similarity``'s, in numpy): :math:`a = \sum_k \bar s_k t_k / \sum_k
    |s_k|^2` on centred points taken as complex numbers."""
    s, t = source[:, 0] + 1j * source[:, 1], target[:, 0] + 1j * target[:, 1]
    s_centred, t_centred = s - s.mean(), t - t.mean()
    return float(abs((np.conj(s_centred) * t_centred).sum()) / max(float((np.abs(s_centred) ** 2).sum()), 1e-12))


def _turn(points: np.ndarray, pivot: np.ndarray, current: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Rotate (N, 2) ``points`` about ``pivot`` by the angle that turns direction ``current`` onto ``wanted``."""
    angle = np.arctan2(current[0] * wanted[1] - current[1] * wanted[0], current @ wanted)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (points - pivot) @ rotation.T + pivot


def sleeve_is_plausible(worn: np.ndarray, flat: np.ndarray, nodes: np.ndarray, sleeve: WornSleeve,
                        torso_scale: float) -> bool:
    """Whether a worn sleeve agrees with its flat shape and the pose (``fit_short_sleeves``).

    Args:
        worn: (32, 2) worn keypoints, flat: (32, 2) flat-garment keypoints, nodes: (10, 2) pose nodes, all in
            pixels. sleeve: which sleeve. torso_scale: the flat garment's size on the person (worn / flat).
    """
    def length(keypoints):  # armhole midpoint to cuff midpoint
        return np.linalg.norm(keypoints[list(sleeve.cuff)].mean(0) - keypoints[list(sleeve.armhole)].mean(0))

    def outer_edge(keypoints):
        return np.linalg.norm(np.diff(keypoints[list(sleeve.outer_edge)], axis=0), axis=1).sum()

    def width(keypoints):
        return np.linalg.norm(keypoints[sleeve.cuff[0]] - keypoints[sleeve.cuff[1]])

    expected_length, expected_width = torso_scale * length(flat), torso_scale * width(flat)
    if not SLEEVE_LENGTH_RANGE[0] * expected_length <= length(worn) <= SLEEVE_LENGTH_RANGE[1] * expected_length:
        return False
    expected_edge = torso_scale * outer_edge(flat)
    if not OUTER_EDGE_RANGE[0] * expected_edge <= outer_edge(worn) <= OUTER_EDGE_RANGE[1] * expected_edge:
        return False
    if not SLEEVE_WIDTH_RANGE[0] * expected_width <= width(worn) <= SLEEVE_WIDTH_RANGE[1] * expected_width:
        return False
    reach = OFF_ARM_REACH * max(expected_width / 2, ARM_RADII[1] * body_span(nodes))
    return max(_distance_to_bones(worn[list(sleeve.off_armhole)], nodes[list(sleeve.arm)])) <= reach


def _cuff_on_bone(worn: np.ndarray, sleeve: WornSleeve, shoulder: np.ndarray, along: np.ndarray) -> np.ndarray:
    """(8, 2) the sleeve's nodes turned about its armhole midpoint until its cuff's midpoint lies on the upper arm's
    bone line (through ``shoulder`` along unit ``along``), as far from the armhole as before; the line's point
    nearest the armhole where it passes farther than that."""
    armhole, cuff = worn[list(sleeve.armhole)].mean(0), worn[list(sleeve.cuff)].mean(0)
    radius, offset = np.linalg.norm(cuff - armhole), shoulder - armhole
    # |offset + t along| = radius: t^2 + 2 (offset . along) t + |offset|^2 - radius^2 = 0; the root nearer the cuff.
    half_b = offset @ along
    discriminant = half_b ** 2 - offset @ offset + radius ** 2
    roots = -half_b + np.array([-1.0, 1.0]) * np.sqrt(max(discriminant, 0.0))
    on_line = shoulder + roots[np.argmin(np.abs(roots - (cuff - shoulder) @ along))] * along
    return _turn(worn[list(sleeve.nodes)], armhole, cuff - armhole, on_line - armhole)


def on_forearm(points: np.ndarray, nodes: np.ndarray, arm: int) -> np.ndarray:
    """(N,) bool: which of (N, 2) pixel ``points`` (x, y) lie nearer the forearm's bone (elbow to wrist) of
    ``arm`` (``LEFT_ARM`` or ``RIGHT_ARM``) than its upper arm's; ``nodes`` (10, 2) pose-graph nodes in pixels."""
    shoulder, elbow, wrist = np.asarray(nodes, np.float64)[list(ARM_NODES[arm])]
    to_forearm = _distance_to_bones(points, np.stack([elbow, wrist]))
    return to_forearm < _distance_to_bones(points, np.stack([shoulder, elbow]))


def _nearest_on_bones(points: np.ndarray, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each of (N, 2) ``points``' nearest point on the polyline through (J, 2) ``joints`` (the first bone's on a
    tie) and its squared distance there: (N,), (N, 2), in the points' dtype. On bone a -> b the nearest point is
    a + clip((p - a).(b - a) / |b - a|^2, 0, 1) (b - a)."""
    best, nearest = None, None
    for start, end in zip(joints[:-1], joints[1:]):
        bone = end - start
        t = np.clip((points - start) @ bone / max(float(bone @ bone), 1e-12), 0, 1)
        on_bone = start + t[:, None] * bone  # (N, 2)
        offset = points - on_bone
        distance = offset[:, 0] * offset[:, 0] + offset[:, 1] * offset[:, 1]
        if best is None:
            best, nearest = distance, on_bone
        else:
            closer = distance < best
            best[closer], nearest[closer] = distance[closer], on_bone[closer]
    return best, nearest


def _distance_to_bones(points: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Each of (N, 2) ``points``' distance to the polyline through (J, 2) ``joints``: (N,)."""
    return np.sqrt(_nearest_on_bones(points, joints)[0])


def fit_short_sleeves(garment_keypoints: np.ndarray, cloth_keypoints: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    r"""The worn garment's keypoints with each short sleeve around its upper arm: (32, 2) pixels.

    First, a shoulder node (5, 31) that lies less than ``SHOULDER_OUTSIDE`` of the span outside its shoulder
    joint, across the upper arm, moves out to it with its sleeve: a sleeved garment's shoulder is the shoulder's
    edge (synthetic ground truth: 0.145 of the span outside the joint, 0.124 at the 5th percentile), and on
    genuine photos stage 1 puts some inside the joint (a wrap top's image-right shoulder, 0.06-0.09 of the span
    inside), leaving the shoulder between the sleeve and the torso to be painted as skin.

    Stage 1, trained on synthetic people, sometimes draws a genuine person's short sleeve as a long one: its
    outer edge runs down the arm to the elbow while its inner edge folds into the chest, and the warp pastes the
    sleeve as a wing across the torso. With the torso scale :math:`s` (the scale of the least-squares
    similarity from the flat garment's ``GARMENT_TORSO_NODES`` to the worn ones), a sleeve is implausible
    (``sleeve_is_plausible``) when, against :math:`s` times the flat sleeve's, its length (armhole midpoint
    to cuff midpoint) lies outside ``SLEEVE_LENGTH_RANGE``, its outer edge's length (``WornSleeve.outer_edge``)
    outside ``OUTER_EDGE_RANGE`` or its cuff's width outside ``SLEEVE_WIDTH_RANGE``, or when a node away from
    the armhole lies farther from the arm's bones (shoulder-elbow-wrist) than ``OFF_ARM_REACH`` half cuff widths
    (at least elbow radii of ``ARM_RADII``).

    Such a sleeve is rebuilt from the flat one as a tube around the upper arm, in the arm's frame (``along``
    the shoulder -> elbow bone, ``across`` it): the flat sleeve is turned about its armhole midpoint (shoulder and
    armpit nodes) so that its axis (-> cuff midpoint) follows the upper arm (as ``kgi.baseline`` bends sleeves),
    and each node's offset from the armhole midpoint, scaled by :math:`s`, is placed from the worn armhole
    midpoint with its across-arm part times ``TUBE_ACROSS`` (a tube seen from the front: 2/pi of its flat
    width), shifted across the arm so that the inner edge's top node (``WornSleeve.inner_top``) lies in line
    with the worn armpit (``_tube_along``):

    .. math::
        p_i = \bar a_w + s\,(u_i\,\hat e + (\tfrac{2}{\pi} v_i + c)\,\hat n)

    with :math:`(u_i, v_i)` the turned flat offsets along and across the arm, :math:`\hat e, \hat n` the arm's
    unit vectors and :math:`c` the shift.

    A short sleeve longer than ``MAX_SHORT_SLEEVE_LENGTH`` times :math:`s` times the flat one is then shortened
    to that along its axis (armhole midpoint to cuff midpoint), its width kept (``_shortened``): beyond the 95th
    percentile of stage 1's own sleeves on synthetic people, where they are right (5 of 300 held-out pairs
    change, sleeve node error unchanged); on genuine photos stage 1 draws some a half longer than the flat
    sleeve (a wrap top's sleeve covering the upper arm to near the elbow).

    Every short sleeve, rebuilt or not, is then turned about its armhole midpoint until its cuff's midpoint lies
    on the upper arm's bone line (``_cuff_on_bone``): a sleeve hangs around the arm. On the synthetic people
    stage 1 learnt from, the cuff's midpoint lies on that line (0.007 and 0.004 of the shoulder span outside it
    on average, image-left and image-right, 103 short-sleeved held-out pairs) and stage 1 puts it there (0.025 and
    0.006); on genuine photos stage 1 puts the image-left sleeve's 0.09 of the span outside it on average (22
    try-ons) and single sleeves up to 0.15 off on either side: the sleeve hung beside the arm, and the shoulder
    between it and the torso was painted as skin.

    Only short sleeves (the flat sleeve, times :math:`s`, shorter than the upper arm) are changed: a long one would
    need bending at the elbow, where stage 1 does better on synthetic people. Sleeveless garments (the sleeve's
    nodes on the armhole), long sleeves and the rest of the garment are kept.

    Args:
        garment_keypoints: (32, 2) the worn garment's keypoints in pixels (stage 1's output).
        cloth_keypoints: (32, 2) the flat garment's keypoints in pixels of an image of the same size.
        nodes: (10, 2) pose-graph nodes in pixels.
    """
    worn, flat, nodes, torso_scale = _sleeve_inputs(garment_keypoints, cloth_keypoints, nodes)
    span = body_span(nodes)
    min_length = MIN_BONE * span
    between_shoulders = nodes[[sleeve.arm[0] for sleeve in WORN_SLEEVES]].mean(0)
    for sleeve in WORN_SLEEVES:
        upper_arm = nodes[sleeve.arm[1]] - nodes[sleeve.arm[0]]
        flat_armhole = flat[list(sleeve.armhole)].mean(0)
        axis_length = torso_scale * np.linalg.norm(flat[list(sleeve.elbow)].mean(0) - flat_armhole)
        sleeve_length = _flat_sleeve_length(flat, sleeve, torso_scale)
        upper_arm_length = np.linalg.norm(upper_arm)
        long_sleeve = sleeve_length > upper_arm_length
        if axis_length < min_length or upper_arm_length < min_length or long_sleeve:
            continue  # a sleeveless garment's nodes lie on the armhole; a long sleeve is kept
        along = upper_arm / upper_arm_length
        outward = np.array([-along[1], along[0]])
        outward *= np.sign((nodes[sleeve.arm[0]] - between_shoulders) @ outward) or 1.0  # away from the torso
        shortfall = SHOULDER_OUTSIDE * span - (worn[sleeve.armhole[0]] - nodes[sleeve.arm[0]]) @ outward
        if shortfall > 0:  # the shoulder node and the sleeve out to the shoulder's edge
            worn[[sleeve.armhole[0], *sleeve.nodes]] += shortfall * outward
        if not sleeve_is_plausible(worn, flat, nodes, sleeve, torso_scale):
            worn[list(sleeve.nodes)] = _tube_along(flat, worn, sleeve, along, torso_scale)
        worn[list(sleeve.nodes)] = _shortened(worn, sleeve, MAX_SHORT_SLEEVE_LENGTH * sleeve_length)
        worn[list(sleeve.nodes)] = _cuff_on_bone(worn, sleeve, nodes[sleeve.arm[0]], along)
    return worn


def _sleeve_inputs(garment_keypoints: np.ndarray, cloth_keypoints: np.ndarray, nodes: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The sleeve fits' inputs in float64 (the worn keypoints a copy to change) and the torso scale: the scale of
    the least-squares similarity from the flat garment's ``GARMENT_TORSO_NODES`` to the worn ones."""
    worn = np.asarray(garment_keypoints, np.float64).copy()
    flat = np.asarray(cloth_keypoints, np.float64)
    return worn, flat, np.asarray(nodes, np.float64), _scale_between(flat[list(GARMENT_TORSO_NODES)],
                                                                      worn[list(GARMENT_TORSO_NODES)])


def _flat_sleeve_length(flat: np.ndarray, sleeve: WornSleeve, torso_scale: float) -> float:
    """The flat sleeve's length (armhole midpoint to cuff midpoint) times the torso scale: its length worn."""
    return torso_scale * float(np.linalg.norm(flat[list(sleeve.cuff)].mean(0) - flat[list(sleeve.armhole)].mean(0)))


def centre_long_sleeves(garment_keypoints: np.ndarray, cloth_keypoints: np.ndarray, nodes: np.ndarray
                        ) -> np.ndarray:
    r"""The worn garment's keypoints with each long sleeve's forearm part centred on the forearm: (32, 2) pixels.

    A sleeve hangs around the arm. On 102 long-sleeved held-out synthetic pairs (``kgi synth``, 256 rows) the
    ground truth's cuff midpoint and near-cuff midpoint (``WornSleeve.near_cuff``) lie on the forearm's bone line
    (at the 90th percentile, exactly), and stage 1 puts them 0.03-0.04 of the shoulder span inside it on average
    (towards the body; 0.04-0.06 at the 90th percentile). On genuine photos it puts them 0.03-0.07 inside on
    average and up to 0.10 (08909_00 in the blouse 02783_00): the sleeve hung beside the forearm, and the
    forearm between it and the old sleeve's outline was painted as skin beside the sleeve.

    Each of the two pairs (the cuff, the nodes near it) moves across the forearm line (elbow -> wrist, extended)
    by its midpoint's distance from it, :math:`p_i \leftarrow p_i - ((\bar p - e) \cdot \hat n)\,\hat n` with
    :math:`\bar p` the pair's midpoint, :math:`e` the elbow and :math:`\hat n` the forearm's unit normal;
    nothing moves along the arm (a long sleeve may end past the wrist), and the elbow's nodes stay where stage 1
    bent the sleeve. On 300 held-out synthetic pairs (``python -m bench.kinds``) the seated keypoints' error falls
    from 0.0111 to 0.0109 of the height, each kind with long sleeves by 0.0002-0.0003, no pair worse; moving the
    elbow's pair onto the bones as well did less (the long sleeves' nodes 0.94% of the height off, against 0.93%
    with the cuffs alone and 1.02% before).

    Only long sleeves (the flat sleeve, times the torso scale of ``fit_short_sleeves``, longer than the upper
    arm) on an arm whose upper arm and forearm are at least ``MIN_BONE`` of the span long are moved: OpenPose's
    lost elbow or wrist takes the joint before it (``kgi.data.pose``), and a short sleeve measured against an upper
    arm of length 0 would count as long.

    Args:
        garment_keypoints: (32, 2) the worn garment's keypoints in pixels.
        cloth_keypoints: (32, 2) the flat garment's keypoints in pixels of an image of the same size.
        nodes: (10, 2) pose-graph nodes in pixels.
    """
    worn, flat, nodes, torso_scale = _sleeve_inputs(garment_keypoints, cloth_keypoints, nodes)
    min_length = MIN_BONE * body_span(nodes)
    for sleeve in WORN_SLEEVES:
        shoulder, elbow, wrist = nodes[list(sleeve.arm)]
        upper_arm_length, forearm_length = np.linalg.norm(elbow - shoulder), float(np.linalg.norm(wrist - elbow))
        if min(upper_arm_length, forearm_length) < min_length:  # an elbow or wrist lost: no arm to hang it on
            continue
        if _flat_sleeve_length(flat, sleeve, torso_scale) <= upper_arm_length:  # a short sleeve
            continue
        along = (wrist - elbow) / forearm_length
        normal = np.array([-along[1], along[0]])
        for pair in (sleeve.cuff, sleeve.near_cuff):
            worn[list(pair)] -= ((worn[list(pair)].mean(0) - elbow) @ normal) * normal
    return worn


def _shortened(worn: np.ndarray, sleeve: WornSleeve, max_length: float) -> np.ndarray:
    """(8, 2) the sleeve's nodes with their offsets from the armhole midpoint along its axis (to the cuff's
    midpoint) scaled so that the cuff lies at most ``max_length`` from the armhole; across the axis unchanged."""
    armhole = worn[list(sleeve.armhole)].mean(0)
    axis = worn[list(sleeve.cuff)].mean(0) - armhole
    length = float(np.linalg.norm(axis))
    nodes = worn[list(sleeve.nodes)]
    if length <= max_length:
        return nodes
    along = axis / length
    offsets = nodes - armhole
    return nodes - ((1 - max_length / length) * (offsets @ along))[:, None] * along


def _tube_along(flat: np.ndarray, worn: np.ndarray, sleeve: WornSleeve, along: np.ndarray, torso_scale: float
                ) -> np.ndarray:
    """(8, 2) the flat sleeve rebuilt as a tube along unit ``along`` from the worn armhole, its inner edge's top in
    line with the worn armpit (``fit_short_sleeves``)."""
    flat_armhole = flat[list(sleeve.armhole)].mean(0)
    flat_axis = flat[list(sleeve.cuff)].mean(0) - flat_armhole
    turned = _turn(flat[list(sleeve.nodes)], flat_armhole, flat_axis, along) - flat_armhole
    worn_armhole = worn[list(sleeve.armhole)].mean(0)
    across = np.array([-along[1], along[0]])
    coordinates = torso_scale * np.stack([turned @ along, TUBE_ACROSS * (turned @ across)], 1)  # (8, 2)
    inner_top = sleeve.nodes.index(sleeve.inner_top)
    coordinates[:, 1] += (worn[sleeve.armhole[1]] - worn_armhole) @ across - coordinates[inner_top, 1]
    return worn_armhole + coordinates[:, :1] * along + coordinates[:, 1:] * across


BODY_BELOW_ARMPITS = (15, 16, 17, 18, 19, 20, 21)  # the garment's sides and hem
# ``lengthen_short_body`` stretches a body at most this much: a body stage 1 drew shorter still is a wrong
# prediction that a longer one would not make right.
MAX_BODY_STRETCH = 1.5


def lengthen_short_body(garment_keypoints: np.ndarray, cloth_keypoints: np.ndarray) -> np.ndarray:
    r"""The worn garment's keypoints with its body at least as long, for its shoulder width, as the flat
    garment's: (32, 2) pixels.

    A garment hangs from the shoulders: seen from the front, its length below the armpits :math:`L` (armpits'
    midpoint to hem centre, node 18) over its shoulder width :math:`W` (nodes 5 to 31) is the flat garment's,
    or more where the body's depth takes some of its width (00034_00's own untucked t-shirt: 1.21, above any of
    the flat t-shirts' 0.82-1.14). Generator 1.4 broke that (sleeved worn bodies 0.73-0.76 of the flat ratio),
    stage 1 learnt it, and regular t-shirts ended above genuine hips over a band of midriff; generator 1.5 and
    the stage 1 fine-tuned on it keep the proportions, but on genuine photos stage 1 still draws some bodies
    short (08909_00 in 06802_00: 0.79 of the flat ratio). A body with :math:`L / W` below the flat ratio is
    stretched below the armpits along its axis (armpits' midpoint -> hem centre, unit :math:`\hat d`) until it
    matches; node :math:`p` moves to

    .. math::
        p + (k - 1)\,((p - a) \cdot \hat d)\,\hat d, \qquad k = (L / W)_{flat} / (L / W)_{worn}

    with :math:`a` the armpits' midpoint, :math:`k` at most ``MAX_BODY_STRETCH``; its widths and everything
    above the armpits stay.

    Args:
        garment_keypoints: (32, 2) the worn garment's keypoints in pixels.
        cloth_keypoints: (32, 2) the flat garment's keypoints in pixels.
    """
    worn = np.asarray(garment_keypoints, np.float64).copy()
    flat = np.asarray(cloth_keypoints, np.float64)

    def length_and_width(keypoints):
        armpits = keypoints[[14, 22]].mean(0)
        return np.linalg.norm(keypoints[HEM_CENTRE] - armpits), np.linalg.norm(keypoints[31] - keypoints[5])

    (flat_length, flat_width), (worn_length, worn_width) = length_and_width(flat), length_and_width(worn)
    if min(flat_width, worn_length, worn_width) < 1e-6:
        return worn
    stretch = min((flat_length / flat_width) / (worn_length / worn_width), MAX_BODY_STRETCH)
    if stretch <= 1:
        return worn
    armpits = worn[[14, 22]].mean(0)
    axis = (worn[HEM_CENTRE] - armpits) / worn_length
    below = worn[list(BODY_BELOW_ARMPITS)]
    worn[list(BODY_BELOW_ARMPITS)] = below + (stretch - 1) * ((below - armpits) @ axis)[:, None] * axis
    return worn


# ``widen_hem_to_lower_garment`` moves a hem corner no farther out than the lower garment's side over its top
# WAISTBAND rows (a fraction of the image's height: a skirt flaring below its waistband is wider than the body a
# top hangs over), and by at most MAX_HEM_WIDENING of the hem's width (a parse whose lower garment runs into the
# background).
WAISTBAND = 0.02
MAX_HEM_WIDENING = 0.5


def widen_hem_to_lower_garment(garment_keypoints: np.ndarray, lower_garment: np.ndarray) -> np.ndarray:
    r"""The worn garment's keypoints with each hem corner out at least to the side of the lower garment on its
    row: (32, 2) pixels.

    A top hangs over the hips. Where its hem corner lies on a row where the photo shows the lower garment (the
    trousers or skirt below the old top's hem, or round a tucked-in top's waist), the body there is at least as
    wide as that garment. Stage 1 sees the joints, not the body's outline, and on genuine photos draws some hems
    inside the hips (00034_00, whose loose old shirt hid her waist); the trousers' top then juts out beside the
    new hem under a band of painted wall. A hem corner :math:`c` inside the lower garment's outer edge :math:`e`
    on its row moves out to it, and each side node above it by its share of the way down from the armpit
    :math:`a`, so the side stays straight:

    .. math::
        p_x \leftarrow p_x + \frac{p_y - a_y}{c_y - a_y}\,\delta, \qquad
        \delta = \pm\min(|e - c_x|, |t - c_x|, m\,w)

    The edges are the lower garment's largest piece's: :math:`e` on the corner's row, :math:`t` over the piece's
    top ``WAISTBAND`` of the image's height (its waistband, or where the old top hid the rest: a skirt flares
    below it); :math:`w` is the hem's width (node 17 to 19) and :math:`m` ``MAX_HEM_WIDENING``.

    Args:
        garment_keypoints: (32, 2) the worn garment's keypoints in pixels.
        lower_garment: (H, W) bool, the photo's lower garment (``kgi.data.labels.LOWER_GARMENT_CIHP``).
    """
    worn = np.asarray(garment_keypoints, np.float64).copy()
    count, pieces, stats, _ = cv2.connectedComponentsWithStats(lower_garment.view(np.uint8), connectivity=8)
    if count < 2:
        return worn
    largest = pieces == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    top = int(np.flatnonzero(largest.any(axis=1))[0])
    waistband = np.flatnonzero(largest[top:top + max(1, round(WAISTBAND * largest.shape[0]))].any(axis=0))
    hem_width = abs(worn[19, 0] - worn[17, 0])
    for nodes, outward in zip(BODY_SIDES, (-1, 1)):
        armpit, corner = worn[nodes[0]], worn[nodes[-1]]
        row = round(corner[1])
        if not 0 <= row < largest.shape[0] or corner[1] - armpit[1] < 1:
            continue
        columns = np.flatnonzero(largest[row])
        if columns.size == 0:
            continue
        edge = max(columns.min(), waistband.min()) if outward < 0 else min(columns.max(), waistband.max()) + 1
        shortfall = outward * (edge - corner[0])
        if shortfall <= 0:
            continue
        shift = outward * min(shortfall, MAX_HEM_WIDENING * hem_width)
        for node in nodes[1:]:
            share = np.clip((worn[node, 1] - armpit[1]) / (corner[1] - armpit[1]), 0.0, 1.0)
            worn[node, 0] += share * shift
    return worn
