"""The front neckline of a flat garment photo, from what the photo shows inside the outline.

A product photo's mask outline follows the garment's *back* neckline, or a collar's top edge; a V, scoop,
sweetheart or wrap front, or a collar's opening, dips below it and shows the inside of the back, which is shaded
darker than the front. The front's colour is read on the chest, beside the neck below the neck corners, and on
the centre line's rows that are the chest's fabric, and the lightest is taken (a two-tone polo's dark chest, a
velvet's shaded shoulders, a knit's shaded holes, a mock neck's shaded collar sides do not count). Down the
centre line from the back neckline, past a collar's back band if there is one, the inside starts with rows
darker than the front; the front neckline is where the colour leaves the shade's for the front's and stays
there (dark rows repeating below it are the fabric's stripes or checks, no inside); across the row halfway
down, the neckline's sides are where the shade ends either way. A garment whose inside does not show darker (a
black top, a white top on a white inside) keeps the outline's neckline.
"""

from __future__ import annotations

import cv2
import numpy as np

# The inside of the back must be darker than the front by this much (CIE L*, 0-100) and differ from it by this
# much (Lab distance) to be told apart.
MIN_CONTRAST = 10.0
# The chest's colour is read on these rows below the back neckline (fractions of the body length).
CHEST_ROWS = (0.5, 0.6)
# A front neckline lies at most this fraction of the body length below the back neckline.
MAX_DEPTH = 0.45
# The inside of the back starts at most this fraction of the body length below the back neckline (below a
# collar's back band).
MAX_BAND = 0.1
# The front's colour is read beside the neck corners, this band of rows below them (fractions of the body length).
BESIDE_NECK_ROWS = (0.04, 0.12)
# The front starts where this fraction of the body length in a row (rows, or columns across) is not dark; the
# shade where a third of it is dark.
RUN = 0.02
# Below the front neckline, at most a fifth of this fraction of the body length may be dark (more is a pattern of
# the fabric, stripes or checks, or more of the inside below a collar's band).
CLEAR_BELOW = 0.1
# The colours are read smoothed over this fraction of the body length (Gaussian sigma), inside the mask: a
# fabric's fine pattern averages out, the inside of the back stays darker.
SMOOTHING = 0.015


def front_neckline(rgb: np.ndarray, mask: np.ndarray, corners: np.ndarray, back_centre: np.ndarray,
                   body_length: float) -> np.ndarray | None:
    """Nodes 1, 2, 3 of a front neckline seen through the back's, or None where the photo shows none.

    Args:
        rgb: (H, W, 3) uint8 garment photo. mask: (H, W) bool garment silhouette.
        corners: (2, 2) the neck corners (nodes 0 and 4), pixels.
        back_centre: (2,) the centre of the outline's neckline (the back's), pixels.
        body_length: pixels from the top of the outline to the hem centre.

    Returns:
        (3, 2) float64 pixel nodes 1, 2, 3, or None.
    """
    # The rows read below: from the neck corners (the middle row between them and the centre) to the chest.
    top = max(int(min(corners[:, 1].min(), back_centre[1])) - 1, 0)
    bottom = int(max(back_centre[1] + CHEST_ROWS[1] * body_length,
                     corners[:, 1].max() + BESIDE_NECK_ROWS[1] * body_length)) + 2
    lab = _smoothed_lab(rgb, mask, SMOOTHING * body_length, slice(top, min(bottom, len(rgb))))
    band = max(2, int(round(0.015 * body_length)))
    x = int(round(back_centre[0]))
    start = int(round(back_centre[1])) + 2
    stop = min(int(round(back_centre[1] + MAX_DEPTH * body_length)), mask.shape[0] - 1)
    run = max(3, int(round(RUN * body_length)))
    chest = slice(int(back_centre[1] + CHEST_ROWS[0] * body_length), int(back_centre[1] + CHEST_ROWS[1] * body_length))
    if stop - start < 4 * run or not mask[chest].any():
        return None
    chest_colour = np.median(lab[chest][mask[chest]], axis=0)
    profile = np.median(lab[start:stop, x - band: x + band + 1], axis=1)  # (rows, 3)
    fronts = [chest_colour, _beside_neck(lab, mask, corners, body_length), _centre_line_front(profile, chest_colour)]
    front = max((f for f in fronts if f is not None), key=lambda colour: colour[0])
    dark = (front[0] - profile[:, 0] >= MIN_CONTRAST) & (np.linalg.norm(profile - front, axis=1) >= MIN_CONTRAST)
    shade_run = max(2, run // 3)
    shade_starts = np.flatnonzero(np.convolve(dark, np.ones(shade_run), "valid") == shade_run)
    if not len(shade_starts) or shade_starts[0] > MAX_BAND * body_length:
        return None
    first = shade_starts[0]
    # The front: the first run of rows that are not dark with the rows below it clear of dark ones (dark rows
    # repeating below it are the fabric's stripes or checks, or the inside goes on below a collar's band).
    clear = int(round(CLEAR_BELOW * body_length))
    for light in first + np.flatnonzero(np.convolve(~dark[first:], np.ones(run), "valid") == run):
        if dark[light: light + clear].mean() <= 0.2:
            break
    else:
        return None
    shade = profile[first + np.argmin(profile[first:light, 0])]  # the darkest of the inside

    def front_like(colours: np.ndarray) -> np.ndarray:
        return np.linalg.norm(colours - front, axis=-1) < np.linalg.norm(colours - shade, axis=-1)

    row = light  # back up the ramp from the inside's shade to the front's colour to its middle
    while row > first and front_like(profile[row - 1]):
        row -= 1
    centre = np.array([x, start + row], dtype=np.float64)
    nodes = [centre]
    middle_row = int(round((corners[:, 1].mean() + centre[1]) / 2))
    row_front = front_like(lab[middle_row]) & mask[middle_row]
    for corner, step in ((corners[0], -1), (corners[1], +1)):
        columns = np.arange(x, int(round(corner[0])), step)
        found = np.flatnonzero(np.convolve(row_front[columns], np.ones(run), "valid") == run) if len(columns) else []
        fallback = (corner + centre) / 2
        nodes.append(np.array([columns[found[0]], middle_row], dtype=np.float64) if len(found) else fallback)
    return np.stack([nodes[1], nodes[0], nodes[2]])


def _centre_line_front(profile: np.ndarray, chest_colour: np.ndarray) -> np.ndarray | None:
    """The median Lab colour (3,) of the rows of the centre line's ``profile`` (rows, 3) that are the chest's
    fabric (within ``MIN_CONTRAST`` of ``chest_colour``: no print); None where no row is. A patterned fabric's
    median over the whole chest (a knit's shaded holes) is darker than its plain front below the neckline."""
    fabric = profile[np.linalg.norm(profile - chest_colour, axis=1) < MIN_CONTRAST]
    return np.median(fabric, axis=0) if len(fabric) else None


def _beside_neck(lab: np.ndarray, mask: np.ndarray, corners: np.ndarray, body_length: float) -> np.ndarray | None:
    """The median Lab colour (3,) of the front beside the neck: below each neck corner by ``BESIDE_NECK_ROWS``,
    from the corner out by half the neck's width; None where the mask has none of it."""
    neck_width = max(float(corners[1, 0] - corners[0, 0]), 2.0)
    top = int(round(corners[:, 1].max() + BESIDE_NECK_ROWS[0] * body_length))
    bottom = int(round(corners[:, 1].max() + BESIDE_NECK_ROWS[1] * body_length))
    region = np.zeros(mask.shape, bool)
    for corner, outward in ((corners[0], -1), (corners[1], +1)):
        low, high = sorted((int(round(corner[0])), int(round(corner[0] + outward * neck_width / 2))))
        region[max(top, 0): max(bottom, 0), max(low, 0): max(high, 0)] = True
    region &= mask
    return np.median(lab[region], axis=0) if region.sum() >= 16 else None


def _smoothed_lab(rgb: np.ndarray, mask: np.ndarray, sigma: float, rows: slice) -> np.ndarray:
    """(H, W, 3) float32 Lab colours of ``rgb`` (L* 0-100; a*, b* offset by 128: differences are what count)
    blurred with a Gaussian of ``sigma`` pixels over the mask only (the background's colour does not bleed in),
    blur(lab * mask) / blur(mask), on ``rows`` (zero elsewhere). Computed on those rows and the blur's reach
    above and below them (OpenCV's kernel for float images reaches 4 sigma), and on the mask's columns: what
    blurring the whole photo gives there, at a fraction of its cost (identical on the genuine garment photos at
    the smoothing's sigma; a sigma under 1 pixel can differ in the last bit where OpenCV's vector loop meets the
    window's edge differently)."""
    reach = int(np.ceil(4 * sigma)) + 1
    band = slice(max(rows.start - reach, 0), rows.stop + reach)
    # Columns: the mask's on the band and twice the reach beside them; beyond that the blurs see no mask (zero).
    columns = np.flatnonzero(mask[band].any(0))
    smoothed = np.zeros((*mask.shape, 3), np.float32)
    if not len(columns):
        return smoothed
    across = slice(max(int(columns[0]) - 2 * reach, 0), int(columns[-1]) + 2 * reach + 1)
    lab = cv2.cvtColor(np.ascontiguousarray(rgb[band, across]), cv2.COLOR_RGB2LAB).astype(np.float32)  # 2x faster
    lab[..., 0] *= 100 / 255
    inside = mask[band, across]
    weight = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), sigma)
    blurred = cv2.GaussianBlur(lab * inside[..., None], (0, 0), sigma)
    kept = slice(rows.start - band.start, rows.stop - band.start)
    smoothed[rows, across] = blurred[kept] / np.maximum(weight[kept], 1e-6)[..., None]
    return smoothed
