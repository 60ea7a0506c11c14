"""Landmarks of a flat garment photo (cloth + mask), from the mask's outer contour and what the photo shows.

0. *Outline.* Ties and straps hanging below ``HANGING_FROM`` of the garment's height (parts narrower than
   ``HANGING_WIDTH`` of its width) are cut off, and so are wider ones hanging past the hem (``TIE_WIDTH``): at
   its middle always, beside it where the sleeves end above the hem (the outline is read again without them); a
   silhouette that is no top (trousers, a folded garment) is refused, and so is one whose collar or hem runs off
   the photo (``kgi.landmarks.checks.framing_problems``). The *body length* runs from the outline's top to the
   bottom of its centre column (the hem centre).
1. *Neckline.* The convex-hull edge over the top centre spans the neckline dip; the neck corners 0/4 are where
   the outline leaves that edge, node 2 is where it crosses their perpendicular bisector, 1/3 the arc midpoints.
   Where the photo shows a front neckline below the back's (``kgi.landmarks.neckline``), 1-3 follow it. A top
   whose outline dips less than ``MIN_DIP`` under that edge (a collar, a mock neck) and whose front neckline lies
   deeper than ``NOTCH`` of the corners' spacing has its corners at the collar top's ends instead (``FLAT_TOP``):
   a V as deep as it is wide between corners bunched at the middle was cut into the collar, worn, as a notch.
2. *Armpits.* The mask is cut at the centre line; the deepest convexity defect of each half below the neckline
   holds the armpit candidate: its sharpest concave corner near its full depth (the slit's top), else its
   deepest point. A sleeve's tip sticks out of the chord neck corner -> candidate by
   ``SLEEVELESS_PROTRUSION`` of the garment height, reaches ``SLEEVE_REACH_OUT`` past the armpit and lies
   ``SLEEVE_TIP_DEPTH`` down the chord (a sleeveless top's shoulder corner lies higher); the two sides decide
   together (:func:`_sleeve_tip`). A sleeve hanging close to the body leaves a slit the mask closes, so the
   armpit is where the lines of the body's side and the sleeve's inner edge meet; an armpit outside
   ``ARMPIT_DEPTH_RANGE`` of the body length (the slit closed to the hem) is put at ``ARMPIT_DEPTH_PRIOR`` on
   the line of the sleeve's inner edge. Two sleeves' armpits more than ``ARMPITS_APART`` of the body length
   apart in height are not level: the one read higher (a slit open at its top, the lines meeting far up it) is
   its concavity instead where that is nearer the other's height. A sleeveless side bends twice between neck
   corner and hem corner: at the shoulder strap and the armpit (:func:`_bare_armhole`); without a corner in the
   range, off the line shoulder -> hem corner by ``ARMHOLE_BEND`` (a strap straight above the side), the armpit
   is the side's point level with the other side's armpit, or (neither has one) level with where the strap
   joins the body (:func:`_strap_joins_body`), else at the prior.
3. *Sleeves.* The cuff corners are the extreme points along the sleeve axis turned 45 degrees to either side;
   the axis is the bisector of the sleeve's two edges. The shoulder is the corner farthest out of the chord
   from the neck corner to the outer edge abreast of the armpit; found nearer the centre line than
   ``SHOULDER_INSIDE_ARMPIT`` of the armpit's distance, it is no corner (a sleeve cut in one with the body, a
   sloping polo shoulder) and the shoulder is the top straight above the armpit. Where the cuff found lies short
   of the sleeve's end, it is the end along the axis from the armhole out (``kgi.landmarks.sleeves``); for a
   cornerless sleeve that axis is straight out of the armhole. A cuff much narrower than the armhole is the far
   corner of a sleeve hanging beside the body: its cuff is then the level, straight hem from that corner back
   toward the armpit. Nodes 6-8 and 11-13 lie on cross-sections of
   the axis from the armhole centre (midpoint of shoulder and armpit) to the cuff centre: a short sleeve's at
   ``SHORT_STATIONS``, a long one's at the elbow (one shoulder width down the axis) and halfway to either end;
   a sleeve is long if its axis is ``LONG_SLEEVE_REACH`` shoulder widths long.
4. *Body.* Between the armpits along the bottom, the hem corners 17/19 are the extreme points down-left and
   down-right (at most ``HEM_CORNER_BELOW`` body lengths below the hem centre), the hem centre 18 the hem's
   arc-length midpoint, the side nodes thirds of the side.
5. *Checks.* Landmarks that fail ``kgi.landmarks.checks`` (order, symmetry, on the mask, a top's length) are
   refused with the reasons, not returned.

A sleeveless garment spreads its eight sleeve nodes evenly on the straight armhole line shoulder -> armpit, as
``kgi.graphs`` documents.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from kgi.graphs import NUM_GARMENT_NODES
from kgi.landmarks.geometry import (SIDE_BETWEEN, SIDE_FRACTIONS, SIDE_NODES, Contour, GarmentLandmarks, LandmarkError,
                                    armhole_nodes, check_mask, convexity_defects, farthest_outside, outer_contour,
                                    outside_distance, point_segment_distance, resample_polyline, signed_side,
                                    unit_vector)
from kgi.landmarks.checks import framing_problems, garment_problems, landmark_problems
from kgi.landmarks.neckline import front_neckline
from kgi.landmarks.sleeves import SHORT_STATIONS, flat_sleeve

# A sleeve tip closer than this fraction of the garment height outside the chord neck corner -> armpit is no
# sleeve (a sleeveless top's shoulder strap).
SLEEVELESS_PROTRUSION = 0.08
# Concavities shallower than this fraction of the garment height are outline noise, not armpits.
MIN_ARMPIT_DEPTH = 0.01
# A sleeveless side's armpit is a corner if the outline bends there by this fraction of the garment height off
# the line shoulder -> hem corner (a strap straight above the side bends by a pixel or two).
ARMHOLE_BEND = 0.005
# A sleeve whose axis (armhole centre -> cuff centre) is at least this many shoulder widths (node 5 -> 31, or the
# chest's 14 -> 22 if wider) long is long: it passes the elbow, the upper arm being about one shoulder width.
LONG_SLEEVE_REACH = 1.05
# A sleeve reaches out past its armpit by at least this fraction of the garment height (a sleeveless top's strap
# corner lies above or inside its armpit).
SLEEVE_REACH_OUT = 0.04
# ... and its tip lies at least this fraction of the way down from the neck corner to the armpit (the outline's
# farthest point out of that chord is a sleeveless top's shoulder corner if it lies higher).
SLEEVE_TIP_DEPTH = 0.3
# Where an armpit may lie, as fractions of the body length (top of the outline to the bottom of its centre
# column) below the top, and where it is put when the outline does not show it (a long sleeve lying against the
# body, the slit between them closed in the mask).
ARMPIT_DEPTH_RANGE = (0.15, 0.62)
ARMPIT_DEPTH_PRIOR = 0.38
# Hem corners lie at most this fraction of the body length below the hem centre.
HEM_CORNER_BELOW = 0.06
# A top whose outline dips less than this fraction of its height under the hull edge over its top centre has no
# neckline dip: that is a collar's top edge, a few pixels uneven (0-0.28% on four genuine collars and mock necks,
# turned or not; a neckline's back dips 0.8-19%) ...
MIN_DIP = 0.004
# ... and ends where its outline falls this fraction of the garment's height below the top ...
FLAT_TOP = 0.02
# ... and where the hull edge over the centre spans less than this fraction of that top, the top is rounded (its
# hull a chain of short edges, the one over the centre a sliver of it: 01260's mock neck mirrored read its neckline
# as 4% of its top's width) and the top's ends are its neck corners; ...
ROUNDED_TOP = 0.5
# ... and its neck corners are those ends where a front neckline between the hull edge's ends is deeper than this
# fraction of their spacing (a notch: 01260's mock neck, 1.0; not a polo's placket, 0.6, nor a turtleneck's front
# edge, 0.15).
NOTCH = 0.8
# Sleeves' armpits further apart in height than this fraction of the body length are not level (a third of what
# ``kgi.landmarks.checks`` refuses).
ARMPITS_APART = 0.05
# Below this fraction of the garment height, parts narrower than ``HANGING_WIDTH`` of the garment width are
# hanging ties or straps, not garment body (cut before the outline is read).
HANGING_FROM = 0.6
HANGING_WIDTH = 0.06
# Of a garment whose sleeves end above the hem (short or none), a part narrower than TIE_WIDTH of the width that
# starts below HANGING_FROM and hangs more than TIE_BELOW_HEM of the height below the hem (``_ties``) is a tie, cut
# too: a wrap top's tie knotted at the side, 9% of the width (04469: read as the body's side, its end as the hem
# corner, 4% of the height below the hem centre, it made stage 1 draw the garment lopsided, one sleeve down to
# near the elbow). A long sleeve's cuff may hang as low, beside the body or splayed out.
TIE_WIDTH = 0.15
TIE_BELOW_HEM = 0.05
# A tie centred within TIE_MIDDLE of the width of the middle column (a tie-front knot) is cut on any garment, no
# sleeve hanging there, when the row TIE_ON_HEM of the height above its top is at least twice TIE_WIDTH wide (it
# hangs from the hem).
TIE_MIDDLE = 0.2
TIE_ON_HEM = 0.03
# The armpit is the top corner of the slit between sleeve and body: among the points of the deepest concavity at
# least ARMPIT_CORNER_DEPTH of its depth deep, the sharpest inward turn (over ARMPIT_CORNER_STEP of the garment
# height either side) if it turns by ARMPIT_CORNER_TURN degrees or more. The concavity's deepest point slid down
# a body side that curves in below the corner: 30-55 pixels low on the polo 09163, the sweater 01260 and the
# Minnie tee's image-right side 04743 (whose sleeve was then read as hanging beside the body).
ARMPIT_CORNER_DEPTH = 0.8
ARMPIT_CORNER_STEP = 0.01
ARMPIT_CORNER_TURN = 60.0


def flat_garment_keypoints(cloth_rgb: np.ndarray, cloth_mask: np.ndarray) -> GarmentLandmarks:
    """The 32 keypoints of a flat, front-view product photo of an upper garment (method: module docstring).

    Args:
        cloth_rgb: (H, W, 3) uint8 RGB garment photo; checked against the mask, the outline comes from the mask.
        cloth_mask: (H, W) bool garment silhouette; its largest connected part is the garment.

    Returns:
        :class:`GarmentLandmarks`: (32, 2) float32 pixel keypoints and the detected sleeve type.

    Raises:
        LandmarkError: bad shapes, an empty or all-garment mask, an outline with no top edge, a garment cut off by
            the photo's top or bottom edge (``kgi.landmarks.checks.framing_problems``), a garment that is no top
            (``kgi.landmarks.checks.garment_problems``: trousers, a dress to the knee, a folded garment), or
            landmarks that fail their own checks (``kgi.landmarks.checks.landmark_problems``); the message says
            which and what to send instead.
    """
    rgb = np.asarray(cloth_rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise LandmarkError(f"cloth_rgb must be an (H, W, 3) RGB image, got shape {rgb.shape}")
    if np.shape(cloth_mask) != rgb.shape[:2]:
        raise LandmarkError(f"cloth_mask has size {np.shape(cloth_mask)} but cloth_rgb has {rgb.shape[:2]}")
    trimmed = _without_thin_parts(check_mask(cloth_mask, "cloth_mask"))
    middle_ties, side_ties = _ties(trimmed)
    mask = trimmed & ~middle_ties  # no sleeve hangs at the middle
    _refuse_if_cut(mask)
    _refuse(garment_problems(mask), "the garment is not a top the method handles",
            "send a photo of one upper garment laid flat, front up")
    try:
        landmarks, refusal = _read(rgb, mask), None
    except LandmarkError as error:  # perhaps misread by a tie
        landmarks, refusal = None, error
    if landmarks is None or landmarks.sleeve != "long":  # a narrow part hanging past the hem is no cuff: a tie
        if side_ties.any():
            try:
                untied = _read(rgb, mask & ~side_ties)
                if untied.sleeve != "long":
                    return untied
            except LandmarkError:
                pass
    if refusal is not None:
        raise refusal
    return landmarks


def _read(rgb: np.ndarray, mask: np.ndarray) -> GarmentLandmarks:
    """``flat_garment_keypoints`` of a checked silhouette, its hanging parts cut."""
    contour = outer_contour(mask, "cloth_mask")
    garment_height = float(np.ptp(contour.points[:, 1]))
    rows = _BodyRows.of(mask, contour)
    armpit_band = rows.armpit_band()
    keypoints = np.zeros((NUM_GARMENT_NODES, 2), dtype=np.float64)

    # 1. Neckline. Under a collar's top with no dip, a front neckline deeper than NOTCH of the corners' spacing
    # would cut a notch into the collar: the corners are the collar top's ends instead, unless no front neckline
    # shows between those (a shirt's collar: the bottom of its opening, found between the hull edge's ends, is
    # node 2; the shirt 09176 scaled to 0.7 in its frame put it on the collar's top, 14% of the height up).
    corners, collar_top = _neck_corners(contour)
    readings = []
    for neck in (dict(zip((-1, +1), corners)), dict(zip((-1, +1), collar_top or corners))):
        neck_centre = _bisector_crossing(contour, neck[-1], neck[+1])
        keypoints[[0, 2, 4]] = contour.points[[neck[-1], neck_centre, neck[+1]]]
        keypoints[1] = contour.resample(neck[-1], neck_centre, [0.5])[0]
        keypoints[3] = contour.resample(neck_centre, neck[+1], [0.5])[0]
        front = front_neckline(rgb, mask, keypoints[[0, 4]], keypoints[2], rows.hem - rows.top)
        readings.append((neck, keypoints[:5].copy(), front))
        if (collar_top is None or front is None
                or front[1, 1] - keypoints[[0, 4], 1].max() <= NOTCH * (keypoints[4, 0] - keypoints[0, 0])):
            break
    if len(readings) == 2 and front is None:  # the collar top's ends show no front neckline: the first reading
        neck, keypoints[:5], front = readings[0]

    # 2. Armpit candidates; a sleeve sticks out of the chord neck corner -> armpit.
    centre_x = int(round((keypoints[0, 0] + keypoints[4, 0]) / 2))
    sleeve_paths, tips, armpits, scores = {}, {}, {}, {}
    for side in (-1, +1):
        candidate = _armpit_candidate(mask, centre_x, keypoints[[0, 4, 2]], side, MIN_ARMPIT_DEPTH * garment_height,
                                      armpit_band[0])
        if candidate is None:
            continue
        armpit = contour.nearest(candidate)
        path = contour.up_the_side(armpit, neck[side], side)
        sleeve_paths[side], armpits[side] = path, armpit
        tips[side], scores[side] = _sleeve_tip(contour.points[path], side, garment_height)
    if sum(scores.values()) < 2:  # the two sides together: a garment has two sleeves or none
        sleeve_paths, tips, armpits = {}, {}, {}
    shoulders, cornerless = {}, {}  # cornerless: sleeveless sides with no armhole corner -> their hem corner
    for side in (-1, +1):
        if side not in armpits:  # sleeveless
            hem_corner = int(np.argmax(contour.points @ np.array([float(side), 1.0])))
            shoulders[side], armpits[side] = _bare_armhole(contour, neck[side], hem_corner, side)
            corner, ends = contour.points[[armpits[side]]], contour.points[[hem_corner, shoulders[side]]]
            bend = abs(outside_distance(corner, ends[0], ends[1], side)[0])  # off the line shoulder -> hem corner
            if bend < ARMHOLE_BEND * garment_height or not armpit_band[0] <= corner[0, 1] <= armpit_band[1]:
                cornerless[side] = hem_corner
    for side, hem_corner in cornerless.items():  # level with the other side's corner, else where the strap joins
        row = (contour.points[armpits[-side], 1] if -side not in cornerless
               else _strap_joins_body(mask, contour.points[shoulders[side]], centre_x, side, armpit_band))
        side_path = contour.up_the_side(hem_corner, shoulders[side], side)
        armpits[side] = int(side_path[np.argmin(np.abs(contour.points[side_path, 1] - row))])

    # 3. Hem: on the clockwise path armpit 22 -> hem -> armpit 14.
    body = contour.path(armpits[+1], armpits[-1])
    body = body[contour.points[body, 1] <= rows.at(1 + HEM_CORNER_BELOW)]  # not a tie hanging below the hem
    hem = {side: int(body[np.argmax(contour.points[body] @ np.array([float(side), 1.0]))]) for side in (-1, +1)}
    keypoints[17], keypoints[19] = contour.points[hem[-1]], contour.points[hem[+1]]
    keypoints[18] = contour.resample(hem[+1], hem[-1], [0.5])[0]

    # 4. Shoulders, armpits, sides, sleeves.
    sleeves, body_sides = {}, {}
    for side, (shoulder_node, armpit_node, _) in SIDE_NODES.items():
        body_sides[side] = contour.points[contour.up_the_side(hem[side], armpits[side], side)]
        if side in sleeve_paths:
            keypoints[armpit_node], keypoints[shoulder_node], sleeves[side] = flat_sleeve(
                contour.points[sleeve_paths[side]], tips[side], body_sides[side], armpit_band, centre_x)
        else:
            keypoints[shoulder_node], keypoints[armpit_node] = contour.points[[shoulders[side], armpits[side]]]
    # Armpits read up a slit should be level: where they are not, the one read higher (a slit open at its top, but
    # the lines of the side and the sleeve's inner edge meeting far up it) is its concavity if that is nearer
    # the other's height.
    if len(sleeves) == 2 and abs(keypoints[14, 1] - keypoints[22, 1]) > ARMPITS_APART * (rows.hem - rows.top):
        side = -1 if keypoints[14, 1] < keypoints[22, 1] else +1
        shoulder_node, armpit_node, _ = SIDE_NODES[side]
        other_row = keypoints[SIDE_NODES[-side][1], 1]
        armpit, shoulder, sleeve = flat_sleeve(contour.points[sleeve_paths[side]], tips[side], body_sides[side],
                                               armpit_band, centre_x, up_the_slit=False)
        if abs(armpit[1] - other_row) < abs(keypoints[armpit_node, 1] - other_row):
            keypoints[armpit_node], keypoints[shoulder_node], sleeves[side] = armpit, shoulder, sleeve
    for side, (_, armpit_node, _) in SIDE_NODES.items():  # the side nodes, from the armpit down to the hem corner
        keypoints[SIDE_BETWEEN[side]] = resample_polyline(
            np.concatenate([keypoints[armpit_node][None], body_sides[side][::-1]]), SIDE_FRACTIONS)
    # The shoulder width, or the chest's where the shoulder seam runs into the sleeve with no corner to find.
    shoulder_width = max(float(np.linalg.norm(keypoints[31] - keypoints[5])),
                         float(keypoints[22, 0] - keypoints[14, 0]), 1.0)
    reach = max((s.length for s in sleeves.values()), default=0.0)
    sleeve = "none" if not sleeves else "long" if reach >= LONG_SLEEVE_REACH * shoulder_width else "short"
    for side, (shoulder_node, armpit_node, sleeve_nodes) in SIDE_NODES.items():
        if side in sleeves:
            length = max(sleeves[side].length, 1.0)
            elbow = min(shoulder_width, 0.9 * length) / length  # the upper arm is one shoulder width long
            keypoints[sleeve_nodes] = sleeves[side].nodes((elbow / 2, elbow, (1 + elbow) / 2) if sleeve == "long"
                                                          else SHORT_STATIONS)
        else:
            keypoints[sleeve_nodes] = armhole_nodes(keypoints[shoulder_node], keypoints[armpit_node])
        keypoints[sleeve_nodes] = _onto_garment(keypoints[sleeve_nodes], mask, contour, side in sleeves)
    if front is not None:  # a front neckline below the back's, seen through it
        keypoints[[1, 2, 3]] = front
    _refuse(landmark_problems(keypoints, mask), "the landmarks found fail their checks",
            "check the garment mask (a garment the colour of its background needs its mask sent with the photo), "
            "or send the garment's keypoints")
    _refuse(garment_problems(mask, keypoints), "the garment is not a top the method handles",
            "send a photo of one upper garment laid flat, front up")
    return GarmentLandmarks(keypoints.astype(np.float32), sleeve)


def check_framing(cloth_mask: np.ndarray) -> None:
    """Raise a ``LandmarkError`` saying what to send when the garment's (H, W) bool silhouette, less the ties and
    straps hanging below it (as :func:`flat_garment_keypoints` reads it), runs off its photo's top or bottom edge
    (``kgi.landmarks.checks.framing_problems``). A caller that pads the photo before reading its landmarks
    (``kgi.preprocess``) checks the photo as sent: the padding hides its edges."""
    mask = check_mask(cloth_mask, "cloth_mask")
    if mask[0].any() or mask[-1].any():  # else nothing can run off (the hanging parts' cut costs a few ms)
        trimmed = _without_thin_parts(mask)
        _refuse_if_cut(trimmed & ~_ties(trimmed)[0])


def _refuse_if_cut(mask: np.ndarray) -> None:
    """``check_framing`` of a silhouette whose hanging parts are cut already."""
    _refuse(framing_problems(mask), "the garment is not wholly in the photo",
            "send a photo with the whole garment in the frame and a margin of backdrop above and below it")


def _refuse(problems: list[str], what: str, advice: str) -> None:
    """Raise a ``LandmarkError`` naming ``problems`` and what to do, if there are any."""
    if problems:
        raise LandmarkError(f"{what}: {'; '.join(problems)}. {advice[0].upper()}{advice[1:]}")


def _onto_garment(points: np.ndarray, mask: np.ndarray, contour: Contour, sleeved: bool) -> np.ndarray:
    """(8, 2) one side's sleeve nodes (``points``, in the order of 6..13), those off the mask moved onto it.

    On a ``sleeved`` side a node off the mask goes to the first mask pixel on the way to the middle of its
    cross-section (the midpoint of its pair: 6 and 13, 7 and 12, ...): a node in the slit between a sleeve and
    the body, which the mask keeps as a hole where the slit is closed at both ends, lands on the sleeve's inner
    edge beside it (the blouse 02783's image-left node 13 went to the outline across the sleeve, onto its outer
    node 6). Where the way finds no mask pixel (a node mirrored off an edge that the sleeve's axis misses), and on
    a sleeveless side (nodes on the armhole's line, which a curved armhole leaves), it goes to the nearest point
    of the outline.
    """
    height, width = mask.shape
    moved = points.copy()
    middles = (points + points[::-1]) / 2  # node k's pair is node 7 - k
    for k, (point, middle) in enumerate(zip(points, middles)):
        way = point[None]  # (S, 2): the node, then on a sleeved side steps of at most a pixel to the middle
        if sleeved:
            steps = np.linspace(0, 1, int(np.ceil(np.linalg.norm(middle - point))) + 2)[:, None]
            way = point + steps * (middle - point)
        columns = np.clip(np.round(way[:, 0]).astype(int), 0, width - 1)
        rows = np.clip(np.round(way[:, 1]).astype(int), 0, height - 1)
        on_mask = mask[rows, columns]
        if on_mask[0]:
            continue
        moved[k] = way[int(np.argmax(on_mask))] if on_mask.any() else contour.points[contour.nearest(point)]
    return moved


def _sleeve_tip(path: np.ndarray, side: int, garment_height: float) -> tuple[int, float]:
    """The tip of a sleeve candidate and how clearly it is one.

    Args:
        path: (M, 2) contour from the armpit candidate (first) up to the neck corner (last).

    Returns ``(tip, score)``: the index in ``path`` of the point farthest out of the chord neck corner -> armpit,
    and the least of its distance out of the chord, its reach past the armpit and its depth down the chord, each
    divided by its threshold (``SLEEVELESS_PROTRUSION``, ``SLEEVE_REACH_OUT``, ``SLEEVE_TIP_DEPTH``): a sleeve
    scores at least 1.
    """
    tip = farthest_outside(path, path[-1], path[0], side)
    out_of_chord = point_segment_distance(path[[tip]], path[-1], path[0])[0] / garment_height
    past_armpit = side * (path[tip, 0] - path[0, 0]) / garment_height
    chord = path[0] - path[-1]
    down_the_chord = (path[tip] - path[-1]) @ chord / max(chord @ chord, 1e-12)
    return tip, min(out_of_chord / SLEEVELESS_PROTRUSION, past_armpit / SLEEVE_REACH_OUT,
                    down_the_chord / SLEEVE_TIP_DEPTH)


def _without_thin_parts(mask: np.ndarray) -> np.ndarray:
    """The mask without thin ties and straps hanging from its lower part: below ``HANGING_FROM`` of its height,
    an opening with a horizontal line ``HANGING_WIDTH`` of its width long; the largest part is kept."""
    rows, columns = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))  # the mask's rows and columns
    top, height, width = rows.min(), np.ptp(rows) + 1, np.ptp(columns) + 1
    length = int(round(HANGING_WIDTH * width)) | 1  # odd: the opening is symmetric
    if length < 3:
        return mask
    cut = top + int(HANGING_FROM * height)
    opened = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((1, length), np.uint8))
    trimmed = mask.astype(np.uint8)
    trimmed[cut:] = opened[cut:]
    box = (slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1))  # the parts, found on the mask's box
    count, labels, stats, _ = cv2.connectedComponentsWithStats(trimmed[box], connectivity=4)
    if count < 2:
        return mask
    largest = np.zeros_like(mask)
    largest[box] = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return largest


def _ties(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ties hanging past the hem of a garment's (H, W) bool silhouette, thin parts cut (``_without_thin_parts``):
    parts narrower than ``TIE_WIDTH`` of its width (an opening with a horizontal line) that lie wholly below
    ``HANGING_FROM`` of its height and reach more than ``TIE_BELOW_HEM`` of it below the hem in their own columns
    (the bottom of the rest of the garment there; where none, the hem centre: the bottom of the middle column,
    less such parts). Two (H, W) bool: those at the middle, centred within ``TIE_MIDDLE`` of the
    width of the middle column and hanging from the hem, the row ``TIE_ON_HEM`` of the height above their top
    being at least twice ``TIE_WIDTH`` wide at the middle column (a tie-front knot; a bodysuit's crotch narrows
    gradually); and those farther out (a side tie, or a long sleeve's cuff hanging as low: the caller knows
    which)."""
    rows, columns = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = (slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1))
    height, width = rows[-1] - rows[0] + 1, columns[-1] - columns[0] + 1
    garment = mask[box]
    cut = int(HANGING_FROM * height)
    below = garment[cut:].astype(np.uint8)
    line = np.ones((1, int(round(TIE_WIDTH * width)) | 1), np.uint8)
    opened = cv2.morphologyEx(below, cv2.MORPH_OPEN, line)
    narrow = (below > opened).astype(np.uint8)
    at_middle, beside = np.zeros(mask.shape, bool), np.zeros(mask.shape, bool)
    centre = (width - 1) / 2
    middle = [int(np.floor(centre)), int(np.ceil(centre))]
    body = np.concatenate([garment[:cut, middle], opened[:, middle].astype(bool)]).any(axis=1)
    if not body.any():  # an open front laid apart: no hem centre
        return at_middle, beside
    hem = np.flatnonzero(body).max() - cut
    count, labels, stats, _ = cv2.connectedComponentsWithStats(narrow, connectivity=8)
    for part in range(1, count):
        left, top, part_width, part_height = stats[part, :4]
        # The hem it hangs past: the body's bottom in its own columns (a photo turned by 3 degrees tilts the hem,
        # and the wrap top 04469's tie fell short of the hem centre's reach), else the hem centre.
        own_columns = opened[:, left:left + part_width].any(axis=1)
        own_hem = np.flatnonzero(own_columns).max() if own_columns.any() else hem
        if top == 0 or top + part_height - 1 <= own_hem + TIE_BELOW_HEM * height:
            continue
        found = beside
        if abs(left + (part_width - 1) / 2 - centre) <= TIE_MIDDLE * width:
            above = max(cut + top - max(round(TIE_ON_HEM * height), 1), 0)
            if _run_length(garment[above], middle[0]) < 2 * TIE_WIDTH * width:  # narrowing: not hung from the hem
                continue
            found = at_middle
        found[box][cut:][labels == part] = True
    return at_middle, beside


def _run_length(row: np.ndarray, column: int) -> int:
    """The length of the run of True in (W,) bool ``row`` through ``column``; 0 where it is False there."""
    if not row[column]:
        return 0
    before, after = np.flatnonzero(~row[:column]), np.flatnonzero(~row[column:])
    return (column + after[0] if len(after) else len(row)) - (before[-1] + 1 if len(before) else 0)


class _BodyRows(NamedTuple):
    """Rows of a flat garment: the top of its outline and the bottom of its centre column (the hem centre, below
    any sleeve hanging beside it). The body length is their distance."""

    top: float
    hem: float

    @staticmethod
    def of(mask: np.ndarray, contour: Contour) -> _BodyRows:
        top = float(contour.points[:, 1].min())
        columns = np.flatnonzero(mask.any(axis=0))
        middle = (columns[0] + columns[-1]) / 2
        centre_rows = np.flatnonzero(mask[:, int(np.floor(middle))] | mask[:, int(np.ceil(middle))])
        hem = float(centre_rows.max()) if len(centre_rows) else float(contour.points[:, 1].max())
        return _BodyRows(top, max(hem, top + 1.0))

    def at(self, depth: float) -> float:
        """The row ``depth`` body lengths below the top."""
        return self.top + depth * (self.hem - self.top)

    def armpit_band(self) -> tuple[float, float, float]:
        """Rows (top, bottom) where an armpit may lie, and the row of the prior (``ARMPIT_DEPTH_RANGE``,
        ``ARMPIT_DEPTH_PRIOR``)."""
        return self.at(ARMPIT_DEPTH_RANGE[0]), self.at(ARMPIT_DEPTH_RANGE[1]), self.at(ARMPIT_DEPTH_PRIOR)


def _bare_armhole(contour: Contour, neck: int, hem_corner: int, side: int) -> tuple[int, int]:
    """Contour indices of the shoulder (strap corner) and armpit of a sleeveless side.

    The outline from the hem corner up to the neck corner bends at both; the corner farthest out of the chord
    hem corner -> neck corner is one of them, the other is the corner farthest out of the chord over whichever
    part (below or above the first) bends more. The upper corner is the shoulder.
    """
    path = contour.up_the_side(hem_corner, neck, side)
    points = contour.points[path]  # hem corner first
    first = farthest_outside(points, points[-1], points[0], side)
    below = outside_distance(points[: first + 1], points[0], points[first], side)
    above = outside_distance(points[first:], points[first], points[-1], side)
    if below.max() > above.max():
        return int(path[first]), int(path[np.argmax(below)])
    return int(path[first + np.argmax(above)]), int(path[first])


def _strap_joins_body(mask: np.ndarray, shoulder: np.ndarray, centre_x: int, side: int,
                      armpit_band: tuple[float, float, float]) -> float:
    """The row where a sleeveless side's strap joins the body: below the ``shoulder`` (2,), the first row whose
    run of garment from the side's outer edge inward reaches halfway to the centre column, after rows where it
    does not (the strap). The prior row of ``armpit_band`` (rows top, bottom, prior) where there is no strap
    (a shoulder as wide as the body's top) or it joins outside the band."""
    top, bottom, prior = armpit_band
    strap = False
    for row in range(int(np.ceil(shoulder[1])), int(bottom) + 1):
        columns = np.flatnonzero(mask[row])
        if not len(columns):
            continue
        edge = columns[0] if side < 0 else columns[-1]
        inward = mask[row, edge::-1] if side > 0 else mask[row, edge:]  # from the outer edge toward the centre
        run = int(np.argmin(inward)) if not inward.all() else len(inward)
        if run < abs(edge - centre_x) / 2:
            strap = True
        elif strap:
            return float(row) if row >= top else prior
        else:
            return prior
    return prior


def _neck_corners(contour: Contour) -> tuple[tuple[int, int], tuple[int, int] | None]:
    """Contour indices of the neck corners: where the outline leaves the convex-hull edge that spans the
    garment's top centre (more than a pixel below it), walking in from either end of that edge; and, for a top
    that dips less than ``MIN_DIP`` under that edge (a collar's or mock neck's top, rounded or straight; else
    None), the ends of the collar's top: where the outline, walking out from the edge's ends, falls ``FLAT_TOP``
    of the garment's height below the edge's lower end. A rounded top, whose hull edge over the centre spans less
    than ``ROUNDED_TOP`` of it, has no corners but its top's ends: those are the neck corners, and there is no
    collar top to read apart (None)."""
    hull = np.sort(cv2.convexHull(np.round(contour.points).astype(np.int32), returnPoints=False)[:, 0])
    centre_x, centre_y = contour.points.mean(axis=0)
    for start, end in zip(hull, np.roll(hull, -1)):
        (start_x, start_y), (end_x, end_y) = contour.points[start], contour.points[end]
        if start_x < centre_x < end_x and start_y < centre_y and end_y < centre_y:  # clockwise: the top edge
            top = contour.path(start, end)
            depth = np.abs(signed_side(contour.points[top], contour.points[start], contour.points[end]))
            height = float(np.ptp(contour.points[:, 1]))
            if depth.max() < MIN_DIP * height:  # no neckline dip: the collar's top, out to where it falls away
                level = max(start_y, end_y) + FLAT_TOP * height
                # counter-clockwise from the edge's start (the image-left way), clockwise from its end
                ends = _last_above(contour, int(start), -1, level), _last_above(contour, int(end), +1, level)
                if end_x - start_x < ROUNDED_TOP * float(np.ptp(contour.points[list(ends), 0])):
                    return ends, None  # the one reading there is
                return (int(start), int(end)), ends
            below = depth > 1.0
            return (int(top[np.argmax(below) - 1]), int(top[len(top) - np.argmax(below[::-1])])), None
    raise LandmarkError("cloth_mask: no neckline found (the outline has no top edge over its centre)")


def _last_above(contour: Contour, start: int, step: int, level: float) -> int:
    """The contour index reached walking from ``start`` by ``step`` (+1 clockwise, -1 against) while the next
    point lies no lower than the row ``level``."""
    count = len(contour)
    index = start
    for _ in range(count):
        if contour.points[(index + step) % count, 1] > level:
            break
        index = (index + step) % count
    return index


def _bisector_crossing(contour: Contour, start: int, end: int) -> int:
    """Index of the contour point on the path ``start`` -> ``end`` nearest the perpendicular bisector of the two."""
    path = contour.path(start, end)
    a, b = contour.points[start], contour.points[end]
    along = (contour.points[path] - (a + b) / 2) @ unit_vector(b - a)
    return int(path[np.argmin(np.abs(along))])


def _armpit_candidate(mask: np.ndarray, centre_x: int, neck: np.ndarray, side: int,
                      min_depth: float, top_row: float) -> np.ndarray | None:
    """The armpit corner (2,) of the deepest convexity defect of one half of the mask (``_armpit_corner``), or
    None.

    The mask is cut at ``centre_x``; only defects off the neckline (below the neck corners and either below
    the neckline's centre or beside the neck), off the cut and at least ``min_depth`` deep count: an armpit
    may lie above the bottom of a deep V.

    Args:
        neck: (3, 2) the neck corners and the neckline's centre (nodes 0, 4, 2).
        top_row: the highest row an armpit may lie in (a corner above it is a strap's or a shoulder's).
    """
    half = mask.copy()
    if side < 0:
        half[:, centre_x:] = False
    else:
        half[:, :centre_x + 1] = False
    if not half.any():
        return None
    half_contour = outer_contour(half, "cloth_mask half")
    defects = convexity_defects(half_contour.points)
    far = half_contour.points[defects[:, 2]]
    beside_neck = np.abs(far[:, 0] - centre_x) > np.abs(neck[1, 0] - neck[0, 0]) / 2
    off_neckline = (far[:, 1] > neck[2, 1]) | (beside_neck & (far[:, 1] > neck[:2, 1].max()))
    usable = off_neckline & (np.abs(far[:, 0] - centre_x) > 2) & (defects[:, 3] >= min_depth)
    if not usable.any():
        return None
    deepest = defects[np.flatnonzero(usable)[np.argmax(defects[usable, 3])]]
    return half_contour.points[_armpit_corner(half_contour, deepest, top_row)]


def _turning(points: np.ndarray, step: int) -> np.ndarray:
    """(N,) signed turn in degrees of a closed clockwise polyline (N, 2) at each point, between the chords from
    ``step`` points before it and to ``step`` points after it: negative where it turns inward (a concave
    corner)."""
    before = points - np.roll(points, step, axis=0)
    after = np.roll(points, -step, axis=0) - points
    cross = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]
    return np.degrees(np.arctan2(cross, (before * after).sum(axis=1)))


def _armpit_corner(contour: Contour, defect: np.ndarray, top_row: float) -> int:
    """Contour index of the armpit in a convexity ``defect`` (start, end, farthest, depth): the sharpest concave
    corner among its points at least ``ARMPIT_CORNER_DEPTH`` of its depth deep and below ``top_row``, if it turns
    by ``ARMPIT_CORNER_TURN`` degrees or more; else the defect's farthest point."""
    start, end, farthest, _ = (int(value) for value in defect)
    span = contour.path(start, end)
    depth = np.abs(signed_side(contour.points[span], contour.points[start], contour.points[end]))
    step = max(2, int(round(ARMPIT_CORNER_STEP * float(np.ptp(contour.points[:, 1])))))
    turn = _turning(contour.points, step)[span]
    candidates = (depth >= ARMPIT_CORNER_DEPTH * depth.max()) & (contour.points[span, 1] > top_row)
    if not candidates.any():
        return farthest
    corner = int(np.argmin(np.where(candidates, turn, np.inf)))
    return int(span[corner]) if turn[corner] <= -ARMPIT_CORNER_TURN else farthest
