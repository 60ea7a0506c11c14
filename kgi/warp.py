"""Stage 2b: garment warping with thin-plate splines driven by garment keypoints.

Two methods of ``warp_garment`` put a flat garment photo onto a person, both backward warps (for every output
pixel, a thin-plate spline says where to read the flat garment; ``grid_sample`` reads it):

- ``"single_tps"``, the baseline: one spline through all 32 garment keypoints. A sleeve crossing the
  torso folds the spline over itself and smears the whole garment.
- ``"five_segments"``, KGI's warp: the garment is cut into the five polygons of
  ``kgi.graphs.WARP_SEGMENTS`` (backbone, two upper and two lower sleeve parts), each gets its own spline
  and its own mask (its target polygon), and the parts are pasted backbone first, sleeves last.

All keypoints are normalised (x, y) with the image spanning [0, 1] (see ``kgi.drawing`` for the pixel
convention, which is ``grid_sample``'s with ``align_corners=False``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from kgi.drawing import polygon_masks
from kgi.graphs import NECKLINE, NUM_GARMENT_NODES, WARP_PASTE_ORDER, WARP_SEGMENTS
from kgi.labelmaps import bounding_box, nearest_pixels, pieces
from kgi.landmarks.geometry import smooth_curve


class WarpInputError(ValueError):
    """Inputs a warp cannot use: wrong shapes, mismatched batch or image sizes, too few points."""


SEGMENT_NAMES: tuple[str, ...] = tuple(WARP_SEGMENTS)
WARP_METHODS = ("five_segments", "single_tps")  # KGI's warp and the baseline (``warp_garment``)
# Garment nodes of each segment as one (5, 16) index: shorter polygons repeat their last node, which adds a
# zero-length edge to the polygon and a duplicate control point to the spline (both harmless, see below).
_SEGMENT_LENGTH = max(len(nodes) for nodes in WARP_SEGMENTS.values())
SEGMENT_NODE_INDEX = torch.tensor(
    [list(nodes) + [nodes[-1]] * (_SEGMENT_LENGTH - len(nodes)) for nodes in WARP_SEGMENTS.values()]
)
# Rank of each segment (in SEGMENT_NAMES order) in the pasting order: higher is pasted later, on top.
_PASTE_RANK = torch.tensor([WARP_PASTE_ORDER.index(name) for name in SEGMENT_NAMES])
# Ridge on the spline's affine block: keeps the system solvable when a segment's points are collinear.
_AFFINE_RIDGE = 1e-9
# Rows at which the splines are evaluated (and the five-segment warp chooses each pixel's segment) before being
# upsampled to the image: a spline is smooth at that scale, and evaluating it at 1024 rows cost 16x the time
# for no visible difference (``warp_garment``).
GEOMETRY_HEIGHT = 256
# How far (a fraction of the image height) the backbone may reach beyond its polygon to fill the gaps the
# polygons leave between the torso and the sleeves (see ``warp_garment``).
BACKBONE_REACH = 0.04
_SUBPIXEL = 4  # cv2 drawing's fractional bits: vertices at 1/16 pixel
# The garment photo's outline pixels not pasted, a fraction of its height: the product photo blends the cloth
# with its white background there, which the warp stretches into pale lines along the garment's edges.
OUTLINE_RIM = 0.002
# A mask made from the photo closes the narrow wedges of backdrop at its concave corners (a cuff's underside meeting
# the body's side, 3-6 pixels wide on the black Stussy tee 09164, grey in the cuff's shadow), and the warp stretched
# them into a white line along the worn cuff. Within BACKDROP_REACH of the height of the mask's outline, a pixel
# nearer the backdrop's colour than the garment's own beside it, and at least BACKDROP_TOLERANCE (RGB 0-255, the
# mask rule's own tolerance, ``kgi.preprocess.BACKGROUND_TOLERANCE``) from the latter, is not pasted; only on a
# garment that stands out from its backdrop (its median distance to it at least BACKDROP_CONTRAST): a white tee on
# white is its backdrop's colour at its edges.
BACKDROP_REACH = 0.008
BACKDROP_TOLERANCE = 18.0
BACKDROP_CONTRAST = 54.0
# The inside of the back around the neckline's hole (``_inside_around``): within this fraction of the height of
# the hole, and at least this Lab distance (OpenCV's 8-bit Lab) from the front's colour.
INSIDE_REACH = 0.02
INSIDE_CONTRAST = 30.0
# Only around a round neckline: one whose centre (node 2) lies at most this fraction of the corners' distance
# below them (crew and scoop necks 0.01-0.51 on the 18 genuine garments). A deeper one is a V, a wrap or an
# open collar (0.69-1.47), whose facings and collar are the garment's own front, not the inside of the back.
ROUND_NECKLINE_DEPTH = 0.6


@dataclass
class WarpResult:
    """A garment warped onto the person.

    Attributes:
        garment: (B, 3, H, W) warped garment in [0, 1], zero outside ``mask``.
        mask: (B, 1, H, W) float {0, 1}, pixels the warped garment covers.
        segment_masks: (B, S, H, W) float {0, 1}, the pixels each segment contributes after pasting
            (channels in ``SEGMENT_NAMES`` order for the five-segment warp, S = 5; a single channel equal
            to ``mask`` for the single TPS). The channels partition ``mask``.
        neck_hole: (B, 1, H, W) float {0, 1}, pixels outside ``mask`` where the person's neck shows through the
            garment's neckline: where the warp shows the flat photo's neck hole (the inside of the back, behind
            the front neckline), and above the line between the worn neck corners (nodes 0 and 4); None where
            not known.
    """

    garment: torch.Tensor
    mask: torch.Tensor
    segment_masks: torch.Tensor
    neck_hole: torch.Tensor | None = None


def _tps_kernel(squared_distance: torch.Tensor) -> torch.Tensor:
    """U(r) = r^2 log r^2 from r^2; U(0) = 0 with a finite gradient (r^2 is floored at a tiny value)."""
    squared_distance = squared_distance.clamp_min(1e-20)
    return squared_distance * torch.log(squared_distance)


def _pixel_grid(height: int, width: int, device: torch.device) -> torch.Tensor:
    """Normalised (x, y) of every pixel centre, row-major: (H * W, 2) float32."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1).view(height * width, 2)


def tps_sampling_grid(
    target_pts: torch.Tensor,
    source_pts: torch.Tensor,
    height: int,
    width: int,
    regularization: float = 1e-4,
) -> torch.Tensor:
    """Batched, differentiable thin-plate spline f mapping target-space points to source-space points,
    evaluated at every output pixel: a ``grid_sample`` grid (B, H, W, 2) in [-1, 1] (align_corners=False).

    For control points c_i = ``target_pts[b, i]`` and values v_i = ``source_pts[b, i]`` (i = 1..N), each
    sample's spline is

        f(p) = a_0 + A p + sum_i w_i U(|p - c_i|),    U(r) = r^2 log r^2,

    with coefficients from one linear system per sample (``torch.linalg.solve``, in float64):

        [ K + lambda I    P     ] [ w ]   [ v ]
        [ P^T          -eps I   ] [ a ] = [ 0 ]      K_ij = U(|c_i - c_j|),  P_i = (1, c_i),

    lambda = ``regularization`` trades interpolation for smoothness (lambda = 0 interpolates exactly) and
    keeps the system solvable when control points repeat (a sleeveless garment collapses sleeve nodes).
    eps = 1e-9 is a ridge on the affine part so that collinear control points (the zero-area sleeve
    segments of a sleeveless garment) still give a finite spline; it perturbs other fits by O(eps).
    An affine map from targets to sources is reproduced exactly (w = 0) up to that perturbation.

    Args:
        target_pts: (B, N, 2) normalised control points in the output (person) image, N >= 3.
        source_pts: (B, N, 2) normalised positions they map to in the input (flat garment) image.
        height, width: size of the output grid in pixels.
        regularization: lambda above, >= 0, in normalised units.

    Returns (B, H, W, 2) float32: ``grid[b, i, j]`` = 2 f(pixel centre (i, j)) - 1, ready for
    ``F.grid_sample(source_image, grid, align_corners=False)``. Gradients flow to both point sets.
    """
    if target_pts.dim() != 3 or target_pts.shape[-1] != 2 or target_pts.shape[1] < 3:
        raise WarpInputError(f"target_pts must be (B, N, 2) with N >= 3, got {tuple(target_pts.shape)}")
    if source_pts.shape != target_pts.shape:
        raise WarpInputError(
            f"source_pts {tuple(source_pts.shape)} must have the shape of target_pts {tuple(target_pts.shape)}")
    if not (torch.isfinite(target_pts).all() and torch.isfinite(source_pts).all()):
        raise WarpInputError("target_pts and source_pts must be finite (got NaN or infinity)")
    if regularization < 0:
        raise WarpInputError(f"regularization must be >= 0, got {regularization}")
    batch, num_points, _ = target_pts.shape
    controls = target_pts.double()
    ones = controls.new_ones(batch, num_points, 1)

    kernel = _tps_kernel((controls.unsqueeze(2) - controls.unsqueeze(1)).square().sum(-1))  # (B, N, N)
    kernel = kernel + regularization * torch.eye(num_points, dtype=torch.float64, device=controls.device)
    affine_basis = torch.cat([ones, controls], dim=2)  # (B, N, 3)
    system = torch.cat([
        torch.cat([kernel, affine_basis], dim=2),
        torch.cat([affine_basis.transpose(1, 2),
                   -_AFFINE_RIDGE * torch.eye(3, dtype=torch.float64, device=controls.device).expand(batch, 3, 3)],
                  dim=2),
    ], dim=1)  # (B, N + 3, N + 3)
    values = torch.cat([source_pts.double(), controls.new_zeros(batch, 3, 2)], dim=1)  # (B, N + 3, 2)
    coefficients = torch.linalg.solve(system, values).float()
    weights, affine = coefficients[:, :num_points], coefficients[:, num_points:]  # (B, N, 2), (B, 3, 2)

    pixels = _pixel_grid(height, width, target_pts.device)  # (H*W, 2)
    controls32 = target_pts.float()
    # |p - c|^2 expanded, so no (B, H*W, N, 2) difference tensor is built.
    squared_distance = (pixels.square().sum(1).view(1, -1, 1) - 2 * pixels @ controls32.transpose(1, 2)
                        + controls32.square().sum(2).unsqueeze(1))  # (B, H*W, N)
    mapped = _tps_kernel(squared_distance) @ weights + affine[:, :1] + pixels @ affine[:, 1:]  # (B, H*W, 2)
    return (2 * mapped - 1).view(batch, height, width, 2)


def upsampled_tps_grid(target_pts: torch.Tensor, source_pts: torch.Tensor, height: int, width: int,
                       regularization: float = 1e-4, geometry_height: int = GEOMETRY_HEIGHT) -> torch.Tensor:
    """``tps_sampling_grid`` evaluated at ``geometry_height`` rows (when the image is taller) and upsampled
    bilinearly to (B, H, W, 2): the spline is smooth, so the difference is a fraction of a pixel, and the cost
    no longer grows with the image (the spline's kernel is (H * W, N) per sample)."""
    if height <= geometry_height:
        return tps_sampling_grid(target_pts, source_pts, height, width, regularization)
    small = tps_sampling_grid(target_pts, source_pts, geometry_height, round(width * geometry_height / height),
                              regularization)
    grid = F.interpolate(small.permute(0, 3, 1, 2).contiguous(), size=(height, width), mode="bilinear",
                         align_corners=False)  # channels first, contiguous: a third of the time of the permuted view
    return grid.permute(0, 2, 3, 1).contiguous()  # (B, 2, H, W) -> (B, H, W, 2)


def _segment_polygons(points: torch.Tensor, height: int, width: int, shrink_px: float, grow: torch.Tensor
                      ) -> torch.Tensor:
    """``kgi.drawing.polygon_masks`` (B, 1, H, W) {0, 1}, those with ``grow`` (B,) bool dilated by a disc of
    ``BACKBONE_REACH`` of the height instead of shrunk (a square would give the polygon's corners square
    shoulders of garment)."""
    masks = torch.zeros(points.shape[0], 1, height, width, device=points.device)
    if not grow.all():  # the shrunk polygons (their margin's distances are the costly part) only where kept
        masks[~grow] = polygon_masks(points[~grow], height, width, shrink_px)
    if grow.any():
        reach = max(round(BACKBONE_REACH * height), 1)
        offsets = torch.arange(-reach, reach + 1, dtype=torch.float32, device=points.device)
        disc = ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= reach ** 2 + reach).float()[None, None]
        plain = polygon_masks(points[grow], height, width)  # (G, 1, H, W)
        grown = torch.zeros_like(plain)
        rows, columns = plain.amax(dim=(0, 1, 3)).nonzero()[:, 0], plain.amax(dim=(0, 1, 2)).nonzero()[:, 0]
        if rows.numel():  # dilated on the polygons' box grown by the reach: nothing beyond it changes
            top, bottom = max(int(rows[0]) - reach, 0), min(int(rows[-1]) + reach + 1, height)
            left, right = max(int(columns[0]) - reach, 0), min(int(columns[-1]) + reach + 1, width)
            window = plain[..., top:bottom, left:right]
            grown[..., top:bottom, left:right] = (F.conv2d(window, disc, padding=reach) > 0.5).float()
        masks[grow] = grown
    return masks


def _check_warp_inputs(cloth, cloth_mask, cloth_kp, target_kp, upper_mask) -> None:
    if cloth.dim() != 4 or cloth.shape[1] != 3:
        raise WarpInputError(f"cloth must be (B, 3, H, W), got {tuple(cloth.shape)}")
    batch, _, height, width = cloth.shape
    if cloth_mask.shape != (batch, 1, height, width):
        raise WarpInputError(f"cloth_mask must be {(batch, 1, height, width)}, got {tuple(cloth_mask.shape)}")
    for name, points in (("cloth_kp", cloth_kp), ("target_kp", target_kp)):
        if points.shape != (batch, NUM_GARMENT_NODES, 2):
            raise WarpInputError(f"{name} must be {(batch, NUM_GARMENT_NODES, 2)}, got {tuple(points.shape)}")
    if upper_mask is not None and upper_mask.shape != (batch, 1, height, width):
        raise WarpInputError(f"upper_mask must be {(batch, 1, height, width)}, got {tuple(upper_mask.shape)}")


def _garment_pixels(cloth: torch.Tensor, cloth_mask: torch.Tensor, cloth_kp: torch.Tensor,
                    white_threshold: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (B, 1, H, W) float masks of the flat garment: its wearable pixels, in the mask less its outline's rim
    (``OUTLINE_RIM``) and the backdrop-coloured pixels near it (``_backdrop_at_outline``), not inside the neckline
    (the smooth curve through its nodes ``NECKLINE``, closed by the line between the neck corners: the inside of
    the back, seen through a front neckline, is behind the person's neck when worn) and, unless
    ``white_threshold`` is None, not near-white (every channel >= the threshold: product-photo background inside a
    loose mask); and its neck hole (inside the neckline, and around a round one the inside of the back seen beside
    it: ``_inside_around``)."""
    usable = cloth_mask > 0.5
    holes = torch.zeros_like(usable)
    height, width = cloth.shape[-2:]
    scale = 1 << _SUBPIXEL
    rim = 2 * max(round(OUTLINE_RIM * height), 0) + 1
    for index, keypoints in enumerate(cloth_kp):  # OpenCV on the CPU: a polygon at full size in a millisecond
        nodes = keypoints[list(NECKLINE)].cpu().numpy() * [width, height] - 0.5  # pixel centres at integers
        pixels = smooth_curve(nodes)  # a round neckline's curve (straight through a V's collinear nodes)
        hole = np.zeros((height, width), np.uint8)
        cv2.fillPoly(hole, [np.round(pixels * scale).astype(np.int32)], 1, cv2.LINE_8, _SUBPIXEL)
        hole = cv2.erode(hole, np.ones((3, 3), np.uint8)).astype(bool)  # OpenCV fills the pixels its outline touches
        garment = usable[index, 0].cpu().numpy()
        depth = nodes[2, 1] - (nodes[0, 1] + nodes[4, 1]) / 2
        if depth <= ROUND_NECKLINE_DEPTH * np.linalg.norm(nodes[4] - nodes[0]):
            hole |= _inside_around(cloth[index], garment, hole)
        inner = cv2.erode(garment.view(np.uint8), np.ones((rim, rim), np.uint8)).astype(bool)
        backdrop = _backdrop_at_outline(cloth[index], garment)
        usable[index, 0] = torch.from_numpy(inner & ~hole & ~backdrop).to(usable.device)
        holes[index, 0] = torch.from_numpy(hole).to(usable.device)
    if white_threshold is not None:
        usable &= cloth.amin(dim=1, keepdim=True) < white_threshold
    return usable.float(), holes.float()


def _backdrop_at_outline(cloth: torch.Tensor, garment: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of the ``garment`` mask (H, W bool) within ``BACKDROP_REACH`` of its outline whose
    colour is nearer its backdrop's (the median of the ring one to two reaches outside the mask) than the garment's
    own there (the nearest pixel farther inside), and at least ``BACKDROP_TOLERANCE`` from the latter; on a garment
    that stands out from a plain backdrop (see ``BACKDROP_REACH``; three quarters of the ring within the tolerance of
    its colour).

    Args:
        cloth: (3, H, W) flat garment photo in [0, 1].
    """
    backdrop_pixels = np.zeros_like(garment)
    if not garment.any():
        return backdrop_pixels
    reach = 2 * max(round(BACKDROP_REACH * garment.shape[0]), 1) + 1  # a square's side
    box = bounding_box(garment, reach + 1)
    mask = garment[box].view(np.uint8)
    out_by = [cv2.dilate(mask, np.ones((side, side), np.uint8)) for side in (reach, 2 * reach - 1)]
    ring = out_by[1] > out_by[0]  # one to two reaches outside the outline
    inside = cv2.erode(mask, np.ones((reach, reach), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    near = mask > inside
    if not ring.any() or not near.any() or not inside.any():
        return backdrop_pixels
    rgb = np.ascontiguousarray(cloth[:, box[0], box[1]].permute(1, 2, 0).cpu().numpy()) * 255  # (h, w, 3)
    around = rgb[ring]  # (N, 3)
    colour = np.median(around, axis=0)
    plain = np.percentile(np.linalg.norm(around - colour, axis=1), 75) < BACKDROP_TOLERANCE
    garment_colours = rgb[::4, ::4][mask[::4, ::4].view(bool)]  # every fourth row and column
    if not plain or np.median(np.linalg.norm(garment_colours - colour, axis=1)) < BACKDROP_CONTRAST:
        return backdrop_pixels
    (rows, columns), nearest_inside = nearest_pixels(inside.view(bool), near)
    own, here = rgb[nearest_inside], rgb[rows, columns]
    unlike_own = np.linalg.norm(here - own, axis=1)
    like = (np.linalg.norm(here - colour, axis=1) < unlike_own) & (unlike_own >= BACKDROP_TOLERANCE)
    backdrop_pixels[box[0].start + rows[like], box[1].start + columns[like]] = True
    return backdrop_pixels


def _inside_around(cloth: torch.Tensor, garment: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """(H, W) bool: the inside of the back that a flat photo shows around its neckline's ``hole`` (H, W) bool.

    The curve through the five neckline nodes cuts a round neckline's corners, where the shaded inside showed as a
    dark band along the worn neckline (or the stripes of the back's inside above a striped tee's rib). Within
    ``INSIDE_REACH`` of the height of the hole, a pixel of the ``garment`` (H, W) bool is the inside where its
    colour is nearer the inside's (the median in the hole) than the front's (the median in the ring beyond) and
    more than ``INSIDE_CONTRAST`` from the front's, in pieces that touch the hole. A white tee's white inside is
    the front's colour: nothing is added.

    Args:
        cloth: (3, H, W) flat garment photo in [0, 1].
    """
    inside = np.zeros_like(hole)
    reach = max(round(INSIDE_REACH * hole.shape[0]), 1)
    box = bounding_box(hole, 2 * reach)
    if box is None or not (hole & garment).any():
        return inside
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    hole_part, garment_part = hole[box], garment[box]
    near = cv2.dilate(hole_part.view(np.uint8), disc).astype(bool)
    ring = cv2.dilate(near.view(np.uint8), disc).astype(bool) & ~near & garment_part
    if not ring.any():
        return inside
    rgb = (cloth[:, box[0], box[1]].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab).astype(np.float32)  # (h, w, 3)
    to_inside = np.linalg.norm(lab - np.median(lab[hole_part & garment_part], axis=0), axis=-1)
    to_front = np.linalg.norm(lab - np.median(lab[ring], axis=0), axis=-1)
    like_inside = near & garment_part & (to_inside < to_front) & (to_front > INSIDE_CONTRAST)
    inside[box] = pieces(like_inside | hole_part, touching=hole_part) & ~hole_part
    return inside


def _sample(cloth: torch.Tensor, masks: torch.Tensor, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward-warp (N, 3, H, W) cloth and its (N, C, H, W) masks through (N, h, w, 2) ``grid``; returns the
    (N, 3, h, w) cloth and the (N, C, h, w) thresholded masks (two calls: faster than one on a concatenated
    copy)."""
    def warped(images):
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return warped(cloth), (warped(masks) > 0.5).float()


def warp_garment(
    cloth: torch.Tensor,
    cloth_mask: torch.Tensor,
    cloth_kp: torch.Tensor,
    target_kp: torch.Tensor,
    upper_mask: torch.Tensor | None = None,
    method: str = "five_segments",
    shrink_px: float | None = None,
    white_threshold: float | None = None,
    regularization: float = 1e-4,
) -> WarpResult:
    """Warp a flat garment onto the person by thin-plate splines from the target keypoints back to the flat ones.

    ``method`` says which spline each output pixel reads the flat garment through:

    - ``"single_tps"``, the baseline: one spline through all 32 keypoints, for every pixel.
    - ``"five_segments"``, KGI's warp: one spline per segment s of ``WARP_SEGMENTS`` (backbone, left_up,
      left_low, right_up, right_low) from its target keypoints back to its flat ones. A pixel shows the last
      segment in ``WARP_PASTE_ORDER`` (backbone first, sleeves last, so a sleeve crossing the torso stays in front
      of it) whose warped garment mask covers it inside the filled polygon of the segment's TARGET keypoints,
      shrunk by ``shrink_px`` pixels (so neighbouring segments do not bleed into each other) and, when given,
      inside ``upper_mask``. The backbone's polygon is grown by ``BACKBONE_REACH`` of the height instead: pasted
      first, it shows only where no sleeve does, and so fills the gaps KGI's polygons leave between the torso
      and the sleeves (on genuine people up to a fifth of the garment region).

    The splines of the whole batch are fitted in one solve (B or B * 5 systems) at ``GEOMETRY_HEIGHT`` rows, where
    the segment each pixel shows is chosen; the garment is then sampled once at the image's size, each pixel
    through its spline upsampled (at 1024 rows: a fifth of the sampling, and the segment masks and polygons never
    exist at full size). At full size only the window where a segment may show is computed: there the segments'
    shares and the outline are upsampled, and each pixel reads its own segment's small grid bilinearly (the other
    four are never upsampled; ``grid_sample``'s arithmetic, equal to ``F.interpolate``'s up to rounding). The
    outline stays the full-size garment mask's, less its rim (``OUTLINE_RIM``, where the photo blends cloth and
    background) and the inside of the back that a product photo shows through a front neckline (the polygon of the
    flat neckline nodes ``NECKLINE``).

    Args:
        cloth: (B, 3, H, W) flat garment photo in [0, 1]; the output has the same size.
        cloth_mask: (B, 1, H, W) garment silhouette in ``cloth``, {0, 1}.
        cloth_kp: (B, 32, 2) normalised garment keypoints on the flat garment.
        target_kp: (B, 32, 2) normalised garment keypoints on the person (predicted or ground truth).
        upper_mask: optional (B, 1, H, W) {0, 1} upper-garment region of the target parse; the warped
            garment is cut to it (by either method, so the two compare like for like).
        method: ``"five_segments"`` (KGI, the default) or ``"single_tps"`` (the baseline), see above.
        shrink_px: the five segments' polygon margin, None for KGI's 1 pixel per 1024 rows.
        white_threshold: None (the default) trusts the cloth mask: every garment pixel is pasted, a white
            t-shirt included. A number drops flat-garment pixels whose every channel is at least this (KGI's
            filter for product-photo background left inside a loose mask; it also cuts white garments).
        regularization: the splines' lambda, see ``tps_sampling_grid``.

    Returns a ``WarpResult``; its ``segment_masks`` has the five segments' visible pixels (one channel, the mask,
    for the single spline), its ``neck_hole`` where the flat neck hole went (sampled with the garment).
    """
    _check_warp_inputs(cloth, cloth_mask, cloth_kp, target_kp, upper_mask)
    if method not in WARP_METHODS:
        raise WarpInputError(f"method must be one of {', '.join(WARP_METHODS)}, got {method!r}")
    height, width = cloth.shape[-2:]
    usable, hole = _garment_pixels(cloth, cloth_mask, cloth_kp, white_threshold)  # (B, 1, H, W) each
    if method == "single_tps":  # one segment, everywhere: the window is the image, the grid (B, H, W, 2)
        choice = ((slice(0, height), slice(0, width)), upsampled_tps_grid(target_kp, cloth_kp, height, width,
                                                                          regularization),
                  torch.zeros_like(usable), torch.ones_like(usable, dtype=torch.bool))
    else:
        shrink_px = height / 1024 if shrink_px is None else shrink_px
        choice = _five_segment_grid(cloth_kp, target_kp, usable, upper_mask, shrink_px, regularization)
    num_segments = 1 if method == "single_tps" else len(SEGMENT_NAMES)
    garment, mask = torch.zeros_like(cloth), cloth.new_zeros(usable.shape)  # (B, 3, H, W) as cloth, (B, 1, H, W)
    neck_hole = cloth.new_zeros(usable.shape)
    visible = cloth.new_zeros(len(cloth), num_segments, height, width)
    if choice is None:  # no segment covers a pixel
        return WarpResult(garment=garment, mask=mask, segment_masks=visible,
                          neck_hole=_above_neck_corners(target_kp, height, width))
    (rows, columns), pixel_grid, segment, covered = choice  # the last three on the window (rows, columns)
    shows = covered if upper_mask is None else covered & (upper_mask[..., rows, columns] > 0.5)  # (B, 1, h', w')
    box = bounding_box(shows.any(0)[0].cpu().numpy())
    if box is not None:  # the garment is sampled on the box where it may show (each pixel through its own grid)
        inner_rows, inner_columns = box  # within the window, and in the image:
        rows = slice(rows.start + inner_rows.start, rows.start + inner_rows.stop)
        columns = slice(columns.start + inner_columns.start, columns.start + inner_columns.stop)
        sampled, sampled_masks = _sample(cloth, torch.cat([usable, hole], 1),  # (B, 2, h'', w''): garment, hole
                                         pixel_grid[:, inner_rows, inner_columns])
        mask[..., rows, columns] = sampled_masks[:, :1] * shows[..., inner_rows, inner_columns].float()
        neck_hole[..., rows, columns] = sampled_masks[:, 1:]  # outside the garment: below
        garment[..., rows, columns] = sampled * mask[..., rows, columns]
        # (B, S, h'', w''): the channels partition the mask (a pixel some segment covers has one: ``segment`` >= 0)
        visible[..., rows, columns].scatter_(1, segment[..., inner_rows, inner_columns].clamp_min(0).long(),
                                             mask[..., rows, columns])
    return WarpResult(garment=garment, mask=mask, segment_masks=visible,
                      neck_hole=torch.maximum(neck_hole, _above_neck_corners(target_kp, height, width)) * (1 - mask))


def _above_neck_corners(keypoints: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 1, H, W) float: the pixels above the line between each sample's neck corners (nodes 0 and 4 of the
    (B, 32, 2) normalised ``keypoints``), between their columns, up to the image's top."""
    above = np.zeros((len(keypoints), 1, height, width), np.uint8)
    scale = 1 << _SUBPIXEL
    corners_of = keypoints[:, [NECKLINE[0], NECKLINE[-1]]].detach().cpu().numpy() * [width, height]  # (B, 2, 2)
    for index, corners in enumerate(corners_of):
        polygon = np.concatenate([corners - 0.5, [[corners[1, 0] - 0.5, -0.5], [corners[0, 0] - 0.5, -0.5]]])
        cv2.fillPoly(above[index, 0], [np.round(polygon * scale).astype(np.int32)], 1, cv2.LINE_8, _SUBPIXEL)
    return torch.from_numpy(above).to(keypoints.device, torch.float32)


def _five_segment_grid(cloth_kp: torch.Tensor, target_kp: torch.Tensor, usable: torch.Tensor,
                       upper_mask: torch.Tensor | None, shrink_px: float, regularization: float
                       ) -> tuple[tuple[slice, slice], torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The five-segment warp's choice of spline per pixel (``warp_garment``) on the window of the image where some
    segment may show (None when none shows anywhere): the window's rows and columns, and on it the
    (B, h', w', 2) sampling grid, the (B, 1, h', w') segment each pixel shows (its channel in ``SEGMENT_NAMES``,
    -1 where none) and the (B, 1, h', w') bool pixels some segment covers. ``usable`` is the (B, 1, H, W) float
    mask of flat-garment pixels."""
    batch, _, height, width = usable.shape
    num_segments, segment_length = SEGMENT_NODE_INDEX.shape
    index = SEGMENT_NODE_INDEX.to(usable.device)
    target_polygons = target_kp[:, index].reshape(batch * num_segments, segment_length, 2)
    source_polygons = cloth_kp[:, index].reshape(batch * num_segments, segment_length, 2)

    scale = min(GEOMETRY_HEIGHT / height, 1.0)
    small_size = (round(height * scale), round(width * scale))
    grid = tps_sampling_grid(target_polygons, source_polygons, *small_size, regularization)  # (B*5, h, w, 2)

    # Which segment each pixel shows is decided at the geometry size: every segment's warped mask, polygon and
    # the upper mask there, pasted in order (one pass per segment). The five grids of a sample are stacked along
    # the rows, so its mask is sampled once: (B, 1, 5h, w) -> (B*5, 1, h, w).
    small_masks = (F.grid_sample(usable, grid.view(batch, num_segments * small_size[0], small_size[1], 2),
                                 mode="bilinear", padding_mode="zeros", align_corners=False)
                   > 0.5).float().view(batch * num_segments, 1, *small_size)
    grow = torch.tensor([name == "backbone" for name in SEGMENT_NAMES], device=usable.device).repeat(batch)
    polygons = _segment_polygons(target_polygons, *small_size, shrink_px * scale, grow)
    small_segments = (small_masks * polygons).view(batch, num_segments, *small_size)
    if upper_mask is not None:
        small_segments = small_segments * (F.interpolate(upper_mask, size=small_size, mode="area") > 0).float()
    top_segment = torch.full_like(small_segments[:, :1], -1)  # (B, 1, h, w) channel index, -1 where none
    for name in WARP_PASTE_ORDER:
        channel = SEGMENT_NAMES.index(name)
        top_segment = torch.where(small_segments[:, channel:channel + 1] > 0, channel, top_segment)
    covered = top_segment >= 0
    if scale == 1:  # the geometry size is the image's: the window is the covered pixels' box
        window = bounding_box(covered.any(0)[0].cpu().numpy())
        if window is None:
            return None
        chosen = top_segment[..., window[0], window[1]]  # (B, 1, h', w')
        grids = grid.view(batch, num_segments, *small_size, 2)[:, :, window[0], window[1]]  # (B, 5, h', w', 2)
        pixel_grid = grids.gather(1, chosen.clamp_min(0).long().unsqueeze(-1).expand(-1, -1, -1, -1, 2))[:, 0]
        return window, pixel_grid, chosen, covered[..., window[0], window[1]]

    # Reach a small pixel further, so the full-size masks below draw the garment's outline.
    top_segment = torch.where(top_segment < 0, F.max_pool2d(top_segment, 3, 1, 1), top_segment)
    # Upsampled nearest, the border between two segments steps by 1/scale pixels, and two segments read the
    # garment from different places: a sleeve's colour band became a row of dashes. Each segment's share of
    # a 3x3 neighbourhood, upsampled bilinearly, gives the larger share's segment a smooth border.
    shares = F.one_hot(top_segment[:, 0].long().clamp_min(0), num_segments).permute(0, 3, 1, 2).float()
    shares = F.avg_pool2d(shares, 3, stride=1, padding=1, count_include_pad=False)  # (B, 5, h, w)
    # Where the polygons cut the garment (a sleeve's end), the outline is the small mask's smoothed (two 3x3
    # means), upsampled bilinearly and thresholded: a smooth curve through its steps, where the upsampling
    # alone would round each 1/scale-pixel step and keep it.
    covered = covered.float()
    for _ in range(2):
        covered = F.avg_pool2d(covered, 3, stride=1, padding=1, count_include_pad=False)
    # Everything at full size is computed on the window: the pixels whose upsampled outline may exceed 1/2.
    window = bounding_box((covered >= 0.5).any(0)[0].cpu().numpy())
    if window is None:
        return None
    window = tuple(_upsampled_span(span, small, full) for span, small, full in zip(window, small_size, (height, width)))
    source_rows, source_columns = (_source_coordinates(span, small, full)
                                   for span, small, full in zip(window, small_size, (height, width)))
    upsampled = _bilinear_at(torch.cat([shares, covered], dim=1), source_rows, source_columns)  # (B, 6, h', w')
    top_segment = _first_argmax(upsampled[:, :num_segments])
    pixel_grid = _own_segment_grid(grid.view(batch, num_segments, *small_size, 2), top_segment, source_rows,
                                   source_columns)
    return window, pixel_grid, top_segment, upsampled[:, num_segments:] > 0.5


def _upsampled_span(span: slice, small: int, full: int) -> slice:
    """The pixels of a ``full``-pixel axis whose bilinear upsampling from ``small`` pixels reads some pixel of
    ``span`` (a superset: pixel i reads small pixels floor(s) and floor(s) + 1, s = (i + 1/2) small / full - 1/2)."""
    ratio = full / small
    return slice(max(math.floor((span.start - 1) * ratio), 0), min(math.ceil((span.stop + 1) * ratio), full))


def _source_coordinates(span: slice, small: int, full: int) -> torch.Tensor:
    """Where the bilinear upsampling (``align_corners=False``) of a ``small``-pixel axis to ``full`` pixels reads
    the pixels of ``span``: (len,) float32 positions in small pixels, s = (i + 1/2) small / full - 1/2."""
    return (torch.arange(span.start, span.stop, dtype=torch.float32) + 0.5) * (small / full) - 0.5


def _bilinear_at(small: torch.Tensor, source_rows: torch.Tensor, source_columns: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) maps read bilinearly at every (row, column) of ``source_rows`` (R,) x ``source_columns`` (Q,),
    positions in pixels, clamped to the map: (N, C, R, Q), ``F.interpolate``'s bilinear upsampling on a window
    (up to rounding: ``grid_sample`` computes it in one fused pass)."""
    height, width = small.shape[-2:]
    grid = torch.stack([((source_columns + 0.5) * (2 / width) - 1).expand(len(source_rows), -1),
                        ((source_rows + 0.5) * (2 / height) - 1).unsqueeze(1).expand(-1, len(source_columns))],
                       dim=-1)  # (R, Q, 2) normalised (x, y)
    return F.grid_sample(small, grid.to(small.device).expand(len(small), -1, -1, -1), mode="bilinear",
                         padding_mode="border", align_corners=False)


def _first_argmax(scores: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 1, H, W) float: the channel of the largest score, the first on a tie (as ``argmax``;
    a running maximum over the channels, four times as fast as ``argmax`` over the channel axis of a window)."""
    best, best_score = torch.zeros_like(scores[:, :1]), scores[:, :1]
    for channel in range(1, scores.shape[1]):
        better = scores[:, channel:channel + 1] > best_score
        best = torch.where(better, channel, best)
        best_score = torch.where(better, scores[:, channel:channel + 1], best_score)
    return best


def _own_segment_grid(grids: torch.Tensor, segment: torch.Tensor, source_rows: torch.Tensor,
                      source_columns: torch.Tensor) -> torch.Tensor:
    """Each pixel's own segment's (B, S, h, w, 2) grid read bilinearly (``_bilinear_at``) at (``source_rows``,
    ``source_columns``), where (B, 1, R, Q) ``segment`` says which: (B, R, Q, 2), the five grids upsampled and
    one gathered per pixel without upsampling the other four. The grids are stacked along the rows of one map,
    each with a border of one copied pixel (so that reading a grid's edge clamps to it as ``_bilinear_at``
    does): row r of segment s is row s (h + 2) + 1 + r there."""
    batch, num_segments, height, width, _ = grids.shape
    stacked = F.pad(grids.flatten(0, 1).permute(0, 3, 1, 2), (1, 1, 1, 1), mode="replicate")  # (B*S, 2, h+2, w+2)
    stacked = stacked.view(batch, num_segments, 2, height + 2, width + 2).transpose(1, 2).reshape(
        batch, 2, num_segments * (height + 2), width + 2)  # (B, 2, S (h + 2), w + 2)
    # Normalised (x, y) in the stacked map (align_corners=False): x = (column + 1 + 1/2) 2 / (w + 2) - 1, and y the
    # same in rows, plus s (h + 2) rows for segment s: 2 s / S.
    x = ((source_columns + 1.5) * (2 / (width + 2)) - 1).to(segment.device)
    y = ((source_rows + 1.5) * (2 / (num_segments * (height + 2))) - 1).to(segment.device)
    grid = torch.stack([x.expand(batch, len(y), -1), y.view(1, -1, 1) + segment[:, 0] * (2 / num_segments)], dim=-1)
    return F.grid_sample(stacked, grid, mode="bilinear", padding_mode="border", align_corners=False).permute(0, 2, 3, 1)
