"""Label maps of one image in numpy: lookups, morphology and nearest labels on (H, W) uint8 labels and bool masks.

Stage 2's label work (``kgi.recompose``, ``kgi.pipeline``) runs on these at the image's size, up to 1024 rows:
a uint8 or bool map is an eighth of an int64 tensor, a lookup through OpenCV's ``LUT`` a tenth of numpy's
fancy indexing, and the morphology and distance transforms (OpenCV) run on the bounding box of the pixels
they can change, with the result they would give on the whole image.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from kgi.data.labels import CIHP_TO_PARSE13

# Pixels around the relabelled ones that ``nearest_pixels`` first looks for sources in, a fraction of the image's
# height (8 pixels at 256 rows): the distances it finds grow with the image.
_NEAREST_REACH = 1 / 32


def label_maps(parse: torch.Tensor) -> np.ndarray:
    """A (B, H, W) integer label map (labels 0..255) as (B, H, W) uint8 numpy."""
    return parse.to(torch.uint8).cpu().numpy()


def stack_maps(maps: list[np.ndarray], like: torch.Tensor, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """Per-sample (H, W) numpy maps as one (B, H, W) tensor of ``dtype`` on ``like``'s device."""
    return torch.from_numpy(np.stack(maps)).to(like.device, dtype)


def lookup(labels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """(H, W) ``table[labels]`` for uint8 ``labels`` and a uint8 or bool ``table`` of at most 256 entries (OpenCV's
    ``LUT``)."""
    padded = np.zeros(256, np.uint8)
    padded[:len(table)] = table
    mapped = cv2.LUT(labels, padded)
    return mapped.astype(bool) if table.dtype == bool else mapped


def is_any(labels: np.ndarray, values: tuple[int, ...]) -> np.ndarray:
    """(H, W) bool: the uint8 ``labels`` is one of ``values``."""
    table = np.zeros(256, bool)
    table[list(values)] = True
    return lookup(labels, table)


def to_parse13(parse_cihp: np.ndarray) -> np.ndarray:
    """(H, W) uint8 13-class labels of (H, W) uint8 CIHP labels (``kgi.data.labels.CIHP_TO_PARSE13``)."""
    return lookup(parse_cihp, CIHP_TO_PARSE13)


def pixels_of(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (rows, columns) of the pixels of (H, W) bool ``mask`` in scan order, as ``np.nonzero`` gives them, from
    their flat indices (``np.flatnonzero`` and a division: at 1024 rows about twice as fast)."""
    return np.divmod(np.flatnonzero(mask), mask.shape[1])


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice] | None:
    """The rows and columns of (H, W) bool ``mask``'s bounding box grown by ``margin`` pixels (within the image),
    or None when the mask is empty."""
    rows, columns = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not rows.size:
        return None
    height, width = mask.shape
    return (slice(max(int(rows[0]) - margin, 0), min(int(rows[-1]) + margin + 1, height)),
            slice(max(int(columns[0]) - margin, 0), min(int(columns[-1]) + margin + 1, width)))


def grow(mask: np.ndarray, radius: int) -> np.ndarray:
    """(H, W) bool ``mask`` dilated by a (2 radius + 1)-pixel square."""
    if radius <= 0:
        return mask
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)).astype(bool)


def close_gaps(mask: np.ndarray, radius: int) -> np.ndarray:
    """(H, W) bool ``mask`` closed (dilated, then eroded) by a disc of ``radius`` pixels: its cracks and notches
    narrower than about the disc filled. Computed on the mask's bounding box grown by 2 radius + 1 pixels, where
    the erosion sees what it would on the whole image (beyond the dilated mask, nothing)."""
    box = bounding_box(mask, 2 * radius + 1)
    if radius <= 0 or box is None:
        return mask
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    closed = np.zeros_like(mask)
    closed[box] = cv2.morphologyEx(mask[box].astype(np.uint8), cv2.MORPH_CLOSE, disc).astype(bool)
    return closed


def pieces(mask: np.ndarray, within: np.ndarray | None = None, touching: np.ndarray | None = None,
           smaller_than: float | None = None, connectivity: int = 8) -> np.ndarray:
    """(H, W) bool: the pieces of (H, W) bool ``mask`` (``connectivity`` 8 or 4) that, given (H, W) bool ``within``,
    lie wholly inside it, given (H, W) bool ``touching``, have a pixel in it and, given ``smaller_than``, have fewer
    pixels."""
    chosen_pixels = np.zeros_like(mask)
    box = bounding_box(mask)
    if box is None:
        return chosen_pixels
    count, labels = cv2.connectedComponents(mask[box].view(np.uint8), connectivity=connectivity)
    chosen = np.ones(count, bool)
    if within is not None:
        chosen &= np.bincount(labels[~within[box]], minlength=count) == 0  # no pixel of the piece outside
    if touching is not None:
        chosen &= np.bincount(labels[touching[box]], minlength=count) > 0
    if smaller_than is not None:
        chosen &= np.bincount(labels.ravel(), minlength=count) < smaller_than
    chosen[0] = False  # OpenCV's region 0 is outside the mask
    chosen_pixels[box] = chosen[labels]
    return chosen_pixels


def small_holes(mask: np.ndarray, max_area: float) -> np.ndarray:
    """(H, W) bool: the holes of (H, W) bool ``mask``, the 4-connected regions outside it that it encloses (that
    touch no image border) of fewer than ``max_area`` pixels. The regions are found on the mask's box grown by a
    pixel: all around it is one region reaching the image border, so a region that touches the box's border is
    no hole, and the others are the whole image's holes."""
    holes = np.zeros_like(mask)
    box = bounding_box(mask, 1)
    if box is None:
        return holes
    off_border = np.zeros(mask[box].shape, bool)
    off_border[1:-1, 1:-1] = True
    holes[box] = pieces(~mask[box], within=off_border, smaller_than=max_area, connectivity=4)
    return holes


def nearest_pixels(sources: np.ndarray, where: np.ndarray
                   ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None:
    """The nearest pixel of ``sources`` to each pixel of ``where`` (both (H, W) bool), by OpenCV's distance
    transform with labels (a 5x5 chamfer approximation of the Euclidean distance): ``((rows, columns),
    (nearest_rows, nearest_columns))``, four (N,) arrays for the N pixels of ``where`` in row-major order; None
    without sources or pixels.

    The transform runs on the box of ``where`` grown by a reach, first ``_NEAREST_REACH`` of the height, then past the
    farthest distance found there: a source outside the box is at least the reach plus one pixel away (the
    chamfer distance is at least the larger coordinate difference), so once every distance found is less, the
    nearest pixels are those of the whole image's transform."""
    if not where.any() or not sources.any():
        return None
    reach = max(round(_NEAREST_REACH * where.shape[0]), 1)
    while True:
        box = bounding_box(where, reach)
        source = sources[box]
        whole = source.shape == sources.shape
        if source.any() or whole:
            distance, nearest = cv2.distanceTransformWithLabels((~source).astype(np.uint8), cv2.DIST_L2, 3,
                                                                labelType=cv2.DIST_LABEL_PIXEL)
            farthest = float(distance[where[box]].max())
            if whole or farthest < reach + 1:
                break
            reach = int(farthest) + 1
        else:
            reach *= 2
    top, left = box[0].start, box[1].start
    rows, columns = pixels_of(where[box])
    # OpenCV numbers the sources from 1 in scan order: the found ones' flat indices, then their rows and columns.
    source_rows, source_columns = np.divmod(np.flatnonzero(source)[nearest[rows, columns] - 1], source.shape[1])
    return (rows + top, columns + left), (source_rows + top, source_columns + left)


def nearest_label(target: np.ndarray, sources: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``target`` (H, W) with its pixels inside ``where`` relabelled as the nearest pixel of ``sources``
    (``nearest_pixels``); unchanged without sources or pixels to relabel."""
    found = nearest_pixels(sources, where)
    if found is None:
        return target
    (rows, columns), nearest = found
    relabelled = target.copy()
    relabelled[rows, columns] = target[nearest]
    return relabelled
