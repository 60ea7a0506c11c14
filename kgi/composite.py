"""Stage 3's last step, at the photo's resolution: the inpainter's small output made into pixels of the photo.

The inpainter paints at its working size (64x48 for the shipped one). Blown up 16x with a bilinear filter its
output is a smooth blob that bleeds across the target parse's boundaries and meets the kept pixels with a
colour step. ``composite`` instead, for the painted pixels only (kept pixels are the recomposed image's, exact),
working at ``COMPOSITE_HEIGHT`` rows and upsampled (every step below is smooth at that scale):

1. class-aware upsampling: a painted pixel of target class c takes the inpainter's colours of the small pixels
   of class c only (a normalised convolution weighted by the class's squared coverage of each small pixel), so
   no colour of a neighbouring class bleeds in (a joint upsampling guided by the target parse);
2. skin: the shipped inpainter's skin at 64x48 is a blotch, so painted skin (face-neck and arm classes) gets
   the person's own: a cylinder's shading across each painted limb (from the distance to its outline), mixed
   with the inpainter's shading, then moved to the mean and spread per channel of the skin the recomposition
   kept (``Recomposition.skin_mask``: visible neck and arms, else the face);
3. seams: the difference between kept pixels and the painted colours along the painted region's border (same
   class only) is spread into the painted region by a normalised Gaussian and added, so painted pixels meet
   their kept neighbours without a step (a cheap stand-in for Poisson blending);
4. grain, at full resolution: painted pixels get zero-mean noise with the fine-detail spread (pixel minus its
   3x3 mean; a median absolute deviation, so edges do not count) of the kept pixels of their class (skin: of
   the visible skin), so they are as crisp as the photo around them instead of flat.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from kgi.data.labels import FACE_NECK, LEFT_ARM, RIGHT_ARM

SKIN_CLASSES = (FACE_NECK, LEFT_ARM, RIGHT_ARM)
COMPOSITE_HEIGHT = 256  # rows at which steps 1-3 run
SEAM_REACH = 0.03  # how far into the painted region a seam's colour difference is spread, fraction of the height
MIN_REFERENCE_PIXELS = 16  # fewer reference pixels than this: that step leaves the sample alone
CYLINDER_WEIGHT = 0.7  # share of the painted skin's shading that comes from the cylinder (the rest: inpainter)


def _gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W), zero outside the image (a normalised convolution's parts)."""
    radius = max(int(3 * sigma), 1)
    taps = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    blurred = F.conv2d(images, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1).contiguous(),
                       padding=(radius, 0), groups=channels)
    return F.conv2d(blurred, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1).contiguous(),
                    padding=(0, radius), groups=channels)


def class_aware_upsample(small01: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """(B, 3, h, w) -> (B, 3, H, W) where ``coverage`` (B, C, H, W) holds each class's share of every output
    pixel: each output pixel mixes its classes' own upsampled colours, each a normalised convolution of the small
    pixels weighted by that class's squared coverage (step 1 of the module docstring)."""
    size = coverage.shape[2:]
    upsampled = F.interpolate(small01, size=size, mode="bilinear", align_corners=False)
    weights = F.interpolate(coverage, size=small01.shape[2:], mode="area").square()  # (B, C, h, w)
    mixed = torch.zeros_like(upsampled)
    for label in range(coverage.shape[1]):
        weight = weights[:, label:label + 1]
        numerator = F.interpolate(small01 * weight, size=size, mode="bilinear", align_corners=False)
        denominator = F.interpolate(weight, size=size, mode="bilinear", align_corners=False)
        own = torch.where(denominator > 1e-4, numerator / denominator.clamp_min(1e-4), upsampled)
        mixed = mixed + coverage[:, label:label + 1] * own
    share = coverage.sum(1, keepdim=True)
    return mixed + (1 - share) * upsampled


def cylinder_shading(skin: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) shading in [0, 1] over the ``skin`` pixels (B, 1, H, W bool): 1 - 0.4 (1 - d / r)^2, d the
    distance to the region's outline and r its 95th percentile (a limb's half width): a lit cylinder seen from
    the front, 40% darker at its outline; 0 elsewhere."""
    shading = torch.zeros(skin.shape, dtype=torch.float32)
    for index, mask in enumerate(skin[:, 0].cpu().numpy()):
        if mask.sum() < 2:
            continue
        distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
        radius = max(float(np.percentile(distance[mask], 95)), 1.0)
        depth = np.clip(distance / radius, 0, 1)
        shading[index, 0] = torch.from_numpy((1 - 0.4 * (1 - depth) ** 2) * mask)
    return shading.to(skin.device)


def match_colour(image01: torch.Tensor, painted: torch.Tensor, reference01: torch.Tensor,
                 reference: torch.Tensor) -> torch.Tensor:
    """Move the ``painted`` pixels (B, 1, H, W bool) of ``image01`` to the mean and spread per channel of
    ``reference01``'s pixels under ``reference`` (B, 1, H, W bool); the spread ratio is held in [0.25, 1] (the
    reference's spread includes its shadows and outline: never more contrast than the painted pixels had)."""
    matched = image01.clone()
    for index in range(len(image01)):
        source_mask, wanted_mask = painted[index, 0], reference[index, 0]
        if source_mask.sum() < 2 or wanted_mask.sum() < MIN_REFERENCE_PIXELS:
            continue
        source, wanted = image01[index][:, source_mask], reference01[index][:, wanted_mask]  # (3, N), (3, M)
        scale = (wanted.std(1) / source.std(1).clamp_min(1e-3)).clamp(0.25, 1)
        moved = (source - source.mean(1, keepdim=True)) * scale[:, None] + wanted.mean(1, keepdim=True)
        matched[index][:, source_mask] = moved.clamp(0, 1)
    return matched


def seam_offsets(image01: torch.Tensor, known01: torch.Tensor, keep: torch.Tensor, coverage: torch.Tensor
                 ) -> torch.Tensor:
    """(B, 3, H, W) colour offsets for painted pixels: per class, the kept-minus-painted difference of nearby kept
    pixels of that class spread by a normalised Gaussian (step 3), mixed by each pixel's class coverage."""
    sigma = max(SEAM_REACH * keep.shape[2] / 2, 1.0)
    difference = (known01 - image01) * keep
    offsets = torch.zeros_like(image01)
    for label in range(coverage.shape[1]):
        member = coverage[:, label:label + 1]
        spread = _gaussian_blur(difference * member, sigma) / _gaussian_blur(member * keep, sigma).clamp_min(0.25)
        offsets = offsets + member * spread
    return offsets


def _fine_detail(images01: torch.Tensor) -> torch.Tensor:
    """Each pixel minus its 3x3 mean: (B, 3, H, W)."""
    return images01 - F.avg_pool2d(images01, 3, 1, 1, count_include_pad=False)


def composite(small01: torch.Tensor, known01: torch.Tensor, keep_mask: torch.Tensor, target_parse13: torch.Tensor,
              skin_mask: torch.Tensor, seed: int | list[int] = 0) -> torch.Tensor:
    """The try-on at full resolution from the inpainter's small output (the module docstring's steps).

    Args:
        small01: (B, 3, h, w) the inpainter's output in [0, 1].
        known01: (B, 3, H, W) the recomposed image; keep_mask: (B, 1, H, W) {0, 1}, its kept pixels.
        target_parse13: (B, H, W) integer target parse (what each painted pixel is).
        skin_mask: (B, 1, H, W) {0, 1} the person's visible skin in ``known01``.
        seed: the grain's seed, one per image or one for all.

    Returns (B, 3, H, W) in [0, 1]; every kept pixel is ``known01``'s.
    """
    height, width = known01.shape[2:]
    keep = keep_mask > 0.5
    classes = [int(label) for label in torch.unique(target_parse13[~keep[:, 0]])]
    if not classes:
        return known01.clone()
    size = (min(height, COMPOSITE_HEIGHT), round(width * min(height, COMPOSITE_HEIGHT) / height))
    members = torch.stack([target_parse13 == label for label in classes], dim=1)  # (B, C, H, W)
    coverage = F.interpolate(members.float(), size=size, mode="area")
    keep_small = F.interpolate(keep_mask.float(), size=size, mode="area")
    known_small = F.interpolate(known01, size=size, mode="area")
    # Kept-pixel colours at the small size: the area average over kept pixels only.
    known_small = torch.where(keep_small > 0, F.interpolate(known01 * keep_mask, size=size, mode="area")
                              / keep_small.clamp_min(1e-6), known_small)

    image = class_aware_upsample(small01.float(), coverage)
    skin_classes = [index for index, label in enumerate(classes) if label in SKIN_CLASSES]
    painted_small = keep_small < 1
    if skin_classes:
        skin_share = coverage[:, skin_classes].sum(1, keepdim=True)
        painted_skin = painted_small & (skin_share > 0.5)
        shading = cylinder_shading(painted_skin)
        luminance = image.mean(1, keepdim=True)
        shaded = CYLINDER_WEIGHT * shading + (1 - CYLINDER_WEIGHT) * luminance
        reference = F.interpolate(skin_mask.float(), size=size, mode="area") > 0.99
        skin = match_colour(shaded.expand(-1, 3, -1, -1), painted_skin, known_small, reference)
        image = torch.where(painted_skin, skin, image)
    image = image + seam_offsets(image, known_small, keep_small.clamp(0, 1) >= 1, coverage)
    image = F.interpolate(image, size=(height, width), mode="bilinear", align_corners=False)

    seeds = [seed] * len(image) if isinstance(seed, int) else seed
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    noise = torch.stack([torch.randn(3, height, width, generator=g) for g in generators]).to(image.device)
    detail = _fine_detail(known01).abs().mean(1)  # (B, H, W)
    grain = torch.zeros_like(image[:, :1])
    for label in classes:
        member = (target_parse13 == label)[:, None]
        reference = skin_mask > 0.5 if label in SKIN_CLASSES else member & keep
        spread = [1.4826 * float(d[r[0]].median()) if r.any() else 0.0 for d, r in zip(detail, reference)]
        grain = torch.where(member, torch.tensor(spread, device=image.device).view(-1, 1, 1, 1), grain)
    image = image + noise * grain
    return torch.where(keep, known01, image.clamp(0, 1))
