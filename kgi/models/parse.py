"""Stage 2a of KGI: the target-parse network, a U-Net predicting the person's 13-class parse in the new garment.

Input, 19 channels at the person's resolution (``parse_input``):

====  =====================================================================================================
0-12  the garment-agnostic parse: 13-class one-hot, all zeros where the garment or arms may change
      (``kgi.data.labels.AGNOSTIC_PARSE13``; ``kgi.recompose.agnostic_parse``)
13-15 the pose skeleton (``kgi.drawing.draw_skeleton``): torso, right arm, left arm
16-18 the garment placed on the person by stage 1 (``kgi.drawing.draw_garment_contour``): contour, backbone,
      sleeves; drawn from the keypoint network's *predicted* keypoints at inference and in evaluation
====  =====================================================================================================

Output: 13-class logits ``(B, 13, H, W)``. ``H`` and ``W`` must be multiples of 32 (five halvings).

Example::

    model = ParseUNet()
    logits = model(parse_input(agnostic_onehot, pose_nodes, garment_kp))
    loss, parts = parse_loss(logits, parse13)             # parts: {"ce": ..., "dice": ...}
    intersection, union = iou_counts(logits.argmax(1), parse13)
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from kgi.data.labels import NUM_PARSE13
from kgi.drawing import draw_garment_contour, draw_skeleton
from kgi.graphs import NUM_GARMENT_NODES, NUM_POSE_NODES, check_keypoints
from kgi.models.unet import UNet

NUM_INPUT_CHANNELS = NUM_PARSE13 + 3 + 3
NUM_LEVELS = 5  # halvings of the U-Net (5 down, 5 up)


class ParseInputError(ValueError):
    """Parse-network inputs of the wrong shape, size or label range."""


def parse_input(agnostic_onehot: torch.Tensor, pose_nodes: torch.Tensor, garment_kp: torch.Tensor) -> torch.Tensor:
    """Stack the target-parse network's 19 input channels: (B, 19, H, W) float32.

    Args:
        agnostic_onehot: (B, 13, H, W) garment-agnostic parse one-hot (zero vectors where unknown).
        pose_nodes: (B, 10, 2) normalised pose-graph nodes.
        garment_kp: (B, 32, 2) normalised garment keypoints on the person (stage 1's prediction).

    Returns:
        Channels 0-12 the agnostic parse, 13-15 ``draw_skeleton``, 16-18 ``draw_garment_contour``.
    """
    if agnostic_onehot.dim() != 4 or agnostic_onehot.size(1) != NUM_PARSE13:
        raise ParseInputError(
            f"agnostic_onehot must have shape (B, {NUM_PARSE13}, H, W), got {tuple(agnostic_onehot.shape)}")
    check_keypoints(pose_nodes, NUM_POSE_NODES, "pose_nodes")
    check_keypoints(garment_kp, NUM_GARMENT_NODES, "garment_kp")
    batch, _, height, width = agnostic_onehot.shape
    if pose_nodes.size(0) != batch or garment_kp.size(0) != batch:
        raise ParseInputError(f"batch sizes differ: agnostic_onehot {batch}, pose_nodes {pose_nodes.size(0)}, "
                              f"garment_kp {garment_kp.size(0)}")
    skeleton = draw_skeleton(pose_nodes, height, width).to(agnostic_onehot.device)
    contour = draw_garment_contour(garment_kp, height, width).to(agnostic_onehot.device)
    return torch.cat([agnostic_onehot.float(), skeleton, contour], dim=1)


class ParseUNet(UNet):
    """The target-parse U-Net (``kgi.models.unet.UNet``): five 2x downsamplings, 19 input channels, 13 classes::

        x (B,19,H,W) -> ConvBlock -> [maxpool -> ConvBlock] x 5 -> [upsample, concat skip -> ConvBlock] x 5
          -> 1x1 conv -> logits (B,13,H,W)

    Args:
        base_channels: channels at full resolution.
        max_channels: cap on the channels of the deeper levels.
    """

    def __init__(self, base_channels: int = 16, max_channels: int = 128):
        super().__init__(NUM_INPUT_CHANNELS, NUM_PARSE13, base_channels, max_channels, NUM_LEVELS)
        self.config = {"base_channels": base_channels, "max_channels": max_channels}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: (B, 19, H, W) from ``parse_input``, H and W multiples of 32. Returns (B, 13, H, W) logits."""
        multiple = 2**NUM_LEVELS
        if x.dim() != 4 or x.size(1) != NUM_INPUT_CHANNELS:
            raise ParseInputError(f"input must have shape (B, {NUM_INPUT_CHANNELS}, H, W), got {tuple(x.shape)}")
        if x.size(2) % multiple or x.size(3) % multiple:
            raise ParseInputError(f"input height and width must be multiples of {multiple}, got {x.shape[2:]}")
        return super().forward(x)


def _check_target(logits: torch.Tensor, target: torch.Tensor) -> None:
    if target.dim() != 3 or target.shape != (logits.size(0), *logits.shape[2:]):
        raise ParseInputError(f"target must be (B, H, W) labels matching logits {tuple(logits.shape)}, "
                              f"got {tuple(target.shape)}")
    if target.numel() and (target.min() < 0 or target.max() >= logits.size(1)):
        raise ParseInputError(f"target labels must be 0..{logits.size(1) - 1}")


def parse_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 1.0,
               smooth: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cross-entropy plus a soft-Dice term: ``ce + dice_weight * (1 - mean_c dice_c)``.

    Cross-entropy is dominated by the large classes (background, bottom); the Dice term weighs every class
    present in the batch equally, which is what mIoU measures, so thin classes (arms, the neck) are not
    neglected. ``dice_c = (2 sum p_c t_c + smooth) / (sum p_c + sum t_c + smooth)`` over the whole batch with
    softmax probabilities ``p`` and one-hot target ``t``, averaged over the classes the target contains
    (absent classes are left to the cross-entropy).

    The loss of both parse networks (this module's 13 classes, ``kgi.parsing.ParserUNet``'s 20 CIHP labels).

    Args:
        logits: (B, C, H, W) network output.
        target: (B, H, W) integer labels 0..C-1 (the 13-class parse, or CIHP labels).
        dice_weight: weight of the Dice term.
        smooth: additive smoothing of the Dice ratio.

    Returns:
        ``(loss, parts)`` with detached scalars ``parts["ce"]`` and ``parts["dice"]`` (the 1 - Dice term).
    """
    _check_target(logits, target)
    target = target.long()
    ce = F.cross_entropy(logits, target)
    probs = logits.softmax(dim=1)
    onehot = F.one_hot(target, logits.size(1)).permute(0, 3, 1, 2).to(probs.dtype)  # (B, H, W, C) -> (B, C, H, W)
    overlap = (probs * onehot).sum(dim=(0, 2, 3))  # (C,)
    total = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    dice = (2 * overlap + smooth) / (total + smooth)
    present = onehot.sum(dim=(0, 2, 3)) > 0
    dice_loss = 1.0 - dice[present].mean()
    loss = ce + dice_weight * dice_loss
    return loss, {"ce": ce.detach(), "dice": dice_loss.detach()}


def iou_counts(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class intersection and union pixel counts of two label maps, for IoU summed over a data set.

    Args:
        pred, target: (B, H, W) integer labels 0..12.

    Returns:
        ``(intersection, union)``, each (13,) int64. Over a data set, sum both and take
        ``(intersection / union)[union > 0].mean()`` as the mIoU over the classes present.
    """
    if pred.shape != target.shape:
        raise ParseInputError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    intersection = torch.bincount(target[pred == target], minlength=NUM_PARSE13)
    union = torch.bincount(pred, minlength=NUM_PARSE13) + torch.bincount(target, minlength=NUM_PARSE13) - intersection
    return intersection, union
