"""Garment product photos for :mod:`kgi.data.synth`: fabric, prints, ties, back and collar
(:func:`render_cloth`), and the piecewise-affine warp that carries the flat garment onto a person
(:func:`warp_garment`).
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from kgi.data.garment import SHOWS_BACK, GarmentParams
from kgi.data.garment_geometry import GarmentMesh, flat_keypoints
from kgi.graphs import GARMENT_CONTOUR
from kgi.landmarks.geometry import smooth_curve


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: tuple[int, int] = (6, 5)) -> np.ndarray:
    """A smooth random field (H, W) float32 of about unit amplitude; its random draws do not depend on size."""
    coarse = rng.standard_normal(cells).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def _fabric(params: GarmentParams, height: int, width: int) -> np.ndarray:
    """The fabric's pattern over the whole image: (H, W, 3) float32 RGB 0..255, edges antialiased."""
    base, second = (np.array(c, dtype=np.float32) for c in params.colours[:2])
    if params.pattern == "solid":
        return np.broadcast_to(base, (height, width, 3)).copy()
    period = params.pattern_period * width
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = np.radians(params.pattern_angle)
    normal = x * np.sin(angle) + y * np.cos(angle)  # distance across the stripes (0 degrees: horizontal)
    tangent = x * np.cos(angle) - y * np.sin(angle)  # distance along them

    def stripes(coordinate: np.ndarray) -> np.ndarray:  # square wave, one-pixel ramps
        return np.clip(0.5 + np.sin(2 * np.pi * coordinate / period) * period / (2 * np.pi), 0, 1)

    if params.pattern == "stripes":
        weight = stripes(normal)
    elif params.pattern == "checks":
        weight = 0.5 * (stripes(normal) + stripes(tangent))
    else:  # dots on a square lattice
        du = np.mod(normal, period) - period / 2
        dv = np.mod(tangent, period) - period / 2
        weight = np.clip(0.28 * period - np.hypot(du, dv) + 0.5, 0, 1)
    return base + weight[..., None] * (second - base)


def _print_mask(params: GarmentParams, keypoints: np.ndarray, height: int, width: int) -> np.ndarray:
    """Coverage (H, W) float32 0..1 of the chest print: a word or a logo centred below the neckline."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    chest_width = float(np.linalg.norm(keypoints[22] - keypoints[14]))
    centre = keypoints[2] + 0.33 * (keypoints[18] - keypoints[2])
    if params.print_kind == "text":
        font = cv2.FONT_HERSHEY_DUPLEX
        (text_width, _), _ = cv2.getTextSize(params.print_text, font, 1.0, 2)
        scale = 0.55 * chest_width / text_width
        thickness = max(1, int(round(2 * scale)))
        (text_width, text_height), _ = cv2.getTextSize(params.print_text, font, scale, thickness)
        origin = (int(round(centre[0] - text_width / 2)), int(round(centre[1] + text_height / 2)))
        cv2.putText(canvas, params.print_text, origin, font, scale, 255, thickness, cv2.LINE_AA)
    else:
        radius = 0.16 * chest_width
        turns = {"circle": 40, "triangle": 3, "diamond": 4, "star": 10}[params.print_text]
        angles = np.linspace(0, 2 * np.pi, turns, endpoint=False) - np.pi / 2
        radii = np.where(np.arange(turns) % 2, 0.45, 1.0) if params.print_text == "star" else np.ones(turns)
        points = centre + radius * radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        cv2.fillPoly(canvas, [np.round(points * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
    return canvas.astype(np.float32) / 255


def _outline(keypoints: np.ndarray, neckline: str, samples: int = 8) -> np.ndarray:
    """The garment's silhouette: its contour polygon, a round neckline drawn as a Catmull-Rom curve through
    nodes 0-4 (``samples`` points per span). The curve bows into the fabric, never past the keypoint polygon,
    so the mesh over the keypoints still covers the whole garment."""
    contour = keypoints[list(GARMENT_CONTOUR)]
    if neckline != "round":
        return contour
    neck = smooth_curve(keypoints[:5], samples)  # 0..4, image left to right
    return np.concatenate([neck[:-1], contour[4:]])  # contour[4] is node 4, then 31, 30, ... 5


def _neckline(keypoints: np.ndarray, neckline: str) -> np.ndarray:
    """The front neckline from node 0 to node 4 as ``_outline`` draws it: (N, 2) pixels."""
    if neckline != "round":
        return keypoints[:5].astype(np.float64)
    curve = _outline(keypoints, neckline)
    return np.concatenate([curve[:-len(GARMENT_CONTOUR) + 4], keypoints[4:5]]).astype(np.float64)


def _draw_ties(canvas: np.ndarray, keypoints: np.ndarray, rng: np.random.Generator) -> None:
    """Ties hanging past the hem by one hem corner or both, onto ``canvas`` (255 = garment)."""
    chest = float(np.linalg.norm(keypoints[22] - keypoints[14]))
    width, length = rng.uniform(0.035, 0.05) * chest, rng.uniform(0.25, 0.45) * chest
    corners = ((-1, keypoints[17]), (+1, keypoints[19]))
    for side, corner in (corners[:1], corners[1:], corners)[rng.integers(3)]:
        top = corner + np.array([-side * 2.5 * width, -0.4 * length])
        bottom = top + np.array([side * rng.uniform(-0.3, 0.3) * width, length])
        strip = np.array([top - [width / 2, 0], top + [width / 2, 0], bottom + [width / 2, 0], bottom - [width / 2, 0]])
        cv2.fillPoly(canvas, [np.round(strip * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)


# The back neckline of a product photo that shows it dips this far (shoulder units) below the neck corners; a
# collar stands COLLAR_BAND above it at the back.
BACK_DIP = 0.05
COLLAR_BAND = 0.08
LABEL_SIZE = (0.09, 0.045)  # a brand label's width and height, shoulder units


def _draw_back_and_collar(texture: np.ndarray, canvas: np.ndarray, keypoints: np.ndarray, params: GarmentParams,
                          rng: np.random.Generator) -> None:
    """Add to a product photo (in place) the inside of the back seen above the front neckline, a brand label
    sewn there, and a collar.

    The silhouette (``canvas``, 255 = garment) grows up to the back neckline (``BACK_DIP``), or a collar's top
    edge ``COLLAR_BAND`` above it; the inside of the back is shaded darker (a random amount: a pale garment may
    barely show it), the front neckline's edge casts a thin shadow. A collar folds two flaps over the shoulders
    whose inner edges are the V's, meeting at its bottom (node 2); a wrap's front crossing over the other draws
    its edge on from node 2 to the other side. The label (``params.label``) is a rectangle ``LABEL_SIZE`` wide
    and high hanging from the back neckline's centre, with lines of print. Nodes 0-4 stay on the front neckline.
    """
    height, width = canvas.shape
    unit = float(np.linalg.norm(keypoints[31] - keypoints[5])) / (1 - 2 * params.strap_inset)  # pixels
    corner_left, centre, corner_right = keypoints[0].astype(np.float64), keypoints[2], keypoints[4]
    t = np.linspace(0, 1, 24)[:, None]
    back = corner_left + t * (corner_right - corner_left) + 4 * t * (1 - t) * [0, BACK_DIP * unit]  # (24, 2)
    band = COLLAR_BAND * unit if params.kind == "collar" else 0.0
    top = back - [0, band]
    front = _neckline(keypoints, params.neckline)[::-1]  # node 4 to node 0
    opening = np.concatenate([top, front])  # the back (or collar) top edge, then the front neckline back

    def polygon_mask(points: np.ndarray) -> np.ndarray:
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 255, cv2.LINE_AA, 4)
        return mask.astype(np.float32) / 255

    shade = np.clip(polygon_mask(np.concatenate([back, front])), 0, 1)  # the visible inside of the back
    light = np.ones((height, width), np.float32)
    edges = [keypoints[[0, 1, 2, 3, 4]]]
    silhouette = polygon_mask(opening)
    if params.kind == "collar":
        flaps = np.zeros((height, width), np.float32)
        for side, corner in ((-1, corner_left), (+1, corner_right)):
            flap = np.stack([corner + [side * 0.03 * unit, -band], corner + [side * 0.13 * unit, 0.06 * unit],
                             centre + [side * 0.1 * unit, 0.06 * unit], centre, corner + [-side * 0.01 * unit, 0]])
            flaps = np.maximum(flaps, polygon_mask(flap))
            edges.append(flap[:4])
        shade *= 1 - flaps
        silhouette = np.maximum(silhouette, flaps)
        edges.append(back)  # where the collar's back band meets the inside
    elif params.kind == "wrap":  # the front on top runs on from the bottom of the V to the other side
        edges.append(np.stack([centre, centre + 0.55 * (keypoints[16] - centre)]))
    back_light = rng.uniform(0.5, 0.9) if params.kind in SHOWS_BACK else params.back_light
    light -= (1 - back_light) * shade
    if params.label is not None:
        label_width, label_height = LABEL_SIZE[0] * unit, LABEL_SIZE[1] * unit
        hang = back[len(back) // 2] + [0, 0.01 * unit]
        corners = hang + np.array([[-0.5, 0], [0.5, 0], [0.5, 1], [-0.5, 1]]) * [label_width, label_height]
        cover = polygon_mask(corners) * shade  # behind the front where the neckline is shallower
        text = np.zeros((height, width), np.uint8)
        for row in (0.35, 0.6):  # two lines of print, the colour of the darker of fabric and label
            start = hang + [-0.3 * label_width, row * label_height]
            cv2.line(text, tuple(np.round(start * 16).astype(int)),
                     tuple(np.round((start + [0.6 * label_width, 0]) * 16).astype(int)), 255,
                     max(1, int(round(0.012 * unit))), cv2.LINE_AA, 4)
        ink = min(params.label, params.colours[0], key=sum)
        print_colour = np.where(text[..., None] > 0, np.array(ink, np.float32), np.array(params.label, np.float32))
        texture += cover[..., None] * (print_colour - texture)
        light = np.where(cover > 0, 1 - (1 - light) * (1 - cover), light)  # the label is not in shade
    lines = np.zeros((height, width), np.uint8)
    thickness = max(1, int(round(height / 256)))
    cv2.polylines(lines, [np.round(edge * 16).astype(np.int32) for edge in edges], False, 255, thickness,
                  cv2.LINE_AA, 4)
    light *= 1 - 0.3 * lines.astype(np.float32) / 255
    texture *= light[..., None]
    np.maximum(canvas, np.round(silhouette * 255).astype(np.uint8), out=canvas)


class ClothPhoto(NamedTuple):
    """A garment's product photo (``render_cloth``).

    Attributes:
        texture: (H, W, 3) float32 0..255 the shaded fabric over the whole image (what the worn garment samples).
        alpha: (H, W) float32 0..1 the photo's antialiased silhouette (ties and the inside of the back included).
        photo: (H, W, 3) uint8 the photo on a near-white background.
        keypoints: (32, 2) float32 the flat keypoints in pixels.
        worn_alpha: (H, W) float32 0..1 the silhouette of what is worn: the garment's outline up to its front
            neckline, without ties or the inside of the back.
    """

    texture: np.ndarray
    alpha: np.ndarray
    photo: np.ndarray
    keypoints: np.ndarray
    worn_alpha: np.ndarray


def render_cloth(params: GarmentParams, rng: np.random.Generator, height: int) -> ClothPhoto:
    """The product photo of a garment.

    Args:
        params: the garment.
        rng: draws the photo's shading.
        height: image height; the width is ``3 * height / 4``.
    """
    width = height * 3 // 4
    keypoints = flat_keypoints(params, height, width)
    texture = _fabric(params, height, width)
    if params.print_kind != "none":
        coverage = _print_mask(params, keypoints, height, width)[..., None]
        texture += coverage * (np.array(params.colours[2], dtype=np.float32) - texture)
    texture *= (1 + 0.04 * smooth_noise(rng, height, width))[..., None]
    canvas = np.zeros((height, width), dtype=np.uint8)
    outline = np.round(_outline(keypoints, params.neckline) * 16).astype(np.int32)
    cv2.fillPoly(canvas, [outline], 255, cv2.LINE_AA, 4)
    worn_alpha = canvas.astype(np.float32) / 255
    if params.kind == "ties":
        _draw_ties(canvas, keypoints, rng)
    if params.shows_back:
        _draw_back_and_collar(texture, canvas, keypoints, params, rng)
    alpha = canvas.astype(np.float32) / 255
    white = rng.uniform(238, 252)
    background = white * (1 - 0.03 * np.linspace(0, 1, height, dtype=np.float32))[:, None, None]
    photo = background + alpha[..., None] * (np.clip(texture, 0, 255) - background)
    return ClothPhoto(texture, alpha, np.round(np.clip(photo, 0, 255)).astype(np.uint8), keypoints, worn_alpha)


def _triangle_ids(corners: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rasterise triangles (T, 3, 2) in order, later ones on top: (H, W) int32 triangle index + 1 per pixel
    (0: none), and the (T,) mask of triangles with an area (degenerate ones are skipped)."""
    edges = corners[:, 1:] - corners[:, :1]  # (T, 2, 2)
    area = 0.5 * np.abs(edges[:, 0, 0] * edges[:, 1, 1] - edges[:, 0, 1] * edges[:, 1, 0])
    valid = area > 1e-3
    ids = np.zeros((height, width), dtype=np.int32)
    fixed = np.round(corners * 16).astype(np.int32)
    for index in np.flatnonzero(valid):
        cv2.fillConvexPoly(ids, fixed[index], int(index) + 1, cv2.LINE_8, 4)
    return ids, valid


def warp_garment(texture: np.ndarray, alpha: np.ndarray, flat_mesh: GarmentMesh, worn_mesh: GarmentMesh,
                 layer: str, displacement: np.ndarray, height: int, width: int
                 ) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
    """Carry one mesh layer of the flat garment onto the person: a piecewise-affine backward map.

    Each worn triangle ``w`` maps back to its flat triangle ``f`` by the affine ``A`` with
    ``[x_f, y_f] = [x_w, y_w, 1] A`` (solved for all triangles at once). The map is then displaced by
    ``displacement``, shortened to 70% of the sampled point's distance to the flat silhouette's edge (folds
    fade out at the outline and never tear it), and sampled bilinearly. Work is confined to the layer's
    bounding box.

    Args:
        texture: (H, W, 3) float32 fabric of the flat photo; alpha: (H, W) float32 its silhouette.
        flat_mesh, worn_mesh: the garment's mesh on the flat photo and on the person (same topology).
        layer: ``"torso"``, ``"left_sleeve"`` or ``"right_sleeve"``.
        displacement: (2, H, W) float32 fold displacement (x, y) in pixels of the flat photo, per person pixel.
        height, width: the person image's size.

    Returns ``(window, rgb, coverage)``: the (rows, columns) slices of the person image the layer touches,
    the (h, w, 3) float32 fabric and the (h, w) float32 coverage inside that window.
    """
    triangles = worn_mesh.layers[layer]
    worn = worn_mesh.vertices[triangles]  # (T, 3, 2)
    low = np.clip(np.floor(worn.reshape(-1, 2).min(axis=0)).astype(int) - 1, 0, [width, height])
    high = np.clip(np.ceil(worn.reshape(-1, 2).max(axis=0)).astype(int) + 2, 0, [width, height])
    window = (slice(low[1], high[1]), slice(low[0], high[0]))
    size = high - low  # (w, h) of the window
    if (size <= 0).any():
        return window, np.zeros((*size[::-1].clip(0), 3), np.float32), np.zeros(size[::-1].clip(0), np.float32)
    ids, valid = _triangle_ids(worn - low, size[1], size[0])
    corners = np.concatenate([worn - low, np.ones((len(triangles), 3, 1))], axis=2)  # window coordinates
    affine = np.zeros((len(triangles), 3, 2))
    affine[valid] = np.linalg.solve(corners[valid], flat_mesh.vertices[triangles][valid])  # (T, 3, 2)
    rows, columns = np.nonzero(ids)
    per_pixel = affine[ids[rows, columns] - 1]  # (N, 3, 2)
    source = columns[:, None] * per_pixel[:, 0] + rows[:, None] * per_pixel[:, 1] + per_pixel[:, 2]  # (N, 2)
    room = cv2.distanceTransform((alpha >= 0.5).astype(np.uint8), cv2.DIST_L2, 3)
    nearest = np.clip(np.round(source), 0, [alpha.shape[1] - 1, alpha.shape[0] - 1]).astype(np.int64)
    shift = displacement[:, rows + low[1], columns + low[0]].T  # (N, 2)
    length = np.maximum(np.linalg.norm(shift, axis=1), 1e-6)
    source = source + shift * np.minimum(1, 0.7 * room[nearest[:, 1], nearest[:, 0]] / length)[:, None]
    map_x = np.full(ids.shape, -1.0, dtype=np.float32)
    map_y = np.full(ids.shape, -1.0, dtype=np.float32)
    map_x[rows, columns], map_y[rows, columns] = source[:, 0], source[:, 1]
    rgb = cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    coverage = cv2.remap(alpha, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return window, rgb, coverage * (ids > 0)

