"""Pictures for people: colourised parse maps, pose overlays and contact sheets of labelled tiles.

Garment keypoint overlays are ``kgi.landmarks.overlay``.
"""

from __future__ import annotations

import cv2
import numpy as np

from kgi.data.labels import CIHP_PALETTE, CIHP_TO_PARSE13, NUM_PARSE13
from kgi.graphs import POSE_EDGES

# Each 13-class label drawn in the colour of its first CIHP label, so sheets match the dataset's palette.
PARSE13_PALETTE = np.array([CIHP_PALETTE[int(np.flatnonzero(CIHP_TO_PARSE13 == c)[0])] for c in range(NUM_PARSE13)],
                           dtype=np.uint8)


def colorize_parse13(parse13: np.ndarray) -> np.ndarray:
    """(H, W) 13-class labels -> (H, W, 3) uint8 RGB."""
    return PARSE13_PALETTE[parse13]


def draw_pose(image: np.ndarray, pose_nodes_px: np.ndarray, colour=(40, 200, 40)) -> np.ndarray:
    """The 10-node pose graph over a copy of ``image``; ``pose_nodes_px`` (10, 2) in pixels."""
    canvas = np.ascontiguousarray(image).copy()
    width = max(1, image.shape[0] // 128)
    points = np.round(pose_nodes_px).astype(np.int32)
    for a, b in POSE_EDGES:
        cv2.line(canvas, tuple(points[a]), tuple(points[b]), colour, width, cv2.LINE_AA)
    for point in points:
        cv2.circle(canvas, tuple(point), width + 1, colour, -1, cv2.LINE_AA)
    return canvas


def mask_tile(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W, 3) uint8 white where True."""
    return np.repeat(mask[..., None].astype(np.uint8) * 255, 3, axis=2)


def contact_sheet(rows: list[list[tuple[str, np.ndarray]]], tile_height: int = 256) -> np.ndarray:
    """A grid of titled tiles: ``rows`` of ``(title, (H, W, 3) uint8)``; every tile resized to ``tile_height``.

    Returns (rows * (tile_height + 18), columns * tile_width, 3) uint8 RGB on white.
    """
    tile_width = tile_height * 3 // 4
    columns = max(len(row) for row in rows)
    caption = 18
    sheet = np.full((len(rows) * (tile_height + caption), columns * tile_width, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, (title, tile) in enumerate(row):
            top, left = r * (tile_height + caption), c * tile_width
            sheet[top + caption:top + caption + tile_height, left:left + tile_width] = cv2.resize(
                tile, (tile_width, tile_height), interpolation=cv2.INTER_AREA)
            cv2.putText(sheet, title[:22], (left + 3, top + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                        cv2.LINE_AA)
    return sheet
