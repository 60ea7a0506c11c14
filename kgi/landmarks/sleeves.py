"""The sleeves of a flat garment: where the armpit is, the sleeve's axis and edges, and its eight nodes.

See ``kgi.landmarks.flat`` (step 3) for the method.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kgi.landmarks.geometry import crossing, point_segment_distance, principal_direction, signed_side, unit_vector

# Stations of the sleeve nodes (6, 13), (7, 12), (8, 11) of a short sleeve: fractions of the sleeve axis from
# the armhole centre to the cuff centre, evenly. A long sleeve has its elbow (7, 12) one shoulder width down the
# axis (``kgi.landmarks.flat``), the others halfway to either end.
SHORT_STATIONS = (0.25, 0.5, 0.75)
# The armpit up a closed slit lies at most this fraction of the shorter of the body's side and the sleeve's inner
# edge above the slit's end.
OPEN_SLIT_REACH = 0.8
# A sleeve hanging beside the body has its armpit at most this many shoulder widths below its shoulder.
MAX_ARMHOLE_DEPTH = 0.5
# The cuff: the outline within this fraction of the sleeve's length of its end along the sleeve axis, where the
# cuff found from the edges' bisector lies short of ``CUFF_REACH`` of the sleeve's farthest point from the armhole
# centre (a wide sleeve sticking out level, whose edges' bisector misses the cuff).
CUFF_DEPTH = 0.06
CUFF_REACH = 0.7
# The cuff's inner corner is the outline's farthest point in a corner direction from the armpit to the tip;
# points within this fraction of the sleeve's reach (armpit to tip) of the farthest are a tie, and the one nearest
# the tip along the outline wins. A sleeve that widens to its cuff has its inner edge square to that direction,
# every point of it a tie: the Stussy tee 09164 mirrored read the armpit itself as the cuff's inner corner, then
# its shoulder at the neck. (The outer corner's ties are left to the first point: broken so too, the cap sleeve of
# 06802, its mask made from the photo, read its outer edge across the chest.)
CUFF_CORNER_TIE = 0.01
# A shoulder found nearer the centre line than this fraction of the armpit's distance is no shoulder corner but
# the neck end of a seamless curve (a sleeve cut in one with the body, a sloping polo shoulder).
SHOULDER_INSIDE_ARMPIT = 0.8
# A cuff narrower than this fraction of the armhole (shoulder to armpit) is no cuff but the far corner of a sleeve
# hanging beside the body, its hem running back from there toward the armpit (a polo laid with its sleeves down).
# The genuine garments' cuffs are 0.32-0.77 of their armholes, the far corners 0.07-0.15 (Stussy 09164, the cap
# cut in one with the body of 06802; the polo 09163 and the Minnie tee's image-right sleeve 04743 too, until their
# armpits were read at the slit's top, ``kgi.landmarks.flat``: their cuffs are 0.72 and 0.67).
NARROW_CUFF = 0.25
# That hem is the outline's straight run from the far corner: no point farther from its chord than this fraction
# of the armhole.
HEM_STRAIGHTNESS = 0.04
# It runs within 45 degrees of level (the tangent of the slope at most this; the hems found are 10-33 degrees).
# A steeper run to the armpit (56 degrees on 06802) is the underside of a cap cut in one with the body: read as
# its cuff, stage 1 folded the worn sleeve into the shoulder, so the cuff stays at the cap's end.
MAX_HEM_SLOPE = 1.0



@dataclass(frozen=True)
class FlatSleeve:
    """A flat sleeve: its straight axis and its two edges, from which the cross-section nodes are cut.

    Attributes:
        centre: (2,) armhole centre, the axis origin (midpoint of shoulder and armpit).
        axis: (2,) unit direction toward the cuff; ``normal`` (2,) unit, toward the outer edge.
        length: distance along the axis from the armhole centre to the cuff centre.
        outer_edge: (M, 2) contour points from the shoulder to the cuff outer corner.
        inner_edge: (K, 2) contour points from the cuff inner corner to the armpit.
    """

    centre: np.ndarray
    axis: np.ndarray
    normal: np.ndarray
    length: float
    outer_edge: np.ndarray
    inner_edge: np.ndarray

    @property
    def cuff_centre(self) -> np.ndarray:
        """(2,) midpoint of the cuff corners."""
        return (self.outer_edge[-1] + self.inner_edge[0]) / 2

    def nodes(self, stations: tuple[float, float, float]) -> np.ndarray:
        """(8, 2) sleeve nodes in the order of 6..13: each edge's crossing with the axis cross-sections at
        ``stations`` (fractions of ``length``), and the cuff corners. An edge that misses a station (a short
        inner edge that starts past it) mirrors the other edge's distance from the axis, the inner one no farther
        than the armhole's line (shoulder -> armpit): a sleeve hanging beside the body, or lying against it with a
        short inner edge, would otherwise have inner nodes in the body, and the warp read the body's cloth into
        the worn sleeve (the polo 09163's sleeves were navy flaps)."""
        outer_nodes, inner_nodes = [], []
        armpit_first = self.inner_edge[::-1]
        for fraction in stations:
            station = fraction * self.length
            on_axis = self.centre + station * self.axis
            outer = crossing(self.outer_edge, (self.outer_edge - self.centre) @ self.axis, station)
            inner = crossing(armpit_first, (armpit_first - self.centre) @ self.axis, station)
            outer_offset = None if outer is None else float((outer - on_axis) @ self.normal)
            inner_offset = None if inner is None else float((on_axis - inner) @ self.normal)
            if outer_offset is None:
                outer_offset = 0.0 if inner_offset is None else inner_offset
            if inner_offset is None:  # mirrored, but never across the armhole into the body
                inner_offset = min(outer_offset, self._to_armhole(on_axis))
            outer_nodes.append(on_axis + outer_offset * self.normal)
            inner_nodes.append(on_axis - inner_offset * self.normal)
        return np.stack([*outer_nodes, self.outer_edge[-1], self.inner_edge[0], *inner_nodes[::-1]])

    def _to_armhole(self, on_axis: np.ndarray) -> float:
        """How far from ``on_axis`` (2,) toward the inner side the armhole's line (shoulder -> armpit) lies;
        infinite where that way never meets it."""
        here, one_step_in = signed_side(np.stack([on_axis, on_axis - self.normal]),
                                        self.outer_edge[0], self.inner_edge[-1])
        closing = here - one_step_in  # how much nearer the line each unit step inward comes
        return float(here / closing) if here * closing > 0 else np.inf


def open_slit(body_side: np.ndarray, inner_edge: np.ndarray) -> tuple[np.ndarray, bool]:
    """The armpit (2,) where the body's side meets the sleeve's inner edge, and whether they run side by side.

    A sleeve hanging close to the body leaves a slit that the mask closes where it is thinner than a pixel,
    so the concavity (the last point of both runs) ends below the real armpit. Where the side and the inner
    edge meet at less than 30 degrees, the armpit is the intersection of the lines fitted on them if that lies
    up the slit; else the concavity itself.

    Args:
        body_side: (N, 2) the body's side from the hem corner up to the concavity.
        inner_edge: (M, 2) the sleeve's inner edge from the cuff up to the concavity.
    """
    corner = body_side[-1]
    if len(body_side) < 8 or len(inner_edge) < 8:
        return corner, False
    side_run = body_side[len(body_side) // 10:]  # off the hem corner's rounding
    inner_run = inner_edge[len(inner_edge) // 10:]  # off the cuff's
    side_direction, inner_direction = principal_direction(side_run), principal_direction(inner_run)  # upward
    system = np.stack([side_direction, -inner_direction], axis=1)  # side point + a d_side = inner point + b d_inner
    if side_direction @ inner_direction < np.cos(np.radians(30)) or abs(np.linalg.det(system)) < 1e-6:
        return corner, False
    a, _ = np.linalg.solve(system, inner_run.mean(axis=0) - side_run.mean(axis=0))
    meeting = side_run.mean(axis=0) + a * side_direction
    up_the_slit = (meeting - corner) @ (side_direction + inner_direction) / 2
    reach = OPEN_SLIT_REACH * min(np.linalg.norm(body_side[0] - corner), np.linalg.norm(inner_edge[0] - corner))
    return (meeting if 0 < up_the_slit < reach else corner), True


def flat_sleeve(path: np.ndarray, tip: int, body_side: np.ndarray, armpit_band: tuple[float, float, float],
                centre_x: float, up_the_slit: bool = True) -> tuple[np.ndarray, np.ndarray, FlatSleeve]:
    """Armpit, shoulder and sleeve of one side of a flat garment.

    Args:
        path: (M, 2) contour from the armpit's concavity (first) over the sleeve to the neck corner (last).
        tip: index in ``path`` of the sleeve point farthest out of the chord neck corner -> armpit.
        body_side: (N, 2) contour up the body's side from the hem corner to the concavity.
        armpit_band: the rows (top, bottom) an armpit may lie in and the row it takes when the concavity
            lies outside them (``kgi.landmarks.flat``); it then lies on the line of the sleeve's inner edge.
        centre_x: the garment's centre line. A sleeve hanging beside the body (its inner edge and the body's
            side within 30 degrees) has its armpit at most ``MAX_ARMHOLE_DEPTH`` shoulder widths below the
            shoulder: found deeper (the mask closes the slit up past the armhole), it is put up the line of its
            inner edge at the prior row, as where the slit closed to the hem, or at that depth if the prior
            lies deeper.
        up_the_slit: False: the armpit is the concavity, not where the lines of the side and the inner edge
            meet up the slit (``open_slit``), nor up the inner edge from it.

    Returns ``(armpit, shoulder, sleeve)``: two (2,) points and the :class:`FlatSleeve`.
    """
    concavity, neck = path[0], path[-1]

    def frame(direction: np.ndarray, outward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit axis along ``direction`` and its unit normal on the side of ``outward``."""
        axis = unit_vector(direction)
        normal = np.array([-axis[1], axis[0]])
        return axis, (normal if outward @ normal >= 0 else -normal)

    # The outer side is where the contour after the tip lies (outer edge, shoulder), the inner side before it.
    axis, normal = frame(path[tip] - (concavity + neck) / 2, path[tip:].mean(axis=0) - path[: tip + 1].mean(axis=0))
    tie = CUFF_CORNER_TIE * float(np.linalg.norm(path[tip] - concavity))
    for _ in range(2):  # cuff corners on the rough axis, then on the bisector of the edges fitted from them
        inward = path[: tip + 1] @ (axis - normal)
        cuff_inner = int(np.flatnonzero(inward >= inward.max() - tie)[-1])
        cuff_outer = tip + int(np.argmax(path[tip:] @ (axis + normal)))
        inner_run = path[: cuff_inner + 1]
        run_length = float(np.linalg.norm(np.diff(inner_run, axis=0), axis=1).sum())
        outer_arc = np.cumsum(np.linalg.norm(np.diff(path[cuff_outer:], axis=0), axis=1))
        outer_run = path[cuff_outer: cuff_outer + 2 + int(np.searchsorted(outer_arc, run_length))][::-1]
        axis, normal = frame(principal_direction(inner_run) + principal_direction(outer_run), normal)
    armpit, side_by_side = open_slit(body_side, path[: cuff_inner + 1][::-1])
    if not up_the_slit:
        armpit, side_by_side = concavity, False
    top, bottom, prior = armpit_band
    if not top <= armpit[1] <= bottom:
        armpit = concavity
    if not top <= armpit[1] <= bottom:  # the slit between sleeve and body is closed in the mask
        inner_direction = principal_direction(inner_run[::-1])  # cuff -> concavity
        if abs(inner_direction[1]) > 0.3:
            armpit = concavity + (prior - concavity[1]) / inner_direction[1] * inner_direction
        else:
            armpit = np.array([concavity[0], prior])
    # The shoulder: the corner farthest out of the chord from the outer edge abreast of the armpit to the neck.
    outer_part = path[cuff_outer:]
    behind_armpit = (outer_part - armpit) @ axis <= 0
    abreast = int(np.argmax(behind_armpit)) if behind_armpit.any() else 0
    corner = outer_part[abreast:]
    shoulder = cuff_outer + abreast + int(np.argmax(np.abs(signed_side(corner, corner[0], neck))))
    cornerless = abs(path[shoulder, 0] - centre_x) < SHOULDER_INSIDE_ARMPIT * abs(armpit[0] - centre_x)
    if cornerless:  # the shoulder is the outline's top straight above the armpit, where a set-in seam would be
        shoulder = cuff_outer + int(np.argmin(np.abs(path[cuff_outer:, 0] - armpit[0])))
    deepest = path[shoulder, 1] + MAX_ARMHOLE_DEPTH * 2 * abs(path[shoulder, 0] - centre_x)
    if side_by_side and armpit[1] > deepest:  # the slit closed up past the armhole: the armpit is up it,
        inner_direction = principal_direction(inner_run[::-1])  # cuff -> concavity
        if inner_direction[1] < -0.3:  # at the prior row, as where it closed to the hem, but not below the deepest
            armpit = armpit + (min(deepest, prior) - armpit[1]) / inner_direction[1] * inner_direction
    centre = (path[shoulder] + armpit) / 2
    cuff_centre = (path[cuff_outer] + path[cuff_inner]) / 2
    farthest = float(np.linalg.norm(path[: shoulder + 1] - centre, axis=1).max())
    if (cuff_centre - centre) @ axis < CUFF_REACH * farthest:  # the cuff found short of the sleeve's end
        straight_out = None
        if cornerless:  # across the armhole, away from the centre line
            across = np.array([armpit[1] - path[shoulder, 1], path[shoulder, 0] - armpit[0]])
            straight_out = unit_vector(across if across[0] * (armpit[0] - centre_x) >= 0 else -across)
        cuff_inner, cuff_outer, axis, normal = _cuff_from_armhole(path[: shoulder + 1], centre, normal, straight_out)
        cuff_centre = (path[cuff_outer] + path[cuff_inner]) / 2
    armhole = float(np.linalg.norm(path[shoulder] - armpit))
    if np.linalg.norm(path[cuff_outer] - path[cuff_inner]) < NARROW_CUFF * armhole:  # a hanging sleeve's corner?
        hem_end = cuff_inner - _straight_run(path[cuff_inner::-1], HEM_STRAIGHTNESS * armhole)
        hem = path[hem_end] - path[cuff_inner]
        if abs(hem[1]) < MAX_HEM_SLOPE * abs(hem[0]):
            cuff_outer, cuff_inner = cuff_inner, hem_end
            cuff_centre = (path[cuff_outer] + path[cuff_inner]) / 2
            axis, normal = frame(cuff_centre - centre, normal)
    sleeve = FlatSleeve(centre, axis, normal, length=float((cuff_centre - centre) @ axis),
                     outer_edge=path[cuff_outer: shoulder + 1][::-1],
                     inner_edge=np.concatenate([path[cuff_inner: 0: -1], armpit[None]]))
    return armpit, path[shoulder], sleeve


def _straight_run(points: np.ndarray, tolerance: float) -> int:
    """How many steps along ``points`` (N, 2) from the first stay within ``tolerance`` of their chord (0 for one
    point)."""
    steps = 0
    while steps + 1 < len(points) and point_segment_distance(
            points[1: steps + 1], points[0], points[steps + 1]).max(initial=0.0) <= tolerance:
        steps += 1
    return steps


def _cuff_from_armhole(path: np.ndarray, centre: np.ndarray, normal: np.ndarray, start: np.ndarray | None = None
                       ) -> tuple[int, int, np.ndarray, np.ndarray]:
    """The cuff corners of a sleeve, measured from its armhole: indices in ``path`` and the sleeve's axis.

    The sleeve axis points from the armhole centre to the cuff centre. The cuff is the end of the sleeve along
    it: the outline points within ``CUFF_DEPTH`` of the farthest one along the axis; the first of them (from the
    armpit) is the inner corner, the last the outer one. On ``start`` if given, else starting on the axis to the
    point farthest from the armhole (the segment shoulder-armpit), twice: the farthest from its centre can be the
    armpit end of a deep armhole, which a short sleeve reaches less far out than the armhole is deep.

    Args:
        path: (M, 2) contour from the armpit's concavity (first) over the sleeve to the shoulder (last).
        centre: (2,) armhole centre. normal: (2,) a vector toward the sleeve's outer side.
        start: (2,) unit axis, or None. A short sleeve cut in one with the body sticks straight out of its
            armhole: its farthest point from the armhole centre is the shoulder.

    Returns ``(cuff_inner, cuff_outer, axis, normal)``.
    """
    def cuff_corners(axis: np.ndarray) -> tuple[int, int]:
        along = (path - centre) @ axis
        farthest = along.max()  # negative where the whole path lies behind the armhole centre (a tiny sleeve)
        at_cuff = np.flatnonzero(along >= farthest - CUFF_DEPTH * abs(farthest))
        return int(at_cuff[0]), int(at_cuff[-1])

    if start is not None:  # the axis stays: a rounded cap's end, followed, turns it up the cap's corner
        axis = start
        cuff_inner, cuff_outer = cuff_corners(axis)
    else:
        shoulder, armpit = path[-1], 2 * centre - path[-1]  # the armhole's ends
        axis = unit_vector(path[int(np.argmax(point_segment_distance(path, shoulder, armpit)))] - centre)
        for _ in range(2):
            cuff_inner, cuff_outer = cuff_corners(axis)
            axis = unit_vector((path[cuff_inner] + path[cuff_outer]) / 2 - centre)
    across = np.array([-axis[1], axis[0]])
    return cuff_inner, cuff_outer, axis, (across if across @ normal >= 0 else -across)
