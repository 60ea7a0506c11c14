"""Texture by example: the fine detail of part of a photo, continued over pixels that have none.

A painted arm takes the person's skin colour and shading (``kgi.composite``), which are smooth: on its own it
looks like a strip of paper beside the photo's skin. ``DetailTexture`` learns the fine detail of the visible skin
(each pixel over its local mean, a Gaussian of ``LOCAL_MEAN`` of the height, minus one) and lays it on the painted
pixels:

1. the source is the visible skin less its outline (whose pixels mix in the background) and less what is not
   skin texture (a mole, an earring, a strand of hair: luminance detail beyond ``OUTLIER`` robust sigmas, and a
   pixel around it);
2. square patches of ``PATCH`` of the height are laid on a grid with half a patch's step, each one cut at random
   from where the source covers a whole patch, and weighted by the window
   w(x, y) = sin(pi (x + 1/2) / side) sin(pi (y + 1/2) / side);
3. the texture is sum_i w_i d_i / sqrt(sum_i w_i^2). With half-patch steps sum_i w_i^2 = 1 inside the grid, so
   this is the plain windowed sum, and it keeps the variance of the source's detail where a weighted mean would
   halve it (the variance-preserving blend of Heitz and Neyret, "High-Performance By-Example Noise using a
   Histogram-Preserving Blending Operator", 2018).

The detail is relative, so skin learnt on a bright neck keeps its contrast on a shaded arm.
"""

from __future__ import annotations

import cv2
import numpy as np

from kgi.labelmaps import bounding_box

PATCH = 1 / 64  # patch side, fraction of the image's height (16 pixels at 1024 rows, 8 at 256)
MIN_SIDE = 8  # pixels
# The local mean's Gaussian sigma, fraction of the height: the detail is what is finer (8 pixels at 1024 rows, 2 at
# 256). At 4 pixels it took off a quarter to half of the finest band (Gaussians of 0.7 to 2 pixels) as well: painted
# skin had 0.55-0.75 of the visible skin's fine detail on the genuine pairs (``bench.genuine_tryon``'s skin detail).
LOCAL_MEAN = 1 / 128
OUTLIER = 2.5  # robust sigmas of luminance detail beyond which a pixel is not skin texture


def channel_mean(colours: np.ndarray) -> np.ndarray:
    """(..., 3) -> (...): the mean of the three channels, equal to numpy's ``mean(-1)`` to the bit and several
    times as fast on images (numpy reduces a last axis of three element by element)."""
    return (colours[..., 0] + colours[..., 1] + colours[..., 2]) / 3


def patch_side(height: int) -> int:
    """The patches' side at ``height`` rows: even, so half-patch steps tile exactly."""
    return 2 * max(round(PATCH * height / 2), MIN_SIDE // 2)


def _window(side: int) -> np.ndarray:
    """(side, side) float32 w(x, y) = sin(pi (x + 1/2) / side) sin(pi (y + 1/2) / side)."""
    line = np.sin(np.pi * (np.arange(side, dtype=np.float32) + 0.5) / side)
    return line[:, None] * line[None, :]


class DetailTexture:
    """The relative detail of ``image`` on ``source``, ready to be laid on other pixels (module docstring).

    Args:
        image: (H, W, 3) float32 in [0, 1].
        source: (H, W) bool, the pixels whose detail is learnt (the visible skin).
    """

    def __init__(self, image: np.ndarray, source: np.ndarray):
        self.side = side = patch_side(image.shape[0])
        self.origins = np.zeros((0, 2), np.int64)  # (P, 2) rows and columns of the patches' top-left corners
        box = bounding_box(source, side)
        if box is None:
            return
        pixels = image[box]
        # The outline's pixels mix in the background: the source is one pixel inside it.
        inside = cv2.erode(source[box].astype(np.uint8), np.ones((3, 3), np.uint8))
        # The detail is computed piece by piece of the source (the neck, a hand: a tenth of their box's area),
        # on each piece's box grown by the local mean's reach, and only where a whole patch fits.
        sigma = max(LOCAL_MEAN * image.shape[0], 1.0)
        reach = int(np.ceil(3 * sigma))
        count, pieces, stats, _ = cv2.connectedComponentsWithStats(inside, connectivity=8)
        detail = np.zeros(pixels.shape, np.float32)  # (h, w, 3)
        known = np.zeros(inside.shape, bool)
        for piece, (left, top, width, height, _) in enumerate(stats[1:], start=1):
            if min(width, height) < side:
                continue
            part = (slice(max(top - reach, 0), top + height + reach), slice(max(left - reach, 0), left + width + reach))
            weight = cv2.GaussianBlur(inside[part].astype(np.float32), (0, 0), sigma)
            local_mean = cv2.GaussianBlur(pixels[part] * inside[part][..., None], (0, 0), sigma)
            own = pieces[part] == piece
            detail[part][own] = pixels[part][own] * weight[own][:, None] / np.maximum(local_mean[own], 1e-3) - 1
            known[part] |= own
        if not known.any():
            return
        luminance = channel_mean(detail)
        spread = 1.4826 * float(np.median(np.abs(luminance[known])))
        texture = known & (np.abs(luminance) <= OUTLIER * max(spread, 1e-4))
        texture = cv2.erode(texture.astype(np.uint8), np.ones((3, 3), np.uint8))
        # A patch may start where the source covers all side x side pixels from there (an integral image).
        covered = cv2.integral(texture)  # (h + 1, w + 1)
        whole = (covered[side:, side:] - covered[:-side, side:] - covered[side:, :-side] + covered[:-side, :-side]
                 ) == side * side  # (h - side + 1, w - side + 1)
        self.origins = np.argwhere(whole)
        self.detail = cv2.copyTo(detail, texture, np.zeros_like(detail))  # detail where texture, else 0

    def __bool__(self) -> bool:
        return len(self.origins) > 0

    def sample(self, rows: np.ndarray, columns: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, 3) float32 relative detail at the N pixels (``rows``, ``columns``); zeros when the source had no
        whole patch."""
        if not len(rows) or not self:
            return np.zeros((len(rows), 3), np.float32)
        side, step = self.side, self.side // 2
        # Cell (i, j) of the canvas starts at (i step, j step); the canvas starts a step before the first pixel, so
        # a pixel of cell (i, j) lies under the patches laid at cells i - 1 and i by j - 1 and j, whole steps in.
        top, left = int(rows.min()) - step, int(columns.min()) - step
        cell_rows, cell_columns = (rows - top) // step, (columns - left) // step
        laid = np.zeros((cell_rows.max() + 1, cell_columns.max() + 1), bool)
        laid[cell_rows, cell_columns] = True
        laid[:-1] |= laid[1:]
        laid[:, :-1] |= laid[:, 1:]
        corners = np.argwhere(laid) * step  # (K, 2): patches only where some pixel is asked for
        canvas = np.zeros((laid.shape[0] * step + step, laid.shape[1] * step + step, 3), np.float32)
        weights = np.zeros(canvas.shape[:2], np.float32)
        window = _window(side)
        picks = self.origins[rng.integers(len(self.origins), size=len(corners))]
        for (y, x), (source_row, source_column) in zip(corners, picks):
            patch = self.detail[source_row:source_row + side, source_column:source_column + side]
            canvas[y:y + side, x:x + side] += window[..., None] * patch
            weights[y:y + side, x:x + side] += window ** 2
        at = (rows - top, columns - left)
        return canvas[at] / np.sqrt(np.maximum(weights[at], 1e-3))[:, None]
