"""The person mask and distances to the skeleton's parts (lines, arms, hands) the photo parser measures by."""

from __future__ import annotations

import cv2
import numpy as np

from kgi.photo_parsing.names import MIN_VISIBILITY

HAND_LENGTH = 2.0  # a hand ends this many times the wrist-to-finger-landmark distance from the wrist


def is_visible(landmarks: np.ndarray, index: int, width: int, height: int, margin: float = 0.0) -> bool:
    x, y, visibility = landmarks[index]
    return visibility >= MIN_VISIBILITY and -margin * width <= x < width * (1 + margin) and \
        -margin * height <= y < height * (1 - margin)


def person_mask(rgb: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """(H, W) bool: ``probability`` (H, W) float in [0, 1] edge-aligned to ``rgb`` and thresholded at 0.5;
    components under a tenth of the largest are dropped."""
    guide = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    radius = max(2, rgb.shape[0] // 128)
    refined = cv2.ximgproc.guidedFilter(guide, probability.astype(np.float32), radius, 1e-3 * 255 ** 2)
    mask = (refined > 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 2:
        return mask.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.concatenate([[False], areas >= areas.max() / 10])
    return keep[labels]


def distance_to_mask(mask: np.ndarray) -> np.ndarray:
    """(H, W) float32 distance of each pixel to the nearest pixel of ``mask`` (1e6 everywhere for an empty one)."""
    if not mask.any():
        return np.full(mask.shape, 1e6, np.float32)
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)


def distance_to_line(shape: tuple[int, int], polyline: list[np.ndarray]) -> np.ndarray:
    """(H, W) float32 distance of each pixel to a polyline of (2,) pixel points."""
    canvas = np.full(shape, 255, np.uint8)
    points = np.round(np.stack(polyline)).astype(np.int32)
    cv2.polylines(canvas, [points.reshape(-1, 1, 2)], False, 0, 1)
    return np.minimum(cv2.distanceTransform(canvas, cv2.DIST_L2, 3), 1e6)  # a line wholly outside: far


def distance_to_arm(shape: tuple[int, int], marks: np.ndarray, shoulder: int, elbow: int, wrist: int,
                    hand: tuple[int, ...]) -> np.ndarray:
    """(H, W) distance to an arm: shoulder, elbow, wrist, and from the wrist to each finger landmark; beyond the
    wrist (along the forearm) no farther than HAND_LENGTH times the farthest finger landmark (1e6 there: the
    thigh under a hanging hand is not the hand's)."""
    distance = np.minimum(distance_to_line(shape, [marks[shoulder, :2], marks[elbow, :2], marks[wrist, :2]]),
                          distance_to_hand(shape, marks, wrist, hand))
    reach = HAND_LENGTH * max(float(np.linalg.norm(marks[finger, :2] - marks[wrist, :2])) for finger in hand)
    rows, columns = np.indices(shape, dtype=np.float32)
    offset_x, offset_y = columns - marks[wrist, 0], rows - marks[wrist, 1]
    forearm = marks[wrist, :2] - marks[elbow, :2]
    beyond = (offset_x * forearm[0] + offset_y * forearm[1] > 0) & (np.hypot(offset_x, offset_y) > reach)
    distance[beyond] = 1e6
    return distance


def distance_to_hand(shape: tuple[int, int], marks: np.ndarray, wrist: int, hand: tuple[int, ...]) -> np.ndarray:
    """(H, W) distance to a hand: the segments from the wrist to each finger landmark."""
    distance = np.full(shape, 1e6, np.float32)
    for finger in hand:
        distance = np.minimum(distance, distance_to_line(shape, [marks[wrist, :2], marks[finger, :2]]))
    return distance
