"""Stage 3's last step, at the photo's resolution: the painted pixels made into pixels of the photo.

The inpainter paints at its working size (64x48 for the shipped one): blown up 16x its output is a smooth blob
that bleeds across the target parse's borders and meets the kept pixels with a colour step. ``composite`` builds
every painted pixel from the photo's own kept pixels instead, class by class of the target parse (kept pixels
are the recomposed image's, exact):

1. skin (face-neck and arm classes), at full resolution: the person's own skin colour and shading, learnt
   from the visible skin the recomposition kept (``Recomposition.skin_mask``). A skin pixel's depth is its
   distance to the outline of the skin, all skin classes together (an arm beside painted skin of the body has no
   dark edge between the two, which drew a second outline inside the skin), over its class's radius (95th
   percentile of that distance over the class's painted pixels), in [0, 1], and its place across its run of skin
   along its row, all skin classes together too, u in [-1, 1] from the run's leftmost pixel to its rightmost,
   averaged down the columns over ``ACROSS_SMOOTHING`` of the height (lit per class, an arm and the body's side
   beside it met in a line; unaveraged, the arm stepped where the side ended); the brightness profile
   across a limb is L(depth, u) = c - s (1 - depth)^2 + a u, darkest at the outline and lit from one side (the
   studio's key light: on four genuine people the image-left edge of every bare arm is darker than its right),
   fitted by least squares (s >= 0: never brighter at the outline; |a| <= ``MAX_LIGHT`` c) to the visible arm
   skin away from its outline (``PROFILE_EDGE`` pixels: there the photo's pixels mix with the background);
   c = m / (1 - 0.4 / 16), s = 0.4 c and a = 0, m the skin's median, where fewer than ``MIN_PROFILE_PIXELS``
   are visible; the colour is a per-channel linear fit rgb = a + b L over the visible skin, so shadows keep the
   skin's own hue;
2. every other class (background, lower garment, hair...): filled from the kept pixels of that class (of every
   class but the wall, those of its typical luminance only, ``TYPICAL_SPREAD``: not its buttons or logo) by a
   push-pull pyramid (normalised averages over 2x coarser grids, each pixel taking the finest grid that knows
   it) at ``COMPOSITE_HEIGHT`` rows, so painted background continues the photo's background; the inpainter's
   colours only where the photo keeps no pixel of the class;
3. seams: per skin class, the difference between its kept pixels and the model's colours there, on its border
   with its own painted pixels, is added to each painted pixel as its nearest border pixel's, fading away from
   the border (``_seam_offset``): the whole difference on the border however it varies along it, so a painted
   arm meets the visible arm without a step. The border's kept pixels are those ``SEAM_RING`` pixels from the
   painted ones (nearer, the photo's pixels mix the neighbour's colour: a cuff's grey along a hand's top, spread
   into the painted wrist as a pale band). Painted skin next to the new garment is darkened as the cloth shades
   it (``CONTACT_SHADE``, ``CONTACT_REACH``: a sleeve's hem, the torso beside a hanging arm);
4. class borders at full resolution: each class's colours are mixed by its one-hot map blurred by
   ``BORDER_SOFTNESS`` pixels (an anti-aliased outline, not the parse's pixel steps);
5. detail, so painted pixels are as crisp as the photo around them instead of flat: skin takes the visible skin's
   own fine detail, laid by example (``kgi.texture.DetailTexture``: pores, freckles, the grain of the photo); a
   garment or the hair takes, the same way, the detail of its kept pixels within ``TEXTURE_REACH`` of the painted
   ones (a band of trousers painted along the old top's margin has their weave, not a smooth smear); the wall,
   and any class too little of which is kept to cut patches from, zero-mean noise with the fine-detail spread
   (pixel minus its 3x3 mean; a median absolute deviation, so edges do not count) of the class's kept pixels
   (skin: of the visible skin).

Everything runs in float32 with OpenCV, one image at a time.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from kgi.data.labels import FACE_NECK, LEFT_ARM, RIGHT_ARM, UPPER
from kgi.labelmaps import bounding_box, nearest_pixels, pixels_of
from kgi.texture import DetailTexture, channel_mean

SKIN_CLASSES = (FACE_NECK, LEFT_ARM, RIGHT_ARM)
ARM_CLASSES = (LEFT_ARM, RIGHT_ARM)
COMPOSITE_HEIGHT = 256  # rows at which the fills are computed (they are smooth at that scale)
SEAM_REACH = 0.03  # how far into the painted region a seam's colour difference is spread, fraction of the height
SEAM_ALONG = 3  # pixels: each border pixel's difference is averaged over the border pixels this near it
SEAM_SMOOTHING = 2.0  # Gaussian sigma, pixels, of the seam's offset field
SEAM_RING = (2, 4)  # the kept pixels whose difference is spread: this many pixels from the painted ones
BORDER_SOFTNESS = 1.0  # Gaussian sigma, pixels, of the class borders
FEATHER = 1.0  # Gaussian sigma, pixels, of the painted side of the kept pixels' outline
MIN_REFERENCE_PIXELS = 16  # fewer kept pixels of a class than this: the class takes the inpainter's colours
MIN_PROFILE_PIXELS = 400  # visible arm skin needed to learn the brightness profile
PROFILE_EDGE = 2  # pixels of the visible arm's outline left out of the profile's fit
# A painted class other than the wall is filled from its kept pixels of typical luminance: a metal button or a
# logo on the waistband, averaged in, was a pale smudge across the painted band above it.
TYPICAL_SPREAD = 3.0
MIN_SPREAD = 0.02
DEFAULT_SHADING = 0.4  # the default profile's shading s over its centre brightness c
# The light's slope across a limb, a, at most this fraction of its centre brightness c either way.
MAX_LIGHT = 0.2
ACROSS_SMOOTHING = 0.02  # the place across a limb is averaged down it over this fraction of the height
# Skin next to a garment is darker (the cloth shades it): visible arm skin within half a percent of the height of
# the old garment is 5-16% darker than 1-3% away from it on five genuine people (a sleeve's hem, a sleeveless
# armhole). Painted skin is darkened by CONTACT_SHADE exp(-d / (CONTACT_REACH height)), d its distance to the
# target's garment.
CONTACT_SHADE = 0.08
CONTACT_REACH = 0.006
# A painted garment or hair takes the fine detail of its kept pixels within this fraction of the height.
TEXTURE_REACH = 0.05


def push_pull_fill(weighted: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Values known on part of an image, filled everywhere: (h, w, 3).

    Args:
        weighted: (h, w, 3) the values times ``weight`` (an area-downsampled ``image * known``).
        weight: (h, w) in [0, 1], the share of each pixel that is known.

    Each level of a pyramid of 2x coarser grids (area averages of both) estimates a pixel as its own weighted
    average, by the share of it that is known, and the coarser level's estimate upsampled for the rest."""
    levels = [(weighted, weight)]
    while min(levels[-1][1].shape) > 2:
        numerator, denominator = levels[-1]
        size = (max(denominator.shape[1] // 2, 1), max(denominator.shape[0] // 2, 1))
        levels.append((cv2.resize(numerator, size, interpolation=cv2.INTER_AREA),
                       cv2.resize(denominator, size, interpolation=cv2.INTER_AREA)))
    numerator, denominator = levels[-1]
    known = denominator.sum()
    estimate = np.empty(numerator.shape, np.float32)
    estimate[:] = numerator.sum((0, 1)) / max(known, 1e-6)
    for numerator, denominator in reversed(levels):
        upsampled = cv2.resize(estimate, (denominator.shape[1], denominator.shape[0]), interpolation=cv2.INTER_LINEAR)
        share = np.clip(denominator, 0, 1)[..., None]
        estimate = share * numerator / np.maximum(denominator, 1e-6)[..., None] + (1 - share) * upsampled
    return estimate.astype(np.float32)


def _small(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _sample(small: np.ndarray, rows: np.ndarray, columns: np.ndarray, full_shape: tuple[int, int]) -> np.ndarray:
    """(N, C) values of the (h, w, C) ``small`` image upsampled bilinearly to ``full_shape`` (H, W), at the N
    pixels (``rows``, ``columns``) only (``cv2.resize``'s pixel centres, without upsampling the whole image)."""
    (height, width), (small_height, small_width) = full_shape, small.shape[:2]
    count = len(rows)
    padded = -(-max(count, 1) // 1024) * 1024  # cv2.remap maps stay under 32767 rows: 1024 columns
    map_x = np.zeros(padded, np.float32)
    map_y = np.zeros(padded, np.float32)
    map_x[:count] = (columns + 0.5) * (small_width / width) - 0.5
    map_y[:count] = (rows + 0.5) * (small_height / height) - 0.5
    values = cv2.remap(small, map_x.reshape(-1, 1024), map_y.reshape(-1, 1024), cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    return values.reshape(padded, -1)[:count]


def _across(member: np.ndarray) -> np.ndarray:
    """(H, W) float32: where each pixel of ``member`` (H, W bool) lies across its run of it along its row, -1 at
    the run's leftmost pixel to +1 at its rightmost (0 on a run of one pixel, and off ``member``). Per run, not per
    row: two arms (or an arm and the body's side apart from it) on one row are each lit across themselves, where
    across the row the left one was all on the shaded side, a dark band across it as high as the other was beside
    it."""
    rows, columns = pixels_of(member)  # row by row, left to right
    across = np.zeros(member.shape, np.float32)
    if not rows.size:
        return across
    starts = np.flatnonzero(np.r_[True, (rows[1:] != rows[:-1]) | (columns[1:] != columns[:-1] + 1)])
    lengths = np.diff(np.r_[starts, rows.size])  # each run's first pixel and length
    first, span = np.repeat(columns[starts], lengths), np.repeat(lengths - 1, lengths)
    across[rows, columns] = np.where(span > 0, 2 * (columns - first) / np.maximum(span, 1) - 1, 0)
    return across


def _skin_across(skin: np.ndarray, height: int) -> np.ndarray:
    """(h, w) float32: ``_across`` over the runs of ``skin`` (h, w bool: every skin class together, so an arm and
    the painted skin beside it, the body's side or a shoulder, are lit as one and meet without a step), averaged
    down the columns over the skin with a standard deviation of ``ACROSS_SMOOTHING`` of the image's ``height``
    (two passes of a box filter w rows tall: a triangle, variance (w^2 - 1) / 6): where a row's run grows or
    shrinks (the body's side beside an arm ends at the armpit), u jumped, and the light's slope drew a line
    across the limb."""
    sigma = ACROSS_SMOOTHING * height
    rows = max(round(np.sqrt(6 * sigma ** 2 + 1)), 1)

    def down_the_columns(values: np.ndarray) -> np.ndarray:
        for _ in range(2):
            values = cv2.boxFilter(values, -1, (1, rows), borderType=cv2.BORDER_CONSTANT)
        return values

    smooth = down_the_columns(_across(skin)) / np.maximum(down_the_columns(skin.astype(np.float32)), 1e-6)
    return np.where(skin, smooth, np.float32(0.0))


def _distance_inside(member: np.ndarray) -> np.ndarray:
    """(H, W) float32: each pixel's distance to the outline of ``member`` (bool), 0 off it."""
    distance = np.zeros(member.shape, np.float32)
    rows, columns = np.nonzero(member.any(1))[0], np.nonzero(member.any(0))[0]
    if rows.size:  # on the box of ``member`` (one pixel more: its border is outside it)
        box = (slice(max(rows[0] - 1, 0), rows[-1] + 2), slice(max(columns[0] - 1, 0), columns[-1] + 2))
        distance[box] = cv2.distanceTransform(member[box].astype(np.uint8), cv2.DIST_L2, 3)
    return distance


def _depth(distance: np.ndarray, among: np.ndarray) -> np.ndarray:
    """(H, W) float32: ``distance`` (``_distance_inside``'s) over its 95th percentile among the pixels of
    ``among`` (bool), at least 2 pixels, clipped to [0, 1]."""
    pool = distance[among]
    radius = max(float(np.percentile(pool, 95)), 2.0) if pool.size else 2.0
    return np.minimum(distance / radius, np.float32(1.0))


class SkinModel:
    """The person's skin: brightness by depth across a limb, colour by brightness (module docstring, step 1).

    Args:
        known: (H, W, 3) float32 image in [0, 1]. parse: (H, W) uint8 target parse.
        reference: (H, W) bool the visible skin to learn from.
    """

    def __init__(self, known: np.ndarray, parse: np.ndarray, reference: np.ndarray):
        # The skin's pixels are read on its box (grown by the erosion's reach below), in the image's row-major order.
        box = bounding_box(reference, PROFILE_EDGE) or (slice(0, 0), slice(0, 0))
        known_box, parse_box, reference_box = known[box], parse[box], reference[box]
        pixels = known_box[reference_box]  # (N, 3)
        brightness = channel_mean(pixels)
        self.median = float(np.median(brightness)) if len(pixels) else 0.6
        design = np.stack([np.ones_like(brightness), brightness], 1)  # (N, 2)
        if len(pixels) >= MIN_REFERENCE_PIXELS and brightness.std() > 1e-3:
            self.fit = np.linalg.lstsq(design, pixels, rcond=None)[0].astype(np.float32)  # (2, 3): rgb = a + b L
        else:  # too little skin: a plain skin tone, scaled by brightness
            tone = pixels.mean(0) if len(pixels) else np.array([0.85, 0.64, 0.52], np.float32)
            self.fit = np.stack([np.zeros(3), tone / max(tone.mean(), 1e-3)]).astype(np.float32)
        centre = self.median / (1 - DEFAULT_SHADING * (1 - 0.75) ** 2)  # the median at three quarters' depth
        # (c, s, a): L(depth, across) = c - s (1 - depth)^2 + a across
        self.profile = (centre, DEFAULT_SHADING * centre, 0.0)
        arms_box = reference_box & ((parse_box == LEFT_ARM) | (parse_box == RIGHT_ARM))
        inner = cv2.erode(arms_box.astype(np.uint8), np.ones((2 * PROFILE_EDGE + 1,) * 2, np.uint8)).astype(bool)
        if np.count_nonzero(inner) >= MIN_PROFILE_PIXELS:
            arms = np.zeros(reference.shape, bool)
            arms[box] = arms_box
            depth = np.zeros(inner.shape, np.float32)  # on the box
            across = _skin_across(np.isin(parse_box, SKIN_CLASSES), parse.shape[0])
            for label in ARM_CLASSES:
                member = parse == label  # the whole class: its depth is measured to its outline
                if (member[box] & arms_box).any():  # OpenCV's masked copy: a twentieth of numpy's boolean indexing
                    class_depth = _depth(_distance_inside(member), member & arms)[box]
                    depth = cv2.copyTo(class_depth, member[box].view(np.uint8), depth)
            design = np.stack([np.ones(np.count_nonzero(inner)), -(1 - depth[inner]) ** 2, across[inner]], 1)
            centre, shading, light = np.linalg.lstsq(design, channel_mean(known_box[inner]), rcond=None)[0]
            self.profile = (float(centre), float(np.clip(shading, 0, centre)),
                            float(np.clip(light, -MAX_LIGHT * centre, MAX_LIGHT * centre)))

    def colours(self, depth: np.ndarray, across: np.ndarray | None = None) -> np.ndarray:
        """(N,) depths in [0, 1] and positions across the limb in [-1, 1] (None: 0) -> (N, 3) skin colours."""
        centre, shading, light = self.profile
        brightness = (centre - shading * (1 - depth) ** 2).astype(np.float32)
        if across is not None:
            brightness += np.float32(light) * across
        return self.fit[0] + brightness[:, None] * self.fit[1]


def _typical(luminance: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """(h, w) bool: the ``pixels`` (h, w bool) whose ``luminance`` (h, w) is within ``TYPICAL_SPREAD`` robust
    sigmas (1.4826 median absolute deviations, at least ``MIN_SPREAD``) of their median."""
    values = luminance[pixels]
    median = float(np.median(values))
    spread = max(1.4826 * float(np.median(np.abs(values - median))), MIN_SPREAD)
    return pixels & (np.abs(luminance - median) <= TYPICAL_SPREAD * spread)


def _grain_spread(detail: np.ndarray, pixels: np.ndarray) -> float:
    """1.4826 times the median over ``pixels`` (h, w bool) of ``detail`` (h, w), |pixel - its 3x3 mean| averaged
    over the channels on every 4th row and column of the image: the photo's fine-detail spread there, edges not
    counting."""
    if not pixels.any():
        return 0.0
    return 1.4826 * float(np.median(detail[pixels]))


def _seam_offset(difference: np.ndarray, border: tuple[np.ndarray, np.ndarray], where: tuple[np.ndarray, np.ndarray],
                 shape: tuple[int, int], sigma: float) -> np.ndarray:
    """(N, 3) float32: step 3's offset at the N painted pixels ``where`` (rows, columns) of an image of ``shape``,
    from the (M, 3) kept-minus-model ``difference`` at the M ``border`` pixels.

    Each pixel takes the difference of its nearest border pixel, averaged over the border pixels within
    ``SEAM_ALONG`` pixels of that one, times exp(-d^2 / 2 ``sigma``^2), d its distance to it less ``SEAM_RING``'s
    farther end (the border lies that far inside the kept pixels, so the painted pixels along them take the whole
    difference); the field is then smoothed by a Gaussian of ``SEAM_SMOOTHING`` pixels (where the nearest border
    pixel jumps, at a corner, it creased). The offset is the border's own difference on it however that varies
    along it: averaged along the border by a Gaussian at 256 rows instead, a hand's shaded side and its lit side
    cancelled, a step of 15-25 levels between the painted forearm and the hand."""
    offset = np.zeros((len(where[0]), 3), np.float32)
    if not len(border[0]) or not len(offset):
        return offset
    # On the box of the border grown by 3 sigma (farther, the offset fades to under 1.1% of the difference).
    reach = int(np.ceil(3 * sigma))
    top, left = max(int(border[0].min()) - reach, 0), max(int(border[1].min()) - reach, 0)
    bottom, right = min(int(border[0].max()) + reach + 1, shape[0]), min(int(border[1].max()) + reach + 1, shape[1])
    box_shape = (bottom - top, right - left)
    border_in_box = (border[0] - top, border[1] - left)
    on_border = np.zeros(box_shape, np.float32)
    on_border[border_in_box] = 1
    differences = np.zeros((*box_shape, 3), np.float32)
    differences[border_in_box] = difference
    side = 2 * SEAM_ALONG + 1
    along = cv2.boxFilter(differences, -1, (side, side), normalize=False) \
        / np.maximum(cv2.boxFilter(on_border, -1, (side, side), normalize=False), 1)[..., None]
    # Every pixel of the box and its nearest border pixel, in row-major order.
    (rows, columns), (nearest_rows, nearest_columns) = nearest_pixels(on_border > 0, np.ones(box_shape, bool))
    distance = np.hypot(rows - nearest_rows, columns - nearest_columns).reshape(box_shape)
    fade = np.exp(-0.5 * (np.maximum(distance - SEAM_RING[1], 0) / sigma) ** 2)[..., None]
    field = cv2.GaussianBlur(along[nearest_rows, nearest_columns].reshape(*box_shape, 3) * fade, (0, 0),
                             SEAM_SMOOTHING)
    inside = (where[0] >= top) & (where[0] < bottom) & (where[1] >= left) & (where[1] < right)
    offset[inside] = field[where[0][inside] - top, where[1][inside] - left]
    return offset


def _composite_one(small01: np.ndarray, known: np.ndarray, keep: np.ndarray, parse: np.ndarray,
                   reference: np.ndarray, seed: int) -> np.ndarray:
    """One image of ``composite``, numpy (H, W, 3) float32 in, out. Only the painted pixels are computed, and
    everything at full resolution runs in the box around them."""
    painted = ~keep
    rows_painted, columns_painted = np.nonzero(painted.any(1)), np.nonzero(painted.any(0))
    if not rows_painted[0].size:
        return known
    height, width = parse.shape
    pad = 8
    box = (slice(max(int(rows_painted[0][0]) - pad, 0), min(int(rows_painted[0][-1]) + pad + 1, height)),
           slice(max(int(columns_painted[0][0]) - pad, 0), min(int(columns_painted[0][-1]) + pad + 1, width)))
    rows = min(height, COMPOSITE_HEIGHT)
    small_size = (max(round(width * rows / height), 1), rows)  # cv2 sizes are (width, height)
    full_shape = (height, width)
    seam_sigma = max(SEAM_REACH * height / 2, 1.0)
    box_known, box_keep, box_parse, box_painted = known[box], keep[box], parse[box], painted[box]
    where = pixels_of(box_painted)  # the N painted pixels, in the box
    top, left = box[0].start, box[1].start
    painted_at = (where[0] + top, where[1] + left)  # in the image
    classes = [int(label) for label in np.unique(box_parse[where])]
    skin = SkinModel(known, parse, reference) if any(label in SKIN_CLASSES for label in classes) else None
    texture = DetailTexture(known, reference) if skin is not None else None
    if skin is not None:
        # Step 1: a skin class's depth is to the outline of the skin, not to its own.
        box_skin = np.isin(box_parse, SKIN_CLASSES)
        skin_distance, skin_across = _distance_inside(box_skin), _skin_across(box_skin, height)
        # Step 3b: skin beside the new garment in its shadow.
        to_garment = cv2.distanceTransform((box_parse != UPPER).astype(np.uint8), cv2.DIST_L2, 3)[where]
        contact_shade = 1 - CONTACT_SHADE * np.exp(-to_garment / max(CONTACT_REACH * height, 1.0))
    rng = np.random.default_rng(seed)
    # Step 3's border, per skin class: its kept pixels within SEAM_RING[1] pixels of its own painted ones (those
    # beside painted wall are the limb's outline, not its seam: averaged in, a hand's sides cancelled the
    # difference along its top, a step of 15-20 levels below the painted forearm), and not within SEAM_RING[0]
    # of any painted pixel (nearer, a photo's pixels mix the neighbour's colour: a hand's top row, the sleeve's
    # grey).
    too_near = cv2.dilate(box_painted.view(np.uint8), np.ones((2 * (SEAM_RING[0] - 1) + 1,) * 2, np.uint8)).view(bool)
    within_ring = np.ones((2 * SEAM_RING[1] + 1,) * 2, np.uint8)
    grid = (slice(None, None, 4), slice(None, None, 4))  # every 4th row and column: the grain's statistics
    detail = np.abs(known[grid] - cv2.blur(known, (3, 3))[grid]).mean(-1)
    parse_grid, keep_grid = parse[grid], keep[grid]
    known_small = _small(known, small_size)
    small_luminance = channel_mean(known_small)

    if any(label != 0 and label not in SKIN_CLASSES for label in classes):  # step 5 for a garment or hair
        reach = 2 * max(1, round(TEXTURE_REACH * height)) + 1
        near_to_texture = cv2.dilate(painted.view(np.uint8), np.ones((reach, reach), np.uint8)).view(bool)
    mixed = np.zeros((len(where[0]), 3), np.float32)
    total = np.zeros(len(where[0]), np.float32)
    grain = np.zeros(len(where[0]), np.float32)
    for label in classes:
        member = box_parse == label
        if label in SKIN_CLASSES:
            depth = _depth(skin_distance, member & box_painted)
            layer = skin.colours(depth[where], skin_across[where])
            # Step 3: the kept-minus-model difference along the class's kept border, spread into it.
            near_own_paint = cv2.dilate((member & box_painted).view(np.uint8), within_ring).view(bool)
            border = pixels_of(member & box_keep & near_own_paint & ~too_near)
            difference = box_known[border] - skin.colours(depth[border], skin_across[border])  # (M, 3)
            layer += _seam_offset(difference, border, where, box_parse.shape, seam_sigma)
            layer *= contact_shade[:, None]
            if texture:  # step 5 for skin: the visible skin's own detail
                inside = member[where]
                layer[inside] *= 1 + texture.sample(painted_at[0][inside], painted_at[1][inside], rng)
                spread_of_detail = 0.0
            else:
                spread_of_detail = _grain_spread(detail, reference[grid])
        else:
            # The sources: small pixels wholly of kept pixels of the class (none on its outline, whose pixels
            # mix the neighbours' colours).
            source = _small(((parse == label) & keep).astype(np.float32), small_size) > 0.999
            if label != 0 and source.sum() >= MIN_REFERENCE_PIXELS:  # not its buttons, rivets or a logo
                source &= _typical(small_luminance, source)
            if source.sum() >= MIN_REFERENCE_PIXELS:
                fill = push_pull_fill(known_small * source[..., None], source.astype(np.float32))
            else:  # the photo keeps nothing of this class: the inpainter's colours
                fill = cv2.resize(small01, small_size, interpolation=cv2.INTER_LINEAR)
            layer = _sample(fill, *painted_at, full_shape)
            spread_of_detail = _grain_spread(detail, (parse_grid == label) & keep_grid if source.any() else keep_grid)
            if label != 0:  # step 5 for a garment or hair: its kept pixels' own detail nearby (the wall: grain)
                class_texture = DetailTexture(known, (parse == label) & keep & near_to_texture)
                if class_texture:
                    inside = member[where]
                    layer[inside] *= 1 + class_texture.sample(painted_at[0][inside], painted_at[1][inside], rng)
                    spread_of_detail = 0.0
        soft = cv2.GaussianBlur(member.astype(np.float32), (0, 0), BORDER_SOFTNESS)[where]
        mixed += soft[:, None] * layer
        total += soft
        grain[member[where]] = spread_of_detail
    image = mixed / np.maximum(total, 1e-6)[:, None]
    # Feathering: painted pixels next to kept ones lean towards the kept neighbours' colour (by the kept share of
    # a Gaussian around them), so the kept outline (the garment's edge) is anti-aliased on the painted side.
    kept_share = cv2.GaussianBlur(box_keep.astype(np.float32), (0, 0), FEATHER)[where][:, None]
    kept_known = cv2.copyTo(box_known, box_keep.view(np.uint8), np.zeros_like(box_known))  # known where kept, else 0
    kept_colour = cv2.GaussianBlur(kept_known, (0, 0), FEATHER)[where]  # times the share
    image = (1 - kept_share) * image + kept_colour
    noise = rng.standard_normal((len(where[0]), 3), dtype=np.float32)
    result = known.copy()
    result[box][where] = np.clip(image + noise * grain[:, None], 0, 1)
    return result


def composite(small01: torch.Tensor, known01: torch.Tensor, keep_mask: torch.Tensor, target_parse13: torch.Tensor,
              skin_mask: torch.Tensor, seed: int | list[int] = 0) -> torch.Tensor:
    """The try-on at full resolution from the recomposed image and the inpainter's small output (the module
    docstring's steps).

    Args:
        small01: (B, 3, h, w) the inpainter's output in [0, 1].
        known01: (B, 3, H, W) the recomposed image; keep_mask: (B, 1, H, W) {0, 1}, its kept pixels.
        target_parse13: (B, H, W) integer target parse (what each painted pixel is).
        skin_mask: (B, 1, H, W) {0, 1} the person's visible skin in ``known01``.
        seed: the grain's seed, one per image or one for all.

    Returns (B, 3, H, W) in [0, 1], stored channels last; every kept pixel is ``known01``'s.
    """
    seeds = [seed] * len(known01) if isinstance(seed, int) else seed
    images = []
    for index in range(len(known01)):
        known = known01[index].float().permute(1, 2, 0).cpu().numpy()  # (3, H, W) -> (H, W, 3)
        small = small01[index].float().permute(1, 2, 0).cpu().numpy()
        image = _composite_one(small, np.ascontiguousarray(known), keep_mask[index, 0].cpu().numpy() > 0.5,
                               target_parse13[index].cpu().numpy().astype(np.uint8),
                               skin_mask[index, 0].cpu().numpy() > 0.5, int(seeds[index]))
        images.append(image)
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(known01.device)  # (B, H, W, 3) -> (B, 3, H, W)
