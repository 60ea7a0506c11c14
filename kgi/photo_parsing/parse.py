"""The photo parser's entry, :func:`parse_photo`: the CIHP parse from mediapipe's cues (see
:mod:`kgi.photo_parsing` for the steps), at ``WORK_HEIGHT`` pixels, then scaled back to the photo."""

from __future__ import annotations

import cv2
import numpy as np

from kgi.photo_parsing.colour import (HIST_BINS, SKIN_DISTANCE, SKIN_DISTANCE_MAX, colour_histogram, fringe_mask,
                                      skin_model)
from kgi.photo_parsing.geometry import (distance_to_arm, distance_to_hand, distance_to_line, distance_to_mask,
                                        person_mask)
from kgi.photo_parsing.names import (BACKGROUND, BROWS, CHEEK_PATCHES, CHIN, FACE, FACE_OVAL, HAIR, LEFT_ANKLE,
                                     LEFT_ARM, LEFT_ELBOW, LEFT_HAND, LEFT_HIP, LEFT_KNEE, LEFT_LEG, LEFT_SHOULDER,
                                     LEFT_WRIST, NOSE, PANTS, RIGHT_ANKLE, RIGHT_ARM, RIGHT_ELBOW, RIGHT_HAND,
                                     RIGHT_HIP, RIGHT_KNEE, RIGHT_LEG, RIGHT_SHOULDER, RIGHT_WRIST, SKIN_PATCHES, SKIRT,
                                     TORSO_SKIN, UPPER)
from kgi.photo_parsing.refinement import background_gaps, drop_specks, refine_hair, refine_skin
from kgi.photo_parsing.regions import (SEAM_BAND, boundary_line, boundary_seam, label_shoes, limbs_by_region,
                                      sleeve_mask, split_skin)

WORK_HEIGHT = 512  # pixels: the parse is computed at this height, then scaled back to the photo

# Skin is never farther than SKIN_DISTANCE_MAX from the face's colour, except within HAND_REACH limb widths of a
# hand's landmarks (and near the legs' lines below a skirt), where it may be as far as HAND_SKIN_DISTANCE and has a
# prior (log-odds) of HAND_PRIOR against the garments: hands are bare, often shaded.
HAND_SKIN_DISTANCE, HAND_REACH, HAND_PRIOR = 7.0, 0.6, 3.0
MIN_PART_FRACTION = 0.002  # a region of one label smaller than this fraction of the person is relabelled
NECK_WIDTH = 0.8  # the neck's width as a fraction of the face's
FOREHEAD_REACH = 0.25  # a forehead may reach this fraction of the face's height above the face mesh outline
FRINGE_MARGIN = 1.0  # log-likelihood ratio by which a pixel of the forehead must be likelier hair than skin
PART_CORE = 0.5  # limb widths: a part's sure skin (split_skin's seeds) is this near its skeleton line, and nearest it
SPLIT_REACH = 2.0  # limb widths: split_skin gives a pixel to a part no farther than this from the part's line
# The prior of upper over lower garment across the boundary's seam: it reaches +-PRIOR_MAX (log-likelihood
# ratio) PRIOR_WIDTH torso lengths above and below it.
PRIOR_WIDTH, PRIOR_MAX = 0.03, 6.0
HEM_MARGIN = 0.05  # torso lengths: lower garment farther than this below its hem line is the leg beside it
NECK_CRACK = 2  # pixels at the working size: a crack twice this wide between the neck's skin and the hair is skin


def parse_photo(rgb: np.ndarray, landmarks: np.ndarray, person: np.ndarray, face: np.ndarray | None
                ) -> np.ndarray:
    """The CIHP parse of a photo of one person from mediapipe's cues (the steps: :mod:`kgi.photo_parsing`).

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
    labels, gaps = _parse_working(image, marks, cv2.resize(person, size, interpolation=cv2.INTER_LINEAR), face)
    if (height, width) == labels.shape:
        return labels
    gaps = cv2.resize(gaps.astype(np.uint8), (width, height), interpolation=cv2.INTER_LINEAR) > 0
    return _upsample_labels(labels, person_mask(rgb, person) & ~gaps)


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
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The steps of :mod:`kgi.photo_parsing` at the working size: (h, w) uint8 labels, and the (h, w) bool
    background gaps found inside the person mask (to take out of the photo's full-size mask)."""
    h, w = image.shape[:2]
    shape = (h, w)
    person = person_mask(image, probability)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    rows = np.arange(h, dtype=np.float32)[:, None].repeat(w, 1)

    shoulders = (marks[LEFT_SHOULDER, :2] + marks[RIGHT_SHOULDER, :2]) / 2
    hips = (marks[LEFT_HIP, :2] + marks[RIGHT_HIP, :2]) / 2
    hip_to_hip = marks[LEFT_HIP, :2] - marks[RIGHT_HIP, :2]
    hips_slope = float(np.clip(hip_to_hip[1] / hip_to_hip[0], -0.5, 0.5)) if abs(hip_to_hip[0]) > 1 else 0.0
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
        cheek_distance = skin_model(lab, lab[cheeks])[0] if cheeks.sum() >= 20 else np.full(shape, 1e3, np.float32)
    else:
        face_skin = cheeks = np.zeros(shape, bool)
    samples = lab[face_skin]
    if len(samples) < 20:  # no face found: a generic skin colour (Lab of a medium skin tone)
        samples = np.array([[160.0, 145.0, 145.0]]) + np.random.default_rng(0).normal(0, 8, (200, 3))
    skin_distance, skin_density = skin_model(lab, samples)
    skin = (skin_distance < SKIN_DISTANCE) & person
    skin = cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)

    # Distances to the skeleton's parts: head-neck-torso, arms, legs.
    head = marks[NOSE, :2] if face is None else face[list(FACE_OVAL)].mean(axis=0)
    face_width = 0.5 * torso if face is None else float(np.ptp(face[list(FACE_OVAL), 0]))
    to_neck_line = distance_to_line(shape, [head, shoulders])  # the head-to-shoulders line the neck lies along
    parts = {
        TORSO_SKIN: distance_to_line(shape, [head, shoulders, hips]),
        LEFT_ARM: distance_to_arm(shape, marks, LEFT_SHOULDER, LEFT_ELBOW, LEFT_WRIST, LEFT_HAND),
        RIGHT_ARM: distance_to_arm(shape, marks, RIGHT_SHOULDER, RIGHT_ELBOW, RIGHT_WRIST, RIGHT_HAND),
        LEFT_LEG: distance_to_line(shape, [marks[LEFT_HIP, :2], marks[LEFT_KNEE, :2], marks[LEFT_ANKLE, :2]]),
        RIGHT_LEG: distance_to_line(shape, [marks[RIGHT_HIP, :2], marks[RIGHT_KNEE, :2], marks[RIGHT_ANKLE, :2]]),
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
    upper_hist = colour_histogram(quantised, upper_seed)
    hair_hist = colour_histogram(quantised, hair)
    seeds = hair.copy()
    skin_hist = colour_histogram(quantised, face_skin)
    if hair_hist is not None:
        sigma = max(1.0, 0.006 * h)
        log_hair = cv2.GaussianBlur(np.log(hair_hist[quantised]).astype(np.float32), (0, 0), sigma)
        rivals = [cv2.GaussianBlur(np.log(hist[quantised]).astype(np.float32), (0, 0), sigma)
                  for hist in (skin_hist, upper_hist) if hist is not None]
        margin = log_hair - np.maximum.reduce(rivals) if rivals else np.full(shape, np.inf, np.float32)
        hairlike = margin > 0
        if face is not None:
            brows_y = face[list(BROWS), 1].mean() - 0.03 * (chin_y - top_y)
            fringe = fringe_mask(lab, quantised, face_region & (rows < brows_y), cheeks, cheek_distance, hair,
                                 hair_hist, sigma)
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
        neck = (rows > chin_y) & (skin_distance < SKIN_DISTANCE_MAX) & (to_neck_line < NECK_WIDTH * face_width / 2)
        candidates = person & ~face_region & ~neck & (rows < shoulders[1] + 0.6 * torso) & hairlike
        count, components = cv2.connectedComponents((candidates | hair).astype(np.uint8), connectivity=8)
        touching = np.zeros(count, bool)
        touching[np.unique(components[hair])] = True
        touching[0] = False
        hair |= touching[components] & candidates
        if face is not None:
            hair = refine_hair(image, person, hair, seeds, face_region, upper_seed | cheeks, cheek_distance,
                               skin_distance, face, head, shoulders, chin_y, face_width, torso)
            face_region &= ~hair
    garment &= ~hair
    skin &= ~hair

    # Garments: upper against lower, by colour and by a boundary line fitted across the torso, then a seam along
    # the photo's edge near that line.
    legs = np.minimum(parts[LEFT_LEG], parts[RIGHT_LEG])
    lower_seed = garment & (rows > hips[1] + 0.1 * torso) & (rows < hips[1] + 0.7 * torso) & (legs < 2 * limb) & \
        (arm_distance > 1.5 * limb)
    lower_hist = colour_histogram(quantised, lower_seed)
    # Skin again, now against the garments' own colours: a pixel near the face's colour is skin when the skin
    # model explains it better than either garment's histogram (bright forearms on a white top stay skin, a
    # top the colour of skin stays garment).
    # Hands are bare: near the hand landmarks, shaded skin (farther from the face's colour) may still be skin;
    # so are legs near their skeleton lines well below the hips (under a skirt).
    bare = np.minimum(distance_to_hand(shape, marks, LEFT_WRIST, LEFT_HAND),
                       distance_to_hand(shape, marks, RIGHT_WRIST, RIGHT_HAND)) < HAND_REACH * limb
    bare |= (legs < limb) & (rows > hips[1] + 0.3 * torso)
    neck_zone = (rows > chin_y) & (rows < shoulders[1]) & (to_neck_line < 0.5 * face_width)
    bare |= neck_zone
    rivals = [hist for hist in (upper_hist, lower_hist) if hist is not None]
    gaps = np.zeros(shape, bool)
    if rivals:
        garment_density = np.log(np.maximum.reduce(rivals)[quantised])
        reach = np.where(bare, HAND_SKIN_DISTANCE, SKIN_DISTANCE_MAX)
        skin = person & ~face_region & ~hair & (skin_distance < reach) & \
            (skin_density + np.where(bare, HAND_PRIOR, 0.0) > garment_density)
        skin = cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
        skin = refine_skin(image, person, skin, skin_distance, face_region | hair, upper_seed | lower_seed,
                           max(1, round(limb / 2)), nearest == TORSO_SKIN)
        gaps = background_gaps(lab, person, skin, skin_distance, skin_density, limb)
        person &= ~gaps
        skin &= ~gaps
        skin |= jaw_shadow(skin, person & ~face_region & ~hair, neck_zone)
        skin |= neck_cracks(skin, hair, person & ~face_region & ~hair, neck_zone)
        garment = person & ~skin & ~face_region & ~hair
    upper = garment.copy()
    if upper_hist is not None and lower_hist is not None:
        ratio = np.clip(np.log(upper_hist[quantised]) - np.log(lower_hist[quantised]), -4, 4).astype(np.float32)
        boundary = boundary_line(ratio, garment & (parts[TORSO_SKIN] < 0.35 * torso), shoulders[1] + 0.5 * torso,
                                 hips[1] + 0.5 * torso, default=hips[1], hips_slope=hips_slope)
        sleeves = sleeve_mask(parts, skin, marks, limb)
        seam = boundary_seam(ratio, garment & ~sleeves & (parts[TORSO_SKIN] < 0.35 * torso), lab, boundary,
                             round(SEAM_BAND * torso))
        prior = np.clip((seam[None, :] - rows) / (PRIOR_WIDTH * torso), -PRIOR_MAX, PRIOR_MAX)
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
        to_face = distance_to_mask(face_region) <= distance_to_mask(hair)
        face_region |= above_chin & to_face
        hair |= above_chin & ~to_face
        upper &= ~above_chin
        lower &= ~above_chin

    labels = np.zeros(shape, np.uint8)
    labels[upper] = UPPER
    labels[lower] = PANTS
    # Where skin of two parts meets (a hand on a bare thigh), the photo's edges split it: each part's sure skin
    # floods the rest, as far as the part reaches.
    cores = np.zeros(shape, np.uint8)
    for name in names:
        cores[skin & (nearest == name) & (parts[name] < PART_CORE * limb)] = name
    split = split_skin(image, skin, cores)
    reached = np.zeros(shape, bool)  # a flood that runs on along a smooth edge stops at its part's reach
    for name in names:
        reached |= (split == name) & (parts[name] < SPLIT_REACH * limb)
    nearest = np.where(reached, split, nearest)
    labels[skin] = limbs_by_region(nearest, skin, shoulders[1] + 0.5 * torso)[skin]
    if face is not None:  # skin above the brows is the face's (a forehead beside the mesh's outline), not the neck's
        labels[(labels == TORSO_SKIN) & (rows < face[list(BROWS), 1].min())] = FACE
    labels[hair] = HAIR
    labels[face_region] = FACE
    # The lower garment ends at its hem: what hangs below it beside a bare leg is that leg, in the skirt's shade.
    below = below_the_hem(lower, (labels == LEFT_LEG) | (labels == RIGHT_LEG), HEM_MARGIN * torso)
    labels[below] = np.where(parts[LEFT_LEG][below] <= parts[RIGHT_LEG][below], LEFT_LEG, RIGHT_LEG)
    lower &= ~below
    # Leg skin below a lower garment makes it a skirt (CIHP tells skirts from trousers; both are "bottom").
    if lower.any() and (labels == LEFT_LEG).sum() + (labels == RIGHT_LEG).sum() > 0.2 * lower.sum():
        labels[lower] = SKIRT
    label_shoes(labels, marks, garment, limb)
    return drop_specks(labels, person, MIN_PART_FRACTION * person.sum()), gaps


def jaw_shadow(skin: np.ndarray, candidates: np.ndarray, neck_zone: np.ndarray) -> np.ndarray:
    """(H, W) bool: the ``candidates`` in the ``neck_zone`` that have the neck's ``skin`` below them in their
    column (all (H, W) bool). No garment lies between the chin and the neck's skin: a collar or a turtleneck
    rises from below, with no skin under it. What does is the jaw's shadow on the neck, darker and redder than
    the cheeks, which a garment of that colour (a pink shirt, a burgundy turtleneck) explained better than the
    skin model did: three of seven genuine people had it as a band of upper clothes under the chin."""
    neck_skin = skin & neck_zone
    skin_at_or_below = np.flipud(np.logical_or.accumulate(np.flipud(neck_skin), axis=0))
    return candidates & neck_zone & skin_at_or_below


def neck_cracks(skin: np.ndarray, hair: np.ndarray, candidates: np.ndarray, neck_zone: np.ndarray) -> np.ndarray:
    """(H, W) bool: the ``candidates`` in the ``neck_zone`` in a crack between the neck's ``skin`` and the
    ``hair`` (all (H, W) bool), no wider than ``2 NECK_CRACK`` pixels, that is not one between locks of hair. Such
    a crack is the neck's shaded side under the hair, left between the hair's edge (straight where the search for
    hair stops at the neck's band) and the skin's smoothed edge; no garment lies there, a collar rises from below
    wider than that. As upper clothes it was repainted as flat skin beside the photo's shaded neck, a light tooth
    with a straight side (00055_00 of the shop photos)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * NECK_CRACK + 1,) * 2)

    def closed(mask: np.ndarray) -> np.ndarray:
        return cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)

    return candidates & neck_zone & closed((skin & neck_zone) | hair) & ~closed(hair)


def below_the_hem(lower: np.ndarray, legs: np.ndarray, margin: float) -> np.ndarray:
    """(H, W) bool: the pixels of the lower garment (``lower``, (H, W) bool) more than ``margin`` pixels below its
    hem. The hem is a line fitted to the garment's lowest row in each column where bare leg (``legs``, (H, W)
    bool) is right below it, columns off the line by more than 2.5 robust sigmas left out (three rounds); none
    where fewer than a tenth of the garment's columns (at least 8) show such a hem: trousers to the photo's
    edge or to the shoes have none. The inner thigh below a red skirt, shaded and tinted by it, is nearer the
    skirt's colour than the face's: 07445_00's right thigh was a strip of skirt down to the photo's edge."""
    found = np.zeros(lower.shape, bool)
    spanned = np.flatnonzero(lower.any(axis=0))
    if not len(spanned):
        return found
    height = lower.shape[0]
    bottoms = height - 1 - np.argmax(lower[::-1], axis=0)  # (W,) each column's lowest garment row
    under = np.minimum(bottoms + 1, height - 1)
    columns = spanned[(bottoms[spanned] < height - 1) & legs[under[spanned], spanned]]
    if len(columns) < max(8, 0.1 * len(spanned)):
        return found
    inliers = np.ones(len(columns), bool)
    for _ in range(3):
        slope, intercept = np.polyfit(columns[inliers], bottoms[columns][inliers], 1)
        residual = bottoms[columns] - (slope * columns + intercept)
        spread = 1.4826 * np.median(np.abs(residual[inliers] - np.median(residual[inliers]))) + 1.0
        inliers = np.abs(residual) <= 2.5 * spread
    hem = slope * np.arange(lower.shape[1]) + intercept  # (W,) its row in each column
    return lower & (np.arange(height)[:, None] > hem[None, :] + margin)
