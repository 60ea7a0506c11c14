"""GrabCut refinements of the photo parser's hair and skin, and the removal of specks."""

from __future__ import annotations

import cv2
import numpy as np

from kgi.photo_parsing.colour import SKIN_DISTANCE, skin_model
from kgi.photo_parsing.geometry import distance_to_line
from kgi.photo_parsing.names import BROWS

NECK_CORE = 0.3  # face widths either side of the neck's line where skin-coloured pixels are surely not hair
HAIR_FACE_MARGIN = 0.08  # face widths: the face outline shrunk by this is surely not hair
GRAB_CUT_SCALE = 0.5  # the GrabCut refinements of hair and skin run at this fraction of the working size
MIN_GRAB_CUT_PIXELS = 50  # ... when each side has this many pixels to learn its colours from (else skipped)
# Background gaps: the background's colour is learnt from a ring BACKGROUND_RING limb widths around the person (from
# the first to the second figure); skin likelier background by GAP_MARGIN (log-density), GAP_DEPTH pixels deep
# (not the mixed pixels along an arm's edge) and touching the background, is background.
BACKGROUND_RING, GAP_MARGIN, GAP_DEPTH = (0.5, 3.0), 2.0, 2.0
MAX_BACKGROUND_SAMPLES = 4000  # the ring is subsampled to about this many pixels to learn from


def refine_hair(image: np.ndarray, person: np.ndarray, hair: np.ndarray, seeds: np.ndarray, face_region: np.ndarray,
                not_hair: np.ndarray, cheek_distance: np.ndarray, skin_distance: np.ndarray, face: np.ndarray,
                head: np.ndarray, shoulders: np.ndarray, chin_y: float, face_width: float, torso: float
                ) -> np.ndarray:
    """The hair around the head (a box from the image's top to the shoulders, three face widths wide), cut by
    :func:`graph_cut` from the colour-rule ``hair`` (probable), with as sure hair the ``seeds`` away from the
    face and unlike skin, and as surely not hair: the background, ``not_hair`` (garment seeds, cheeks), the face
    inside its outline below the brows, face pixels like the cheeks' skin, and the neck's core. (H, W) bool."""
    height, width = person.shape
    rows = np.arange(height)[:, None]
    inner = cv2.erode(face_region.astype(np.uint8), np.ones((3, 3), np.uint8),
                      iterations=max(1, round(HAIR_FACE_MARGIN * face_width))).astype(bool)
    neck_core = (rows > chin_y + 0.05 * face_width) & (skin_distance < SKIN_DISTANCE) & \
        (distance_to_line(person.shape, [head, shoulders]) < NECK_CORE * face_width)
    sure_not = ~person | not_hair | inner & (rows > face[list(BROWS), 1].max()) | neck_core | \
        face_region & (cheek_distance < SKIN_DISTANCE)
    away = cv2.distanceTransform((~face_region).astype(np.uint8), cv2.DIST_L2, 3) > 1.5 * HAIR_FACE_MARGIN * face_width
    mask = np.where(hair, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    mask[seeds & away & (skin_distance > SKIN_DISTANCE) & person] = cv2.GC_FGD
    mask[sure_not] = cv2.GC_BGD
    box = (0, int(min(shoulders[1] + 0.6 * torso, height)), int(max(head[0] - 1.6 * face_width, 0)),
           int(min(head[0] + 1.6 * face_width, width)))
    refined = graph_cut(image, mask, box, iterations=2)
    return hair if refined is None else refined & person


def refine_skin(image: np.ndarray, person: np.ndarray, skin: np.ndarray, skin_distance: np.ndarray,
                not_skin: np.ndarray, garment_seed: np.ndarray, reach: int, guarded: np.ndarray) -> np.ndarray:
    """The skin of the person's box cut by :func:`graph_cut` from the colour-rule ``skin`` (probable): sure
    skin where it is also near the face's colour (eroded), surely not skin: the background, ``not_skin`` (hair,
    face: labelled already) and the garment seeds farther than ``reach`` pixels from skin. Shaded edges of arms
    and legs, and fingers, join the skin where the colour rule missed them. On the ``guarded`` (H, W) bool pixels
    (the torso's), what the cut adds lies within ``reach`` of solid skin (the colour rule's, opened by ``reach``
    pixels), not of its specks: a top near the skin's colour in a heavily compressed photo is speckled with skin by
    its JPEG blocks, and the cut grew a block of skin from them (00034_00's pink shirt at quality 50: a third of
    it). (H, W) bool."""
    ys, xs = np.nonzero(person)
    if len(ys) == 0:
        return skin
    mask = np.where(skin, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    core = skin & (skin_distance < SKIN_DISTANCE)
    mask[cv2.erode(core.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)] = cv2.GC_FGD
    near_skin = cv2.dilate(skin.astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)).astype(bool)
    mask[~person | not_skin | garment_seed & ~near_skin] = cv2.GC_BGD
    refined = graph_cut(image, mask, (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1), iterations=2)
    if refined is None:
        return skin
    solid = cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_OPEN, np.ones((reach + 1, reach + 1), np.uint8))
    near_solid = cv2.dilate(solid, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)).astype(bool)
    return refined & person & ~not_skin & (skin | near_solid | ~guarded)


def graph_cut(image: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int], iterations: int
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


def background_gaps(lab: np.ndarray, person: np.ndarray, skin: np.ndarray, skin_distance: np.ndarray,
                    skin_density: np.ndarray, limb: float) -> np.ndarray:
    """(H, W) bool: the person mask's ``skin`` that is background. The segmentation models see the photo at 256
    pixels, so a narrow gap between an arm and the body comes out as person, and then, light like the skin, as
    arm. A Gaussian of the background's colour (CIE Lab ``lab`` (H, W, 3), learnt from a ring around the
    ``person`` mask) against the skin's (``skin_density``: its log density, comparable) finds it, among the
    pixels outside the skin model's core (``skin_distance`` > SKIN_DISTANCE); only regions at least GAP_DEPTH
    pixels deep that touch the background count (not an arm's shaded or blurred edge). ``limb``: half a limb's
    width in pixels."""
    outside = cv2.distanceTransform((~person).astype(np.uint8), cv2.DIST_L2, 3)  # (H, W) distance to the person
    ring = (outside > BACKGROUND_RING[0] * limb) & (outside < BACKGROUND_RING[1] * limb)
    candidates = skin & (skin_distance > SKIN_DISTANCE)
    if ring.sum() < MIN_GRAB_CUT_PIXELS or not candidates.any():  # no background to learn, or no skin unlike skin
        return np.zeros(person.shape, bool)
    samples = lab[ring][:: max(1, int(ring.sum()) // MAX_BACKGROUND_SAMPLES)]
    _, background_density = skin_model(lab[candidates][None], samples)  # (1, N): only where it can matter
    like = np.zeros(person.shape, np.uint8)
    like[candidates] = background_density[0] > skin_density[candidates] + GAP_MARGIN
    count, regions = cv2.connectedComponents(like, connectivity=8)
    deep = cv2.distanceTransform(like, cv2.DIST_L2, 3) >= GAP_DEPTH
    touching = np.zeros(count, bool)
    border = cv2.dilate((~person).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # next to background
    touching[np.unique(regions[border & (like > 0)])] = True
    gap = np.zeros(count, bool)
    gap[np.unique(regions[deep])] = True
    gap &= touching
    gap[0] = False
    return gap[regions]


def drop_specks(labels: np.ndarray, person: np.ndarray, min_area: float) -> np.ndarray:
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
