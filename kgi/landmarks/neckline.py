"""The front neckline of a flat garment photo, from what the photo shows inside the outline.

A product photo's mask outline follows the garment's *back* neckline; a V, scoop, sweetheart or wrap front
dips below it and shows the inside of the back, which is shaded darker than the front. Down the centre line
from the back neckline, the front neckline is where the colour leaves the shade's (the colour just below the
back neckline) for the front's (the chest's) and stays there; across the row halfway down, the neckline's sides
are where the shade ends either way. A garment whose inside does not differ from its front and is not darker
(a black top, a white top on a white inside) keeps the outline's neckline.
"""

from __future__ import annotations

import cv2
import numpy as np

# The inside of the back must differ from the front by this much (CIE Lab distance, L* 0-100), and be darker,
# to be told apart.
MIN_CONTRAST = 10.0
# A front neckline lies at most this fraction of the body length below the back neckline.
MAX_DEPTH = 0.45
# The shade is the colour this far below the back neckline (fractions of the body length: below its binding).
SHADE_ROWS = (0.02, 0.06)
# The front starts where this fraction of the body length in a row (rows, or columns across) is front-coloured.
RUN = 0.02


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
    lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB).astype(np.float64)
    lab[..., 0] *= 100 / 255  # L* 0-100; a*, b* offset by 128 (differences are what count)
    band = max(2, int(round(0.015 * body_length)))
    x = int(round(back_centre[0]))
    start = int(round(back_centre[1])) + 2
    stop = min(int(round(back_centre[1] + MAX_DEPTH * body_length)), mask.shape[0] - 1)
    chest = slice(int(back_centre[1] + 0.5 * body_length), int(back_centre[1] + 0.6 * body_length))
    run = max(3, int(round(RUN * body_length)))
    if stop - start < 4 * run or not mask[chest].any():
        return None
    strip = lab[start:stop, x - band: x + band + 1]  # (rows, columns, 3)
    profile = np.median(strip, axis=1)  # (rows, 3)
    shade = np.median(profile[int(SHADE_ROWS[0] * body_length): int(SHADE_ROWS[1] * body_length) + 1], axis=0)
    front = np.median(lab[chest][mask[chest]], axis=0)
    if np.linalg.norm(front - shade) < MIN_CONTRAST or front[0] < shade[0]:  # no darker inside to be seen
        return None

    def front_like(colours: np.ndarray) -> np.ndarray:
        return np.linalg.norm(colours - front, axis=-1) < np.linalg.norm(colours - shade, axis=-1)

    runs = np.flatnonzero(np.convolve(front_like(profile), np.ones(run), "valid") == run)
    if not len(runs):
        return None
    centre = np.array([x, start + runs[0]], dtype=np.float64)
    nodes = [centre]
    middle_row = int(round((corners[:, 1].mean() + centre[1]) / 2))
    row_front = front_like(lab[middle_row]) & mask[middle_row]
    for corner, step in ((corners[0], -1), (corners[1], +1)):
        columns = np.arange(x, int(round(corner[0])), step)
        found = np.flatnonzero(np.convolve(row_front[columns], np.ones(run), "valid") == run) if len(columns) else []
        fallback = (corner + centre) / 2
        nodes.append(np.array([columns[found[0]], middle_row], dtype=np.float64) if len(found) else fallback)
    return np.stack([nodes[1], nodes[0], nodes[2]])
