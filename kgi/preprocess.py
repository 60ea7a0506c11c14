"""From what a user has (two photos and optional annotations) to the ``TryOnSample`` the pipeline takes.

The project's one preprocessing path: ``kgi tryon`` and the service's ``Preprocess`` deployment both run a
:class:`Preprocessor` on :class:`Uploads`. What a try-on needs, and where it comes from when not sent:

    person              required  photo of one person, any size (see "Resolution")
    garment             required  flat product photo of the upper garment
    pose                OpenPose BODY_25 JSON of the person photo; else estimated by the preprocessor's pose
                        estimator (``kgi.pose_estimation``); required when it has none
    parse               CIHP label PNG of the person photo, as VITON-HD's ``image-parse-v3``; else computed by the
                        preprocessor's human parser (``kgi.parsing``); required when it has none. The photo
                        parser (``kgi.parsing.PhotoParser``) also gives the pose and first checks that the photo
                        can work (one person, shoulders and hips in view, upright, large enough, facing the camera):
                        else an ``InputError`` on "person" says why
    cloth_mask          garment silhouette (grayscale, >= 128 = garment); else :func:`cloth_mask_from_photo`,
                        which needs a plain background
    garment_keypoints   JSON list of 32 [x, y] garment-graph keypoints in garment-photo pixels; else
                        ``kgi.landmarks.flat_garment_keypoints`` finds them

The sample's ``tags`` say what was estimated ("estimated-pose", "estimated-parse").

**Resolution.** The models work at 3:4 (width:height); a try-on is made at the person photo's own resolution.
The person photo is cut to its largest 3:4 box centred on the person (:func:`person_box`: the whole photo
when it is 3:4; joints that fall outside become undetected), or to a smaller one framing a person small in the
photo as VITON-HD frames its people (a full-length shot), which is the sample at its own size up to
``MAX_WORKING_HEIGHT`` (1024) rows, scaled down to it beyond (or to an explicit working height). The result
goes back into the photo at the photo's size with :func:`paste_back` (the sample's ``frame`` says where);
what the try-on did not change keeps the photo's own pixels. The garment photo is never cut: it is resized to
fit a 3:4 frame of ``LANDMARK_HEIGHT`` (1024) rows, padded to it with its own background colour
(:func:`border_colour`), so padding never grows a large upload, its landmarks found there (the same ones
whatever the person photo's size), then resized to the working size; the pose and garment keypoints follow
every step. The pose and parse are estimated on the whole person photo, before the crop, and by the photo
parser once more on a smaller box (there the person is seen at the box's resolution, not the photo's); a wrist
far short of the hand the parse shows is moved onto it (``kgi.limbs.wrists_on_hands``).

**Errors.** Every problem of an input raises a ``ValueError`` subclass whose message starts with the input's
name: ``ImageError`` (``kgi.data.images``) for an upload that is not a usable image, ``PoseError``
(``kgi.data.pose``) for an unusable pose, ``LandmarkError`` (``kgi.landmarks``) for a garment whose landmarks
cannot be found, :class:`MissingInputError` for an absent input nothing configured can compute, and
:class:`InputError` for the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import cv2
import numpy as np

from kgi.data.images import DEFAULT_MAX_PIXELS, decode_gray, decode_labels, decode_rgb, resize_labels, resize_mask, \
    resize_rgb, width_for
from kgi.data.labels import NUM_CIHP
from kgi.data.pose import PoseError, parse_openpose
from kgi.data.sample import PhotoFrame, TryOnSample
from kgi.graphs import NUM_GARMENT_NODES
from kgi.landmarks import LandmarkError, check_framing, flat_garment_keypoints
from kgi.limbs import wrists_on_hands
from kgi.parsing import HumanParser, ParsingError
from kgi.pose_estimation import PoseEstimationError, PoseEstimator

MASK_THRESHOLD = 128  # a grayscale mask pixel >= this is garment (JPEG masks blur between 0 and 255)
# A product photo's pixel farther than this from the background colour (RGB distance) is a garment candidate.
BACKGROUND_TOLERANCE = 18.0
# ... lowered for a pale garment to this fraction of its median distance to the background, down to MIN_TOLERANCE;
# a garment paler still (white on white) gets FLAT_MARGIN above the backdrop's own noise (the 99th percentile of
# its one-pixel frame's distances) where that is lower: a product cut out onto one flat colour.
PALE_TOLERANCE_RATIO, MIN_TOLERANCE, FLAT_MARGIN = 0.15, 7.0, 2.5
# Gaps in the candidates narrower than this fraction of the garment's height are closed (a white trim's brightest
# pixels on white), so the garment is one region with no opening to the outside. Of the garment's, not the
# photo's: a garment smaller in its frame has narrower slits, and the red tee 09236 scaled to 0.7 in its photo had
# the slits between its sleeves and body closed, its armpits read 8% of the height high.
CLOSING = 0.008
# A garment mask covering less or more than these fractions of its photo is no garment silhouette (empty, or
# a background that is not plain).
MIN_GARMENT_FRACTION, MAX_GARMENT_FRACTION = 0.01, 0.9
NECK = 1  # BODY_25 joint the person crop centres on
MID_HIP = 8  # BODY_25 joint
UPPER_BODY_JOINTS = 9  # BODY_25 joints 0-8: nose, neck, shoulders, elbows, wrists, mid hip
# VITON-HD's framing, which the models learnt: the top of the head 1-3% of the height below the photo's top, the
# mid hip at 65-74% (the four genuine people of ../shared). A person whose box in that framing is at most
# ZOOM_BELOW of the photo's largest 3:4 box is tried on in it (a person small in the photo: a full-length shot);
# a larger one in the largest box, as a VITON-HD photo is in its whole frame. ARM_MARGIN of the box's width is
# left beside the outermost upper-body joint (an elbow or a wrist, mostly).
FRAMED_TOP, FRAMED_HIPS = 0.02, 0.70
ZOOM_BELOW = 0.85
ARM_MARGIN = 0.05
UPPER_BODY_CIHP = (1, 2, 5, 6, 7, 10, 13, 14, 15)  # hat, hair, upper clothes, dress, coat, neck, face, arms
MAX_WORKING_HEIGHT = 1024  # a larger person box is tried on at this height and scaled back
# Rows of the 3:4 frame a garment photo's landmarks are found in, whatever the working size: the same garment
# read at 768 or 512 rows can take another reading of its sleeves (06802_00's cap sleeves) or be refused (the
# wrap top 04469_00 at 768 rows: its armpits 16% of the body length apart in height).
LANDMARK_HEIGHT = MAX_WORKING_HEIGHT
MIN_PHOTO_SIDE = 32  # pixels: a smaller photo (a 1x1 "person") is refused from its header, like every image here


class InputError(ValueError):
    """An input of a try-on that cannot be used; the message starts with the input's name.

    Args:
        field: the input (a form field, a CLI argument's subject): "person", "pose", "parse"...
        message: what is wrong and, where it helps, what to send instead.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __reduce__(self):  # keep ``field`` across processes (Ray pickles exceptions)
        return type(self), (self.field, self.message)


class MissingInputError(InputError):
    """An input the request lacks and nothing configured can compute; the message says what to send."""


@dataclass
class Uploads:
    """The encoded inputs of one try-on, as uploaded or read from files (see the module docstring).

    Attributes:
        person, garment: encoded photos.
        pose: OpenPose BODY_25 JSON of the person photo, or None.
        parse: CIHP label PNG of the person photo, or None.
        cloth_mask: encoded grayscale garment mask, or None.
        garment_keypoints: JSON of 32 [x, y] pixel keypoints of the garment photo, or None.
        person_name, garment_name: the file names (the sample's names).
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


def _background_distance(image: np.ndarray, chunk_pixels: int = 1 << 18) -> np.ndarray:
    """(H, W) uint8 RGB distance of each pixel to :func:`border_colour`, saturated at 255.

    Computed in strips of about ``chunk_pixels`` pixels, so the float arithmetic never holds more than one strip
    (on the whole (H, W, 3) photo at once it would take 12x the photo's bytes).
    """
    background = border_colour(image).astype(np.float32)
    distance = np.empty(image.shape[:2], np.uint8)
    rows = max(chunk_pixels // image.shape[1], 1)
    for top in range(0, image.shape[0], rows):
        difference = image[top:top + rows].astype(np.float32) - background  # (rows, W, 3)
        distance[top:top + rows] = np.minimum(np.sqrt(np.einsum("hwc,hwc->hw", difference, difference)), 255)
    return distance


def cloth_mask_from_photo(cloth: np.ndarray, tolerance: float = BACKGROUND_TOLERANCE) -> np.ndarray:
    """The garment silhouette of a product photo on a plain background: (H, W) bool.

    A rule, not a segmentation model: pixels farther than a tolerance (RGB distance) from the background colour
    (:func:`border_colour`) are garment candidates. The tolerance is ``tolerance`` for a garment that stands out,
    lower for a pale one: at most ``PALE_TOLERANCE_RATIO`` of the garment's own median distance to the
    background (over every pixel farther than ``MIN_TOLERANCE`` from it: over those past ``tolerance`` alone, a
    white tee's dark print made it stand out in a darker photo, its white body lost), never below
    ``MIN_TOLERANCE``; a garment paler still (white on white) gets ``FLAT_MARGIN`` above the backdrop's own noise
    where that is lower (a flat, cut-out backdrop). So a white or pale garment on white keeps its edges while a
    dark one's shadow stays background. A 3x3 opening drops JPEG speckle, a closing over ``CLOSING`` of the
    garment's height joins the brightest trims, and on a garment that stands out from its backdrop (not a pale
    one, where the backdrop's colour is the garment's own too: the white between a pale top's stripes) the deep
    notches it bridged open onto the backdrop are opened again (:func:`_open_notches`); the largest connected
    candidate region, holes filled (a print the colour of the background stays garment), is the garment. Works
    for the VITON-HD and shop norm (a plain backdrop); a garment the colour of its background or a busy
    background needs a mask from the user. Measured by ``kgi prep eval``.
    """
    distance = _background_distance(cloth)
    core = distance > MIN_TOLERANCE  # the garment, its pale parts too
    stands_out = False  # from its backdrop: the full tolerance, not a pale garment's lower one
    if core.any():
        pale_tolerance = PALE_TOLERANCE_RATIO * float(np.median(distance[core]))  # one median of the whole garment
        stands_out = pale_tolerance >= tolerance
        tolerance = float(np.clip(pale_tolerance, MIN_TOLERANCE, tolerance))
        if pale_tolerance < MIN_TOLERANCE:
            frame = np.concatenate([distance[0], distance[-1], distance[:, 0], distance[:, -1]])  # (2W + 2H,)
            tolerance = min(tolerance, float(np.percentile(frame, 99)) + FLAT_MARGIN)
    candidates = (distance > tolerance).astype(np.uint8)
    del distance, core
    candidates = cv2.morphologyEx(candidates, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    rows = np.flatnonzero(candidates.any(axis=1))
    garment_height = rows[-1] - rows[0] + 1 if rows.size else cloth.shape[0]
    closing = max(3, int(round(CLOSING * garment_height)) | 1)
    closed = cv2.morphologyEx(candidates, cv2.MORPH_CLOSE,
                              cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (closing, closing)))
    if stands_out:
        closed = _open_notches(closed, candidates, closing)
    candidates = closed
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidates, connectivity=8)
    if count < 2:
        return np.zeros(cloth.shape[:2], bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    region = cv2.compare(labels, largest, cv2.CMP_EQ)  # (H, W) uint8 255 on the region
    del labels, candidates  # int32 labels: the largest array here
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros(cloth.shape[:2], np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def _open_notches(closed: np.ndarray, candidates: np.ndarray, closing: int) -> np.ndarray:
    """``closed`` (H, W) uint8 0/1, the closing of ``candidates`` by ``closing`` pixels, with the notches it bridged
    opened again: (H, W) uint8 0/1.

    The closing also bridges the narrow top of a gap that opens onto the backdrop (between a sleeve hanging beside
    the body and the body: a white wedge at the armpit once worn, a pale line down a long sleeve). The backdrop it
    joined there, in pieces (4-connected) that touch the backdrop outside and reach deeper into the garment than
    the closing's width (not the dents of an outline it smooths), is backdrop again, each unless that parts the
    garment (a trim across it). Only uint8 masks and one label image live at a time (a few copies of a channel).
    """
    joined = cv2.subtract(closed, candidates)  # 1 where the closing joined backdrop
    outside = cv2.compare(closed, 0, cv2.CMP_EQ)  # 255 on the backdrop outside
    far = cv2.dilate(outside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * closing + 1,) * 2))
    deep = cv2.bitwise_and(joined, cv2.compare(far, 0, cv2.CMP_EQ))  # nonzero farther than the closing inside
    del far
    if not deep.any():
        return closed
    count, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=4)
    del joined
    cv2.dilate(outside, np.ones((3, 3), np.uint8), dst=outside)
    touching = np.bincount(labels[outside > 0], minlength=count) > 0
    reaching = np.bincount(labels[deep > 0], minlength=count) > 0
    touching[0] = False  # label 0: all but the joined backdrop
    del outside, deep
    notches = []  # each notch's pixels, (rows, columns) in the photo
    for notch in np.flatnonzero(touching & reaching):
        left, top, box_width, box_height = stats[notch, :4]
        rows, columns = np.nonzero(labels[top:top + box_height, left:left + box_width] == notch)
        notches.append((rows + top, columns + left))
    del labels
    parts = cv2.connectedComponents(closed, connectivity=8)[0]
    for rows, columns in notches:
        closed[rows, columns] = 0
        if cv2.connectedComponents(closed, connectivity=8)[0] != parts:
            closed[rows, columns] = 1
    return closed


def person_box(parse: np.ndarray, pose: np.ndarray) -> tuple[int, int, int, int]:
    """The 3:4 box of a person photo a try-on works on: ``(top, left, height, width)``, height a multiple of 4.

    The largest 3:4 box inside the photo (the whole photo when it is 3:4), centred on the person: horizontally on
    the neck (else the median detected joint, else the upper body's parse), vertically on the upper body (the
    parse's hair, face, neck, garment and arms with the pose's joints 0-8). Shifted to lie inside the photo.
    A person small in the photo (:func:`framed_height`: the box that frames them as VITON-HD does is at most
    ``ZOOM_BELOW`` of that one) gets that smaller box instead, the top of the head ``FRAMED_TOP`` of its height
    below its top.

    Args:
        parse: (H, W) uint8 CIHP labels. pose: (25, 3) float32 BODY_25 in pixels (undetected = 0).
    """
    height, width = parse.shape
    box_height, box_width = largest_box(height, width)
    detected = pose[:, 2] > 0
    upper_joints = pose[:UPPER_BODY_JOINTS][detected[:UPPER_BODY_JOINTS], :2]  # (N, 2)
    rows = np.flatnonzero(np.isin(parse, UPPER_BODY_CIHP).any(axis=1))
    columns = np.flatnonzero(np.isin(parse, UPPER_BODY_CIHP).any(axis=0))
    ys = np.concatenate([upper_joints[:, 1], rows[[0, -1]] if rows.size else []])
    xs = np.concatenate([upper_joints[:, 0], columns[[0, -1]] if columns.size else []])
    centre_y = (ys.min() + ys.max()) / 2 if ys.size else height / 2
    if detected[NECK]:
        centre_x = pose[NECK, 0]
    elif detected.any():
        centre_x = np.median(pose[detected, 0])
    else:
        centre_x = (xs.min() + xs.max()) / 2 if xs.size else width / 2
    framed = framed_height(pose, ys.min() if ys.size else None, centre_x)
    top = centre_y - box_height / 2
    if framed is not None and framed <= ZOOM_BELOW * box_height:
        unit = max(int(round(framed / 4)), 1)
        box_height, box_width = 4 * unit, 3 * unit
        top = ys.min() - FRAMED_TOP * box_height
    top = int(np.clip(round(top), 0, height - box_height))
    left = int(np.clip(round(centre_x - box_width / 2), 0, width - box_width))
    return top, left, box_height, box_width


def largest_box(height: int, width: int) -> tuple[int, int]:
    """(height, width) of the largest 3:4 box inside a photo of (``height``, ``width``), height a multiple of 4."""
    unit = min(height // 4, width // 3)
    return 4 * unit, 3 * unit


def framed_height(pose: np.ndarray, head_top: float | None, centre_x: float) -> float | None:
    """The height of the 3:4 box that frames a person as VITON-HD does: the top of the head ``FRAMED_TOP`` of it
    below its top and the mid hip at ``FRAMED_HIPS``, wide enough for the upper body's joints 0-8 (``ARM_MARGIN``
    of its width beside the outermost, the box centred on ``centre_x``); None without a mid hip below the head.

    Args:
        pose: (25, 3) BODY_25 in pixels (undetected = 0). head_top: the upper body's top row (parse and joints).
    """
    if head_top is None or pose[MID_HIP, 2] <= 0 or pose[MID_HIP, 1] <= head_top:
        return None
    framed = (pose[MID_HIP, 1] - head_top) / (FRAMED_HIPS - FRAMED_TOP)
    joints_x = pose[:UPPER_BODY_JOINTS][pose[:UPPER_BODY_JOINTS, 2] > 0, 0]
    if joints_x.size:
        half_width = float(np.abs(joints_x - centre_x).max()) / (1 - 2 * ARM_MARGIN)
        framed = max(framed, 2 * half_width * 4 / 3)
    return float(framed)


def fit_person(person: np.ndarray, parse: np.ndarray, pose: np.ndarray,
               box: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop a person photo, its parse and its pose to ``box`` (default :func:`person_box`).

    Args:
        person: (H, W, 3) uint8. parse: (H, W) uint8 CIHP labels. pose: (25, 3) float32 BODY_25 in pixels.
        box: (top, left, height, width) in the photo.

    Returns the three inside the box; joints that fall outside become undetected, (0, 0, 0).
    """
    top, left, box_height, box_width = person_box(parse, pose) if box is None else box
    pose = pose.copy()
    detected = pose[:, 2] > 0
    pose[detected, :2] -= np.array([left, top], dtype=np.float32)
    outside = (pose[:, 0] < 0) | (pose[:, 0] > box_width) | (pose[:, 1] < 0) | (pose[:, 1] > box_height)
    pose[detected & outside] = 0
    window = (slice(top, top + box_height), slice(left, left + box_width))
    return np.ascontiguousarray(person[window]), np.ascontiguousarray(parse[window]), pose


def paste_back(result: np.ndarray, sample: TryOnSample, photo: np.ndarray) -> np.ndarray:
    """The try-on in the person's own photo: ``result`` (the sample's size) pasted into ``photo`` at the box the
    sample was cut from (``sample.frame``), scaled back to it when the sample was made smaller.

    Pixels the try-on did not change keep the photo's own (full-resolution) values; a sample without a frame
    returns ``result``. Returns an (H, W, 3) uint8 array of the photo's size.
    """
    if sample.frame is None:
        return result
    top, left, box_height, box_width = sample.frame.box
    if photo.shape[:2] != sample.frame.photo_size:
        raise InputError("person", f"photo is {photo.shape[1]}x{photo.shape[0]}, the sample was made from a "
                                   f"{sample.frame.photo_size[1]}x{sample.frame.photo_size[0]} one")
    changed = (result != sample.person).any(axis=2)
    if result.shape[:2] != (box_height, box_width):
        result = resize_rgb(result, box_height, box_width)
        changed = cv2.resize(changed.astype(np.uint8), (box_width, box_height), interpolation=cv2.INTER_LINEAR) > 0
    pasted = photo.copy()
    window = pasted[top:top + box_height, left:left + box_width]
    window[changed] = result[changed]
    return pasted


def fit_garment(garment: np.ndarray, mask: np.ndarray, keypoints: np.ndarray | None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Pad a garment photo, its mask and its keypoints (when given) to 3:4 with the photo's background colour.

    Args:
        garment: (H, W, 3) uint8. mask: (H, W) bool. keypoints: (32, 2) float32 pixels or None.
    """
    height, width = garment.shape[:2]
    pad_x, pad_y = max(round(height * 3 / 4) - width, 0), max(round(width * 4 / 3) - height, 0)
    left, top = pad_x // 2, pad_y // 2
    border = (top, pad_y - top, left, pad_x - left)
    garment = cv2.copyMakeBorder(garment, *border, cv2.BORDER_CONSTANT,
                                 value=[int(c) for c in border_colour(garment)])
    mask = cv2.copyMakeBorder(mask.astype(np.uint8), *border, cv2.BORDER_CONSTANT, value=0).astype(bool)
    if keypoints is not None:
        keypoints = keypoints + np.array([left, top], dtype=np.float32)
    return garment, mask, keypoints


def read_garment_keypoints(data: bytes, width: int, height: int) -> np.ndarray:
    """Parse ``garment_keypoints``: a JSON list of 32 [x, y] pixel positions inside a ``width x height`` photo.

    Returns (32, 2) float32; raises ``InputError``.
    """
    try:
        points = np.asarray(json.loads(data), dtype=np.float64)
    except (ValueError, TypeError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InputError("garment_keypoints", f"not a JSON list of numbers ({exc})") from None
    if points.shape != (NUM_GARMENT_NODES, 2):
        raise InputError("garment_keypoints", f"expected {NUM_GARMENT_NODES} [x, y] pairs, got shape {points.shape}")
    inside = np.isfinite(points).all(axis=1) & (points >= 0).all(axis=1) & (points[:, 0] <= width) \
        & (points[:, 1] <= height)
    if not inside.all():
        raise InputError("garment_keypoints", f"point {int(np.argmin(inside))} is not inside the {width}x{height} "
                                              f"garment photo")
    return points.astype(np.float32)


def _check_pose_inside(pose: np.ndarray, width: int, height: int) -> None:
    detected = pose[:, 2] > 0
    outside = detected & ((pose[:, 0] > width + 1) | (pose[:, 1] > height + 1))
    if outside.any():
        joint = int(np.argmax(outside))
        raise PoseError(f"pose: joint {joint} at ({pose[joint, 0]:.0f}, {pose[joint, 1]:.0f}) lies outside the "
                        f"{width}x{height} person photo; the pose must be computed on this photo")


class Preprocessor:
    """Decodes, checks and normalises try-on inputs (see the module docstring); estimates what they lack.

    Args:
        pose_estimator: estimates the pose of a person photo sent without one (``kgi.pose_estimation``);
            None: every request must send ``pose``.
        parser: computes the parse of a person photo sent without one (``kgi.parsing``); None: every request
            must send ``parse``.
        max_bytes: largest accepted input, per file, checked before decoding (None: no limit).
        max_pixels: largest accepted image, checked from its header before decoding.

    Example::

        preprocessor = Preprocessor(make_pose_estimator("mediapipe"), make_parser("mediapipe"))
        sample = preprocessor(Uploads(person=person_jpeg, garment=garment_jpeg), working_height=256)
    """

    def __init__(self, pose_estimator: PoseEstimator | None = None, parser: HumanParser | None = None, *,
                 max_bytes: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.pose_estimator = pose_estimator
        self.parser = parser
        self.limits = {"max_bytes": max_bytes, "max_pixels": max_pixels, "min_side": MIN_PHOTO_SIDE}

    def __call__(self, uploads: Uploads, working_height: int | None = None) -> TryOnSample:
        """The sample of ``uploads``: the person photo's 3:4 box (:func:`person_box`) at its own size, up to
        ``MAX_WORKING_HEIGHT`` rows, or at ``working_height x 3*working_height/4`` when given. Its ``frame``
        says where it lies in the photo (:func:`paste_back`).

        Raises the ``ValueError`` subclasses of the module docstring, naming the input.
        """
        person, parse, pose, frame, tags = self.framed_person(uploads, working_height)
        height, width = person.shape[:2]

        garment = decode_rgb(uploads.garment, source="garment", **self.limits)
        mask = self._garment_mask(uploads.cloth_mask, garment)
        keypoints = None
        if uploads.garment_keypoints is not None:
            keypoints = read_garment_keypoints(uploads.garment_keypoints, garment.shape[1], garment.shape[0])
        sent_mask = mask
        # Resized to fit a 3:4 frame of LANDMARK_HEIGHT rows and padded to it, where its landmarks are found
        # (the same ones whatever the person photo's size), then resized to the working size.
        frame_height, frame_width = LANDMARK_HEIGHT, width_for(LANDMARK_HEIGHT)
        fit = min(frame_height / garment.shape[0], frame_width / garment.shape[1])
        fit_height, fit_width = max(round(garment.shape[0] * fit), 1), max(round(garment.shape[1] * fit), 1)
        if keypoints is not None:
            keypoints = keypoints * np.array([fit_width / garment.shape[1], fit_height / garment.shape[0]],
                                             dtype=np.float32)
        garment, mask = resize_rgb(garment, fit_height, fit_width), resize_mask(mask, fit_height, fit_width)
        garment, mask, keypoints = fit_garment(garment, mask, keypoints)
        sleeve = None
        if keypoints is None:
            try:
                check_framing(sent_mask)  # on the photo as sent: the padding hides a collar or hem cut off by its edge
                landmarks = flat_garment_keypoints(garment, mask)
            except LandmarkError as exc:
                raise LandmarkError(f"garment: its landmarks cannot be found ({exc})") from None
            keypoints, sleeve = landmarks.keypoints, landmarks.sleeve
        keypoints = keypoints * np.array([width / garment.shape[1], height / garment.shape[0]], dtype=np.float32)
        garment, mask = resize_rgb(garment, height, width), resize_mask(mask, height, width)
        return TryOnSample(person_name=uploads.person_name, cloth_name=uploads.garment_name, person=person,
                           cloth=garment, cloth_mask=mask, parse=parse, pose=pose,
                           cloth_keypoints=keypoints.astype(np.float32), sleeve=sleeve, tags=tags, frame=frame)

    def framed_person(self, uploads: Uploads, working_height: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, PhotoFrame, tuple[str, ...]]:
        """The person half of a sample (``uploads.person``, ``pose`` and ``parse``; the garment is not read):
        the photo's box (:func:`person_box`) at the sample's size, as ``__call__`` makes it. Returns the (h, w, 3)
        photo, its (h, w) CIHP parse, its (25, 3) BODY_25 pose in pixels, the frame and the tags of what was
        estimated."""
        if uploads.pose is None and self.pose_estimator is None and not hasattr(self.parser, "analyse"):
            raise MissingInputError("pose", "not sent and no pose estimator is available: send the person photo's "
                                            "OpenPose BODY_25 JSON as 'pose'")
        if uploads.parse is None and self.parser is None:
            raise MissingInputError("parse", "not sent and no human parser is available: send the person photo's "
                                             "CIHP label PNG (as VITON-HD's image-parse-v3) as 'parse'")
        tags = []
        person = decode_rgb(uploads.person, source="person", **self.limits)
        estimated_pose = None
        if uploads.parse is not None:
            parse = self._read_parse(uploads.parse, person.shape[:2])
        elif hasattr(self.parser, "analyse"):  # the photo parser: pose, parse and photo checks in one call
            estimated_pose, parse = self._analyse(person)
            tags.append("estimated-parse")
        else:
            parse = self._estimate_parse(person)
            tags.append("estimated-parse")
        if uploads.pose is not None:
            pose = self._read_pose(uploads.pose)
        else:
            pose = self._estimate_pose(person) if estimated_pose is None else estimated_pose
            tags.append("estimated-pose")
        _check_pose_inside(pose, person.shape[1], person.shape[0])
        frame = PhotoFrame(photo_size=person.shape[:2], box=person_box(parse, pose))
        person, parse, pose = fit_person(person, parse, pose, frame.box)
        if estimated_pose is not None and uploads.pose is None and frame.box[2] < largest_box(*frame.photo_size)[0]:
            person_analysed = self._analyse_again(person)  # a person small in the photo, at the box's resolution
            if person_analysed is not None:
                pose, parse = person_analysed
        height = working_height or min(frame.box[2], MAX_WORKING_HEIGHT)
        width = width_for(height)
        pose[:, :2] *= np.array([width / person.shape[1], height / person.shape[0]], dtype=np.float32)
        person, parse = resize_rgb(person, height, width), resize_labels(parse, height, width)
        return person, parse, wrists_on_hands(pose, parse), frame, tuple(tags)

    def _read_parse(self, data: bytes, size: tuple[int, int]) -> np.ndarray:
        parse = decode_labels(data, source="parse", **self.limits)
        if parse.shape != size:
            raise InputError("parse", f"{parse.shape[1]}x{parse.shape[0]} does not match the person photo's "
                                      f"{size[1]}x{size[0]}")
        if int(parse.max()) >= NUM_CIHP:
            raise InputError("parse", f"label {int(parse.max())} is not a CIHP label (0..{NUM_CIHP - 1})")
        return parse

    def _estimate_parse(self, person: np.ndarray) -> np.ndarray:
        try:
            parse = self.parser.parse(person)
        except ParsingError as exc:
            raise InputError("person", f"the human parser failed ({exc}); send the CIHP label PNG as 'parse'") from None
        if parse.shape != person.shape[:2] or parse.dtype != np.uint8 or int(parse.max()) >= NUM_CIHP:
            raise RuntimeError(f"{type(self.parser).__name__}.parse returned {parse.dtype} {parse.shape}, not "
                               f"{person.shape[:2]} uint8 CIHP labels")
        return parse

    def _analyse(self, person: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The photo parser's pose and parse; refuses a photo it finds unusable for a try-on, saying why."""
        try:
            pose, parse, problem = self.parser.analyse(person)
        except ParsingError as exc:
            raise InputError("person", f"the human parser failed ({exc}); send the CIHP label PNG as 'parse'") from None
        if problem:
            raise InputError("person", problem)
        return pose, parse

    def _analyse_again(self, box: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The photo parser's pose and parse of a person's box cut from a photo in which they are small (the
        first analysis saw them at the photo's resolution, a parse at ``kgi.photo_parsing.parse.WORK_HEIGHT`` rows
        of the whole photo); None where the box alone fails the photo checks (a hip at its edge) or the parser:
        the first analysis, cropped, stands."""
        try:
            return self._analyse(box)
        except InputError:
            return None

    def _read_pose(self, data: bytes) -> np.ndarray:
        if self.limits["max_bytes"] is not None and len(data) > self.limits["max_bytes"]:
            raise InputError("pose", f"{len(data)} bytes exceeds the limit of {self.limits['max_bytes']} bytes")
        return parse_openpose(data, source="pose")

    def _estimate_pose(self, person: np.ndarray) -> np.ndarray:
        if self.pose_estimator is None:  # the photo parser estimates poses too
            return self._analyse(person)[0]
        try:
            return self.pose_estimator.estimate(person)
        except PoseEstimationError as exc:
            raise InputError("person", f"the pose estimator failed ({exc}); send the OpenPose BODY_25 JSON as "
                                       f"'pose'") from None

    def _garment_mask(self, data: bytes | None, garment: np.ndarray) -> np.ndarray:
        """The sent mask (checked against the photo) or the computed one; refuses an empty or full one."""
        if data is not None:
            mask = decode_gray(data, source="cloth_mask", **self.limits) >= MASK_THRESHOLD
            if mask.shape != garment.shape[:2]:
                raise InputError("cloth_mask", f"{mask.shape[1]}x{mask.shape[0]} does not match the garment "
                                               f"photo's {garment.shape[1]}x{garment.shape[0]}")
        else:
            mask = cloth_mask_from_photo(garment)
        if not MIN_GARMENT_FRACTION <= mask.mean() <= MAX_GARMENT_FRACTION:
            field, advice = ("cloth_mask", "send the garment's silhouette") if data is not None else \
                ("garment", "send a product photo on a plain background, or a cloth_mask")
            raise InputError(field, f"no garment silhouette: the mask covers {mask.mean():.0%} of the photo "
                                    f"({advice})")
        return mask
