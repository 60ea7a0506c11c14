"""Whether a photo can be tried on at all (:func:`photo_problem`): one person, shoulders and hips in view,
upright, large enough, facing the camera."""

from __future__ import annotations

import numpy as np

from kgi.photo_parsing.geometry import is_visible
from kgi.photo_parsing.names import LEFT_HIP, LEFT_SHOULDER, RIGHT_HIP, RIGHT_SHOULDER

# Shoulders-to-hips distance in the photo, in pixels, below which the person is too small to try on (VITON-HD's
# 1024x768 people have about 350). Only pixels count: a person small in a large photo is cropped around (fit_person).
MIN_TORSO_PIXELS = 100
MIN_SHOULDER_RATIO = 0.35  # shoulder width / torso length below it: the person is turned sideways
# The hips' drop below the shoulders over the torso's length below which the person is not upright (the torso
# more than 45 degrees off the vertical): a photo turned on its side or upside down, or a person lying.
MIN_UPRIGHT = 0.7
SECOND_PERSON_FRACTION = 0.3  # a second face or silhouette this large, relative to the first, is a person


def photo_problem(size: tuple[int, int], landmarks: np.ndarray | None, faces: list[float],
                  silhouettes: list[float]) -> str:
    """Why a photo cannot be tried on, as advice to the person sending it; "" when it can.

    Args:
        size: (H, W) of the photo.
        landmarks: (33, 3) BlazePose landmarks (x px, y px, visibility), or None when no person was found.
        faces: the widths of the faces found (the face detector's), largest first.
        silhouettes: the areas of the person-segmentation's separate regions, largest first.
    """
    height, width = size
    if landmarks is None:
        return "no person found: send a photo of one person, facing the camera"
    if len(faces) > 1 and faces[1] >= SECOND_PERSON_FRACTION * faces[0] or \
            len(silhouettes) > 1 and silhouettes[1] >= SECOND_PERSON_FRACTION * silhouettes[0]:
        return "two or more people found: send a photo of one person"
    if not all(is_visible(landmarks, i, width, height) for i in (LEFT_SHOULDER, RIGHT_SHOULDER)):
        return "shoulders not visible: send a photo showing the upper body, from the head down to mid-thigh"
    if not all(is_visible(landmarks, i, width, height, margin=0.01) for i in (LEFT_HIP, RIGHT_HIP)):
        return "hips not visible: send a photo down to mid-thigh"
    shoulders = (landmarks[LEFT_SHOULDER, :2] + landmarks[RIGHT_SHOULDER, :2]) / 2
    hips = (landmarks[LEFT_HIP, :2] + landmarks[RIGHT_HIP, :2]) / 2
    torso = float(np.linalg.norm(hips - shoulders))
    if hips[1] - shoulders[1] < MIN_UPRIGHT * torso:
        return ("the person is not upright (is the photo turned on its side?): send the photo the right way up, "
                "with the person standing")
    if torso < MIN_TORSO_PIXELS:
        return (f"the person is too small ({torso:.0f} px from shoulders to hips, at least {MIN_TORSO_PIXELS} "
                f"needed): send a larger photo, or one in which the person fills more of the frame")
    shoulder_width = float(np.linalg.norm(landmarks[LEFT_SHOULDER, :2] - landmarks[RIGHT_SHOULDER, :2]))
    if shoulder_width < MIN_SHOULDER_RATIO * torso:
        return "the person is turned sideways: send a photo of the person facing the camera"
    if landmarks[LEFT_SHOULDER, 0] < landmarks[RIGHT_SHOULDER, 0]:
        return "the person faces away from the camera: send a photo of the person facing the camera"
    return ""
