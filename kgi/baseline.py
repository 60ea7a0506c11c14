"""Stage 1 baseline: a hand-made geometric transfer of the flat garment's keypoints onto a person.

No learning, two steps:

1. **Torso.** The least-squares similarity (rotation, uniform scale, translation) that takes the garment's
   shoulders and hem onto the person's shoulders and hip midpoint is applied to all 32 nodes:

   ========================================  =========================================
   garment                                   person (pose nodes)
   ========================================  =========================================
   node 5 (image-left shoulder)              2, the person's RIGHT shoulder (image left)
   node 31 (image-right shoulder)            5, the person's left shoulder
   centroid of the hem nodes 17, 18, 19      midpoint of the hips 8 and 9
   ========================================  =========================================

2. **Sleeves.** Each sleeve is bent along its arm (image-left sleeve 6-13 on the right arm 2-3-4, image-right
   sleeve 23-30 on the left arm 5-6-7): the whole sleeve turns about its armhole so that its axis (armhole
   midpoint -> elbow-node midpoint) follows the upper arm, then its lower half (the nodes past the elbow) turns
   about the elbow-node midpoint so that its axis (-> cuff midpoint) follows the forearm. A sleeve too short to
   have an axis (a sleeveless garment's nodes lie on the armhole) and a bone of zero length (an undetected joint
   filled by its parent) leave the sleeve as step 1 placed it.

Everything is computed in isotropic units, ``(x * aspect, y)``, so that angles and the similarity's scale mean
the same as in pixels although the normalised coordinates divide x and y by different sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kgi.graphs import LEFT_SLEEVE_NODES, NUM_GARMENT_NODES, NUM_POSE_NODES, RIGHT_SLEEVE_NODES
from kgi.graphs import KeypointInputError, check_keypoints


@dataclass(frozen=True)
class _Sleeve:
    """Garment nodes of one sleeve and the arm (pose nodes shoulder, elbow, wrist) it is worn on."""

    nodes: tuple[int, ...]  # all eight sleeve nodes
    armhole: tuple[int, int]  # shoulder node, armpit node: the axis starts at their midpoint
    elbow: tuple[int, int]  # outer and inner elbow nodes
    cuff: tuple[int, int]  # outer and inner cuff nodes
    lower: tuple[int, ...]  # nodes past the elbow, which follow the forearm
    arm: tuple[int, int, int]  # pose nodes shoulder, elbow, wrist


_SLEEVES = (
    _Sleeve(LEFT_SLEEVE_NODES, armhole=(5, 14), elbow=(7, 12), cuff=(9, 10), lower=(8, 9, 10, 11), arm=(2, 3, 4)),
    _Sleeve(RIGHT_SLEEVE_NODES, armhole=(31, 22), elbow=(29, 24), cuff=(27, 26), lower=(25, 26, 27, 28),
            arm=(5, 6, 7)),
)
# A sleeve axis or arm bone shorter than this fraction of the person's shoulder width has no direction.
_MIN_AXIS_FRACTION = 0.1


def geometric_transfer(cloth_kp: torch.Tensor, pose_nodes: torch.Tensor, aspect: float = 0.75) -> torch.Tensor:
    """Place flat-garment keypoints on a person by a torso similarity and sleeves bent along the arms.

    Args:
        cloth_kp: (32, 2) or (B, 32, 2) flat-garment keypoints, normalised to the cloth image.
        pose_nodes: (10, 2) or (B, 10, 2) pose-graph nodes, normalised to the person image.
        aspect: image width / height (VITON-HD: 0.75), the same for the cloth and the person image.

    Returns:
        Garment keypoints on the person, normalised, with the shape of ``cloth_kp``.
    """
    unbatched = isinstance(cloth_kp, torch.Tensor) and cloth_kp.dim() == 2
    if unbatched:
        cloth_kp, pose_nodes = cloth_kp.unsqueeze(0), pose_nodes.unsqueeze(0)
    check_keypoints(cloth_kp, NUM_GARMENT_NODES, "cloth_kp")
    check_keypoints(pose_nodes, NUM_POSE_NODES, "pose_nodes")
    if cloth_kp.size(0) != pose_nodes.size(0):
        raise KeypointInputError(
            f"cloth_kp and pose_nodes have different batch sizes ({cloth_kp.size(0)} vs {pose_nodes.size(0)})")
    to_isotropic = torch.tensor([aspect, 1.0], dtype=cloth_kp.dtype, device=cloth_kp.device)
    garment, pose = cloth_kp * to_isotropic, pose_nodes * to_isotropic

    garment_anchors = torch.stack([garment[:, 5], garment[:, 31], garment[:, [17, 18, 19]].mean(1)], dim=1)
    person_anchors = torch.stack([pose[:, 2], pose[:, 5], pose[:, [8, 9]].mean(1)], dim=1)  # (B, 3, 2)
    worn = fit_similarity(garment_anchors, person_anchors)(garment)
    min_length = _MIN_AXIS_FRACTION * (pose[:, 2] - pose[:, 5]).norm(dim=-1)  # (B,)
    for sleeve in _SLEEVES:
        worn = _bend_sleeve(worn, pose[:, list(sleeve.arm)], sleeve, min_length)

    worn = worn / to_isotropic
    return worn[0] if unbatched else worn


def fit_similarity(source: torch.Tensor, target: torch.Tensor):
    r"""Least-squares 2-D similarity from ``source`` to ``target`` points, both (B, K, 2), K >= 2.

    In complex numbers :math:`z' = a z + b`; with centred points :math:`s_k, t_k` the optimum is
    :math:`a = \sum_k \bar s_k t_k / \sum_k |s_k|^2` (no reflection), :math:`b = \bar t - a \bar s`.

    Returns a function mapping (B, N, 2) points with the fitted transforms.
    """
    source_mean, target_mean = source.mean(1, keepdim=True), target.mean(1, keepdim=True)  # (B, 1, 2)
    s, t = source - source_mean, target - target_mean
    norm = s.square().sum(dim=(1, 2)).clamp_min(1e-12)  # (B,)
    a_real = (s[..., 0] * t[..., 0] + s[..., 1] * t[..., 1]).sum(1) / norm  # scale * cos(angle)
    a_imag = (s[..., 0] * t[..., 1] - s[..., 1] * t[..., 0]).sum(1) / norm  # scale * sin(angle)
    matrix = torch.stack([torch.stack([a_real, -a_imag], -1), torch.stack([a_imag, a_real], -1)], -2)  # (B, 2, 2)

    def apply(points: torch.Tensor) -> torch.Tensor:
        return (points - source_mean) @ matrix.transpose(1, 2) + target_mean

    return apply


def _bend_sleeve(worn: torch.Tensor, arm: torch.Tensor, sleeve: _Sleeve, min_length: torch.Tensor) -> torch.Tensor:
    """Turn one sleeve along the upper arm, then its lower half along the forearm.

    Args: worn (B, 32, 2) isotropic keypoints; arm (B, 3, 2) shoulder, elbow, wrist; min_length (B,).
    """
    worn = worn.clone()
    armhole = worn[:, list(sleeve.armhole)].mean(1)  # (B, 2)
    elbow = worn[:, list(sleeve.elbow)].mean(1)
    upper_turn = _turn_angle(elbow - armhole, arm[:, 1] - arm[:, 0], min_length)
    nodes = list(sleeve.nodes)
    worn[:, nodes] = _rotate(worn[:, nodes], armhole, upper_turn)

    elbow = worn[:, list(sleeve.elbow)].mean(1)
    cuff = worn[:, list(sleeve.cuff)].mean(1)
    lower_turn = _turn_angle(cuff - elbow, arm[:, 2] - arm[:, 1], min_length)
    lower = list(sleeve.lower)
    worn[:, lower] = _rotate(worn[:, lower], elbow, lower_turn)
    return worn


def _turn_angle(current: torch.Tensor, wanted: torch.Tensor, min_length: torch.Tensor) -> torch.Tensor:
    """Signed angle (B,) turning direction ``current`` (B, 2) onto ``wanted`` (B, 2); 0 where either is shorter
    than ``min_length``."""
    cross = current[:, 0] * wanted[:, 1] - current[:, 1] * wanted[:, 0]
    dot = (current * wanted).sum(-1)
    defined = (current.norm(dim=-1) > min_length) & (wanted.norm(dim=-1) > min_length)
    return torch.where(defined, torch.atan2(cross, dot), torch.zeros_like(dot))


def _rotate(points: torch.Tensor, pivot: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate (B, N, 2) points about pivot (B, 2) by angle (B,) radians."""
    cos, sin = angle.cos()[:, None], angle.sin()[:, None]  # (B, 1)
    offset = points - pivot[:, None]
    x, y = offset[..., 0], offset[..., 1]
    return torch.stack([cos * x - sin * y, sin * x + cos * y], dim=-1) + pivot[:, None]
