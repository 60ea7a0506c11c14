"""Consistency checks of a flat garment's 32 landmarks, and of the garment itself: is it a top the method handles?

:func:`landmark_problems` is what ``flat_garment_keypoints`` runs before it answers (a landmark set that fails
is refused with the reasons, rather than warped into a crumpled garment) and what a dataset check runs on
landmark files it did not extract. :func:`garment_problems` reads the silhouette alone: trousers, a dress to
the knee and a folded garment are no tops. :func:`framing_problems` reads the silhouette against the photo's frame:
a garment whose collar or hem runs off the photo is not all there to be read.

Lengths are measured against the garment's own size: its *body length* (the top of the neckline to the hem
centre 18) and its *width* (shoulder 5 to shoulder 31).
"""

from __future__ import annotations

import cv2
import numpy as np

from kgi.graphs import LEFT_SLEEVE_NODES, NECKLINE, NUM_GARMENT_NODES, RIGHT_SLEEVE_NODES

# Paired nodes (image-left, image-right) whose heights differ by at most this fraction of the body length.
LEVEL_PAIRS = {(5, 31): 0.15, (14, 22): 0.15, (17, 19): 0.25}
# Nodes 2 and 18 lie within this fraction of the width of the midpoint of the shoulders, across.
CENTRE_OFFSET = 0.25
# Every node lies within this fraction of the body length of the mask.
MASK_MARGIN = 0.05
# A top's body length is at most this many times the width across its armpits (a long bodysuit reaches 3.6 in
# product photos, a VITON-HD top 2.5), unless its hem corners close to less than ``MIN_SKIRT_HEM`` of that width
# (a bodysuit's crotch); a dress to the knee is longer, its skirt as wide as the chest.
MAX_LENGTH_TO_CHEST = 3.8
MIN_SKIRT_HEM = 0.8
# Trousers: the silhouette's centre column ends above this fraction of its height, with legs on both sides that
# fill at least MIN_LEGS_WIDTH of its width a twentieth of its height lower (a cropped top's long sleeves hanging
# below its hem fill 0.23-0.36 there, a pair of trousers about 0.9).
MIN_CENTRE_REACH = 0.55
MIN_LEGS_WIDTH = 0.6
# A folded garment: a silhouette this convex (area / convex-hull area), no taller than this times its width, and
# a block: at FOLDED_TOP_ROW of its height it spans FOLDED_TOP_WIDTH of its width (a boxy sleeveless top narrows
# to its shoulders, about half its width).
FOLDED_SOLIDITY, FOLDED_ASPECT = 0.96, 1.15
FOLDED_TOP_ROW, FOLDED_TOP_WIDTH = 0.1, 0.8

# A garment whose silhouette lies along the photo's top or bottom row for this fraction of its width runs off the
# photo there (the genuine product photos of ../shared: 0 at both; scaled to 1.1-1.2 in their frames, 0.18-1.0
# where the collar or the hem is cut, and the landmarks of the shop's Gucci tee 09166 cut so move 9% of the height).
# A side may touch the frame: a long sleeve's tip often does (09166 as sent).
FRAME_CUT = 0.05


def landmark_problems(keypoints: np.ndarray, mask: np.ndarray | None = None) -> list[str]:
    """What is wrong with a flat garment's landmarks; an empty list when nothing is.

    Checks order (the neckline runs image left to right, every image-left node of a pair lies left of its
    image-right partner, shoulders above armpits above hem corners, the neckline above the hem), symmetry
    (paired nodes at about the same height: ``LEVEL_PAIRS``; the centre nodes 2 and 18 near the middle:
    ``CENTRE_OFFSET``) and, given the mask, that every node lies on the garment (``MASK_MARGIN``).

    Args:
        keypoints: (32, 2) pixel (x, y), numbered as ``kgi.graphs`` documents.
        mask: optional (H, W) bool garment silhouette, in the same pixels.

    Returns:
        One sentence per problem, each naming the nodes and the figure that failed.
    """
    points = np.asarray(keypoints, dtype=np.float64)
    if points.shape != (NUM_GARMENT_NODES, 2) or not np.isfinite(points).all():
        return [f"the landmarks must be {NUM_GARMENT_NODES} finite (x, y) pairs, got shape {points.shape}"]
    x, y = points[:, 0], points[:, 1]
    top = float(y[list(NECKLINE)].min())
    length, width = float(y[18] - top), float(x[31] - x[5])
    if length <= 0:
        return [f"the hem centre 18 (y={y[18]:.0f}) is not below the neckline (y={top:.0f})"]
    if width <= 0:
        return [f"shoulder 5 (x={x[5]:.0f}) is not left of shoulder 31 (x={x[31]:.0f}): the garment is mirrored "
                "or the landmarks are not numbered as kgi.graphs documents"]
    problems = []
    if not (np.diff(x[list(NECKLINE)]) >= -0.02 * width).all():
        problems.append("the neckline 0-1-2-3-4 does not run from image left to image right")
    for left, right in ((14, 22), (17, 19)):
        if x[left] >= x[right]:
            problems.append(f"node {left} is not left of node {right}")
    if np.mean(x[list(LEFT_SLEEVE_NODES)]) >= np.mean(x[list(RIGHT_SLEEVE_NODES)]):
        problems.append("the sleeve nodes 6-13 are not left of 23-30")
    for upper, lower in ((5, 14), (31, 22), (14, 17), (22, 19)):
        if y[lower] <= y[upper]:
            problems.append(f"node {lower} (y={y[lower]:.0f}) is not below node {upper} (y={y[upper]:.0f})")
    for (left, right), most in LEVEL_PAIRS.items():
        gap = abs(y[left] - y[right]) / length
        if gap > most:
            problems.append(f"nodes {left} and {right} are {gap:.0%} of the body length apart in height "
                            f"(at most {most:.0%})")
    middle = (x[5] + x[31]) / 2
    for node in (2, 18):
        offset = abs(x[node] - middle) / width
        if offset > CENTRE_OFFSET:
            problems.append(f"node {node} is {offset:.0%} of the shoulder width off the garment's middle "
                            f"(at most {CENTRE_OFFSET:.0%})")
    if mask is not None:
        problems += _outside_mask(points, np.asarray(mask, dtype=bool), MASK_MARGIN * length)
    return problems


def garment_problems(mask: np.ndarray, keypoints: np.ndarray | None = None) -> list[str]:
    """Why a silhouette is not a top the method handles; an empty list when it is one.

    Trousers (the centre column ends high, ``MIN_CENTRE_REACH``, over wide legs, ``MIN_LEGS_WIDTH``), a folded
    garment (a convex block, ``FOLDED_SOLIDITY`` / ``FOLDED_ASPECT`` / ``FOLDED_TOP_WIDTH``) and, given the
    landmarks, a garment much longer than a top that does not narrow to a bodysuit's crotch
    (``MAX_LENGTH_TO_CHEST``, ``MIN_SKIRT_HEM``: a dress to the knee, a long coat).

    Args:
        mask: (H, W) bool garment silhouette (one garment).
        keypoints: optional (32, 2) pixel landmarks of it.
    """
    mask = np.asarray(mask, dtype=bool)
    rows, columns = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))  # the mask's rows and columns
    if not len(rows):
        return ["the garment mask is empty"]
    height, width = float(np.ptp(rows) + 1), float(np.ptp(columns) + 1)
    problems = []
    middle = (columns.min() + columns.max()) / 2
    centre = np.flatnonzero(mask[:, int(np.floor(middle))] | mask[:, int(np.ceil(middle))])
    reach = (centre.max() - rows.min() + 1) / height if len(centre) else 0.0
    legs_row = min(rows.min() + int(reach * height) + int(0.05 * height), rows.max())
    legs = mask[legs_row].sum() / width
    if reach < MIN_CENTRE_REACH and legs >= MIN_LEGS_WIDTH:
        problems.append(f"its middle ends at {reach:.0%} of its height with legs on both sides ({legs:.0%} of its "
                        "width): trousers or shorts, not a top")
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    largest = max(contours, key=cv2.contourArea)
    solidity = cv2.contourArea(largest) / max(cv2.contourArea(cv2.convexHull(largest)), 1.0)
    top_row = np.flatnonzero(mask[rows.min() + int(FOLDED_TOP_ROW * height)])
    block = np.ptp(top_row) + 1 >= FOLDED_TOP_WIDTH * width
    if solidity > FOLDED_SOLIDITY and height < FOLDED_ASPECT * width and block:
        problems.append(f"its outline is a convex block ({solidity:.0%} of its hull, {height / width:.2f} times as "
                        "tall as wide) with no neckline, sleeves or armholes: a folded garment, not one laid flat")
    if keypoints is not None:
        points = np.asarray(keypoints, dtype=np.float64)
        chest, hem = float(points[22, 0] - points[14, 0]), float(points[19, 0] - points[17, 0])
        length = float(points[18, 1] - points[list(NECKLINE), 1].min())
        if chest > 0 and length > MAX_LENGTH_TO_CHEST * chest and hem > MIN_SKIRT_HEM * chest:
            problems.append(f"it is {length / chest:.1f} times as long as it is wide across the armpits (a top is "
                            f"at most {MAX_LENGTH_TO_CHEST}): a dress or a coat to the knee, not a top")
    return problems


def framing_problems(mask: np.ndarray) -> list[str]:
    """Why a garment is not wholly in its photo: its silhouette runs off the photo's top edge (the collar or the
    straps cut off) or its bottom edge (the hem cut off) across ``FRAME_CUT`` of its width or more; an empty list
    when it does not.

    Args:
        mask: (H, W) bool garment silhouette, at the photo's size.
    """
    mask = np.asarray(mask, dtype=bool)
    columns = np.flatnonzero(mask.any(0))
    if not len(columns):
        return ["the garment mask is empty"]
    width = float(np.ptp(columns) + 1)
    problems = []
    for row, edge, part in ((0, "top", "its collar or straps"), (-1, "bottom", "its hem")):
        share = np.count_nonzero(mask[row]) / width
        if share >= FRAME_CUT:
            problems.append(f"it runs off the photo's {edge} edge across {share:.0%} of its width ({part} cut off)")
    return problems


def _outside_mask(points: np.ndarray, mask: np.ndarray, margin: float) -> list[str]:
    """A problem naming the nodes farther than ``margin`` pixels from the mask, if any."""
    distance = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)  # 0 on the garment
    height, width = mask.shape
    columns = np.clip(np.round(points[:, 0]).astype(int), 0, width - 1)
    rows = np.clip(np.round(points[:, 1]).astype(int), 0, height - 1)
    off_image = (points[:, 0] < -margin) | (points[:, 0] > width - 1 + margin) | (points[:, 1] < -margin) | \
        (points[:, 1] > height - 1 + margin)
    outside = np.flatnonzero(off_image | (distance[rows, columns] > margin))
    if not len(outside):
        return []
    return [f"nodes {', '.join(map(str, outside))} lie off the garment (more than {margin:.0f} px from its mask)"]
