"""The front neckline of a flat garment photo, from what the photo shows inside the outline.

A product photo's mask outline follows the garment's *back* neckline, or a collar's top edge; the front
neckline lies below it, and between the two the photo shows the inside of the back: shaded, often with a brand
label sewn at its centre, or the opening of a V, a wrap or a collar. What is the front is told by colour. The
fabric's colours are a palette (``_palette``: k-means of the body's smoothed Lab colours, rows ``FABRIC``
below the back neckline, clusters of at least ``MIN_CLUSTER`` of its pixels: the ground and the stripes or
checks, not a small print), and d(x, r), a pixel's Lab distance to the nearest, says how unlike the fabric it
is. The front neckline is the path y(x) from one neck corner to the other that maximises

    sum over columns x of  sum over rows r from the outline's top to y(x) of (d(x, r) - TAU)
                           - STEP_COST |y(x + 1) - y(x)|,       |y(x + 1) - y(x)| <= SLOPE,

found by dynamic programming over the columns (above the outline, between a strap and the body, a path scores
nothing): the inside takes in what differs from the fabric (the shade, the label) and pays for the fabric it takes
in. No column's inside reaches past a run of ``FRONT_RUN`` of the body length of fabric-coloured pixels, or half as
long a run of pixels within half ``TAU`` of the fabric (``PLAIN_FABRIC``, ``PLAIN_RUN``; counted below the column's
first pixel that is not plain fabric, as a plain band at the outline's top is the back's collar band): a print
further down the chest is not the inside, even a polka dot just below a label across a band of plain cloth, while
the shaded inside of a shirt's open V, near the fabric's colour, is. Nodes 1, 2 and 3 are the path halfway to each
corner and at the centre. A path that dips at the centre alone (nodes 1 and 3 less than ``NARROW_DIP`` of node 2's
depth below the corners' line) went round a label sewn inside a crew neck, the inside around it the fabric's colour
(a white tee): a crew neckline is round, so nodes 1 and 3 go down to the half ellipse through the corners and node
2. The palette is a small k-means of its own (seeded, so a garment always gets the same landmarks; OpenCV's
``kmeans`` draws from a process-wide generator).

The outline's neckline is kept (None) where the photo cannot tell: a fabric the palette does not describe
(fewer than ``MIN_COVERAGE`` of the body's pixels within ``TAU`` of a mixture of two of its colours: a busy print;
the smoothed edge of a stripe is a colour between the stripes', and judged by the palette's colours alone a red
and white striped tee's coverage was 0.43-0.58 as its photo was framed, a busy floral print's 0.27-0.35), or an
inside less than ``MIN_DEPTH`` of the body length deep at the centre (a white top on a white inside, a mock
neck's collar).
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_DEPTH = 0.45  # a front neckline lies at most this fraction of the body length below the back neckline
FABRIC = (0.2, 0.9)  # the rows the fabric's palette is learnt from, fractions of the body length below the top
PALETTE_SIZE = 8  # k-means clusters of the fabric's colours...
MIN_CLUSTER = 0.03  # ... kept when they hold at least this share of its pixels
TAU = 5.0  # Lab distance from the palette above which a pixel is not the fabric's
# The share of the body's pixels the palette's mixtures must describe: 0.81-1.00 on the 18 genuine garments of
# ``../shared`` as sent, at 0.8 and 0.9 of their photos and turned by 1-3 degrees; 0.62-0.66 on the busy floral
# print 03751.
MIN_COVERAGE = 0.75
SLOPE = 3  # pixels the path may step per column
STEP_COST = 0.2  # what a pixel of step costs the path
FRONT_RUN = 0.08  # a run of this fraction of the body length of fabric pixels ends a column's inside
PLAIN_FABRIC, PLAIN_RUN = 0.5, 0.5  # ... and so does a run half as long of pixels within half TAU of the fabric
MIN_DEPTH = 0.012  # the least depth of an inside at the centre, fraction of the body length
# Nodes 1 and 3 less deep than this fraction of node 2's depth (below the corners' line): the path dipped at a
# label sewn inside a crew neck (0.12-0.23 on five genuine tees), not down a V (0.5-0.7) or a scoop (0.8-1)
NARROW_DIP = 0.35
SMOOTHING = 0.006  # the colours are read smoothed by a Gaussian of this fraction of the body length
WORKING_HEIGHT = 384  # rows of the photo the neckline is read on (a larger photo is reduced)
_PALETTE_SAMPLES = 2000  # pixels the k-means runs on
_PALETTE_ITERATIONS = 10


def front_neckline(rgb: np.ndarray, mask: np.ndarray, corners: np.ndarray, back_centre: np.ndarray,
                   body_length: float) -> np.ndarray | None:
    """Nodes 1, 2, 3 of a front neckline seen below the back's, or None where the photo shows none.

    Args:
        rgb: (H, W, 3) uint8 garment photo. mask: (H, W) bool garment silhouette.
        corners: (2, 2) the neck corners (nodes 0 and 4), pixels, image-left first.
        back_centre: (2,) the centre of the outline's neckline (the back's), pixels.
        body_length: pixels from the top of the outline to the hem centre.

    Returns:
        (3, 2) float64 pixel nodes 1, 2, 3, or None.
    """
    scale = min(1.0, WORKING_HEIGHT / mask.shape[0])
    if scale < 1:  # read at WORKING_HEIGHT rows (area-averaged), the nodes scaled back
        size = (round(mask.shape[1] * scale), round(mask.shape[0] * scale))
        small_rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        small_mask = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5
        nodes = _front_neckline(small_rgb, small_mask, corners * scale, back_centre * scale, body_length * scale)
        return None if nodes is None else nodes / scale
    return _front_neckline(rgb, mask, corners, back_centre, body_length)


def _front_neckline(rgb: np.ndarray, mask: np.ndarray, corners: np.ndarray, back_centre: np.ndarray,
                    body_length: float) -> np.ndarray | None:
    """``front_neckline`` on a photo of at most ``WORKING_HEIGHT`` rows."""
    height = mask.shape[0]
    top = max(int(min(corners[:, 1].min(), back_centre[1])) - 1, 0)
    stop = min(int(round(back_centre[1] + MAX_DEPTH * body_length)), height - 1)
    fabric = slice(int(back_centre[1] + FABRIC[0] * body_length), min(int(back_centre[1] + FABRIC[1] * body_length),
                                                                       height))
    left, right = int(round(corners[0, 0])), int(round(corners[1, 0]))
    if right - left < 2 * SLOPE or stop - top < 4 or not mask[fabric].any():
        return None
    lab = _smoothed_lab(rgb, mask, SMOOTHING * body_length, slice(top, max(stop, fabric.stop)))
    body = lab[fabric][mask[fabric]]  # (N, 3)
    palette = _palette(body)
    if np.mean(_distance_to_mixtures(body[::4], palette) < TAU) < MIN_COVERAGE:
        return None
    band_mask = mask[top:stop, left:right + 1]  # (R, C): rows from the top, columns between the corners
    unlike = _distance_to(lab[top:stop, left:right + 1], palette)  # (R, C) d
    path = _best_path(unlike, band_mask, int(round(corners[0, 1])) - top, int(round(corners[1, 1])) - top,
                      max(2, int(round(FRONT_RUN * body_length))))
    centre_column = int(round(back_centre[0])) - left
    if path is None or path[centre_column] - np.argmax(band_mask[:, centre_column]) < MIN_DEPTH * body_length:
        return None

    def on_path(x: float) -> np.ndarray:
        column = int(np.clip(round(x) - left, 0, len(path) - 1))
        return np.array([left + column, top + path[column]], dtype=np.float64)

    return _rounded_if_narrow(np.stack([on_path((corners[0, 0] + back_centre[0]) / 2), on_path(back_centre[0]),
                                        on_path((corners[1, 0] + back_centre[0]) / 2)]), corners)


def _rounded_if_narrow(nodes: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Nodes 1, 2, 3 (3, 2), with 1 and 3 moved down to the half ellipse through the corners (2, 2) and node 2
    when the path dips only at the centre (module docstring)."""
    def depth(point: np.ndarray) -> float:  # below the line through the corners
        along = (point[0] - corners[0, 0]) / max(corners[1, 0] - corners[0, 0], 1e-6)
        return float(point[1] - (corners[0, 1] + along * (corners[1, 1] - corners[0, 1])))

    centre = depth(nodes[1])
    if centre <= 0 or (depth(nodes[0]) + depth(nodes[2])) / 2 >= NARROW_DIP * centre:
        return nodes
    rounded = nodes.copy()
    for index in (0, 2):
        across = abs(nodes[index, 0] - nodes[1, 0]) / max(abs(corners[index // 2, 0] - nodes[1, 0]), 1e-6)
        ellipse = centre * np.sqrt(max(1 - across ** 2, 0.0))
        rounded[index, 1] += max(ellipse - depth(nodes[index]), 0.0)
    return rounded


def _best_path(unlike: np.ndarray, mask: np.ndarray, start_row: int, end_row: int, front_run: int
               ) -> np.ndarray | None:
    """The path's row per column (C,) (module docstring), from ``start_row`` in the first column to ``end_row``
    in the last, over (R, C) ``unlike`` (d) and ``mask``; None where no column has garment."""
    rows, columns = unlike.shape
    first = np.argmax(mask, axis=0)  # (C,) the outline's top in each column
    if not mask.any(0).all():
        return None
    # (R, C) the score of an inside from the outline's top down to each row: zero above the outline (a path
    # may pass over the background between a strap and the body).
    inside = np.cumsum(np.where(mask, unlike - TAU, 0.0), axis=0)
    # Rows where a run of front_run fabric pixels starts (counted upwards): no inside reaches past the first.
    fabric = (unlike < TAU) & mask
    plain = (unlike < PLAIN_FABRIC * TAU) & mask
    run, plain_run = np.zeros(columns, int), np.zeros(columns, int)
    starts = np.zeros_like(fabric)
    # A plain run counts from the first pixel that is not plain fabric down: the plain band above it at the
    # outline's top is the back's collar band (09176's shirt turned by 2 degrees: 11 rows of 384, a plain run's
    # length in half its columns, which ended the inside at the top), not the front.
    opened = np.argmax(~plain & mask, axis=0)  # (C,)
    for row in range(rows - 1, -1, -1):
        run = np.where(fabric[row], run + 1, 0)
        plain_run = np.where(plain[row], plain_run + 1, 0)
        starts[row] = (run >= front_run) | ((plain_run >= PLAIN_RUN * front_run) & (row >= opened))
    starts &= np.arange(rows)[:, None] >= first[None]
    reach = np.where(starts.any(0), np.argmax(starts, axis=0), rows - 1)  # (C,)
    # The path starts and ends at the corners, on the outline: a fabric run starting a row above a corner (the
    # photo turned by a degree) must not make the path impossible (06802's front neckline lost, as None).
    reach[0], reach[-1] = max(reach[0], start_row), max(reach[-1], end_row)
    score = np.where(np.arange(rows)[:, None] <= reach[None], inside, -np.inf)  # (R, C)

    best = np.full(rows, -np.inf)
    best[np.clip(start_row, 0, rows - 1)] = 0.0
    best += score[:, 0]
    steps = np.zeros((rows, columns), np.int8)  # the step each column's row came by
    for column in range(1, columns):
        candidates = np.full((2 * SLOPE + 1, rows), -np.inf)
        for index, step in enumerate(range(-SLOPE, SLOPE + 1)):  # from row r - step of the column before
            source = best[max(-step, 0): rows - max(step, 0)]
            candidates[index, max(step, 0): rows - max(-step, 0)] = source - STEP_COST * abs(step)
        chosen = np.argmax(candidates, axis=0)
        best = candidates[chosen, np.arange(rows)] + score[:, column]
        steps[:, column] = chosen - SLOPE
    path = np.zeros(columns, int)
    path[-1] = np.clip(end_row, 0, rows - 1)
    if not np.isfinite(best[path[-1]]):
        return None
    for column in range(columns - 1, 0, -1):
        path[column - 1] = path[column] - steps[path[column], column]
    return path


def _palette(colours: np.ndarray) -> np.ndarray:
    """The fabric's colours (K, 3): k-means (``PALETTE_SIZE``, k-means++ seeded, deterministic) of up to
    ``_PALETTE_SAMPLES`` of ``colours`` (N, 3), the clusters holding at least ``MIN_CLUSTER`` of them."""
    rng = np.random.default_rng(0)
    if len(colours) > _PALETTE_SAMPLES:
        colours = colours[rng.choice(len(colours), _PALETTE_SAMPLES, replace=False)]
    centres = colours[rng.integers(len(colours))][None]
    for _ in range(PALETTE_SIZE - 1):  # k-means++: each next centre far from those chosen
        far = _distance_to(colours, centres) ** 2
        if far.sum() <= 0:
            break
        centres = np.concatenate([centres, colours[rng.choice(len(colours), p=far / far.sum())][None]])
    for _ in range(_PALETTE_ITERATIONS):  # Lloyd's: each centre the mean of the colours nearest it
        nearest = np.argmin(((colours[:, None] - centres[None]) ** 2).sum(-1), axis=1)
        counts = np.bincount(nearest, minlength=len(centres))
        sums = np.stack([np.bincount(nearest, colours[:, channel], len(centres)) for channel in range(3)], 1)
        centres = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centres)
    return centres[counts >= MIN_CLUSTER * len(colours)]


def _distance_to(colours: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(...) Lab distance of each of ``colours`` (..., 3) to the nearest of ``palette`` (K, 3)."""
    return np.sqrt(np.min(((colours[..., None, :] - palette) ** 2).sum(-1), axis=-1))


def _distance_to_mixtures(colours: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(N,) Lab distance of each of ``colours`` (N, 3) to the nearest mixture of two of ``palette`` (K, 3): the
    nearest point of the segments between them (a palette colour is a mixture too)."""
    distance = _distance_to(colours, palette)
    for first in range(len(palette)):
        for second in range(first + 1, len(palette)):
            start, along = palette[first], palette[second] - palette[first]
            t = np.clip((colours - start) @ along / max(float(along @ along), 1e-12), 0, 1)  # (N,) along the segment
            distance = np.minimum(distance, np.linalg.norm(colours - start - t[:, None] * along, axis=1))
    return distance


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
