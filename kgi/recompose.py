"""Stage 2b: the garment-agnostic person and the recomposed image the inpainter completes.

``recompose`` builds, from the person photo, its parse, the target parse (the person wearing the new
garment, predicted by stage 2a) and the warped garment (``kgi.warp``), the image the keep-mask sampler
starts from and the mask of pixels it must keep:

    blanked  = agnostic region: upper garment and arms in the person's parse or in the target parse
    image    = grey 0.5 on blanked, the person elsewhere
    image    = warped garment where ``warp.mask``                     (pasted garment)
    image    = person where the person's arm is the same arm in the target parse   (skin pasted back)
    keep     = not blanked, or pasted garment, or skin pasted back

Skin goes on top of the garment: where the target parse says "arm" the person's own arm pixels are
exact (an arm crossing in front of the torso stays in front of the new garment). Blanking the target
parse's garment and arms too means pixels the new garment should cover but the warp missed are painted,
not left showing the person's background.

Parse maps are (B, H, W) integer labels of the 13 model classes (``kgi.data.labels.PARSE13_LABELS``);
a target parse predicted as scores is passed as ``scores.argmax(1)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kgi.data.labels import AGNOSTIC_PARSE13, LEFT_ARM, NUM_PARSE13, RIGHT_ARM
from kgi.warp import WarpResult

BLANK_VALUE = 0.5  # grey written on the region the inpainter paints


class RecomposeInputError(ValueError):
    """Inputs recomposition cannot use: wrong shapes or dtypes, labels out of range."""


@dataclass
class Recomposition:
    """The inpainter's starting point.

    Attributes:
        image: (B, 3, H, W) in [0, 1]: the person, garment-agnostic region grey (0.5), the warped garment
            and the person's remaining arm skin pasted.
        keep_mask: (B, 1, H, W) float {0, 1}: 1 where ``image`` is known (person pixels kept, garment or
            skin pasted), 0 where the inpainter must paint.
    """

    image: torch.Tensor
    keep_mask: torch.Tensor


def _check_parse(parse13: torch.Tensor, name: str) -> None:
    if parse13.dim() != 3 or parse13.dtype.is_floating_point or parse13.dtype == torch.bool:
        raise RecomposeInputError(
            f"{name} must be a (B, H, W) integer label map, got {tuple(parse13.shape)} {parse13.dtype}")
    if parse13.numel() and (int(parse13.min()) < 0 or int(parse13.max()) >= NUM_PARSE13):
        raise RecomposeInputError(f"{name} has labels outside 0..{NUM_PARSE13 - 1}")


def agnostic_region(parse13: torch.Tensor) -> torch.Tensor:
    """Where a new garment may change the person: (B, H, W) bool, pixels labelled upper garment or arm
    (``AGNOSTIC_PARSE13``) in ``parse13``, a (B, H, W) integer 13-class parse."""
    return torch.isin(parse13, torch.tensor(AGNOSTIC_PARSE13, device=parse13.device))


def agnostic_parse(parse13: torch.Tensor) -> torch.Tensor:
    """The garment-agnostic parse: one-hot (B, 13, H, W) float32 with every channel zero ("unknown") where
    the person's parse is upper garment or arm (``AGNOSTIC_PARSE13``).

    Args:
        parse13: (B, H, W) integer labels 0..12 of the person's parse.
    """
    _check_parse(parse13, "parse13")
    one_hot = F.one_hot(parse13.long(), NUM_PARSE13).permute(0, 3, 1, 2).float()  # (B, H, W, 13) -> (B, 13, H, W)
    return one_hot * (~agnostic_region(parse13)).unsqueeze(1).float()


def recompose(
    person: torch.Tensor,
    parse13: torch.Tensor,
    target_parse13: torch.Tensor,
    warp: WarpResult,
) -> Recomposition:
    """The person with the garment-agnostic region blanked, the warped garment and kept skin pasted.

    See the module docstring for the exact rule.

    Args:
        person: (B, 3, H, W) person photo in [0, 1].
        parse13: (B, H, W) integer 13-class parse of the person photo.
        target_parse13: (B, H, W) integer 13-class parse of the person wearing the new garment.
        warp: the warped garment (``warp_five_segments`` or ``warp_single_tps``) at the same size.
    """
    if person.dim() != 4 or person.shape[1] != 3:
        raise RecomposeInputError(f"person must be (B, 3, H, W), got {tuple(person.shape)}")
    batch, _, height, width = person.shape
    _check_parse(parse13, "parse13")
    _check_parse(target_parse13, "target_parse13")
    for name, tensor in (("parse13", parse13), ("target_parse13", target_parse13)):
        if tensor.shape != (batch, height, width):
            raise RecomposeInputError(f"{name} must be {(batch, height, width)}, got {tuple(tensor.shape)}")
    if warp.garment.shape != person.shape or warp.mask.shape != (batch, 1, height, width):
        raise RecomposeInputError(
            f"warp must match person {tuple(person.shape)}, got garment {tuple(warp.garment.shape)} "
            f"and mask {tuple(warp.mask.shape)}")

    blanked = (agnostic_region(parse13) | agnostic_region(target_parse13)).unsqueeze(1)  # (B, 1, H, W)
    garment = warp.mask > 0.5
    kept_skin = (((parse13 == LEFT_ARM) & (target_parse13 == LEFT_ARM))
                 | ((parse13 == RIGHT_ARM) & (target_parse13 == RIGHT_ARM))).unsqueeze(1)

    image = torch.where(blanked, torch.full_like(person, BLANK_VALUE), person)
    image = torch.where(garment, warp.garment, image)
    image = torch.where(kept_skin, person, image)
    keep_mask = (~blanked | garment | kept_skin).float()
    return Recomposition(image=image, keep_mask=keep_mask)
