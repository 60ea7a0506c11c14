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
LOCAL_MEAN = 1 / 256  # the local mean's Gaussian sigma, fraction of the height: the detail is what is finer (4
# pixels at 1024 rows; 1 at 256)
OUTLIER = 2.5  # robust sigmas of luminance detail beyond which a pixel is not skin texture


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
        self.side = patch_side(image.shape[0])
        self.origins = np.zeros((0, 2), np.int64)  # (P, 2) rows and columns of the patches' top-left corners
        box = bounding_box(source, self.side)
        if box is None:
            return
        pixels, inside = image[box], source[box]
        # The outline's pixels mix in the background: the source is one pixel inside it.
        inside = cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        if not inside.any():
            return
        sigma = max(LOCAL_MEAN * image.shape[0], 1.0)
        weight = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), sigma)
        local_mean = cv2.GaussianBlur(pixels * inside[..., None], (0, 0), sigma) / np.maximum(weight, 1e-3)[..., None]
        detail = pixels / np.maximum(local_mean, 1e-3) - 1  # (h, w, 3)
        luminance = detail.mean(-1)
        spread = 1.4826 * float(np.median(np.abs(luminance[inside])))
        texture = inside & (np.abs(luminance) <= OUTLIER * max(spread, 1e-4))
        texture = cv2.erode(texture.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        # A patch may start where the source covers all side x side pixels from there (an integral image).
        covered = cv2.integral(texture.astype(np.uint8))  # (h + 1, w + 1)
        side = self.side
        whole = (covered[side:, side:] - covered[:-side, side:] - covered[side:, :-side] + covered[:-side, :-side]
                 ) == side * side  # (h - side + 1, w - side + 1)
        self.origins = np.argwhere(whole)
        self.detail = np.where(texture[..., None], detail, 0).astype(np.float32)

    def __bool__(self) -> bool:
        return len(self.origins) > 0

    def sample(self, rows: np.ndarray, columns: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, 3) float32 relative detail at the N pixels (``rows``, ``columns``); zeros when the source had no
        whole patch."""
        if not len(rows) or not self:
            return np.zeros((len(rows), 3), np.float32)
        side, step = self.side, self.side // 2
        top, left = int(rows.min()) - step, int(columns.min()) - step
        height, width = int(rows.max()) + 1 - top + step, int(columns.max()) + 1 - left + step
        height, width = -(-height // step) * step + step, -(-width // step) * step + step  # whole steps
        canvas = np.zeros((height, width, 3), np.float32)
        weights = np.zeros((height, width), np.float32)
        window = _window(side)
        corners = [(y, x) for y in range(0, height - side + 1, step) for x in range(0, width - side + 1, step)]
        picks = self.origins[rng.integers(len(self.origins), size=len(corners))]
        for (y, x), (source_row, source_column) in zip(corners, picks):
            patch = self.detail[source_row:source_row + side, source_column:source_column + side]
            canvas[y:y + side, x:x + side] += window[..., None] * patch
            weights[y:y + side, x:x + side] += window ** 2
        at = (rows - top, columns - left)
        return canvas[at] / np.sqrt(np.maximum(weights[at], 1e-3))[:, None]
