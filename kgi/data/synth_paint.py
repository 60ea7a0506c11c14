"""Painting a synthetic person for :mod:`kgi.data.synth`: the photo and its CIHP parse together, back to front
(:func:`render_person`).
"""

from __future__ import annotations

import cv2
import numpy as np

from kgi.data.garment import GarmentParams
from kgi.data.garment_geometry import SHOULDER_UP, garment_mesh, worn_keypoints
from kgi.data.labels import CIHP_LABELS
from kgi.data.synth_cloth import smooth_noise, warp_garment
from kgi.data.synth_person import HAND_LENGTH, Person, rotate

_LABEL = {name: index for index, name in enumerate(CIHP_LABELS)}


class _Canvas:
    """The person photo (uint8 RGB) and its CIHP parse, painted together, back to front."""

    def __init__(self, background: np.ndarray):
        self.image = np.round(np.clip(background, 0, 255)).astype(np.uint8)  # OpenCV antialiases 8-bit only
        self.parse = np.zeros(background.shape[:2], dtype=np.uint8)

    def fill(self, polygons: list[np.ndarray], colour, label: int | None) -> None:
        """Fill polygons (each (N, 2) float pixels): antialiased in the photo, hard-edged in the parse.

        ``label=None`` paints the photo only (face details, shading marks).
        """
        for polygon in polygons:  # one call each: a single call would leave overlaps unfilled (even-odd rule)
            fixed = np.round(np.asarray(polygon) * 16).astype(np.int32)
            cv2.fillPoly(self.image, [fixed], tuple(float(c) for c in colour), cv2.LINE_AA, 4)
            if label is not None:
                cv2.fillPoly(self.parse, [fixed], label, cv2.LINE_8, 4)

    def composite(self, window: tuple[slice, slice], rgb: np.ndarray, alpha: np.ndarray, label: int) -> None:
        """Lay an (h, w, 3) layer with (h, w) coverage over the photo's ``window`` (rows, columns); the parse
        takes ``label`` where the coverage is at least 0.5."""
        below = self.image[window].astype(np.float32)
        self.image[window] = np.round(np.clip(below + alpha[..., None] * (rgb - below), 0, 255))
        self.parse[window][alpha >= 0.5] = label


def _ellipse(centre: np.ndarray, axes: tuple[float, float], degrees: float = 0.0, points: int = 28,
             start: float = 0.0, stop: float = 360.0) -> np.ndarray:
    """(points, 2) outline of an ellipse (or an arc of it) rotated by ``degrees``."""
    angles = np.radians(np.linspace(start, stop, points, endpoint=stop - start < 360))
    local = np.stack([axes[0] * np.cos(angles), axes[1] * np.sin(angles)], axis=1)
    return centre + rotate(local, degrees)


def _capsule(start: np.ndarray, end: np.ndarray, start_radius: float, end_radius: float) -> np.ndarray:
    """Outline of a tapered limb segment with round ends: (N, 2)."""
    direction = end - start
    degrees = float(np.degrees(np.arctan2(direction[1], direction[0])))
    start_cap = _ellipse(start, (start_radius, start_radius), degrees, 12, 90, 270)
    end_cap = _ellipse(end, (end_radius, end_radius), degrees, 12, -90, 90)
    return np.concatenate([start_cap, end_cap])


def _head_frame(person: Person) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Face centre, the head's up and right unit vectors, and its tilt in degrees."""
    up = person.joints[0] - person.joints[1]
    up /= np.linalg.norm(up)
    right = np.array([-up[1], up[0]])
    return person.joints[0] + 0.07 * person.unit * up, up, right, float(np.degrees(np.arctan2(right[1], right[0])))


def _paint_hair_fall(canvas: _Canvas, person: Person) -> None:
    """Long hair and bobs: the part falling behind the neck and shoulders (painted before the torso)."""
    if person.hair_style not in ("long", "bob"):
        return
    face, up, right, tilt = _head_frame(person)
    unit = person.unit
    fall, half = (1.3, 0.42) if person.hair_style == "long" else (0.4, 0.36)
    polygon = np.concatenate([_ellipse(face, (0.36 * unit, 0.44 * unit), tilt, 14, 180, 360),
                              [face + half * unit * right - fall * unit * up,
                               face - half * unit * right - fall * unit * up]])
    canvas.fill([polygon], person.hair_colour, _LABEL["hair"])


def _paint_head(canvas: _Canvas, person: Person) -> None:
    """Hair behind the face, face with eyes, brows and mouth, fringe."""
    joints, unit = person.joints, person.unit
    face, up, right, tilt = _head_frame(person)
    canvas.fill([_ellipse(face + 0.06 * unit * up, (0.34 * unit, 0.44 * unit), tilt)], person.hair_colour,
                _LABEL["hair"])
    if person.hair_style == "bun":
        canvas.fill([_ellipse(face + 0.52 * unit * up, (0.16 * unit, 0.14 * unit), tilt)], person.hair_colour,
                    _LABEL["hair"])
    canvas.fill([_ellipse(face, (0.27 * unit, 0.38 * unit), tilt)], person.skin, _LABEL["face"])
    dark = tuple(0.25 * c for c in person.hair_colour)
    for eye in (joints[15], joints[16]):
        canvas.fill([_ellipse(eye, (0.045 * unit, 0.022 * unit), tilt, 12)], (40, 30, 30), None)
        canvas.fill([_ellipse(eye + 0.07 * unit * up, (0.06 * unit, 0.012 * unit), tilt, 10)], dark, None)
    mouth = joints[0] - 0.17 * unit * up
    canvas.fill([_ellipse(mouth, (0.07 * unit, 0.02 * unit), tilt, 12)], (170, 80, 80), None)
    canvas.fill([_ellipse(face + 0.25 * unit * up, (0.27 * unit, 0.16 * unit), tilt, 16, 180, 360)],
                person.hair_colour, _LABEL["hair"])


def _paint_torso_skin(canvas: _Canvas, person: Person) -> None:
    """The bare torso under the garment and the neck (CIHP torso-skin), from the chin to the hips."""
    joints, unit, body = person.joints, person.unit, person.body
    across = (joints[5] - joints[2]) / np.linalg.norm(joints[5] - joints[2])
    down = np.array([-across[1], across[0]])
    origin = (joints[2] + joints[5]) / 2
    hip_depth = float((joints[8] - origin) @ down) / unit
    # the shoulder corners stay inside a bare arm's round top (within one radius of the joint)
    out, up = 0.8 * body.arm_radius[0], 0.5 * body.arm_radius[0]
    outline = [(-0.2, -0.08), (-0.5 - out, -up), (-body.chest, body.armpit_depth),
               (-body.waist, 0.6 * hip_depth), (-body.hips, hip_depth + 0.1),
               (body.hips, hip_depth + 0.1), (body.waist, 0.6 * hip_depth), (body.chest, body.armpit_depth),
               (0.5 + out, -up), (0.2, -0.08)]
    polygon = origin + unit * np.array(outline) @ np.stack([across, down])
    _, up, right, _ = _head_frame(person)
    chin = joints[0] - 0.3 * unit * up
    neck = np.array([chin - 0.13 * unit * right, chin + 0.13 * unit * right,
                     joints[1] + 0.18 * unit * right - 0.15 * unit * up,
                     joints[1] - 0.18 * unit * right - 0.15 * unit * up])
    canvas.fill([polygon, neck], person.skin, _LABEL["torso-skin"])


def _paint_lower_body(canvas: _Canvas, person: Person) -> None:
    """Legs, pants or a skirt, shoes (visible when the ankles are in the frame)."""
    joints, unit, body = person.joints, person.unit, person.body
    across = (joints[12] - joints[9]) / np.linalg.norm(joints[12] - joints[9])
    down = np.array([-across[1], across[0]])
    legs = (((9, 10, 11), _LABEL["right-leg"], _LABEL["right-shoe"], 22),
            ((12, 13, 14), _LABEL["left-leg"], _LABEL["left-shoe"], 19))
    leg_radius = (body.hips - 0.33, 0.17, 0.1)
    pants = person.lower == "pants"
    for (hip, knee, ankle), leg_label, shoe_label, toe in legs:
        colour, label = (person.lower_colour, _LABEL["pants"]) if pants else (person.skin, leg_label)
        thigh = _capsule(joints[hip], joints[knee], unit * leg_radius[0], unit * leg_radius[1])
        shin = _capsule(joints[knee], joints[ankle], unit * leg_radius[1], unit * leg_radius[2])
        canvas.fill([thigh, shin], colour, label)
        foot = (joints[ankle] + joints[toe]) / 2
        canvas.fill([_ellipse(foot, (0.2 * unit, 0.12 * unit), 0.0, 20)], person.shoe_colour, shoe_label)
    waist = joints[8] - 0.3 * unit * down
    if pants:
        pelvis = [waist - body.waist * unit * across, waist + body.waist * unit * across,
                  joints[8] + body.hips * unit * across + 0.2 * unit * down, joints[8] + 0.45 * unit * down,
                  joints[8] - body.hips * unit * across + 0.2 * unit * down]
        canvas.fill([np.array(pelvis)], person.lower_colour, _LABEL["pants"])
    else:
        hem = joints[8] + person.skirt_length * unit * down
        flare = body.hips + 0.15 + 0.25 * person.skirt_length
        skirt = [waist - body.waist * unit * across, waist + body.waist * unit * across,
                 joints[8] + (body.hips + 0.04) * unit * across, hem + flare * unit * across,
                 hem - flare * unit * across, joints[8] - (body.hips + 0.04) * unit * across]
        canvas.fill([np.array(skirt)], person.lower_colour, _LABEL["skirt"])


def _paint_arm(canvas: _Canvas, person: Person, shoulder: int, part: str, sleeved: bool) -> None:
    """One arm's skin (CIHP right-arm for joint 2, the image-left arm): its ``"upper"`` arm, beside the torso,
    or its ``"lower"`` arm and hand, which may cross in front of it. Under a sleeve the upper arm starts
    ``SHOULDER_UP`` radii down the bone, so its round top stays under the garment's shoulder seam; bare, it
    starts at the joint (a round shoulder)."""
    joints, unit = person.joints, person.unit
    elbow, wrist = joints[shoulder + 1], joints[shoulder + 2]
    radius = unit * np.asarray(person.body.arm_radius)
    label = _LABEL["right-arm"] if shoulder == 2 else _LABEL["left-arm"]
    if part == "upper":
        upper_arm = elbow - joints[shoulder]
        drop = SHOULDER_UP * radius[0] if sleeved else 0.0
        top = joints[shoulder] + drop * upper_arm / max(np.linalg.norm(upper_arm), 1e-6)
        canvas.fill([_capsule(top, elbow, radius[0], radius[1])], person.skin, label)
        return
    forearm = wrist - elbow
    hand = wrist + HAND_LENGTH * unit * forearm / max(np.linalg.norm(forearm), 1e-6)
    canvas.fill([_capsule(elbow, wrist, radius[1], radius[2]),
                 _capsule(wrist, hand, 1.2 * radius[2], radius[2])], person.skin, label)


def render_person(person: Person, params: GarmentParams, texture: np.ndarray, alpha: np.ndarray,
                  cloth_keypoints: np.ndarray, rng: np.random.Generator, height: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint ``person`` wearing the garment whose product photo gave ``texture``, ``alpha``, ``cloth_keypoints``.

    Returns ``(image, parse, worn)``: the photo (H, W, 3) uint8, CIHP labels (H, W) uint8 and the worn
    garment's (32, 2) float32 keypoints in pixels.
    """
    width = height * 3 // 4
    worn = worn_keypoints(params, person.joints, person.body)
    flat_mesh, worn_mesh = garment_mesh(cloth_keypoints, params.sleeve), garment_mesh(worn, params.sleeve)

    shade = np.linspace(1.04, 0.94, height, dtype=np.float32)[:, None] + 0.03 * smooth_noise(rng, height, width)
    canvas = _Canvas(np.array(person.background, dtype=np.float32) * shade[..., None])
    _paint_hair_fall(canvas, person)
    _paint_lower_body(canvas, person)
    _paint_torso_skin(canvas, person)

    scale = 0.012 * height
    displacement = scale * np.stack([smooth_noise(rng, height, width, (7, 6)),
                                     smooth_noise(rng, height, width, (7, 6))])
    # folds: mostly horizontal bands (a coarse grid of many rows, few columns) over gentle blotches
    folds = 0.7 * smooth_noise(rng, height, width, (14, 3)) + 0.3 * smooth_noise(rng, height, width, (6, 5))
    fold_shading = np.clip(1 - 0.1 * folds, 0.75, 1.15)[..., None]

    def lay(layer: str) -> None:
        window, rgb, coverage = warp_garment(texture, alpha, flat_mesh, worn_mesh, layer, displacement,
                                             height, width)
        edge = cv2.distanceTransform((coverage > 0).astype(np.uint8), cv2.DIST_L2, 3) / (0.04 * height)
        rounding = (0.8 + 0.2 * np.clip(edge, 0, 1))[..., None]  # darker towards the outline: a rounded body
        canvas.composite(window, rgb * fold_shading[window] * rounding, coverage, _LABEL["upper-clothes"])

    back_arm = 5 if person.front_arm == 2 else 2
    sleeved = params.sleeve != "none"
    for shoulder in (back_arm, person.front_arm):
        _paint_arm(canvas, person, shoulder, "upper", sleeved)
    lay("torso")
    _paint_head(canvas, person)
    for shoulder in (back_arm, person.front_arm):
        _paint_arm(canvas, person, shoulder, "lower", sleeved)
        sleeve = "left_sleeve" if shoulder == 2 else "right_sleeve"
        if sleeve in worn_mesh.layers:
            lay(sleeve)
    grain = rng.standard_normal((height, width, 1)).astype(np.float32) * 1.5
    image = np.round(np.clip(canvas.image + grain, 0, 255)).astype(np.uint8)
    return image, canvas.parse, worn

