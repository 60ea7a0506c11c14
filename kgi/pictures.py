"""Pictures for people to look at: colourised parse maps, pose and garment-keypoint overlays, the parse network's
keypoint drawings over the person photo, contact sheets of labelled tiles. Everything here is (H, W, 3) uint8 RGB.

(``kgi.drawing`` rasterises keypoints for the models; :func:`keypoint_input_pictures` shows those drawings.)"""

from __future__ import annotations

import cv2
import numpy as np

from kgi.data.images import width_for
from kgi.data.labels import CIHP_PALETTE, CIHP_TO_PARSE13, NUM_PARSE13
from kgi.graphs import GARMENT_CONTOUR_EDGES, GARMENT_SYMMETRY_EDGES, NUM_GARMENT_NODES, POSE_EDGES

# Each 13-class label drawn in the colour of its first CIHP label, so sheets match the dataset's palette.
PARSE13_PALETTE = np.array([CIHP_PALETTE[int(np.flatnonzero(CIHP_TO_PARSE13 == c)[0])] for c in range(NUM_PARSE13)],
                           dtype=np.uint8)


def colorize_parse13(parse13: np.ndarray) -> np.ndarray:
    """(H, W) 13-class labels -> (H, W, 3) uint8 RGB."""
    return PARSE13_PALETTE[parse13]


def draw_pose(image: np.ndarray, pose_nodes: np.ndarray, colour=(40, 200, 40)) -> np.ndarray:
    """The 10-node pose graph over a copy of ``image``; ``pose_nodes`` (10, 2) normalised (a sample's
    ``pose_nodes``)."""
    canvas = np.ascontiguousarray(image).copy()
    width = max(1, image.shape[0] // 128)
    points = np.round(pose_nodes * [image.shape[1], image.shape[0]]).astype(np.int32)
    for a, b in POSE_EDGES:
        cv2.line(canvas, tuple(points[a]), tuple(points[b]), colour, width, cv2.LINE_AA)
    for point in points:
        cv2.circle(canvas, tuple(point), width + 1, colour, -1, cv2.LINE_AA)
    return canvas


# Overlay colours (RGB) per garment part, and each node's part (shoulders and armpits belong to the body).
_PART_COLOURS = {"neck": (255, 200, 0), "left_sleeve": (230, 40, 40), "right_sleeve": (40, 90, 255),
                 "body": (0, 190, 90)}
_NODE_PART = tuple("neck" if node < 5 else "left_sleeve" if 6 <= node <= 13 else
                   "right_sleeve" if 23 <= node <= 30 else "body" for node in range(NUM_GARMENT_NODES))


def draw_garment_keypoints(image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
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
        raise ValueError(f"image must be (H, W, 3) RGB or (H, W) grey, got shape {image.shape}")
    points = np.asarray(keypoints, dtype=np.float64)
    if points.shape != (NUM_GARMENT_NODES, 2) or not np.isfinite(points).all():
        raise ValueError(f"keypoints must be {NUM_GARMENT_NODES} finite (x, y) pairs, got shape {points.shape}")
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


# Colours of kgi.drawing's channels, painted over the dimmed person photo in this order.
SKELETON_COLOURS = ((255, 208, 0), (255, 76, 76), (56, 150, 255))  # torso, the person's right arm, left arm
GARMENT_COLOURS = ((0, 200, 160), (255, 128, 0), (255, 255, 255))  # backbone, sleeves (filled), contour line
GARMENT_OPACITIES = (0.45, 0.45, 1.0)
KEYPOINT_COLOUR = (255, 64, 160)


def _paint(person: np.ndarray, drawing: np.ndarray, colours, opacities) -> np.ndarray:
    """Each channel of a (C, H, W) {0, 1} drawing painted in its colour, in order, over the dimmed person."""
    image = person.astype(np.float32) * 0.5
    for channel, colour, opacity in zip(drawing, colours, opacities, strict=True):
        alpha = channel[..., None] * opacity  # (H, W, 1)
        image = image * (1 - alpha) + np.asarray(colour, np.float32) * alpha
    return image.round().astype(np.uint8)


def keypoint_input_pictures(person: np.ndarray, pose_nodes: np.ndarray, worn_kp: np.ndarray
                            ) -> dict[str, np.ndarray]:
    """The target-parse network's two keypoint inputs drawn over the person photo: (H, W, 3) uint8 each.

    ``pose_skeleton`` is ``kgi.drawing.draw_skeleton`` of the pose graph; ``garment_contour`` is
    ``draw_garment_contour`` of stage 1's keypoints (backbone and sleeves filled, outline) with the 32 keypoints
    as dots.

    Args:
        person: (H, W, 3) uint8 the person photo.
        pose_nodes: (10, 2) normalised pose-graph nodes.
        worn_kp: (32, 2) normalised garment keypoints on the person (stage 1's output).
    """
    import torch  # only these pictures need the models' torch drawings

    from kgi.drawing import draw_garment_contour, draw_skeleton, line_width

    height, width = person.shape[:2]
    skeleton = draw_skeleton(torch.as_tensor(pose_nodes)[None], height, width)[0]  # (3, H, W)
    garment = draw_garment_contour(torch.as_tensor(worn_kp, dtype=torch.float32)[None], height, width)[0]
    garment_image = _paint(person, garment[[1, 2, 0]].numpy(), GARMENT_COLOURS, GARMENT_OPACITIES)
    radius = max(2, round(line_width(height)))
    for x, y in np.round(worn_kp * [width, height]).astype(int):
        cv2.circle(garment_image, (int(x), int(y)), radius, KEYPOINT_COLOUR, -1, cv2.LINE_AA)
    return {"pose_skeleton": _paint(person, skeleton.numpy(), SKELETON_COLOURS, (1.0, 1.0, 1.0)),
            "garment_contour": garment_image}


def mask_tile(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W, 3) uint8 white where True."""
    return np.repeat(mask[..., None].astype(np.uint8) * 255, 3, axis=2)


def contact_sheet(rows: list[list[tuple[str, np.ndarray]]], tile_height: int = 256) -> np.ndarray:
    """A grid of titled tiles: ``rows`` of ``(title, (H, W, 3) uint8)``; every tile resized to ``tile_height``.

    Returns (rows * (tile_height + 18), columns * tile_width, 3) uint8 RGB on white.
    """
    tile_width = width_for(tile_height)
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
