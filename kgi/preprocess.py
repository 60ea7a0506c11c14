"""From what a user has (two photos and optional annotations) to a ``TryOnSample`` the pipeline accepts.

Shared by ``kgi tryon`` and the serving ``Preprocess`` stage so both accept exactly the same inputs:

- person and garment photos in any common format, EXIF rotation applied, any size: each is padded to the
  dataset's 3:4 (width:height) by replicating its border, then resized to the working height;
- the person's pose as OpenPose BODY_25 JSON and parse as a CIHP label PNG, both at the person photo's size,
  or, where the request lacks them, estimated from the person photo by the ``pose_estimator``
  (``kgi.pose_estimation``) and ``parser`` (``kgi.parsing``) the caller configured; the sample's ``tags``
  then say so ("estimated-pose", "estimated-parse");
- the garment's mask, given or computed from a plain-background product photo (``cloth_mask_from_photo``);
- the garment's 32 keypoints, given (pixels of the garment photo) or extracted (``kgi.landmarks``).

Every problem the input can have raises ``InputError`` naming the field.
"""

from __future__ import annotations

import json

import cv2
import numpy as np

from kgi.data.images import ImageError, decode_gray, decode_labels, decode_rgb, resize_labels, resize_mask, \
    resize_rgb
from kgi.data.labels import NUM_CIHP
from kgi.data.pose import PoseError, parse_openpose
from kgi.data.sample import TryOnSample
from kgi.graphs import NUM_GARMENT_NODES
from kgi.landmarks import LandmarkError, flat_garment_keypoints
from kgi.parsing import HumanParser, ParsingError
from kgi.pose_estimation import PoseEstimationError, PoseEstimator


class InputError(ValueError):
    """A user input that cannot be used; ``field`` names it (a form field or CLI argument)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class Letterbox:
    """Pads an image to 3:4 (width:height) around its centre and scales it to ``height``; maps points alike.

    Args:
        source_height, source_width: the original image's size.
        height: the output height (width = 3/4 of it).
    """

    def __init__(self, source_height: int, source_width: int, height: int):
        padded_h, padded_w = max(source_height, source_width * 4 // 3), max(source_width, -(-source_height * 3 // 4))
        self.top, self.left = (padded_h - source_height) // 2, (padded_w - source_width) // 2
        self.padded = (padded_h, padded_w)
        self.size = (height, height * 3 // 4)
        self.scale = height / padded_h

    def _pad(self, image: np.ndarray, border: int, value=0) -> np.ndarray:
        padded_h, padded_w = self.padded
        bottom, right = padded_h - image.shape[0] - self.top, padded_w - image.shape[1] - self.left
        return cv2.copyMakeBorder(image, self.top, bottom, self.left, right, border, value=value)

    def rgb(self, image: np.ndarray) -> np.ndarray:
        return resize_rgb(self._pad(image, cv2.BORDER_REPLICATE), *self.size)

    def mask(self, mask: np.ndarray) -> np.ndarray:
        return resize_mask(self._pad(mask.astype(np.uint8), cv2.BORDER_CONSTANT) > 0, *self.size)

    def labels(self, labels: np.ndarray) -> np.ndarray:
        return resize_labels(self._pad(labels, cv2.BORDER_CONSTANT), *self.size)

    def points(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) pixel (x, y) of the source -> of the output."""
        return ((points + [self.left, self.top]) * self.scale).astype(np.float32)


def cloth_mask_from_photo(cloth: np.ndarray, tolerance: float = 18.0) -> np.ndarray:
    """The garment silhouette of a product photo on a plain background: (H, W) bool.

    The background colour is the median of the image border; pixels farther than ``tolerance`` (RGB distance)
    from it are garment candidates; the largest connected candidate region, holes filled, is the garment.
    Works for the VITON-HD and shop norm (a plain, light or uniform backdrop); a busy background needs a
    mask from the user.
    """
    border = np.concatenate([cloth[0], cloth[-1], cloth[:, 0], cloth[:, -1]]).astype(np.float32)
    background = np.median(border, axis=0)
    distance = np.linalg.norm(cloth.astype(np.float32) - background, axis=2)
    candidates = cv2.morphologyEx((distance > tolerance).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidates, connectivity=8)
    if count < 2:
        return np.zeros(cloth.shape[:2], bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    region = (labels == largest).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(region)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def _decode(decoder, data: bytes, field: str, max_bytes: int | None, max_pixels: int) -> np.ndarray:
    if not data:
        raise InputError(field, "empty upload")
    try:
        return decoder(data, source=field, max_bytes=max_bytes, max_pixels=max_pixels)
    except ImageError as exc:
        raise InputError(field, str(exc).removeprefix(f"{field}: ")) from None


def parse_garment_keypoints(text: str | bytes, field: str = "garment_keypoints") -> np.ndarray:
    """User-given garment keypoints: a JSON list of 32 [x, y] pixel pairs (or a landmark file's object)."""
    try:
        doc = json.loads(text)
        if isinstance(doc, dict):
            doc = doc["keypoints"]
        points = np.asarray(doc, dtype=np.float64)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, KeyError, TypeError, ValueError,
            OverflowError):
        raise InputError(field, f"expected a JSON list of {NUM_GARMENT_NODES} [x, y] pairs") from None
    if points.shape != (NUM_GARMENT_NODES, 2) or not np.isfinite(points).all() or (points < 0).any():
        raise InputError(field, f"expected {NUM_GARMENT_NODES} finite, non-negative [x, y] pairs, "
                                f"got shape {points.shape}")
    return points.astype(np.float32)


def prepare_sample(person: bytes, garment: bytes, *, pose_json: str | bytes | None = None,
                   parse_png: bytes | None = None, cloth_mask: bytes | None = None,
                   garment_keypoints: str | bytes | None = None, height: int = 256, max_bytes: int | None = None,
                   max_pixels: int = 40_000_000, person_name: str = "person", cloth_name: str = "garment",
                   pose_estimator: PoseEstimator | None = None, parser: HumanParser | None = None) -> TryOnSample:
    """Decode, validate and normalise one try-on request.

    Args:
        person, garment: encoded photos.
        pose_json: OpenPose BODY_25 JSON of the person photo; estimated by ``pose_estimator`` when absent.
        parse_png: CIHP label PNG of the person photo, same size; computed by ``parser`` when absent.
        cloth_mask: optional garment mask image (any 8-bit image; >= 128 is garment); computed when absent.
        garment_keypoints: optional JSON of 32 [x, y] in garment-photo pixels; extracted when absent.
        height: working height of the result (width = 3/4 of it).
        max_bytes, max_pixels: refuse larger uploads before decoding them.
        person_name, cloth_name: names carried into the sample (and error messages).
        pose_estimator: used when ``pose_json`` is absent (``kgi.pose_estimation.PoseEstimator``).
        parser: used when ``parse_png`` is absent (``kgi.parsing.HumanParser``).

    Raises ``InputError`` naming the field for every problem of the request, including a missing pose or
    parse that nothing configured can compute, and a person photo in which the estimator or parser fails.
    """
    if pose_json is None and pose_estimator is None:
        raise InputError("pose", "no pose given: send the person's OpenPose BODY_25 JSON as 'pose' "
                                 "(no pose estimator is configured on this server)")
    if parse_png is None and parser is None:
        raise InputError("parse", "no human parse given: send the person's CIHP label PNG as 'parse' "
                                  "(no human parser is configured on this server)")
    person_rgb = _decode(decode_rgb, person, "person", max_bytes, max_pixels)
    garment_rgb = _decode(decode_rgb, garment, "garment", max_bytes, max_pixels)
    tags = []
    if parse_png is not None:
        parse = _decode(decode_labels, parse_png, "parse", max_bytes, max_pixels)
        if parse.shape != person_rgb.shape[:2]:
            raise InputError("parse", f"size {parse.shape[1]}x{parse.shape[0]} differs from the person photo's "
                                      f"{person_rgb.shape[1]}x{person_rgb.shape[0]}")
        if int(parse.max()) >= NUM_CIHP:
            raise InputError("parse", f"label {int(parse.max())} is not a CIHP label (0..{NUM_CIHP - 1})")
    else:
        try:
            parse = parser.parse(person_rgb)
        except ParsingError as exc:
            raise InputError("person", f"the human parser failed ({exc}); send a CIHP label PNG as 'parse'") from None
        if parse.shape != person_rgb.shape[:2] or parse.dtype != np.uint8 or int(parse.max()) >= NUM_CIHP:
            raise RuntimeError(f"{type(parser).__name__}.parse returned {parse.dtype} {parse.shape}, not "
                               f"{person_rgb.shape[:2]} uint8 CIHP labels")
        tags.append("estimated-parse")
    if pose_json is not None:
        try:
            pose = parse_openpose(pose_json, source="pose")
        except PoseError as exc:
            raise InputError("pose", str(exc).removeprefix("pose: ")) from None
    else:
        try:
            pose = pose_estimator.estimate(person_rgb)
        except PoseEstimationError as exc:
            raise InputError("person", f"the pose estimator failed ({exc}); send OpenPose BODY_25 JSON as "
                                       f"'pose'") from None
        tags.append("estimated-pose")
    if (pose[:, 0] > person_rgb.shape[1]).any() or (pose[:, 1] > person_rgb.shape[0]).any():
        raise InputError("pose", "joints lie outside the person photo")

    if cloth_mask is not None:
        mask = _decode(decode_gray, cloth_mask, "cloth_mask", max_bytes, max_pixels) >= 128
        if mask.shape != garment_rgb.shape[:2]:
            raise InputError("cloth_mask", "size differs from the garment photo's")
    else:
        mask = cloth_mask_from_photo(garment_rgb)
    if mask.mean() < 0.01 or mask.mean() > 0.97:
        raise InputError("cloth_mask" if cloth_mask is not None else "garment",
                         "no garment found: the mask is empty or covers the whole photo "
                         "(send a product photo on a plain background, or a cloth_mask)")

    person_box = Letterbox(*person_rgb.shape[:2], height)
    garment_box = Letterbox(*garment_rgb.shape[:2], height)
    cloth = garment_box.rgb(garment_rgb)
    mask = garment_box.mask(mask)
    if garment_keypoints is not None:
        cloth_kp = garment_box.points(parse_garment_keypoints(garment_keypoints))
        sleeve = None
    else:
        try:
            found = flat_garment_keypoints(cloth, mask)
        except LandmarkError as exc:
            raise InputError("garment", f"garment landmarks could not be found ({exc})") from None
        cloth_kp, sleeve = found.keypoints, found.sleeve
    pose = pose.copy()
    detected = pose[:, 2] > 0
    pose[detected, :2] = person_box.points(pose[detected, :2])
    return TryOnSample(person_name=person_name, cloth_name=cloth_name, person=person_box.rgb(person_rgb),
                       cloth=cloth, cloth_mask=mask, parse=person_box.labels(parse), pose=pose,
                       cloth_keypoints=cloth_kp, sleeve=sleeve, tags=tuple(tags))
