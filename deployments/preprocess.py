"""The ``Preprocess`` stage: a request's uploads in, a ``TryOnSample`` at the version's working resolution out.

What a request must bring, and what is computed when it does not:

    person              required  photo of the person (any size; see "resolution" below)
    garment             required  flat product photo of the upper garment
    pose                required  OpenPose BODY_25 JSON of the person photo (no built-in pose estimator yet)
    parse               required  CIHP label PNG of the person photo, as VITON-HD's ``image-parse-v3``
                                  (no built-in human parser yet)
    cloth_mask          optional  garment silhouette (white = garment); else computed by
                                  :func:`background_mask`, which needs a plain background
    garment_keypoints   optional  JSON list of 32 [x, y] garment-graph keypoints in garment-photo pixels;
                                  else ``kgi.landmarks.flat_garment_keypoints`` finds them

**Resolution.** The models work at 3:4 (width:height). The person photo keeps its full height: a photo wider
than 3:4 is cropped to 3:4 with the window centred on the person's neck (or, without one, on the median
detected joint; joints that fall outside become undetected); a narrower one is padded left and right by
repeating its edge columns (the parse is padded with background). The garment photo is never cut: it is padded to 3:4 with its own background colour (the
median colour of its border). Both are then resized to ``working_height x 3*working_height/4``; the pose and
garment keypoints follow every step.

Every problem with the uploads raises a ``ValueError`` subclass naming the field (the ingress answers 422).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import cv2
import numpy as np
from ray import serve

from deployments.config import apply_torch_threads
from deployments.errors import MissingInputError, RequestError
from kgi.data.images import decode_gray, decode_labels, decode_rgb, resize_labels, resize_mask, resize_rgb
from kgi.data.labels import NUM_CIHP
from kgi.data.pose import PoseError, parse_openpose
from kgi.data.sample import TryOnSample
from kgi.graphs import NUM_GARMENT_NODES
from kgi.landmarks import flat_garment_keypoints

MASK_THRESHOLD = 128  # a grayscale mask pixel >= this is garment (JPEG masks blur between 0 and 255)
# A pixel whose largest channel difference from the background colour exceeds this is garment.
BACKGROUND_DISTANCE = 40
# A computed mask covering more than this fraction of the photo means the background is not plain.
MAX_GARMENT_FRACTION = 0.9
# Height of the vertical closing of the computed mask, as a fraction of the photo's height: bridges horizontal
# bands the colour of the background that reach the outline (the white stripes of a striped shirt shot on white).
CLOSING_FRACTION = 0.04


@dataclass
class Uploads:
    """The raw inputs of one try-on request, as the ingress received them (see the module docstring).

    Attributes:
        person, garment: encoded images.
        pose: OpenPose JSON bytes, or None.
        parse: CIHP label PNG bytes, or None.
        cloth_mask: encoded grayscale mask, or None.
        garment_keypoints: JSON bytes of 32 [x, y] pixel keypoints of the garment photo, or None.
        person_name, garment_name: the uploaded file names (the sample's names).
    """

    person: bytes
    garment: bytes
    pose: bytes | None = None
    parse: bytes | None = None
    cloth_mask: bytes | None = None
    garment_keypoints: bytes | None = None
    person_name: str = "person"
    garment_name: str = "garment"


def border_colour(image: np.ndarray) -> np.ndarray:
    """(3,) uint8 median colour of the one-pixel frame of an (H, W, 3) image: a plain background's colour."""
    frame = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])  # (2W + 2H, 3)
    return np.median(frame, axis=0).astype(np.uint8)


def background_mask(garment: np.ndarray) -> np.ndarray:
    """The garment silhouette of a product photo on a plain background, (H, W) bool.

    A simple rule, not a segmentation model: pixels whose colour differs from the background colour
    (:func:`border_colour`) by more than ``BACKGROUND_DISTANCE`` in some channel are garment; a 3x3 opening
    drops JPEG speckle and a vertical closing (``CLOSING_FRACTION`` of the height) bridges horizontal stripes of
    the background colour that reach the outline, without closing the gaps between sleeves and body; the largest
    connected part is kept and its holes filled (a print the colour of the background stays garment). Garments
    the colour of their background, vertical stripes of it, or busy backgrounds need an uploaded
    ``cloth_mask``; this function raises ``RequestError`` when the result is empty or covers the whole photo.
    """
    distance = np.abs(garment.astype(np.int16) - border_colour(garment).astype(np.int16)).max(axis=2)  # (H, W)
    foreground = cv2.morphologyEx((distance > BACKGROUND_DISTANCE).astype(np.uint8), cv2.MORPH_OPEN,
                                  np.ones((3, 3), np.uint8))
    band = max(3, round(CLOSING_FRACTION * garment.shape[0]) | 1)  # odd
    foreground = cv2.morphologyEx(foreground, cv2.MORPH_CLOSE, np.ones((band, 1), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(foreground, connectivity=8)
    if count <= 1:
        raise RequestError("garment: nothing stands out from the photo's background; send a cloth_mask",
                           code="invalid_garment")
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    contours, _ = cv2.findContours((labels == largest).astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    filled = np.zeros(garment.shape[:2], np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    if filled.mean() > MAX_GARMENT_FRACTION:
        raise RequestError("garment: the photo has no plain background around the garment; send a cloth_mask",
                           code="invalid_garment")
    return filled.astype(bool)


def fit_person(person: np.ndarray, parse: np.ndarray, pose: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop or pad a person photo, its parse and its pose to 3:4 (the rule is in the module docstring).

    Args:
        person: (H, W, 3) uint8. parse: (H, W) uint8 CIHP labels. pose: (25, 3) float32 BODY_25 in pixels.

    Returns the three at (H, round(3H/4)); undetected joints stay (0, 0, 0).
    """
    height, width = person.shape[:2]
    target = round(height * 3 / 4)
    pose = pose.copy()
    detected = pose[:, 2] > 0
    if width > target:
        neck = 1  # BODY_25
        centre = pose[neck, 0] if detected[neck] else np.median(pose[detected, 0]) if detected.any() else width / 2
        left = int(np.clip(round(centre - target / 2), 0, width - target))
        person, parse = person[:, left:left + target], parse[:, left:left + target]
        pose[detected, 0] -= left
        pose[detected & ((pose[:, 0] < 0) | (pose[:, 0] > target))] = 0
    elif width < target:
        left = (target - width) // 2
        right = target - width - left
        person = cv2.copyMakeBorder(person, 0, 0, left, right, cv2.BORDER_REPLICATE)
        parse = cv2.copyMakeBorder(parse, 0, 0, left, right, cv2.BORDER_CONSTANT, value=0)
        pose[detected, 0] += left
    return np.ascontiguousarray(person), np.ascontiguousarray(parse), pose


def fit_garment(garment: np.ndarray, mask: np.ndarray | None, keypoints: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Pad a garment photo (and its mask and keypoints, when given) to 3:4 with its background colour.

    Args:
        garment: (H, W, 3) uint8. mask: (H, W) bool or None. keypoints: (32, 2) float32 pixels or None.
    """
    height, width = garment.shape[:2]
    pad_x, pad_y = max(round(height * 3 / 4) - width, 0), max(round(width * 4 / 3) - height, 0)
    left, top = pad_x // 2, pad_y // 2
    border = (top, pad_y - top, left, pad_x - left)
    garment = cv2.copyMakeBorder(garment, *border, cv2.BORDER_CONSTANT,
                                 value=[int(c) for c in border_colour(garment)])
    if mask is not None:
        mask = cv2.copyMakeBorder(mask.astype(np.uint8), *border, cv2.BORDER_CONSTANT, value=0).astype(bool)
    if keypoints is not None:
        keypoints = keypoints + np.array([left, top], dtype=np.float32)
    return garment, mask, keypoints


def read_garment_keypoints(data: bytes, width: int, height: int) -> np.ndarray:
    """Parse ``garment_keypoints``: a JSON list of 32 [x, y] pixel positions inside a ``width x height`` photo.

    Returns (32, 2) float32; raises ``RequestError`` naming the field.
    """
    try:
        points = np.asarray(json.loads(data), dtype=np.float64)
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RequestError(f"garment_keypoints: not a JSON list of numbers ({exc})") from None
    if points.shape != (NUM_GARMENT_NODES, 2):
        raise RequestError(f"garment_keypoints: expected {NUM_GARMENT_NODES} [x, y] pairs, got shape "
                           f"{points.shape}")
    inside = np.isfinite(points).all(axis=1) & (points >= 0).all(axis=1) & (points[:, 0] <= width) \
        & (points[:, 1] <= height)
    if not inside.all():
        raise RequestError(f"garment_keypoints: point {int(np.argmin(inside))} is not inside the "
                           f"{width}x{height} garment photo")
    return points.astype(np.float32)


def _check_pose_inside(pose: np.ndarray, width: int, height: int) -> None:
    detected = pose[:, 2] > 0
    outside = detected & ((pose[:, 0] > width + 1) | (pose[:, 1] > height + 1))
    if outside.any():
        joint = int(np.argmax(outside))
        raise PoseError(f"pose: joint {joint} at ({pose[joint, 0]:.0f}, {pose[joint, 1]:.0f}) lies outside the "
                        f"{width}x{height} person photo; the pose must be computed on this photo")


def _check_same_size(name: str, array: np.ndarray, reference: str, size: tuple[int, int]) -> None:
    if array.shape[:2] != size:
        raise RequestError(f"{name}: {array.shape[1]}x{array.shape[0]} does not match the {reference}'s "
                           f"{size[1]}x{size[0]}")


def prepare_sample(uploads: Uploads, working_height: int, *, max_bytes: int, max_pixels: int) -> TryOnSample:
    """Decode, check and normalise one request's uploads (see the module docstring).

    Args:
        uploads: the request's inputs.
        working_height: the height of the sample (width ``3*working_height/4``).
        max_bytes: largest accepted upload, per file, checked before decoding.
        max_pixels: largest accepted image, checked from its header before decoding.
    """
    missing = [text for field, text in (
        ("pose", "pose (OpenPose BODY_25 JSON of the person photo, as a file or text)"),
        ("parse", "parse (CIHP label PNG of the person photo, as VITON-HD's image-parse-v3)"))
        if getattr(uploads, field) is None]
    if missing:
        raise MissingInputError(f"missing input: send {' and '.join(missing)}; this service has no built-in "
                                "pose estimator or human parser yet")
    limits = {"max_bytes": max_bytes, "max_pixels": max_pixels}
    height, width = working_height, working_height * 3 // 4

    person = decode_rgb(uploads.person, source="person", **limits)
    parse = decode_labels(uploads.parse, source="parse", **limits)
    _check_same_size("parse", parse, "person photo", person.shape[:2])
    if int(parse.max()) >= NUM_CIHP:
        raise RequestError(f"parse: label {int(parse.max())} is not a CIHP label (0..{NUM_CIHP - 1})")
    if len(uploads.pose) > max_bytes:
        raise RequestError(f"pose: {len(uploads.pose)} bytes exceeds the limit of {max_bytes} bytes")
    pose = parse_openpose(uploads.pose, source="pose")
    _check_pose_inside(pose, person.shape[1], person.shape[0])
    person, parse, pose = fit_person(person, parse, pose)
    pose[:, :2] *= np.array([width / person.shape[1], height / person.shape[0]], dtype=np.float32)
    person, parse = resize_rgb(person, height, width), resize_labels(parse, height, width)

    garment = decode_rgb(uploads.garment, source="garment", **limits)
    garment_mask = keypoints = None
    if uploads.cloth_mask is not None:
        garment_mask = decode_gray(uploads.cloth_mask, source="cloth_mask", **limits) >= MASK_THRESHOLD
        _check_same_size("cloth_mask", garment_mask, "garment photo", garment.shape[:2])
    if uploads.garment_keypoints is not None:
        keypoints = read_garment_keypoints(uploads.garment_keypoints, garment.shape[1], garment.shape[0])
    garment, garment_mask, keypoints = fit_garment(garment, garment_mask, keypoints)
    scale = np.array([width / garment.shape[1], height / garment.shape[0]], dtype=np.float32)
    garment = resize_rgb(garment, height, width)
    garment_mask = background_mask(garment) if garment_mask is None else resize_mask(garment_mask, height, width)
    sleeve = None
    if keypoints is None:
        landmarks = flat_garment_keypoints(garment, garment_mask)
        keypoints, sleeve = landmarks.keypoints, landmarks.sleeve
    else:
        keypoints = keypoints * scale
    return TryOnSample(person_name=uploads.person_name, cloth_name=uploads.garment_name, person=person,
                       cloth=garment, cloth_mask=garment_mask, parse=parse, pose=pose,
                       cloth_keypoints=keypoints.astype(np.float32), sleeve=sleeve)


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=32, max_queued_requests=128)
class Preprocess:
    """Stage 0 (CPU): uploads -> ``TryOnSample`` with :func:`prepare_sample`.

    Args:
        max_upload_bytes: largest accepted upload, per file.
        max_image_pixels: largest accepted image, in pixels.
        torch_threads: intra-op threads of this replica (OpenCV), ``None`` for the default.
    """

    def __init__(self, max_upload_bytes: int, max_image_pixels: int, torch_threads: int | None = None):
        apply_torch_threads(torch_threads)
        self.limits = {"max_bytes": max_upload_bytes, "max_pixels": max_image_pixels}

    def __call__(self, uploads: Uploads, working_height: int) -> tuple[TryOnSample, float]:
        """The sample at ``working_height`` and the seconds this stage took."""
        start = time.perf_counter()
        sample = prepare_sample(uploads, working_height, **self.limits)
        return sample, time.perf_counter() - start
