"""Synthetic people for :mod:`kgi.data.synth`: a VITON-HD-framed OpenPose BODY_25 pose, body outline and looks.

:func:`sample_person` draws the person; :func:`detected_pose` is what OpenPose would report of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kgi.data.garment import BodyShape

CROSSED_ARMS = "crossed_arms"
ARM_FRONT = "arm_front"
HANDS_ON_HIPS = "hands_on_hips"
HAND_UP = "hand_up"

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


def rotate(vector: np.ndarray, degrees: float) -> np.ndarray:
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
    candidates = [shoulder + upper * rotate(direction, sign * bend) for sign in (1.0, -1.0)]
    elbow = max(candidates, key=lambda e: outward * (e[0] - shoulder[0]))
    return elbow, shoulder + reach * direction


def sample_person(rng: np.random.Generator, height: int) -> Person:
    """Draw a person framed like a VITON-HD photo of ``height`` x ``3 * height / 4`` pixels."""
    width = height * 3 // 4
    zoom = rng.uniform(0.86, 1.02) if rng.random() < 0.75 else rng.uniform(0.6, 0.86)
    unit = zoom * rng.uniform(0.23, 0.26) * height  # shoulder width in pixels
    lean, tilt = rng.uniform(-5, 5), rng.uniform(-4, 4)
    down = rotate(np.array([0.0, 1.0]), lean)  # the torso's axis
    across = rotate(np.array([1.0, 0.0]), lean + tilt)  # the shoulder line
    top = rng.uniform(0.01, 0.05) * height
    joints = np.zeros((25, 2))
    neck = np.array([width / 2 + rng.uniform(-0.04, 0.04) * width, top + 1.26 * unit])
    joints[1] = neck
    joints[2] = neck - 0.5 * unit * across + 0.06 * unit * down  # right shoulder, image left
    joints[5] = neck + 0.5 * unit * across + 0.06 * unit * down
    hip_across = rotate(np.array([1.0, 0.0]), lean + rng.uniform(-3, 3))
    joints[8] = neck + rng.uniform(1.62, 1.78) * unit * down
    hip_half = rng.uniform(0.32, 0.4) * unit
    joints[9], joints[12] = joints[8] - hip_half * hip_across, joints[8] + hip_half * hip_across

    turn = rng.uniform(-0.08, 0.08)
    head_up = rotate(np.array([0.0, -1.0]), lean + rng.uniform(-6, 6))
    head_right = np.array([-head_up[1], head_up[0]])
    joints[0] = neck + 0.66 * unit * head_up + turn * unit * head_right
    for joint, side, up in ((15, -0.16, 0.13), (16, 0.16, 0.13), (17, -0.3, 0.05), (18, 0.3, 0.05)):
        joints[joint] = joints[0] + (side + 0.4 * turn) * unit * head_right + up * unit * head_up

    for hip, knee, ankle, side in ((9, 10, 11, -1.0), (12, 13, 14, 1.0)):
        spread = rng.uniform(-2, 6)
        joints[knee] = joints[hip] + rng.uniform(1.6, 1.75) * unit * rotate(down, -side * spread)
        joints[ankle] = joints[knee] + rng.uniform(1.5, 1.65) * unit * rotate(down, -side * spread * 0.5)
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
        elbow = origin + upper * rotate(down, -outward * shoulder_angle)
        return elbow, elbow + fore * rotate(down, -outward * (shoulder_angle - elbow_angle))
    if kind == "hip":
        hip = joints[9 if outward < 0 else 12]
        target = hip + outward * rng.uniform(0.05, 0.2) * unit * across - rng.uniform(0.1, 0.3) * unit * down
    else:  # "front": the forearm across the belly or chest, wrist on the other side of the torso
        centre = (joints[2] + joints[5]) / 2
        target = centre - outward * rng.uniform(0.05, 0.42) * unit * across + rng.uniform(0.8, 1.3) * unit * down
    return _two_bone(origin, target, upper, fore, outward)


def detected_pose(rng: np.random.Generator, person: Person, height: int, width: int) -> np.ndarray:
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

