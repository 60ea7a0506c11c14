"""The two keypoint graphs of KGI and the five warp segments.

Numbering, documented once here and used everywhere:

Pose graph (10 nodes), taken from OpenPose BODY_25 indices ``POSE_BODY25_INDEX``::

    node  0 nose       1 neck
    node  2 R-shoulder 3 R-elbow  4 R-wrist      (the person's right: image left when facing the camera)
    node  5 L-shoulder 6 L-elbow  7 L-wrist
    node  8 R-hip      9 L-hip

Garment graph (32 nodes), a flat front view with node 0 on the image-left side::

    0-4     neckline, 2 = centre front
    5, 31   shoulders (5 image-left, 31 image-right)
    6-13    image-left sleeve (worn on the person's right arm): 6 outer near shoulder, 7 outer elbow,
            8 outer near cuff, 9 cuff outer, 10 cuff inner, 11 inner near cuff, 12 inner elbow,
            13 inner near armpit
    14, 22  armpits (14 image-left)
    15-17   image-left side, top to hem corner; 18 hem centre; 19-21 image-right side, hem corner to top
    23-30   image-right sleeve (the person's left arm), mirrored: 23 inner near armpit, 24 inner elbow,
            25 inner near cuff, 26 cuff inner, 27 cuff outer, 28 outer near cuff, 29 outer elbow,
            30 outer near shoulder

Sides: "left"/"right" in garment-node and segment names mean the garment image's left/right, so the
image-left sleeve (6-13, segments ``left_up``/``left_low``) is worn on the person's RIGHT arm (pose nodes
2-3-4, CIHP label 15 "right-arm"), and 23-30 on the person's left arm (pose 5-6-7, CIHP 14 "left-arm").

The contour is the closed loop 0-1-2-3-4-31-30-...-6-5-0. A sleeveless garment places 6-13 (and 23-30)
evenly on the armhole line from shoulder to armpit, so every node always exists.

The topology is plain Python, and torch is imported only by the two tensor helpers when they run: the data code
(``kgi.data``) uses these numbers in every Ray Data worker of a training run, where importing torch costs each
fresh worker 1.6-1.8 s of CPU before its first batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# The pose graph's nodes: nose, neck, right shoulder, elbow and wrist, left shoulder, elbow and wrist, right hip,
# left hip (BODY_25 joints, in that order).
POSE_BODY25_INDEX: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 9, 12)
NUM_POSE_NODES = len(POSE_BODY25_INDEX)
POSE_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (1, 5), (2, 3), (5, 6), (3, 4), (6, 7), (1, 8), (1, 9),
)
# A joint OpenPose did not detect takes the position of this pose node (BRIEF.md section 1).
POSE_FILL_FROM: dict[int, int] = {0: 1, 2: 1, 5: 1, 8: 1, 9: 1, 3: 2, 4: 3, 6: 5, 7: 6}

NUM_GARMENT_NODES = 32
NECKLINE = (0, 1, 2, 3, 4)  # the neckline's nodes: image-left corner, front centre (2), image-right corner
HEM_CENTRE = 18  # the garment node at the hem's centre
HEM = (17, HEM_CENTRE, 19)  # the hem's nodes: image-left corner, centre, image-right corner
# The body's sides, armpit to hem corner (armpit, two side nodes, hem corner): image-left, then image-right.
BODY_SIDES: tuple[tuple[int, int, int, int], ...] = ((14, 15, 16, 17), (22, 21, 20, 19))
GARMENT_CONTOUR: tuple[int, ...] = (0, 1, 2, 3, 4, *range(31, 4, -1))  # closed loop, back to 0
GARMENT_CONTOUR_EDGES: tuple[tuple[int, int], ...] = tuple(
    (GARMENT_CONTOUR[i], GARMENT_CONTOUR[(i + 1) % len(GARMENT_CONTOUR)]) for i in range(len(GARMENT_CONTOUR))
)
GARMENT_SYMMETRY_EDGES: tuple[tuple[int, int], ...] = (
    (0, 4), (1, 3), (5, 31), (14, 22), (15, 21), (16, 20), (17, 19),
    (6, 13), (7, 12), (8, 11), (23, 30), (24, 29), (25, 28), (2, 18),
)
GARMENT_EDGES = GARMENT_CONTOUR_EDGES + GARMENT_SYMMETRY_EDGES

# The five warp segments, each a polygon of garment nodes in contour order.
WARP_SEGMENTS: dict[str, tuple[int, ...]] = {
    "backbone": (4, 3, 2, 1, 0, 5, 14, 15, 16, 17, 18, 19, 20, 21, 22, 31),
    "left_up": (5, 6, 7, 12, 13, 14),
    "left_low": (7, 8, 9, 10, 11, 12),
    "right_up": (22, 23, 24, 29, 30, 31),
    "right_low": (24, 25, 26, 27, 28, 29),
}
# Pasting order: backbone first, sleeves last so a sleeve crossing the torso stays on top.
WARP_PASTE_ORDER: tuple[str, ...] = ("backbone", "left_up", "right_up", "left_low", "right_low")

# Garment nodes that follow each arm bone, used by the geometric baseline and the landmark extractor.
LEFT_SLEEVE_NODES = tuple(range(6, 14))
RIGHT_SLEEVE_NODES = tuple(range(23, 31))
SLEEVE_TYPES: tuple[str, ...] = ("long", "short", "none")


def edge_index(edges: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """Directed ``edge_index`` (2, 2E) of an undirected edge list, both directions, as torch-geometric expects."""
    import torch

    pairs = torch.tensor(edges, dtype=torch.long).t()  # (2, E)
    return torch.cat([pairs, pairs.flip(0)], dim=1)


def pose_edge_index() -> torch.Tensor:
    """Edge index of the 10-node pose graph: 9 undirected edges, 18 directed."""
    return edge_index(POSE_EDGES)


def garment_edge_index() -> torch.Tensor:
    """Edge index of the 32-node garment graph: 32 contour + 14 symmetry edges, 92 directed."""
    return edge_index(GARMENT_EDGES)


class KeypointInputError(ValueError):
    """Keypoint tensors of the wrong shape, or with NaN/inf values."""


def check_keypoints(points: torch.Tensor, num_nodes: int, name: str) -> None:
    """Raise ``KeypointInputError`` unless ``points`` is a finite float tensor of shape (B, num_nodes, 2)."""
    import torch

    if not isinstance(points, torch.Tensor) or not points.is_floating_point():
        raise KeypointInputError(f"{name} must be a float tensor, got {type(points).__name__}")
    if points.dim() != 3 or points.shape[1:] != (num_nodes, 2):
        raise KeypointInputError(f"{name} must have shape (B, {num_nodes}, 2), got {tuple(points.shape)}")
    if not torch.isfinite(points).all():
        raise KeypointInputError(f"{name} contains NaN or infinity")
