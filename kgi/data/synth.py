"""Synthetic VITON-HD: people wearing garments, with ground-truth garment keypoints, in the dataset's layout.

No VITON-HD copy and no pretrained weights exist where this project is trained, so every model is trained and
measured on pairs drawn here. One pair (:func:`make_pair`) is made in four steps:

1. **Garment.** :func:`kgi.data.garment.sample_garment` draws its shape and look; :func:`render_cloth` paints
   the product photo: a solid, striped, checked or dotted fabric, sometimes a chest print (text or a logo),
   on a near-white background, with its silhouette mask and 32 keypoints.
2. **Person.** :func:`sample_person` draws an OpenPose BODY_25 pose (arms down, out, hands on hips, hand up,
   one forearm or both crossed in front of the torso), a body outline, skin, hair, face, a lower garment
   (pants or a skirt) and shoes, framed like VITON-HD (head at the top, hips around three quarters down).
3. **Wearing.** :func:`kgi.data.garment.worn_keypoints` places the garment on the pose; the flat photo's
   texture is carried onto the person by a *piecewise-affine* map between two triangle meshes of the garment
   (keypoints plus interior points; not thin-plate splines, which the method under test uses), then a smooth
   random fold displacement and low-frequency fold shading are applied, so the worn garment is no paste.
4. **Painting** (:func:`render_person`), back to front, into the photo and the CIHP parse map together:
   background, long hair, legs and lower garment, neck and torso skin, upper arms, the garment's torso, head,
   then each forearm and its sleeve, the arm in front last, so crossed forearms cover the torso garment.

Pair ``i`` of seed ``s`` uses only ``np.random.default_rng([s, i])`` and nothing depends on the resolution,
so any pair can be regenerated alone, at any height divisible by 4. :func:`generate` writes a whole dataset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePosixPath

import cv2
import numpy as np

from kgi.data.garment import SHOULDER_UP, SHOWS_BACK, BodyShape, GarmentMesh, GarmentParams, flat_keypoints, \
    garment_mesh, sample_garment, with_kind, worn_keypoints
from kgi.data.images import encode_jpeg, encode_palette_png
from kgi.data.labels import CIHP_LABELS, CIHP_PALETTE
from kgi.data.pose import openpose_json
from kgi.data.sample import TryOnSample
from kgi.data.storage import open_root
from kgi.graphs import GARMENT_CONTOUR

GENERATOR_VERSION = "1.3"  # bump whenever the same (seed, index) would draw a different pair
JPEG_QUALITY = 95
CROSSED_ARMS = "crossed_arms"
ARM_FRONT = "arm_front"
HANDS_ON_HIPS = "hands_on_hips"
HAND_UP = "hand_up"
GARMENT_TAG = "garment:"  # tag prefix naming the garment's kind (kgi.data.garment.GARMENT_KINDS)

_LABEL = {name: index for index, name in enumerate(CIHP_LABELS)}

SKIN_TONES = ((255, 224, 196), (241, 194, 165), (224, 172, 132), (198, 140, 102), (160, 105, 70),
              (120, 78, 52), (90, 58, 40), (234, 192, 150))
HAIR_COLOURS = ((25, 20, 18), (60, 40, 28), (100, 66, 38), (150, 110, 60), (210, 180, 120), (130, 50, 30),
                (160, 160, 160))
LOWER_COLOURS = ((40, 60, 100), (70, 95, 140), (25, 25, 30), (200, 190, 170), (240, 240, 235), (90, 80, 60),
                 (120, 30, 40), (60, 90, 60))
HAIR_STYLES = ("short", "long", "bun", "bob")
ARM_POSES = ("down", "out", "hip", "front", "up")
ARM_ATTEMPTS = 4
HAND_LENGTH = 0.3  # wrist to fingertips, in shoulder widths


class SynthError(ValueError):
    """Arguments the generator cannot use (counts, height, output folder), named in the message."""


# --- people --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Person:
    """A sampled person, in pixels of one resolution.

    Attributes:
        joints: (25, 2) true BODY_25 joint positions (also the ones OpenPose would miss or that leave the frame).
        body: torso and arm outline in shoulder units.
        unit: shoulder width in pixels (joint 2 to joint 5).
        skin, hair_colour, lower_colour, shoe_colour, background: RGB colours.
        hair_style: one of ``HAIR_STYLES``.
        lower: ``"pants"`` or ``"skirt"``.
        skirt_length: skirt hem below the hips, in shoulder units.
        front_arm: BODY_25 shoulder joint (2 or 5) of the arm painted last.
        tags: pose tags (``"crossed_arms"``, ``"arm_front"``, ``"hands_on_hips"``, ``"hand_up"``).
    """

    joints: np.ndarray
    body: BodyShape
    unit: float
    skin: tuple[int, int, int]
    hair_colour: tuple[int, int, int]
    hair_style: str
    lower: str
    lower_colour: tuple[int, int, int]
    skirt_length: float
    shoe_colour: tuple[int, int, int]
    background: tuple[int, int, int]
    front_arm: int
    tags: tuple[str, ...]


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int], amount: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.uniform(-amount, amount), 0, 255)) for c in colour)


def _rotate(vector: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate (x, y) vectors by ``degrees`` (positive turns +x towards +y, clockwise on screen)."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return vector @ np.array([[c, s], [-s, c]])


def _two_bone(shoulder: np.ndarray, target: np.ndarray, upper: float, fore: float, outward: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """Elbow and wrist reaching ``target`` (or as far towards it as the arm goes), elbow bent to ``outward``."""
    to_target = target - shoulder
    reach = float(np.clip(np.linalg.norm(to_target), abs(upper - fore) + 1e-3, upper + fore - 1e-3))
    direction = to_target / max(np.linalg.norm(to_target), 1e-9)
    bend = np.degrees(np.arccos(np.clip((upper ** 2 + reach ** 2 - fore ** 2) / (2 * upper * reach), -1, 1)))
    candidates = [shoulder + upper * _rotate(direction, sign * bend) for sign in (1.0, -1.0)]
    elbow = max(candidates, key=lambda e: outward * (e[0] - shoulder[0]))
    return elbow, shoulder + reach * direction


def sample_person(rng: np.random.Generator, height: int) -> Person:
    """Draw a person framed like a VITON-HD photo of ``height`` x ``3 * height / 4`` pixels."""
    width = height * 3 // 4
    zoom = rng.uniform(0.86, 1.02) if rng.random() < 0.75 else rng.uniform(0.6, 0.86)
    unit = zoom * rng.uniform(0.23, 0.26) * height  # shoulder width in pixels
    lean, tilt = rng.uniform(-5, 5), rng.uniform(-4, 4)
    down = _rotate(np.array([0.0, 1.0]), lean)  # the torso's axis
    across = _rotate(np.array([1.0, 0.0]), lean + tilt)  # the shoulder line
    top = rng.uniform(0.01, 0.05) * height
    joints = np.zeros((25, 2))
    neck = np.array([width / 2 + rng.uniform(-0.04, 0.04) * width, top + 1.26 * unit])
    joints[1] = neck
    joints[2] = neck - 0.5 * unit * across + 0.06 * unit * down  # right shoulder, image left
    joints[5] = neck + 0.5 * unit * across + 0.06 * unit * down
    hip_across = _rotate(np.array([1.0, 0.0]), lean + rng.uniform(-3, 3))
    joints[8] = neck + rng.uniform(1.62, 1.78) * unit * down
    hip_half = rng.uniform(0.32, 0.4) * unit
    joints[9], joints[12] = joints[8] - hip_half * hip_across, joints[8] + hip_half * hip_across

    turn = rng.uniform(-0.08, 0.08)
    head_up = _rotate(np.array([0.0, -1.0]), lean + rng.uniform(-6, 6))
    head_right = np.array([-head_up[1], head_up[0]])
    joints[0] = neck + 0.66 * unit * head_up + turn * unit * head_right
    for joint, side, up in ((15, -0.16, 0.13), (16, 0.16, 0.13), (17, -0.3, 0.05), (18, 0.3, 0.05)):
        joints[joint] = joints[0] + (side + 0.4 * turn) * unit * head_right + up * unit * head_up

    for hip, knee, ankle, side in ((9, 10, 11, -1.0), (12, 13, 14, 1.0)):
        spread = rng.uniform(-2, 6)
        joints[knee] = joints[hip] + rng.uniform(1.6, 1.75) * unit * _rotate(down, -side * spread)
        joints[ankle] = joints[knee] + rng.uniform(1.5, 1.65) * unit * _rotate(down, -side * spread * 0.5)
    for toe, small, heel, ankle, side in ((19, 20, 21, 14, 1.0), (22, 23, 24, 11, -1.0)):
        joints[toe] = joints[ankle] + unit * np.array([side * 0.12, 0.32])
        joints[small] = joints[ankle] + unit * np.array([side * 0.28, 0.27])
        joints[heel] = joints[ankle] + unit * np.array([-side * 0.02, 0.12])

    body = BodyShape(chest=rng.uniform(0.42, 0.5), waist=rng.uniform(0.35, 0.44), hips=rng.uniform(0.45, 0.56),
                     armpit_depth=rng.uniform(0.3, 0.38),
                     arm_radius=(rng.uniform(0.16, 0.19), rng.uniform(0.12, 0.14), rng.uniform(0.085, 0.1)))
    tags = _sample_arms(rng, joints, unit, down, across, height, width)
    return Person(
        joints=joints, body=body, unit=unit, skin=_jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 10),
        hair_colour=_jitter(rng, HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], 12),
        hair_style=HAIR_STYLES[rng.integers(len(HAIR_STYLES))], lower="skirt" if rng.random() < 0.3 else "pants",
        lower_colour=_jitter(rng, LOWER_COLOURS[rng.integers(len(LOWER_COLOURS))], 15),
        skirt_length=rng.uniform(0.8, 1.8), shoe_colour=_jitter(rng, (60, 50, 45), 40),
        background=tuple(int(c) for c in rng.uniform(205, 242) + rng.uniform(-6, 6, size=3)),
        front_arm=int(rng.choice([2, 5])), tags=tags)


def _sample_arms(rng: np.random.Generator, joints: np.ndarray, unit: float, down: np.ndarray,
                 across: np.ndarray, height: int, width: int) -> tuple[str, ...]:
    """Fill elbows and wrists (BODY_25 3, 4, 6, 7) in place; return the pose's tags.

    About 20% of people cross both forearms in front of the torso; otherwise each arm hangs down, reaches
    out, rests a hand on the hip, crosses alone or raises the hand. An arm whose hand would leave the frame
    is drawn again (at most ``ARM_ATTEMPTS`` times, then it hangs straight down).
    """
    crossed = rng.random() < 0.2
    tags = [CROSSED_ARMS] if crossed else []
    margin = 0.02 * width
    for shoulder, elbow, wrist, outward in ((2, 3, 4, -1.0), (5, 6, 7, 1.0)):
        upper, fore = rng.uniform(1.05, 1.15) * unit, rng.uniform(1.0, 1.1) * unit
        for attempt in range(ARM_ATTEMPTS + 1):
            if attempt == ARM_ATTEMPTS:
                kind = "straight"
            elif crossed:
                kind = "front"
            else:
                kind = ARM_POSES[rng.choice(len(ARM_POSES), p=[0.5, 0.2, 0.18, 0.07, 0.05])]
            joints[elbow], joints[wrist] = _arm(rng, kind, joints, shoulder, outward, upper, fore, unit, down,
                                                across)
            hand = joints[wrist] + HAND_LENGTH * unit * (joints[wrist] - joints[elbow]) / fore
            points = np.stack([joints[elbow], joints[wrist], hand])
            if ((points >= margin) & (points <= (width - margin, height - margin))).all():
                break
        tags += {"hip": [HANDS_ON_HIPS], "up": [HAND_UP], "front": [] if crossed else [ARM_FRONT]}.get(kind, [])
    return tuple(sorted(set(tags)))


def _arm(rng: np.random.Generator, kind: str, joints: np.ndarray, shoulder: int, outward: float, upper: float,
         fore: float, unit: float, down: np.ndarray, across: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elbow and wrist of one arm in pose ``kind`` (one of ``ARM_POSES`` or ``"straight"``)."""
    origin = joints[shoulder]
    if kind in ("down", "out", "up", "straight"):
        spread, bend = {"down": ((3, 22), (-10, 35)), "out": ((25, 48), (0, 70)), "up": ((10, 30), (120, 150)),
                        "straight": ((4, 4), (0, 0))}[kind]
        shoulder_angle, elbow_angle = rng.uniform(*spread), rng.uniform(*bend)
        # angles from the torso's axis, positive away from the body; the elbow bends the forearm inwards
        elbow = origin + upper * _rotate(down, -outward * shoulder_angle)
        return elbow, elbow + fore * _rotate(down, -outward * (shoulder_angle - elbow_angle))
    if kind == "hip":
        hip = joints[9 if outward < 0 else 12]
        target = hip + outward * rng.uniform(0.05, 0.2) * unit * across - rng.uniform(0.1, 0.3) * unit * down
    else:  # "front": the forearm across the belly or chest, wrist on the other side of the torso
        centre = (joints[2] + joints[5]) / 2
        target = centre - outward * rng.uniform(0.05, 0.42) * unit * across + rng.uniform(0.8, 1.3) * unit * down
    return _two_bone(origin, target, upper, fore, outward)


def _detected(rng: np.random.Generator, person: Person, height: int, width: int) -> np.ndarray:
    """What OpenPose would report: (25, 3) joints with confidences 0.6-0.95, missing ones (0, 0, 0).

    Joints outside the frame are missing, each arm or face joint is missed now and then, and the wrist of the
    arm behind is often missed when the forearms cross.
    """
    joints = person.joints
    confidence = rng.uniform(0.6, 0.95, size=25)
    inside = (joints[:, 0] >= 0) & (joints[:, 0] < width) & (joints[:, 1] >= 0) & (joints[:, 1] < height)
    missed = rng.random(25) < 0.03
    missed[[1, 2, 5, 8, 9, 12]] = False  # neck, shoulders and hips are always found
    if CROSSED_ARMS in person.tags:
        back_wrist = 7 if person.front_arm == 2 else 4
        missed[back_wrist] |= rng.random() < 0.3
    found = inside & ~missed
    return np.where(found[:, None], np.concatenate([joints, confidence[:, None]], axis=1), 0.0).astype(np.float32)


# --- garment textures ----------------------------------------------------------------------------------------

def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: tuple[int, int] = (6, 5)) -> np.ndarray:
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
    neck = keypoints[:5].astype(np.float64)  # 0..4, image left to right
    tangent = np.gradient(neck, axis=0)  # central differences, one-sided at the corners
    t = np.linspace(0, 1, samples, endpoint=False)[:, None]
    h00, h10, h01, h11 = 2 * t ** 3 - 3 * t ** 2 + 1, t ** 3 - 2 * t ** 2 + t, -2 * t ** 3 + 3 * t ** 2, t ** 3 - t ** 2
    spans = [h00 * neck[k] + h10 * tangent[k] + h01 * neck[k + 1] + h11 * tangent[k + 1] for k in range(4)]
    return np.concatenate([*spans, contour[4:]])  # contour[4] is node 4, then 31, 30, ... 5


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


def _draw_back_and_collar(texture: np.ndarray, canvas: np.ndarray, keypoints: np.ndarray, params: GarmentParams,
                          rng: np.random.Generator) -> None:
    """Add to a product photo (in place) the inside of the back seen above the front neckline, and a collar.

    The silhouette (``canvas``, 255 = garment) grows up to the back neckline (``BACK_DIP``), or a collar's top
    edge ``COLLAR_BAND`` above it; the inside of the back is shaded darker (a random amount: a pale garment may
    barely show it), the front neckline's edge casts a thin shadow. A collar folds two flaps over the shoulders
    whose inner edges are the V's, meeting at its bottom (node 2); a wrap's front crossing over the other draws
    its edge on from node 2 to the other side. Nodes 0-4 stay on the front neckline.
    """
    height, width = canvas.shape
    unit = float(np.linalg.norm(keypoints[31] - keypoints[5])) / (1 - 2 * params.strap_inset)  # pixels
    corner_left, centre, corner_right = keypoints[0].astype(np.float64), keypoints[2], keypoints[4]
    t = np.linspace(0, 1, 24)[:, None]
    back = corner_left + t * (corner_right - corner_left) + 4 * t * (1 - t) * [0, BACK_DIP * unit]  # (24, 2)
    band = COLLAR_BAND * unit if params.kind == "collar" else 0.0
    top = back - [0, band]
    front = keypoints[[4, 3, 2, 1, 0]].astype(np.float64)
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
    else:  # a wrap: the front on top runs on from the bottom of the V to the other side
        edges.append(np.stack([centre, centre + 0.55 * (keypoints[16] - centre)]))
    light -= (1 - rng.uniform(0.5, 0.9)) * shade
    lines = np.zeros((height, width), np.uint8)
    thickness = max(1, int(round(height / 256)))
    cv2.polylines(lines, [np.round(edge * 16).astype(np.int32) for edge in edges], False, 255, thickness,
                  cv2.LINE_AA, 4)
    light *= 1 - 0.3 * lines.astype(np.float32) / 255
    texture *= light[..., None]
    np.maximum(canvas, np.round(silhouette * 255).astype(np.uint8), out=canvas)


def render_cloth(params: GarmentParams, rng: np.random.Generator, height: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The product photo of a garment.

    Args:
        params: the garment.
        rng: draws the photo's shading.
        height: image height; the width is ``3 * height / 4``.

    Returns ``(texture, alpha, photo, keypoints)``: the shaded fabric (H, W, 3) float32 0..255 over the whole
    image (what the worn garment samples), the antialiased silhouette (H, W) float32 0..1, the photo (H, W, 3)
    uint8 on a near-white background, and the (32, 2) float32 keypoints in pixels.
    """
    width = height * 3 // 4
    keypoints = flat_keypoints(params, height, width)
    texture = _fabric(params, height, width)
    if params.print_kind != "none":
        coverage = _print_mask(params, keypoints, height, width)[..., None]
        texture += coverage * (np.array(params.colours[2], dtype=np.float32) - texture)
    texture *= (1 + 0.04 * _smooth_noise(rng, height, width))[..., None]
    canvas = np.zeros((height, width), dtype=np.uint8)
    outline = np.round(_outline(keypoints, params.neckline) * 16).astype(np.int32)
    cv2.fillPoly(canvas, [outline], 255, cv2.LINE_AA, 4)
    if params.kind == "ties":
        _draw_ties(canvas, keypoints, rng)
    if params.kind in SHOWS_BACK:
        _draw_back_and_collar(texture, canvas, keypoints, params, rng)
    alpha = canvas.astype(np.float32) / 255
    white = rng.uniform(238, 252)
    background = white * (1 - 0.03 * np.linspace(0, 1, height, dtype=np.float32))[:, None, None]
    photo = background + alpha[..., None] * (np.clip(texture, 0, 255) - background)
    return texture, alpha, np.round(np.clip(photo, 0, 255)).astype(np.uint8), keypoints


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


# --- painting the person -------------------------------------------------------------------------------------

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
    return centre + _rotate(local, degrees)


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

    shade = np.linspace(1.04, 0.94, height, dtype=np.float32)[:, None] + 0.03 * _smooth_noise(rng, height, width)
    canvas = _Canvas(np.array(person.background, dtype=np.float32) * shade[..., None])
    _paint_hair_fall(canvas, person)
    _paint_lower_body(canvas, person)
    _paint_torso_skin(canvas, person)

    scale = 0.012 * height
    displacement = scale * np.stack([_smooth_noise(rng, height, width, (7, 6)),
                                     _smooth_noise(rng, height, width, (7, 6))])
    # folds: mostly horizontal bands (a coarse grid of many rows, few columns) over gentle blotches
    folds = 0.7 * _smooth_noise(rng, height, width, (14, 3)) + 0.3 * _smooth_noise(rng, height, width, (6, 5))
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


# --- pairs and datasets --------------------------------------------------------------------------------------

def pair_name(index: int) -> str:
    """File name of pair ``index``'s person image and garment: ``{index:05d}_00.jpg``."""
    return f"{index:05d}_00.jpg"


def make_pair(seed: int, index: int, height: int = 256) -> TryOnSample:
    """Pair ``index`` of ``seed``: a person wearing garment ``index``, with both garments' keypoints.

    Args:
        seed: dataset seed (a non-negative integer).
        index: pair number (non-negative); the pair uses ``np.random.default_rng([seed, index])`` only.
        height: image height, divisible by 4 (width = 3 * height / 4).

    Returns a paired :class:`~kgi.data.sample.TryOnSample` whose ``pose`` is what OpenPose would report
    (some joints missing), ``cloth_keypoints``/``worn_keypoints`` the ground truth, ``tags`` the pose tags.
    """
    _check_height(height)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SynthError(f"seed: expected a non-negative integer, got {seed!r}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise SynthError(f"index: expected a non-negative integer, got {index!r}")
    rng = np.random.default_rng([int(seed), int(index)])
    params = with_kind(sample_garment(rng), np.random.default_rng([int(seed), int(index), 1]))
    person = sample_person(rng, height)
    pose = _detected(rng, person, height, height * 3 // 4)
    texture, alpha, cloth, cloth_keypoints = render_cloth(params, rng, height)
    image, parse, worn = render_person(person, params, texture, alpha, cloth_keypoints, rng, height)
    name = pair_name(index)
    return TryOnSample(person_name=name, cloth_name=name, person=image, cloth=cloth, cloth_mask=alpha >= 0.5,
                       parse=parse, pose=pose, cloth_keypoints=cloth_keypoints, worn_keypoints=worn,
                       sleeve=params.sleeve, tags=(*person.tags, f"{GARMENT_TAG}{params.kind}"))


def _check_height(height: int) -> None:
    if isinstance(height, bool) or not isinstance(height, (int, np.integer)) or height < 64 or height % 4:
        raise SynthError(f"height: expected a multiple of 4 of at least 64 (width = 3 * height / 4), "
                         f"got {height!r}")


def _landmark_json(keypoints: np.ndarray, sleeve: str, height: int, width: int, tags=None) -> str:
    doc = {"width": width, "height": height, "sleeve": sleeve,
           "keypoints": [[round(float(x), 2), round(float(y), 2)] for x, y in keypoints]}
    if tags is not None:
        doc["tags"] = list(tags)
    return json.dumps(doc)


def _gray_jpeg(mask: np.ndarray) -> bytes:
    """A bool mask as a single-channel 0/255 JPEG, as VITON-HD stores cloth masks."""
    ok, data = cv2.imencode(".jpg", mask.astype(np.uint8) * 255, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("OpenCV could not encode a cloth mask as JPEG")
    return data.tobytes()


def _pair_files(sample: TryOnSample, split: str) -> dict[str, bytes]:
    """The seven files of a pair, keyed by their path below the dataset root."""
    height, width = sample.size
    stem = PurePosixPath(sample.person_name).stem
    return {
        f"{split}/image/{sample.person_name}": encode_jpeg(sample.person, JPEG_QUALITY),
        f"{split}/cloth/{sample.cloth_name}": encode_jpeg(sample.cloth, JPEG_QUALITY),
        f"{split}/cloth-mask/{sample.cloth_name}": _gray_jpeg(sample.cloth_mask),
        f"{split}/image-parse-v3/{stem}.png": encode_palette_png(sample.parse, CIHP_PALETTE),
        f"{split}/openpose_json/{stem}_keypoints.json": openpose_json(sample.pose).encode(),
        f"{split}/cloth-landmark-json/{stem}.json":
            _landmark_json(sample.cloth_keypoints, sample.sleeve, height, width).encode(),
        f"{split}/image-landmark-json/{stem}.json":
            _landmark_json(sample.worn_keypoints, sample.sleeve, height, width, sample.tags).encode(),
    }


def unpaired_partners(seed: int, indices: list[int]) -> list[int]:
    """For each pair index, another index of ``indices`` whose garment it tries on (a random derangement).

    The indices are shuffled into one cycle and each person takes the next one's garment, so nobody keeps
    their own and every garment is tried on once.
    """
    if len(indices) < 2:
        raise SynthError(f"unpaired pairs need at least 2 test pairs, got {len(indices)}")
    cycle = np.random.default_rng([seed, 2 ** 32]).permutation(indices)  # 2**32: no pair index collides
    partner = dict(zip(cycle.tolist(), np.roll(cycle, -1).tolist()))
    return [partner[i] for i in indices]


def generate(out: str, n_train: int, n_test: int, height: int = 256, seed: int = 0, progress: bool = True
             ) -> dict:
    """Write a synthetic dataset in the VITON-HD layout (plus landmark JSON) under ``out``.

    Train pairs are numbered ``0 .. n_train-1`` and test pairs continue from ``n_train``. Each pair's seven
    files are written first; ``train_pairs.txt`` (paired lines), ``test_pairs.txt`` (unpaired: each test
    person with another test garment) and ``synth.json`` last, so an interrupted run leaves no pairs file
    naming a missing file.

    Args:
        out: an empty or missing folder, or ``s3://bucket/prefix`` (see :mod:`kgi.data.storage`).
        n_train: train pairs, at least 1.
        n_test: test pairs, at least 2 (unpaired lines need another garment).
        height: image height, a multiple of 4 (width = 3 * height / 4).
        seed: dataset seed; pair ``i`` depends only on ``(seed, i)``.
        progress: show a tqdm progress bar.

    Returns the ``synth.json`` summary. Raises ``SynthError`` for bad arguments or a non-empty ``out``.
    """
    for name, value, least in (("n_train", n_train, 1), ("n_test", n_test, 2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise SynthError(f"{name}: expected an integer of at least {least}, got {value!r}")
    _check_height(height)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SynthError(f"seed: expected a non-negative integer, got {seed!r}")
    storage = open_root(out)
    existing = storage.list()
    if existing:
        raise SynthError(f"{storage.uri()}: not empty ({len(existing)} files, e.g. {existing[0]}); "
                         f"choose a new folder")
    from tqdm.auto import tqdm

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # images this small gain nothing from OpenCV's threads, and lose on a busy machine
    try:
        return _write(storage, n_train, n_test, height, seed, progress, tqdm)
    finally:
        cv2.setNumThreads(threads)


def _write(storage, n_train: int, n_test: int, height: int, seed: int, progress: bool, tqdm) -> dict:
    splits = {"train": list(range(n_train)), "test": list(range(n_train, n_train + n_test))}
    counts = {"train": 0, "test": 0}
    tags_seen: dict[str, int] = {}
    with tqdm(total=n_train + n_test, desc="kgi synth", unit="pair", disable=not progress) as bar:
        for split, indices in splits.items():
            for index in indices:
                sample = make_pair(seed, index, height)
                for rel, data in _pair_files(sample, split).items():
                    storage.write_bytes(rel, data)
                counts[split] += 1
                for tag in sample.tags:
                    tags_seen[tag] = tags_seen.get(tag, 0) + 1
                bar.update(1)
    train_lines = [f"{pair_name(i)} {pair_name(i)}\n" for i in splits["train"]]
    partners = unpaired_partners(seed, splits["test"])
    test_lines = [f"{pair_name(i)} {pair_name(j)}\n" for i, j in zip(splits["test"], partners)]
    summary = {"generator": "kgi.data.synth", "version": GENERATOR_VERSION, "seed": int(seed),
               "height": int(height), "width": int(height) * 3 // 4, "train_pairs": counts["train"],
               "test_pairs": counts["test"], "tags": dict(sorted(tags_seen.items()))}
    storage.write_bytes("train_pairs.txt", "".join(train_lines).encode())
    storage.write_bytes("test_pairs.txt", "".join(test_lines).encode())
    storage.write_bytes("synth.json", json.dumps(summary, indent=2).encode())
    return summary
