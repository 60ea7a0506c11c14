"""A human parser for genuine photos from mediapipe's shipped models and classical image analysis.

This module runs in the pose environment's worker process (``kgi.pose_estimation``: mediapipe cannot share
Ray's environment), next to BlazePose, so one call gives the pose and the parse of a photo together. It imports
only numpy and OpenCV (mediapipe's models are run by ``kgi.pose_estimation.MediaPipePose``, which hands their
outputs here as plain arrays):

- ``landmarks``: BlazePose's 33 landmarks (x px, y px, visibility);
- ``person``: the probability that a pixel is the person: the mean of BlazePose's segmentation mask and the
  selfie-segmentation model's;
- ``face``: the face mesh's 468 points (x px, y px), or None when no face was found.

From these :func:`parse_photo` builds the CIHP labels of VITON-HD's ``image-parse-v3``, at a working height of
``WORK_HEIGHT`` pixels (labels are then scaled back to the photo):

1. **person**: the mask probability, edge-aligned to the photo with a guided filter, above 0.5; its components
   smaller than a tenth of the largest are dropped;
2. **skin**: a Gaussian colour model (CIE Lab) learnt from the face mesh's cheeks and forehead (lightness is
   given a wider spread than colour, so shaded skin stays skin). A pixel near it is skin when the model explains
   it better than the garments' colour histograms do; near the hands, on the neck and on the legs below a skirt,
   skin has a prior over the garments. That skin is then refined by GrabCut over the person (colour mixtures of
   skin and of the rest, cut along the photo's edges; sure skin where the colour model is confident, surely not
   where the garment seeds are, away from skin): the shaded edges of arms and legs, and fingers, join it. Each
   skin pixel goes to the nearest body part of the skeleton: an arm (CIHP left/right arm, hands included, and
   no farther than a hand's length past the wrist), a leg, or the head-neck-torso line (neck and chest skin:
   CIHP torso-skin); in a skin region mostly nearest an arm, leg and belly pixels are the arm's (fingers along a
   thigh or across the belly);
3. **face**: the face mesh's outline, less a fringe (above the brows, pixels unlike the cheeks in colour and in
   texture that join the hair), plus a high forehead; **hair**: the person above the face outline and, beside
   the face, what is not skin; then the pixels near the head whose colour is likelier hair than skin or upper
   garment (smoothed colour histograms) and that touch it (long hair on the shoulders), never the neck; then
   GrabCut around the head decides the hair's edges, with the face inside its outline, the pixels like the
   cheeks, the neck's core and the garment as surely not hair;
4. **garments**: the rest of the person is upper or lower garment. Each has a colour histogram learnt from
   seed regions the skeleton gives (the chest and upper arms; the thighs), and a boundary row is fitted where
   their likelihood ratio changes sign along the torso. Each pixel then takes the garment of larger
   likelihood ratio plus a prior that falls across that row (not on the sleeves: down an arm to its first bare
   row), smoothed over a small neighbourhood; garment left above the chin is the face's or the hair's rim; the
   feet, when in view, are shoes;
5. regions of one label too small to matter take their neighbours' label, and the labels are scaled back to
   the photo smoothly, the photo's full-size person mask deciding person from background.

The same cues answer whether a photo can be tried on at all (:func:`photo_problem`): one person, shoulders and
hips in view, large enough, facing the camera. Each refusal says what to send instead.
"""

from __future__ import annotations

import cv2
import numpy as np

WORK_HEIGHT = 512  # pixels: the parse is computed at this height, then scaled back to the photo

# CIHP labels (kgi.data.labels.CIHP_LABELS; repeated here: this module runs without kgi's dependencies).
BACKGROUND, HAIR, UPPER, PANTS, TORSO_SKIN, SKIRT, FACE = 0, 2, 5, 9, 10, 12, 13
LEFT_ARM, RIGHT_ARM, LEFT_LEG, RIGHT_LEG, LEFT_SHOE, RIGHT_SHOE = 14, 15, 16, 17, 18, 19

# BlazePose landmarks (the person's own left and right).
NOSE, LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = 0, 11, 12, 13, 14, 15, 16
LEFT_HAND, RIGHT_HAND = (17, 19, 21), (18, 20, 22)  # pinky, index, thumb
LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE = 23, 24, 25, 26, 27, 28
LEFT_FOOT, RIGHT_FOOT = (29, 31), (30, 32)  # heel, foot index
MIN_VISIBILITY = 0.5

# Face mesh: the face outline, in order around the face, and the chin.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176,
             149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
CHIN = 152
BROWS = (105, 66, 107, 336, 296, 334)  # the eyebrows' upper edge
# Face mesh points on the cheeks and forehead: bare skin, away from eyes, brows and lips. The cheeks are never
# under hair; the forehead may be (a fringe), so the fringe is judged against the cheeks alone.
CHEEK_PATCHES = ((50, 101, 36, 205), (280, 330, 266, 425))
SKIN_PATCHES = (*CHEEK_PATCHES, (108, 151, 337, 9))

# Skin: Mahalanobis distance (Lab) to the face's colour below which a pixel is skin; lightness spread widened.
SKIN_DISTANCE = 3.0
SKIN_DISTANCE_MAX = 5.0  # ... and beyond which it never is, however unlike the garments it looks
# ... except within HAND_REACH limb widths of a hand's landmarks (and near the legs' lines below a skirt), where
# skin may be farther and has a prior (log-odds) of HAND_PRIOR against the garments: hands are bare, often shaded.
HAND_SKIN_DISTANCE, HAND_REACH, HAND_PRIOR = 7.0, 0.6, 3.0
HAND_LENGTH = 2.0  # a hand ends this many times the wrist-to-finger-landmark distance from the wrist
SKIN_LIGHTNESS_SPREAD = 1.8
MIN_PART_FRACTION = 0.002  # a region of one label smaller than this fraction of the person is relabelled
NECK_WIDTH = 0.8  # the neck's width as a fraction of the face's
NECK_CORE = 0.3  # face widths either side of the neck's line where skin-coloured pixels are surely not hair
# Above the brows, a pixel farther than FRINGE_DISTANCE from the cheeks' colour and FRINGE_TEXTURE times as
# detailed is hair (a fringe).
FRINGE_DISTANCE, FRINGE_TEXTURE = 3.0, 3.0
FOREHEAD_REACH = 0.25  # a forehead may reach this fraction of the face's height above the face mesh outline
FRINGE_MARGIN = 1.0  # log-likelihood ratio by which a pixel of the forehead must be likelier hair than skin
HAIR_FACE_MARGIN = 0.08  # face widths: the face outline shrunk by this is surely not hair
GRAB_CUT_SCALE = 0.5  # the GrabCut refinements of hair and skin run at this fraction of the working size
MIN_GRAB_CUT_PIXELS = 50  # ... when each side has this many pixels to learn its colours from (else skipped)
HIST_BINS = 16  # per Lab channel, for the garment and hair colour histograms

# Photo checks.
# Shoulders-to-hips distance in the photo, in pixels, below which the person is too small to try on (VITON-HD's
# 1024x768 people have about 350). Only pixels count: a person small in a large photo is cropped around (fit_person).
MIN_TORSO_PIXELS = 100
MIN_SHOULDER_RATIO = 0.35  # shoulder width / torso length below it: the person is turned sideways
SECOND_PERSON_FRACTION = 0.3  # a second face or silhouette this large, relative to the first, is a person


def _points(landmarks: np.ndarray, indices) -> np.ndarray:
    return landmarks[list(indices), :2].mean(axis=0)


def _visible(landmarks: np.ndarray, index: int, width: int, height: int, margin: float = 0.0) -> bool:
    x, y, visibility = landmarks[index]
    return visibility >= MIN_VISIBILITY and -margin * width <= x < width * (1 + margin) and \
        -margin * height <= y < height * (1 - margin)


def person_mask(rgb: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """(H, W) bool: ``probability`` (H, W) float in [0, 1] edge-aligned to ``rgb`` and thresholded at 0.5;
    components under a tenth of the largest are dropped."""
    guide = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    radius = max(2, rgb.shape[0] // 128)
    refined = cv2.ximgproc.guidedFilter(guide, probability.astype(np.float32), radius, 1e-3 * 255 ** 2)
    mask = (refined > 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 2:
        return mask.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.concatenate([[False], areas >= areas.max() / 10])
    return keep[labels]


def _distance_to(mask: np.ndarray) -> np.ndarray:
    """(H, W) float32 distance of each pixel to the nearest pixel of ``mask`` (1e6 everywhere for an empty one)."""
    if not mask.any():
        return np.full(mask.shape, 1e6, np.float32)
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)


def _line_distance(shape: tuple[int, int], polyline: list[np.ndarray]) -> np.ndarray:
    """(H, W) float32 distance of each pixel to a polyline of (2,) pixel points."""
    canvas = np.full(shape, 255, np.uint8)
    points = np.round(np.stack(polyline)).astype(np.int32)
    cv2.polylines(canvas, [points.reshape(-1, 1, 2)], False, 0, 1)
    return np.minimum(cv2.distanceTransform(canvas, cv2.DIST_L2, 3), 1e6)  # a line wholly outside: far


def _arm_distance(shape: tuple[int, int], marks: np.ndarray, shoulder: int, elbow: int, wrist: int,
                  hand: tuple[int, ...]) -> np.ndarray:
    """(H, W) distance to an arm: shoulder, elbow, wrist, and from the wrist to each finger landmark; beyond the
    wrist (along the forearm) no farther than HAND_LENGTH times the farthest finger landmark (1e6 there: the
    thigh under a hanging hand is not the hand's)."""
    distance = np.minimum(_line_distance(shape, [marks[shoulder, :2], marks[elbow, :2], marks[wrist, :2]]),
                          _hand_distance(shape, marks, wrist, hand))
    reach = HAND_LENGTH * max(float(np.linalg.norm(marks[finger, :2] - marks[wrist, :2])) for finger in hand)
    rows, columns = np.indices(shape, dtype=np.float32)
    offset_x, offset_y = columns - marks[wrist, 0], rows - marks[wrist, 1]
    forearm = marks[wrist, :2] - marks[elbow, :2]
    beyond = (offset_x * forearm[0] + offset_y * forearm[1] > 0) & (np.hypot(offset_x, offset_y) > reach)
    distance[beyond] = 1e6
    return distance


def _hand_distance(shape: tuple[int, int], marks: np.ndarray, wrist: int, hand: tuple[int, ...]) -> np.ndarray:
    """(H, W) distance to a hand: the segments from the wrist to each finger landmark."""
    distance = np.full(shape, 1e6, np.float32)
    for finger in hand:
        distance = np.minimum(distance, _line_distance(shape, [marks[wrist, :2], marks[finger, :2]]))
    return distance


def _skin_model(lab: np.ndarray, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian fitted (robustly) to ``samples`` (N, 3) Lab colours, evaluated on ``lab`` (H, W, 3): the
    (H, W) Mahalanobis distance and log density (per unit Lab volume, comparable with :func:`_histogram`'s)."""
    mean = np.median(samples, axis=0)
    covariance = np.cov(samples.T) + np.eye(3) * 4.0
    for _ in range(2):  # refit on the samples near the model: drops stray eyebrow, lip or hair pixels
        inverse = np.linalg.inv(covariance)
        difference = samples - mean
        near = np.einsum("ni,ij,nj->n", difference, inverse, difference) < 6.0 ** 2
        if near.sum() > 20:
            mean, covariance = samples[near].mean(axis=0), np.cov(samples[near].T) + np.eye(3) * 4.0
    scale = np.array([SKIN_LIGHTNESS_SPREAD, 1.0, 1.0])
    covariance = covariance * np.outer(scale, scale)
    difference = lab.reshape(-1, 3) - mean
    squared = np.einsum("ni,ij,nj->n", difference, np.linalg.inv(covariance), difference).reshape(lab.shape[:2])
    log_density = -0.5 * squared - 0.5 * np.log((2 * np.pi) ** 3 * np.linalg.det(covariance))
    return np.sqrt(squared).astype(np.float32), log_density.astype(np.float32)


def _histogram(quantised: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """A smoothed, normalised (HIST_BINS**3,) colour histogram of the ``mask`` pixels, or None for too few."""
    values = quantised[mask]
    if values.size < 50:
        return None
    counts = np.bincount(values, minlength=HIST_BINS ** 3).astype(np.float64).reshape((HIST_BINS,) * 3)
    for axis in range(3):  # [1, 2, 1] smoothing along each colour axis
        padded = np.pad(counts, [(1, 1) if a == axis else (0, 0) for a in range(3)], mode="edge")
        counts = (np.take(padded, range(0, HIST_BINS), axis) + 2 * np.take(padded, range(1, HIST_BINS + 1), axis)
                  + np.take(padded, range(2, HIST_BINS + 2), axis)) / 4
    return (counts.ravel() + 0.5) / (counts.sum() + 0.5 * HIST_BINS ** 3) / (256 / HIST_BINS) ** 3


def parse_photo(rgb: np.ndarray, landmarks: np.ndarray, person: np.ndarray, face: np.ndarray | None
                ) -> np.ndarray:
    """The CIHP parse of a photo of one person from mediapipe's cues (see the module docstring).

    Args:
        rgb: (H, W, 3) uint8 photo.
        landmarks: (33, 3) BlazePose landmarks (x px, y px, visibility) in pixels of ``rgb``.
        person: (H, W) float32 probability of the person.
        face: (468, 2) face mesh points in pixels of ``rgb``, or None.

    Returns (H, W) uint8 CIHP labels.
    """
    height, width = rgb.shape[:2]
    scale = WORK_HEIGHT / height
    size = (max(1, round(width * scale)), WORK_HEIGHT)
    image = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    marks = landmarks.astype(np.float64).copy()
    marks[:, :2] *= scale
    face = None if face is None else face.astype(np.float64) * scale
    labels = _parse_working(image, marks, cv2.resize(person, size, interpolation=cv2.INTER_LINEAR), face)
    if (height, width) == labels.shape:
        return labels
    return _upsample_labels(labels, person_mask(rgb, person))


def _upsample_labels(labels: np.ndarray, person: np.ndarray) -> np.ndarray:
    """Working-size labels to the photo's (H, W): each label's mask, lightly blurred, scaled up bilinearly, and
    the likeliest label taken per pixel (smooth edges, not blocks); the photo's own person mask (at full size)
    then decides person from background, a person pixel taking its likeliest label other than background."""
    height, width = person.shape
    present = np.unique(labels)
    masks = (labels[..., None] == present).astype(np.uint8) * 255  # (h, w, labels): one channel per label
    scores = np.empty((height, width, len(present)), np.uint8)
    for first in range(0, len(present), 4):  # OpenCV filters up to 4 channels at a time
        chunk = np.ascontiguousarray(masks[..., first:first + 4])
        blurred = cv2.GaussianBlur(chunk, (0, 0), 1.0).reshape(chunk.shape)
        scores[..., first:first + 4] = cv2.resize(blurred, (width, height), interpolation=cv2.INTER_LINEAR
                                                  ).reshape(height, width, -1)
    background = int(np.searchsorted(present, BACKGROUND)) if present[0] == BACKGROUND else None
    if background is not None:  # the full-size mask decides the person
        scores[..., background] = np.where(person, 0, 255)
    return present.astype(np.uint8)[np.argmax(scores, axis=2)]


def _parse_working(image: np.ndarray, marks: np.ndarray, probability: np.ndarray, face: np.ndarray | None
                   ) -> np.ndarray:
    h, w = image.shape[:2]
    shape = (h, w)
    person = person_mask(image, probability)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    rows = np.arange(h, dtype=np.float32)[:, None].repeat(w, 1)

    shoulders = (marks[LEFT_SHOULDER, :2] + marks[RIGHT_SHOULDER, :2]) / 2
    hips = (marks[LEFT_HIP, :2] + marks[RIGHT_HIP, :2]) / 2
    torso = max(float(np.linalg.norm(hips - shoulders)), 8.0)
    limb = max(torso * 0.12, 3.0)  # about half a limb's width

    # Face, and the skin colour model learnt from it.
    face_region = np.zeros(shape, bool)
    chin_y = shoulders[1] - 0.2 * torso
    if face is not None:
        outline = np.zeros(shape, np.uint8)
        cv2.fillPoly(outline, [np.round(face[list(FACE_OVAL)]).astype(np.int32)], 1)
        face_region = outline.astype(bool) & person
        chin_y = face[CHIN, 1]
        patches = np.zeros(shape, np.uint8)  # filled below: the cheek and forehead skin
        for patch in SKIN_PATCHES:
            cv2.fillConvexPoly(patches, np.round(face[list(patch)]).astype(np.int32), 1)
        face_skin = patches.astype(bool)
        patches[:] = 0
        for patch in CHEEK_PATCHES:
            cv2.fillConvexPoly(patches, np.round(face[list(patch)]).astype(np.int32), 1)
        cheeks = patches.astype(bool)
        cheek_distance = _skin_model(lab, lab[cheeks])[0] if cheeks.sum() >= 20 else np.full(shape, 1e3, np.float32)
    else:
        face_skin = cheeks = np.zeros(shape, bool)
    samples = lab[face_skin]
    if len(samples) < 20:  # no face found: a generic skin colour (Lab of a medium skin tone)
        samples = np.array([[160.0, 145.0, 145.0]]) + np.random.default_rng(0).normal(0, 8, (200, 3))
    skin_distance, skin_density = _skin_model(lab, samples)
    skin = (skin_distance < SKIN_DISTANCE) & person
    skin = cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)

    # Distances to the skeleton's parts: head-neck-torso, arms, legs.
    head = marks[NOSE, :2] if face is None else face[list(FACE_OVAL)].mean(axis=0)
    face_width = 0.5 * torso if face is None else float(np.ptp(face[list(FACE_OVAL), 0]))
    parts = {
        TORSO_SKIN: _line_distance(shape, [head, shoulders, hips]),
        LEFT_ARM: _arm_distance(shape, marks, LEFT_SHOULDER, LEFT_ELBOW, LEFT_WRIST, LEFT_HAND),
        RIGHT_ARM: _arm_distance(shape, marks, RIGHT_SHOULDER, RIGHT_ELBOW, RIGHT_WRIST, RIGHT_HAND),
        LEFT_LEG: _line_distance(shape, [marks[LEFT_HIP, :2], marks[LEFT_KNEE, :2], marks[LEFT_ANKLE, :2]]),
        RIGHT_LEG: _line_distance(shape, [marks[RIGHT_HIP, :2], marks[RIGHT_KNEE, :2], marks[RIGHT_ANKLE, :2]]),
    }
    # Skin goes to the nearest part; hands hang beside the thighs, so the legs count from farther away, and
    # the neck is nearer the torso line than a shoulder's point.
    weights = {TORSO_SKIN: 0.7, LEFT_ARM: 1.0, RIGHT_ARM: 1.0, LEFT_LEG: 1.5, RIGHT_LEG: 1.5}
    names = list(parts)
    nearest = np.array(names, np.uint8)[np.argmin(np.stack([parts[n] * weights[n] for n in names]), axis=0)]
    arm_distance = np.minimum(parts[LEFT_ARM], parts[RIGHT_ARM])

    # Hair. Seeds: the person above the face outline's top, and beside the face (above the chin) what is not
    # skin. Colour histograms: hair (those seeds), skin (the face patches) and upper garment (the chest and upper
    # arms). Near the head, a pixel likelier hair than both, after smoothing, is hair when it touches the seeds
    # (long hair on the shoulders, brown hair beside a face of the same hue), unless it is skin on the neck's
    # line; in the face outline above the brows it is a fringe.
    quantised = (lab.astype(np.int32) * HIST_BINS // 256)
    quantised = (quantised[..., 0] * HIST_BINS + quantised[..., 1]) * HIST_BINS + quantised[..., 2]
    top_y = chin_y if face is None else face[list(FACE_OVAL), 1].min()
    hair = person & ((rows < top_y) | (rows < chin_y) & ~skin) & ~face_region
    garment = person & ~skin & ~face_region & ~hair
    upper_seed = garment & (rows > shoulders[1] + 0.15 * torso) & (rows < shoulders[1] + 0.55 * torso) & \
        (parts[TORSO_SKIN] < 0.3 * torso)
    upper_seed |= garment & (arm_distance < limb) & (rows < hips[1] - 0.1 * torso)
    upper_hist = _histogram(quantised, upper_seed)
    hair_hist = _histogram(quantised, hair)
    seeds = hair.copy()
    skin_hist = _histogram(quantised, face_skin)
    if hair_hist is not None:
        sigma = max(1.0, 0.006 * h)
        log_hair = cv2.GaussianBlur(np.log(hair_hist[quantised]).astype(np.float32), (0, 0), sigma)
        rivals = [cv2.GaussianBlur(np.log(hist[quantised]).astype(np.float32), (0, 0), sigma)
                  for hist in (skin_hist, upper_hist) if hist is not None]
        margin = log_hair - np.maximum.reduce(rivals) if rivals else np.full(shape, np.inf, np.float32)
        hairlike = margin > 0
        if face is not None:
            brows_y = face[list(BROWS), 1].mean() - 0.03 * (chin_y - top_y)
            fringe = _fringe(lab, quantised, face_region & (rows < brows_y), cheeks, cheek_distance, hair, hair_hist,
                             sigma)
            hair |= fringe
            face_region &= ~fringe
            # A high forehead reaches above the outline: skin just above it that is not likelier hair is face.
            outline_x = face[list(FACE_OVAL), 0]
            columns = np.arange(w)[None, :]
            forehead = person & skin & (margin < FRINGE_MARGIN) & (rows < top_y) & \
                (rows > top_y - FOREHEAD_REACH * (chin_y - top_y)) & (columns > np.percentile(outline_x, 25)) & \
                (columns < np.percentile(outline_x, 75))
            face_region |= forehead
            hair &= ~forehead
        neck = (rows > chin_y) & (skin_distance < SKIN_DISTANCE_MAX) & \
            (_line_distance(shape, [head, shoulders]) < NECK_WIDTH * face_width / 2)
        candidates = person & ~face_region & ~neck & (rows < shoulders[1] + 0.6 * torso) & hairlike
        count, components = cv2.connectedComponents((candidates | hair).astype(np.uint8), connectivity=8)
        touching = np.zeros(count, bool)
        touching[np.unique(components[hair])] = True
        touching[0] = False
        hair |= touching[components] & candidates
        if face is not None:
            hair = _refine_hair(image, person, hair, seeds, face_region, upper_seed | cheeks, cheek_distance,
                                skin_distance, face, head, shoulders, chin_y, face_width, torso)
            face_region &= ~hair
    garment &= ~hair
    skin &= ~hair

    # Garments: upper against lower, by colour and by a boundary row fitted along the torso.
    legs = np.minimum(parts[LEFT_LEG], parts[RIGHT_LEG])
    lower_seed = garment & (rows > hips[1] + 0.1 * torso) & (rows < hips[1] + 0.7 * torso) & (legs < 2 * limb) & \
        (arm_distance > 1.5 * limb)
    lower_hist = _histogram(quantised, lower_seed)
    # Skin again, now against the garments' own colours: a pixel near the face's colour is skin when the skin
    # model explains it better than either garment's histogram (bright forearms on a white top stay skin, a
    # top the colour of skin stays garment).
    # Hands are bare: near the hand landmarks, shaded skin (farther from the face's colour) may still be skin;
    # so are legs near their skeleton lines well below the hips (under a skirt).
    bare = np.minimum(_hand_distance(shape, marks, LEFT_WRIST, LEFT_HAND),
                       _hand_distance(shape, marks, RIGHT_WRIST, RIGHT_HAND)) < HAND_REACH * limb
    bare |= (legs < limb) & (rows > hips[1] + 0.3 * torso)
    bare |= (rows > chin_y) & (rows < shoulders[1]) & (_line_distance(shape, [head, shoulders]) < 0.5 * face_width)
    rivals = [hist for hist in (upper_hist, lower_hist) if hist is not None]
    if rivals:
        garment_density = np.log(np.maximum.reduce(rivals)[quantised])
        reach = np.where(bare, HAND_SKIN_DISTANCE, SKIN_DISTANCE_MAX)
        skin = person & ~face_region & ~hair & (skin_distance < reach) & \
            (skin_density + np.where(bare, HAND_PRIOR, 0.0) > garment_density)
        skin = cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
        skin = _refine_skin(image, person, skin, skin_distance, face_region | hair, upper_seed | lower_seed,
                            max(1, round(limb / 2)))
        garment = person & ~skin & ~face_region & ~hair
    upper = garment.copy()
    if upper_hist is not None and lower_hist is not None:
        ratio = np.clip(np.log(upper_hist[quantised]) - np.log(lower_hist[quantised]), -4, 4).astype(np.float32)
        boundary = _boundary_row(ratio, garment & (parts[TORSO_SKIN] < 0.35 * torso), shoulders[1] + 0.5 * torso,
                                 hips[1] + 0.5 * torso, default=hips[1])
        prior = np.clip((boundary - rows) / (0.1 * torso), -3, 3)
        sleeves = _sleeves(parts, skin, marks, limb)
        prior[sleeves] = np.maximum(prior[sleeves], 0)  # sleeves hang low
        score = np.where(garment, ratio + prior, 0).astype(np.float32)
        sigma = max(1.0, 0.01 * h)
        score = cv2.GaussianBlur(score, (0, 0), sigma) / np.maximum(
            cv2.GaussianBlur(garment.astype(np.float32), (0, 0), sigma), 1e-3)
        upper = garment & (score > 0)
    lower = garment & ~upper
    # No garment reaches above the chin: what the rules left there is the face's or the hair's rim, whichever is
    # nearer.
    above_chin = garment & (rows < chin_y)
    if above_chin.any() and (face_region.any() or hair.any()):
        to_face = _distance_to(face_region) <= _distance_to(hair)
        face_region |= above_chin & to_face
        hair |= above_chin & ~to_face
        upper &= ~above_chin
        lower &= ~above_chin

    labels = np.zeros(shape, np.uint8)
    labels[upper] = UPPER
    labels[lower] = PANTS
    labels[skin] = _limbs_by_region(nearest, skin, shoulders[1] + 0.5 * torso)[skin]
    labels[hair] = HAIR
    labels[face_region] = FACE
    # Leg skin below a lower garment makes it a skirt (CIHP tells skirts from trousers; both are "bottom").
    if lower.any() and (labels == LEFT_LEG).sum() + (labels == RIGHT_LEG).sum() > 0.2 * lower.sum():
        labels[lower] = SKIRT
    _label_shoes(labels, marks, garment, limb)
    return _drop_specks(labels, person, MIN_PART_FRACTION * person.sum())


def _fringe(lab: np.ndarray, quantised: np.ndarray, forehead: np.ndarray, cheeks: np.ndarray,
            cheek_distance: np.ndarray, hair: np.ndarray, hair_hist: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) bool: the pixels of ``forehead`` (the face outline above the brows) under a fringe: unlike the
    cheeks' skin in colour (farther than FRINGE_DISTANCE from their colour model) and in texture (strands: fine
    detail FRINGE_TEXTURE times the cheeks'), both smoothed over ``sigma`` pixels, and joined to the ``hair``."""
    cheek_hist = _histogram(quantised, cheeks)
    if cheek_hist is None or not forehead.any():  # cheeks too small to learn from: no fringe
        return np.zeros(forehead.shape, bool)
    distance = cv2.GaussianBlur(cheek_distance, (0, 0), sigma)
    lightness = lab[..., 0]
    detail = cv2.GaussianBlur(np.abs(lightness - cv2.GaussianBlur(lightness, (0, 0), 1.0)), (0, 0), sigma)
    texture = detail / max(float(np.median(detail[cheeks])), 0.5)
    hairlike = cv2.GaussianBlur((np.log(hair_hist[quantised]) - np.log(cheek_hist[quantised])).astype(np.float32),
                                (0, 0), sigma) > 0
    fringe = forehead & (distance > FRINGE_DISTANCE) & (texture > FRINGE_TEXTURE) & hairlike
    count, components = cv2.connectedComponents((fringe | hair).astype(np.uint8), connectivity=8)
    joined = np.zeros(count, bool)
    joined[np.unique(components[hair])] = True
    joined[0] = False
    return fringe & joined[components]


def _refine_hair(image: np.ndarray, person: np.ndarray, hair: np.ndarray, seeds: np.ndarray, face_region: np.ndarray,
                 not_hair: np.ndarray, cheek_distance: np.ndarray, skin_distance: np.ndarray, face: np.ndarray,
                 head: np.ndarray, shoulders: np.ndarray, chin_y: float, face_width: float, torso: float
                 ) -> np.ndarray:
    """The hair around the head (a box from the image's top to the shoulders, three face widths wide), cut by
    :func:`_graph_cut` from the colour-rule ``hair`` (probable), with as sure hair the ``seeds`` away from the
    face and unlike skin, and as surely not hair: the background, ``not_hair`` (garment seeds, cheeks), the face
    inside its outline below the brows, face pixels like the cheeks' skin, and the neck's core. (H, W) bool."""
    height, width = person.shape
    rows = np.arange(height)[:, None]
    inner = cv2.erode(face_region.astype(np.uint8), np.ones((3, 3), np.uint8),
                      iterations=max(1, round(HAIR_FACE_MARGIN * face_width))).astype(bool)
    neck_core = (rows > chin_y + 0.05 * face_width) & (skin_distance < SKIN_DISTANCE) & \
        (_line_distance(person.shape, [head, shoulders]) < NECK_CORE * face_width)
    sure_not = ~person | not_hair | inner & (rows > face[list(BROWS), 1].max()) | neck_core | \
        face_region & (cheek_distance < SKIN_DISTANCE)
    away = cv2.distanceTransform((~face_region).astype(np.uint8), cv2.DIST_L2, 3) > 1.5 * HAIR_FACE_MARGIN * face_width
    mask = np.where(hair, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    mask[seeds & away & (skin_distance > SKIN_DISTANCE) & person] = cv2.GC_FGD
    mask[sure_not] = cv2.GC_BGD
    box = (0, int(min(shoulders[1] + 0.6 * torso, height)), int(max(head[0] - 1.6 * face_width, 0)),
           int(min(head[0] + 1.6 * face_width, width)))
    refined = _graph_cut(image, mask, box, iterations=2)
    return hair if refined is None else refined & person


def _refine_skin(image: np.ndarray, person: np.ndarray, skin: np.ndarray, skin_distance: np.ndarray,
                 not_skin: np.ndarray, garment_seed: np.ndarray, reach: int) -> np.ndarray:
    """The skin of the person's box cut by :func:`_graph_cut` from the colour-rule ``skin`` (probable): sure
    skin where it is also near the face's colour (eroded), surely not skin: the background, ``not_skin`` (hair,
    face: labelled already) and the garment seeds farther than ``reach`` pixels from skin. Shaded edges of arms
    and legs, and fingers, join the skin where the colour rule missed them. (H, W) bool."""
    ys, xs = np.nonzero(person)
    if len(ys) == 0:
        return skin
    mask = np.where(skin, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    core = skin & (skin_distance < SKIN_DISTANCE)
    mask[cv2.erode(core.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)] = cv2.GC_FGD
    near_skin = cv2.dilate(skin.astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)).astype(bool)
    mask[~person | not_skin | garment_seed & ~near_skin] = cv2.GC_BGD
    refined = _graph_cut(image, mask, (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1), iterations=2)
    return skin if refined is None else refined & person & ~not_skin


def _graph_cut(image: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], iterations: int
               ) -> np.ndarray | None:
    """OpenCV's GrabCut (colour mixtures of the two sides, cut along the image's edges) of ``image`` within
    ``box`` (top, bottom, left, right), from ``mask`` (H, W) of cv2.GC_* labels, at GRAB_CUT_SCALE of the size
    (the sure labels are kept at full size). Returns the (H, W) bool foreground (False outside the box), or None
    when the box lacks sure pixels of either side, or pixels to learn either side's colours from."""
    top, bottom, left, right = box
    window = np.ascontiguousarray(mask[top:bottom, left:right])
    if not ((window == cv2.GC_FGD).any() and (window == cv2.GC_BGD).any()):
        return None
    size = (max(1, round((right - left) * GRAB_CUT_SCALE)), max(1, round((bottom - top) * GRAB_CUT_SCALE)))
    small = cv2.resize(window, size, interpolation=cv2.INTER_NEAREST)
    sides = np.isin(small, (cv2.GC_FGD, cv2.GC_PR_FGD))
    if not ((small == cv2.GC_FGD).any() and (small == cv2.GC_BGD).any()) or \
            min(sides.sum(), (~sides).sum()) < MIN_GRAB_CUT_PIXELS:
        return None
    picture = cv2.resize(image[top:bottom, left:right], size, interpolation=cv2.INTER_AREA)
    background, foreground = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)  # GrabCut starts its colour mixtures by k-means: the same photo, the same parse
    cv2.grabCut(picture, small, None, background, foreground, iterations, cv2.GC_INIT_WITH_MASK)
    chosen = ((small == cv2.GC_FGD) | (small == cv2.GC_PR_FGD)).astype(np.float32)
    chosen = cv2.resize(chosen, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR) > 0.5
    chosen = np.where(window == cv2.GC_FGD, True, np.where(window == cv2.GC_BGD, False, chosen))
    foreground_mask = np.zeros(mask.shape, bool)
    foreground_mask[top:bottom, left:right] = chosen
    return foreground_mask


def _drop_specks(labels: np.ndarray, person: np.ndarray, min_area: float) -> np.ndarray:
    """Relabel each connected region of one label smaller than ``min_area`` pixels with the label of the
    nearest pixel outside such regions (a few stray pixels would otherwise claim a whole class)."""
    specks = np.zeros(labels.shape, bool)
    for label in np.unique(labels[person]):
        count, components, stats, _ = cv2.connectedComponentsWithStats((labels == label).astype(np.uint8), 8)
        small = np.concatenate([[False], stats[1:, cv2.CC_STAT_AREA] < min_area])
        specks |= small[components]
    specks &= person
    if not specks.any():
        return labels
    _, nearest = cv2.distanceTransformWithLabels(np.where(specks, 255, 0).astype(np.uint8), cv2.DIST_L2, 3,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    kept = ~specks
    source = np.zeros(int(nearest.max()) + 1, np.uint8)
    source[nearest[kept]] = labels[kept]  # each kept pixel is its own zero pixel, numbered by nearest
    labels = labels.copy()
    labels[specks] = source[nearest[specks]]
    return labels


def _limbs_by_region(nearest: np.ndarray, skin: np.ndarray, chest_y: float) -> np.ndarray:
    """``nearest`` (H, W) part labels where, in each connected skin region most of whose limb pixels are nearest
    an arm, the leg pixels and the torso pixels below ``chest_y`` go to that arm: fingers that reach down a thigh
    or across the belly stay the hand's. (Not the other way: a hand resting on a bare thigh joins the two regions,
    and stays a hand.)"""
    limbs = np.array([LEFT_ARM, RIGHT_ARM, LEFT_LEG, RIGHT_LEG])
    count, regions = cv2.connectedComponents(skin.astype(np.uint8), connectivity=8)
    on_limb = skin & np.isin(nearest, limbs)
    votes = np.zeros((count, len(limbs)), np.int64)  # region -> pixels nearest to each limb
    np.add.at(votes, (regions[on_limb], np.searchsorted(limbs, nearest[on_limb])), 1)
    majority = limbs[np.argmax(votes, axis=1)]
    below_chest = np.arange(skin.shape[0])[:, None] > chest_y
    movable = skin & (np.isin(nearest, limbs[2:]) | (nearest == TORSO_SKIN) & below_chest)
    to_arm = movable & (votes.sum(axis=1) > 0)[regions] & np.isin(majority[regions], limbs[:2])
    return np.where(to_arm, majority[regions], nearest).astype(np.uint8)


def _sleeves(parts: dict[int, np.ndarray], skin: np.ndarray, marks: np.ndarray, limb: float) -> np.ndarray:
    """(H, W) bool: where a sleeve may be: within ``limb`` of an arm's line, above the arm's highest skin (a
    sleeve covers the arm from the shoulder down; below the first bare skin there is none), or above its
    wrist when the arm shows no skin (a row is bare when more than half a limb's width of it is skin)."""
    rows = np.arange(skin.shape[0])[:, None]
    sleeves = np.zeros(skin.shape, bool)
    for arm, wrist in ((LEFT_ARM, LEFT_WRIST), (RIGHT_ARM, RIGHT_WRIST)):
        band = parts[arm] < limb
        bare = np.nonzero((skin & band).sum(axis=1) > 0.5 * limb)[0]  # rows of a bare arm, not a lace's holes
        end = bare.min() if len(bare) else marks[wrist, 1]
        sleeves |= band & (rows < end)
    return sleeves


def _boundary_row(ratio: np.ndarray, mask: np.ndarray, low: float, high: float, default: float) -> float:
    """The row between ``low`` and ``high`` that best splits ``mask``'s per-row mean of ``ratio`` into positive
    above (upper garment) and negative below; ``default`` where the rows say nothing."""
    counts = mask.sum(axis=1)
    sums = np.where(mask, ratio, 0).sum(axis=1)
    means = np.where(counts > 3, sums / np.maximum(counts, 1), 0.0)
    low, high = int(max(low, 0)), int(min(high, len(means) - 1))
    if high <= low or np.abs(means[low:high]).max(initial=0) < 0.5:
        return default
    window = means[low:high + 1]
    # score(b) = sum of means above b - sum below b, over the window
    above = np.concatenate([[0.0], np.cumsum(window)])
    total = above[-1]
    scores = above - (total - above)
    return float(low + int(np.argmax(scores)))


def _label_shoes(labels: np.ndarray, marks: np.ndarray, garment: np.ndarray, limb: float) -> None:
    height, width = labels.shape
    for ankle, foot, shoe in ((LEFT_ANKLE, LEFT_FOOT, LEFT_SHOE), (RIGHT_ANKLE, RIGHT_FOOT, RIGHT_SHOE)):
        if not all(_visible(marks, i, width, height) for i in (ankle, *foot)):
            continue
        region = np.full(labels.shape, 255, np.uint8)
        points = [marks[ankle, :2], *(marks[i, :2] for i in foot)]
        cv2.polylines(region, [np.round(np.stack(points)).astype(np.int32).reshape(-1, 1, 2)], True, 0, 1)
        near = cv2.distanceTransform(region, cv2.DIST_L2, 3) < limb
        rows = np.arange(height)[:, None]
        labels[near & garment & (rows > marks[ankle, 1] - 0.5 * limb)] = shoe


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
    if not all(_visible(landmarks, i, width, height) for i in (LEFT_SHOULDER, RIGHT_SHOULDER)):
        return "shoulders not visible: send a photo showing the upper body, from the head down to mid-thigh"
    if not all(_visible(landmarks, i, width, height, margin=0.01) for i in (LEFT_HIP, RIGHT_HIP)):
        return "hips not visible: send a photo down to mid-thigh"
    shoulders = (landmarks[LEFT_SHOULDER, :2] + landmarks[RIGHT_SHOULDER, :2]) / 2
    hips = (landmarks[LEFT_HIP, :2] + landmarks[RIGHT_HIP, :2]) / 2
    torso = float(np.linalg.norm(hips - shoulders))
    if torso < MIN_TORSO_PIXELS:
        return (f"the person is too small ({torso:.0f} px from shoulders to hips, at least {MIN_TORSO_PIXELS} "
                f"needed): send a larger photo, or one in which the person fills more of the frame")
    shoulder_width = float(np.linalg.norm(landmarks[LEFT_SHOULDER, :2] - landmarks[RIGHT_SHOULDER, :2]))
    if shoulder_width < MIN_SHOULDER_RATIO * torso:
        return "the person is turned sideways: send a photo of the person facing the camera"
    if landmarks[LEFT_SHOULDER, 0] < landmarks[RIGHT_SHOULDER, 0]:
        return "the person faces away from the camera: send a photo of the person facing the camera"
    return ""
