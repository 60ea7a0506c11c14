"""Rasterising keypoints as batched torch: filled polygons, pose-skeleton and garment-contour drawings.

Everything here takes *normalised* (x, y) points, shape (B, N, 2), and returns float32 maps on the
points' device, so the drawings are made next to the models they feed (the target-parse network takes
``draw_skeleton`` and ``draw_garment_contour``; the warps take ``polygon_masks``).

Pixel convention (the one ``grid_sample(align_corners=False)`` uses): the image covers [0, 1] x [0, 1] and
pixel (row i, column j) is the square whose centre is ((j + 0.5) / W, (i + 0.5) / H). A pixel is inside a
shape when its centre is. Distances are measured in pixels, so line widths and polygon margins are
isotropic even when H != W.

The loops below run over polygon edges and skeleton bones (at most 32), never over pixels: each step is
one (B, H, W) tensor operation.
"""

from __future__ import annotations

import math

import torch

from kgi.graphs import GARMENT_CONTOUR, NUM_GARMENT_NODES, NUM_POSE_NODES, POSE_EDGES, WARP_SEGMENTS


class DrawingInputError(ValueError):
    """Points that cannot be drawn: wrong shape, or a non-positive image size."""


# The skeleton drawing's three channels: which bones go on which (pose-graph node numbering).
SKELETON_CHANNELS: tuple[tuple[tuple[int, int], ...], ...] = (
    tuple(bone for bone in POSE_EDGES if 1 in bone),  # torso: nose, shoulders and hips hang off the neck
    ((2, 3), (3, 4)),  # the person's right arm
    ((5, 6), (6, 7)),  # the person's left arm
)

SLEEVE_SEGMENTS: tuple[str, ...] = ("left_up", "left_low", "right_up", "right_low")


def line_width(height: int) -> float:
    """Stroke width in pixels of skeleton and contour drawings: proportional to the image height
    (8 px at 1024 rows, 2 px at 256), never below 1.5 px so that every pixel a line passes through is drawn
    (a pixel centre is at most sqrt(2) / 2 px from any point of its pixel)."""
    return max(1.5, height / 128)


def _check_points(points: torch.Tensor, name: str, num_points: int | None, height: int, width: int) -> None:
    if not isinstance(points, torch.Tensor) or points.dim() != 3 or points.shape[-1] != 2:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise DrawingInputError(f"{name} must be a (B, N, 2) tensor of normalised (x, y), got {shape}")
    if num_points is not None and points.shape[1] != num_points:
        raise DrawingInputError(f"{name} must have {num_points} points per sample, got {points.shape[1]}")
    if height <= 0 or width <= 0:
        raise DrawingInputError(f"image size must be positive, got height={height}, width={width}")


def _pixel_centres(height: int, width: int, device: torch.device, top: int = 0, left: int = 0
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in pixel units of the window whose top-left pixel is (``top``, ``left``):
    x (1, 1, W) and y (1, H, 1), broadcastable to (B, H, W)."""
    x = (torch.arange(left, left + width, device=device, dtype=torch.float32) + 0.5).view(1, 1, width)
    y = (torch.arange(top, top + height, device=device, dtype=torch.float32) + 0.5).view(1, height, 1)
    return x, y


def _to_pixels(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Normalised (B, N, 2) points to pixel units, float32 and detached (rasterising has no gradient)."""
    scale = torch.tensor([width, height], device=points.device, dtype=torch.float32)
    return points.detach().float() * scale


def _segment_distance(x: torch.Tensor, y: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Distance (B, H, W) in pixels from every pixel centre to the segment start-end, both (B, 2) in pixels.

    A zero-length segment measures the distance to its point.
    """
    ax, ay = start[:, 0].view(-1, 1, 1), start[:, 1].view(-1, 1, 1)
    dx, dy = (end - start)[:, 0].view(-1, 1, 1), (end - start)[:, 1].view(-1, 1, 1)
    length2 = (dx * dx + dy * dy).clamp_min(1e-12)
    # Position of the closest point along the segment, 0 at start, 1 at end.
    t = (((x - ax) * dx + (y - ay) * dy) / length2).clamp(0.0, 1.0)
    return torch.hypot(x - ax - t * dx, y - ay - t * dy)


def polygon_masks(points: torch.Tensor, height: int, width: int, shrink_px: float = 0.0) -> torch.Tensor:
    """Filled polygons, one per sample: (B, 1, H, W) float32 in {0, 1}.

    A pixel is inside when the winding number of the closed polygon ``points[b, 0] -> ... -> points[b, N-1]
    -> points[b, 0]`` around its centre is non-zero, so self-crossing outlines (a sleeve twisted by noisy
    keypoints) are filled throughout and a zero-area polygon (all points on a line, as the sleeves of a
    sleeveless garment) is empty. Repeated consecutive points are allowed (zero-length edges count for
    nothing), which lets callers pad polygons of different lengths by repeating their last point.

    Args:
        points: (B, N, 2) normalised (x, y) vertices in order, N >= 3 for a non-empty polygon.
        height, width: size of the output masks in pixels.
        shrink_px: erode the polygon by this margin: keep only pixels whose centre is farther than
            ``shrink_px`` pixels from every edge. 0 keeps the plain polygon.
    """
    _check_points(points, "points", None, height, width)
    if shrink_px < 0:
        raise DrawingInputError(f"shrink_px must be >= 0, got {shrink_px}")
    vertices = _to_pixels(points, height, width)
    masks = torch.zeros(points.shape[0], 1, height, width, device=points.device)
    # Only pixels whose centre lies in the vertices' bounding box can be inside: rasterise that window.
    low, high = vertices.amin(dim=(0, 1)).tolist(), vertices.amax(dim=(0, 1)).tolist()
    if not all(map(math.isfinite, low + high)):
        low, high = [0.0, 0.0], [float(width), float(height)]
    left, top = max(int(low[0]), 0), max(int(low[1]), 0)
    right, bottom = min(math.ceil(high[0]), width), min(math.ceil(high[1]), height)
    if right <= left or bottom <= top:
        return masks
    x, y = _pixel_centres(bottom - top, right - left, points.device, top, left)
    winding = torch.zeros(points.shape[0], bottom - top, right - left, device=points.device, dtype=torch.int32)
    nearest_edge = torch.full_like(winding, float("inf"), dtype=torch.float32)
    for start, end in zip(vertices.unbind(1), vertices.roll(-1, dims=1).unbind(1)):
        ax, ay = start[:, 0].view(-1, 1, 1), start[:, 1].view(-1, 1, 1)
        bx, by = end[:, 0].view(-1, 1, 1), end[:, 1].view(-1, 1, 1)
        # > 0 when the pixel is left of the directed edge (in image axes, y down).
        side = (bx - ax) * (y - ay) - (x - ax) * (by - ay)
        upward = (ay <= y) & (by > y)
        downward = (by <= y) & (ay > y)
        winding += (upward & (side > 0)).int() - (downward & (side < 0)).int()
        if shrink_px > 0:
            nearest_edge = torch.minimum(nearest_edge, _segment_distance(x, y, start, end))
    inside = winding != 0
    if shrink_px > 0:
        inside &= nearest_edge > shrink_px
    masks[:, 0, top:bottom, left:right] = inside.float()
    return masks


def _draw_lines(points: torch.Tensor, lines: tuple[tuple[int, int], ...], height: int, width: int) -> torch.Tensor:
    """Union of the line segments ``points[:, i] - points[:, j]`` for (i, j) in ``lines``: (B, H, W) bool.

    Strokes are ``line_width(height)`` pixels wide with round caps.
    """
    vertices = _to_pixels(points, height, width)
    x, y = _pixel_centres(height, width, points.device)
    half_width = line_width(height) / 2
    drawn = torch.zeros(points.shape[0], height, width, device=points.device, dtype=torch.bool)
    for i, j in lines:
        drawn |= _segment_distance(x, y, vertices[:, i], vertices[:, j]) <= half_width
    return drawn


def draw_skeleton(pose_nodes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The 10-node pose graph drawn as bones: (B, 3, H, W) float32 in {0, 1}.

    Channel 0 holds the torso bones (neck to nose, shoulders and hips), channel 1 the person's right arm
    (shoulder-elbow-wrist, pose nodes 2-3-4), channel 2 the person's left arm (nodes 5-6-7); see
    ``SKELETON_CHANNELS``. Lines are ``line_width(height)`` pixels wide.

    Args:
        pose_nodes: (B, 10, 2) normalised pose-graph nodes (``TryOnSample.pose_nodes``, batched).
        height, width: size of the drawing in pixels.
    """
    _check_points(pose_nodes, "pose_nodes", NUM_POSE_NODES, height, width)
    return torch.stack(
        [_draw_lines(pose_nodes, bones, height, width) for bones in SKELETON_CHANNELS], dim=1
    ).float()


def draw_garment_contour(garment_kp: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The garment a keypoint set describes, as the target-parse network sees it: (B, 3, H, W) float32 in {0, 1}.

    Channel 0: the contour polyline (``GARMENT_CONTOUR``, closed), ``line_width(height)`` pixels wide.
    Channel 1: the filled ``backbone`` polygon of ``WARP_SEGMENTS``.
    Channel 2: the union of the four filled sleeve polygons (``left_up``, ``left_low``, ``right_up``,
    ``right_low``); empty for a sleeveless garment, whose sleeve polygons have no area.

    Args:
        garment_kp: (B, 32, 2) normalised garment keypoints (predicted or ground truth).
        height, width: size of the drawing in pixels.
    """
    _check_points(garment_kp, "garment_kp", NUM_GARMENT_NODES, height, width)
    contour_edges = tuple(zip(GARMENT_CONTOUR, GARMENT_CONTOUR[1:] + GARMENT_CONTOUR[:1]))
    contour = _draw_lines(garment_kp, contour_edges, height, width).float().unsqueeze(1)
    backbone = polygon_masks(garment_kp[:, list(WARP_SEGMENTS["backbone"])], height, width)
    sleeves = torch.stack(
        [polygon_masks(garment_kp[:, list(WARP_SEGMENTS[name])], height, width) for name in SLEEVE_SEGMENTS]
    ).amax(dim=0)
    return torch.cat([contour, backbone, sleeves], dim=1)
