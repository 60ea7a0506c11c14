"""Garment geometry for the synthetic generator: the 32 keypoints flat and worn, and a shared mesh.

A garment (:class:`kgi.data.garment.GarmentParams`) is described once, in *shoulder units* (the distance between
its two shoulder points is 1) with the origin at the shoulders' midpoint, x to the image right and y down. The
same description gives

* :func:`flat_keypoints`: the product photo (garment centred on white, sleeves angled down), and
* :func:`worn_keypoints`: the garment on a person, the torso placed in the frame of the pose shoulders
  (and widened where the body is wider than the garment), each sleeve laid along its arm bones.

Both follow the 32-node numbering of :mod:`kgi.graphs`. :func:`garment_mesh` turns either set of keypoints
into a triangle mesh with the same topology (keypoints plus interior points), so a piecewise-affine map from
the flat mesh to the worn mesh carries the garment's texture onto the person (see :mod:`kgi.data.synth`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from kgi.data.garment import BodyShape, GarmentError, GarmentParams
from kgi.graphs import BODY_SIDES, LEFT_SLEEVE_NODES, NUM_GARMENT_NODES, RIGHT_SLEEVE_NODES, SLEEVE_TYPES

# The arm of the flat layout, in shoulder units from the armhole centre: upper arm and forearm lengths.
FLAT_UPPER_ARM = 1.0
FLAT_FOREARM = 1.0
# Fraction of the image a flat garment's bounding box may fill, in each direction.
FLAT_FILL = 0.84
# A flat sleeve's inner edge keeps this far (shoulder units) outside the body's side, moving out if needed.
FLAT_SLEEVE_CLEARANCE = 0.04
# Sleeve half-width kept around the arm, as a multiple of the arm's radius (a sleeve never cuts the arm).
SLEEVE_ARM_EASE = 1.35
# A sleeved garment's shoulder point sits on the outer top of the arm's rounded shoulder, not at the joint
# inside it: SHOULDER_OUT arm radii outside the joint and SHOULDER_UP arm radii above it.
SHOULDER_OUT = 1.0
SHOULDER_UP = 0.5
# Garment kept outside the body's outline on each side, in shoulder units.
BODY_EASE = 0.03
# In the crook of a bent elbow the sleeve's edge lies 1/cos(half the bend) half-widths out, at most this much.
MAX_MITER = 1.6


# --- torso ---------------------------------------------------------------------------------------------------

def _torso_nodes(params: GarmentParams) -> dict[int, np.ndarray]:
    """Nodes 0-5, 14-22 and 31 in shoulder units (origin at the shoulder midpoint, y down), as a flat garment."""
    shoulder_x = 0.5 - params.strap_inset
    neck_x = params.neck_width / 2
    neck_y = -(shoulder_x - neck_x) * np.tan(np.radians(params.shoulder_slope))
    if params.neckline == "round":  # points at 45 degrees on the ellipse through the corners and centre front
        mid = (neck_x * np.cos(np.pi / 4), neck_y + params.neck_depth * np.sin(np.pi / 4))
    else:  # a straight V
        mid = (neck_x / 2, neck_y + params.neck_depth / 2)
    half_body = params.body_width / 2
    half_hem = half_body * params.hem_flare
    nodes = {
        0: (-neck_x, neck_y), 1: (-mid[0], mid[1]), 2: (0.0, neck_y + params.neck_depth),
        3: (mid[0], mid[1]), 4: (neck_x, neck_y),
        5: (-shoulder_x, 0.0), 31: (shoulder_x, 0.0),
        14: (-half_body, params.armhole_depth), 22: (half_body, params.armhole_depth),
        17: (-half_hem, params.length), 18: (0.0, params.length + 0.03), 19: (half_hem, params.length),
    }
    for upper, lower, corner in ((15, 16, 17), (21, 20, 19)):
        armpit = np.array(nodes[14 if corner == 17 else 22])
        for node, fraction in ((upper, 1 / 3), (lower, 2 / 3)):
            nodes[node] = armpit + fraction * (np.array(nodes[corner]) - armpit)
    return {node: np.asarray(xy, dtype=np.float64) for node, xy in nodes.items()}


def _fit_torso_to_body(nodes: dict[int, np.ndarray], body: BodyShape, hip_depth: float) -> None:
    """Push the armpits and sides (in place) outside the body's outline so the garment covers the torso; an
    armpit, at or below the body's, covers the chest above it."""
    for side_nodes, sign in zip(BODY_SIDES, (-1.0, 1.0)):
        armpit = nodes[side_nodes[0]]
        armpit[1] = max(armpit[1], body.armpit_depth)
        for node in side_nodes:
            depth = body.armpit_depth if node == side_nodes[0] else nodes[node][1]
            cover = float(body.half_width(np.array(depth), hip_depth)) + BODY_EASE
            nodes[node][0] = sign * max(abs(nodes[node][0]), cover)
        corner = nodes[side_nodes[3]]
        for node, fraction in zip(side_nodes[1:3], (1 / 3, 2 / 3)):  # keep the sides straight between
            wanted = armpit + fraction * (corner - armpit)
            nodes[node] = np.array([sign * max(abs(wanted[0]), abs(nodes[node][0])), wanted[1]])


# --- sleeves -------------------------------------------------------------------------------------------------

def _sleeve_nodes(shoulder: np.ndarray, armpit: np.ndarray, arm: np.ndarray, radii: np.ndarray | None,
                  params: GarmentParams, unit: float, outward: float, drop: float = 1.0) -> np.ndarray:
    """The eight nodes of one sleeve in the order of nodes 6..13 (outer edge to the cuff, inner edge back).

    Args:
        shoulder, armpit: the armhole's ends (nodes 5 and 14, or 31 and 22).
        arm: (3, 2) shoulder joint, elbow, wrist the sleeve follows (only elbow and wrist are used: the
            sleeve's axis starts at the armhole centre).
        radii: (3,) arm radius at those joints, or ``None`` (flat garment: no arm inside).
        params: the garment (sleeve type, length, cuff width).
        unit: length of one shoulder unit in the coordinates of the points.
        outward: -1 for the image-left sleeve, +1 for the image-right one (which side the outer edge is on
            when the arm hangs down).
        drop: lengths along the arm over widths (``worn_keypoints``): a short sleeve is ``sleeve_length *
            FLAT_UPPER_ARM * drop`` units long, as long for the garment's shoulder width as in its product photo.
    """
    if params.sleeve == "none":  # evenly on the armhole line, as kgi.graphs specifies
        fractions = np.arange(1, 9)[:, None] / 9
        return shoulder + fractions * (armpit - shoulder)
    start = (shoulder + armpit) / 2
    path = np.stack([start, arm[1], arm[2]])  # armhole centre -> elbow -> wrist
    bone = np.diff(path, axis=0)
    bone_length = np.maximum(np.linalg.norm(bone, axis=1), 1e-6)
    if params.sleeve == "long":
        cuff = params.sleeve_length * bone_length.sum()
        upper = min(bone_length[0], 0.9 * cuff)
        stations = np.array([upper / 2, upper, (upper + cuff) / 2, cuff])
    else:
        cuff = params.sleeve_length * FLAT_UPPER_ARM * drop * unit
        stations = cuff * np.array([0.25, 0.5, 0.75, 1.0])
    knots = np.concatenate([[0.0], np.cumsum(bone_length)])
    centre = np.stack([np.interp(stations, knots, path[:, k]) for k in range(2)], axis=1)  # (4, 2)
    direction = bone / bone_length[:, None]  # (2, 2) unit vectors of the two bones
    on_forearm = stations > bone_length[0] + 1e-9
    axis = direction[on_forearm.astype(int)]  # (4, 2)
    at_elbow = np.isclose(stations, bone_length[0])
    bisector = direction[0] + direction[1]
    if at_elbow.any() and np.linalg.norm(bisector) > 1e-6:  # the elbow station takes the bisector of both bones
        axis[at_elbow] = bisector / np.linalg.norm(bisector)
    normal = outward * np.stack([axis[:, 1], -axis[:, 0]], axis=1)  # outer side: image-left sleeve turns left
    top_half = params.sleeve_width * unit / 2
    half = top_half + (stations / cuff) * (params.cuff_width * unit / 2 - top_half)
    if radii is not None:
        arm_radius = np.interp(stations, knots, radii)
        half = np.maximum(half, SLEEVE_ARM_EASE * arm_radius)
    # In the crook of a bent elbow the two edges meet at the miter point, 1/cos(half the bend) out; the
    # other side stays round (at the plain half-width).
    outer_scale, inner_scale = np.ones(4), np.ones(4)
    if at_elbow.any():
        miter = min(2 / max(np.linalg.norm(bisector), 1e-6), MAX_MITER)
        turn = direction[1] - direction[0]
        crook = outer_scale if turn @ normal[at_elbow][0] > 0 else inner_scale
        crook[at_elbow] = miter
    outer = centre + normal * (half * outer_scale)[:, None]
    inner = centre - normal * (half * inner_scale)[:, None]
    return np.concatenate([outer, inner[::-1]])  # 6, 7, 8, 9 then 10, 11, 12, 13


def _assemble(torso: dict[int, np.ndarray], left: np.ndarray, right: np.ndarray) -> np.ndarray:
    keypoints = np.zeros((NUM_GARMENT_NODES, 2))
    for node, xy in torso.items():
        keypoints[node] = xy
    keypoints[list(LEFT_SLEEVE_NODES)] = left
    keypoints[list(RIGHT_SLEEVE_NODES)] = right[::-1]  # 23..30 mirror 13..6
    return keypoints


# --- public API ----------------------------------------------------------------------------------------------

def flat_keypoints(params: GarmentParams, height: int, width: int) -> np.ndarray:
    """The garment's 32 keypoints in a ``height`` x ``width`` product photo: (32, 2) float32 pixels (x, y).

    The garment is laid flat, sleeves pointing ``params.flat_sleeve_angle`` degrees below horizontal (moved
    out if they would cross the body's sides), scaled to fill ``FLAT_FILL`` of the image in its tighter direction and
    centred.
    """
    if height <= 0 or width <= 0:
        raise GarmentError(f"image size: expected positive height and width, got {height}x{width}")
    torso = _torso_nodes(params)
    left = _flat_sleeve(params, torso[5], torso[14], params.flat_sleeve_angle, -1.0)
    right = _flat_sleeve(params, torso[31], torso[22], params.flat_sleeve_angle, 1.0)
    if params.sleeve != "none":  # a steep sleeve moves out until its inner edge clears the body's side
        side = np.stack([torso[node] for node in BODY_SIDES[0]])  # image-left side, armpit to hem corner
        inner = left[4:7]  # nodes 10, 11, 12 (13 sits by the armpit)
        overlap = inner[:, 0] - (np.interp(inner[:, 1], side[:, 1], side[:, 0]) - FLAT_SLEEVE_CLEARANCE)
        shift = max(0.0, float(overlap.max()))
        left[:, 0] -= shift
        right[:, 0] += shift
    units = _assemble(torso, left, right)  # (32, 2) shoulder units
    low, high = units.min(axis=0), units.max(axis=0)
    scale = FLAT_FILL * min(width / (high[0] - low[0]), height / (high[1] - low[1]))
    centre = np.array([width / 2, height / 2])
    return (centre + (units - (low + high) / 2) * scale).astype(np.float32)


def _flat_sleeve(params: GarmentParams, shoulder: np.ndarray, armpit: np.ndarray, degrees: float,
                 outward: float) -> np.ndarray:
    """One sleeve of the product photo (nodes in the order 6..13), pointing ``degrees`` below horizontal."""
    start = (shoulder + armpit) / 2
    along = np.array([outward * np.cos(np.radians(degrees)), np.sin(np.radians(degrees))])
    arm = np.stack([start, start + FLAT_UPPER_ARM * along, start + (FLAT_UPPER_ARM + FLAT_FOREARM) * along])
    return _sleeve_nodes(shoulder, armpit, arm, None, params, 1.0, outward)


def worn_keypoints(params: GarmentParams, body25_pose: np.ndarray, body_shape: BodyShape) -> np.ndarray:
    """The garment's 32 keypoints as worn by a person: (32, 2) float32 pixels (x, y) of the person image.

    The torso is placed in the frame of the shoulder joints (origin at their midpoint, x from the person's
    right shoulder, image left, to the left one; one unit = their distance) and widened where the body is wider.
    A sleeved garment's shoulder points sit on the tops of the arms (``SHOULDER_OUT``, ``SHOULDER_UP``), and its
    lengths (body and short sleeves) are scaled by its shoulder width over the joints': it hangs from its
    shoulders as long for their width as in its product photo, while its widths wrap round the body's depth
    (generator 1.4 and before kept the joints' unit for the lengths, so their sleeved bodies were 0.73-0.76 as
    long for their width as flat, and their short sleeves as short); a long sleeve ends where its arm does;
    the image-left sleeve (6-13) follows the person's right arm (BODY_25 2-3-4), the image-right sleeve (23-30)
    the left arm (5-6-7), bending at the elbow.

    Args:
        params: the garment.
        body25_pose: (25, 3) or (25, 2) BODY_25 joints in pixels; the true joints (no undetected ones).
        body_shape: the wearer's outline in shoulder units.
    """
    pose = np.asarray(body25_pose, dtype=np.float64)
    if pose.ndim != 2 or pose.shape[0] != 25 or pose.shape[1] not in (2, 3):
        raise GarmentError(f"body25_pose: expected shape (25, 2) or (25, 3), got {pose.shape}")
    right_shoulder, left_shoulder = pose[2, :2], pose[5, :2]
    unit = float(np.linalg.norm(left_shoulder - right_shoulder))
    if not unit > 0:
        raise GarmentError("body25_pose: the shoulders (joints 2 and 5) coincide")
    x_axis = (left_shoulder - right_shoulder) / unit
    y_axis = np.array([-x_axis[1], x_axis[0]])
    origin = (left_shoulder + right_shoulder) / 2
    hip_depth = float(((pose[[9, 12], :2].mean(axis=0) - origin) @ y_axis) / unit)

    if params.sleeve == "none":  # straps stay inside the shoulder joints, clear of the arm
        inset = max(params.strap_inset, body_shape.arm_radius[0] + BODY_EASE)
        params = replace(params, strap_inset=inset, neck_width=min(params.neck_width, 0.9 - 2 * inset))
    torso, drop = _torso_nodes(params), 1.0
    if params.sleeve != "none":  # the shoulder seams end on top of the arms, outside and above the joints
        out, up = SHOULDER_OUT * body_shape.arm_radius[0], SHOULDER_UP * body_shape.arm_radius[0]
        drop = 1 + 2 * out  # the garment's shoulder width over the joints': it hangs that much longer
        torso = {node: xy * (1.0, drop) for node, xy in torso.items()}
        torso[5] += (-out, -up)
        torso[31] += (out, -up)
    _fit_torso_to_body(torso, body_shape, hip_depth)
    frame = np.stack([x_axis, y_axis])  # rows: the torso frame's axes in pixels
    torso = {node: origin + unit * xy @ frame for node, xy in torso.items()}
    radii = unit * np.asarray(body_shape.arm_radius)
    left = _sleeve_nodes(torso[5], torso[14], pose[[2, 3, 4], :2], radii, params, unit, -1.0, drop)
    right = _sleeve_nodes(torso[31], torso[22], pose[[5, 6, 7], :2], radii, params, unit, 1.0, drop)
    return _assemble(torso, left, right).astype(np.float32)


@dataclass(frozen=True)
class GarmentMesh:
    """A triangle mesh over a garment's keypoints, the same topology for every garment of a sleeve type.

    Attributes:
        vertices: (V, 2) float64 points: keypoints on the outline and interior points between them.
        layers: triangles (T, 3) of vertex indices per part, in painting order: ``"torso"``, then
            ``"left_sleeve"`` (nodes 6-13) and ``"right_sleeve"`` (23-30); sleeveless garments have no sleeves.
    """

    vertices: np.ndarray
    layers: dict[str, np.ndarray]


# Boundaries of each mesh patch as garment-node chains: top, bottom, left, right (Coons patch sides).
_TORSO_PATCH = ((5, 0, 1, 2, 3, 4, 31), (17, 18, 19), (5, 14, 15, 16, 17), (31, 22, 21, 20, 19))
_LEFT_SLEEVE_PATCH = ((5, 14), (9, 10), (5, 6, 7, 8, 9), (14, 13, 12, 11, 10))
_RIGHT_SLEEVE_PATCH = ((22, 31), (26, 27), (22, 23, 24, 25, 26), (31, 30, 29, 28, 27))
_TORSO_GRID = (np.linspace(0, 1, 7), np.linspace(0, 1, 9))  # u across (hits all 7 top nodes), v down
_SLEEVE_GRID = (np.linspace(0, 1, 3), np.linspace(0, 1, 9))


def garment_mesh(keypoints: np.ndarray, sleeve: str) -> GarmentMesh:
    """Mesh a garment from its 32 keypoints: one transfinite (Coons) grid per part, two triangles per cell.

    Every keypoint is a grid vertex, so a piecewise-affine map between two meshes of the same garment takes
    each keypoint exactly onto its counterpart.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape != (NUM_GARMENT_NODES, 2):
        raise GarmentError(f"keypoints: expected shape ({NUM_GARMENT_NODES}, 2), got {keypoints.shape}")
    if sleeve not in SLEEVE_TYPES:
        raise GarmentError(f"sleeve: expected one of {SLEEVE_TYPES}, got {sleeve!r}")
    patches = {"torso": (_TORSO_PATCH, _TORSO_GRID)}
    if sleeve != "none":
        patches["left_sleeve"] = (_LEFT_SLEEVE_PATCH, _SLEEVE_GRID)
        patches["right_sleeve"] = (_RIGHT_SLEEVE_PATCH, _SLEEVE_GRID)
    vertices, layers, count = [], {}, 0
    for name, (sides, (u, v)) in patches.items():
        grid = _coons(*(keypoints[list(chain)] for chain in sides), u, v)  # (len(v), len(u), 2)
        vertices.append(grid.reshape(-1, 2))
        layers[name] = _grid_triangles(len(v), len(u)) + count
        count += grid.shape[0] * grid.shape[1]
    return GarmentMesh(np.concatenate(vertices), layers)


def _polyline(chain: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Points at parameters ``at`` in [0, 1] on a polyline whose nodes sit at even parameters: (len(at), 2)."""
    knots = np.linspace(0, 1, len(chain))
    return np.stack([np.interp(at, knots, chain[:, k]) for k in range(2)], axis=1)


def _coons(top: np.ndarray, bottom: np.ndarray, left: np.ndarray, right: np.ndarray, u: np.ndarray,
           v: np.ndarray) -> np.ndarray:
    """Bilinearly blended Coons patch of four polylines (top/bottom run along u, left/right along v).

    P(u, v) = (1-v) T(u) + v B(u) + (1-u) L(v) + u R(v) - bilinear blend of the four corners.
    Returns (len(v), len(u), 2).
    """
    top_u, bottom_u = _polyline(top, u)[None], _polyline(bottom, u)[None]  # (1, nu, 2)
    left_v, right_v = _polyline(left, v)[:, None], _polyline(right, v)[:, None]  # (nv, 1, 2)
    uu, vv = u[None, :, None], v[:, None, None]
    corners = ((1 - uu) * (1 - vv) * top[0] + uu * (1 - vv) * top[-1]
               + (1 - uu) * vv * bottom[0] + uu * vv * bottom[-1])
    return (1 - vv) * top_u + vv * bottom_u + (1 - uu) * left_v + uu * right_v - corners


def _grid_triangles(rows: int, columns: int) -> np.ndarray:
    """(2 (rows-1) (columns-1), 3) vertex indices of a row-major grid, two triangles per cell."""
    index = np.arange(rows * columns).reshape(rows, columns)
    a, b = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()
    c, d = index[1:, :-1].ravel(), index[1:, 1:].ravel()
    return np.concatenate([np.stack([a, b, d], axis=1), np.stack([a, d, c], axis=1)])
