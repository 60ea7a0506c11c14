"""Stage 2b: the region a new garment changes, and the recomposed image the inpainter completes.

``recompose`` builds, from the person photo, its CIHP parse, the target parse (the person wearing the new
garment, predicted by stage 2a) and the warped garment (``kgi.warp``), the image the keep-mask sampler starts
from, the mask of pixels it must keep and the target parse as composed:

    region   = change_region: the old garment, its sleeves (arms) and the neck skin (``AGNOSTIC_CIHP``), the
               old garment and the neck grown by ``margin_px`` into background, lower garment and skin
               (``MARGIN_CIHP``; not the arms: grown from a hand lying on the trousers, a band of them around it
               was repainted, a blurred second outline beside the photo's own); a large piece
               of the parse's arms not of the skin's colour is a sleeve, and counts as the old garment
               (``SLEEVE_LABELLED_ARM``), and so does what the parse calls background, trousers or skirt
               next to the old garment in the old garment's colour, unlike its own label's
               (``_garment_labelled_otherwise``), and what it calls hair at the hair's ends in the colours of
               the garment beside them, unlike the hair's own (``_garment_under_hair``: lace or a collar seen
               between the strands, repainted, not kept)
    arms     = with the pose, the person's visible arm skin stays arm where the target parse does not draw the
               new garment, and where it does, on a forearm the garment's body (not a sleeve) would cover, and
               below the worn garment's armpit where its sleeve is short or absent: a forearm across the body, or
               an arm hanging beside it, is in front of the garment
    skin     = the person's arm (neck) where the target parse keeps that arm (face-neck), farther than the
               margin from the old garment (a cuff's or a neckline's outline is repainted, not kept), less
               the pieces not of the colour of the person's face and neck at their brightness (``_skin_like``:
               skin in shadow is redder) that reach the old garment (a cuff labelled arm by the parse is
               repainted; a highlight or a bracelet on the arm, the shadow under the jaw, and strands of hair of
               the hair's colour over the neck, are kept), and
               not where the composed target puts the new garment (an arm's edge beside a narrower sleeve)
    neck     = the warp's own neck hole (``WarpResult.neck_hole``: where it shows the flat photo's inside of the
               back, and above the worn neck corners) is the neck in the target where the photo shows the body
               and the target draws garment or background
    garment  = the warped garment where it is not behind kept skin, less (with the pose) its body's strips below
               the target's waist apart from its sleeves (``_strips_below_the_waist``: a tucked-in top warped down
               the skirt's side)
    target   = upper exactly where ``garment`` is and in its cracks (``close_gaps``, ``GARMENT_CRACK``: filled
               with its nearest colours, kept), and on wall wholly in a crack between it and an arm (the photo's
               thin gap between arm and body), and on painted torso skin beside it wholly between its armpits and
               hem and within ``SIDE_REACH`` of it (the body's side beside a warp narrower than the body: cloth
               carried beyond the warp, ``extend_garment``); specks and slivers of garment apart from the rest
               (``GARMENT_SPECK``, ``GARMENT_SLIVER``) take their nearest other label; the target's other upper
               pixels take the person's label outside the region (the photo stays) and where the photo shows an
               arm (the arm is there, not the wall), and elsewhere their nearest label other than garment and hair
               (a neckline's hole next to long hair is the neck's skin)
    wall     = the photo's wall (CIHP background) in the region where the target keeps wall and its colour is the
               wall's around it (``_like_the_wall``: the old garment's blurred edge and shadow are not)
    image    = person; grey 0.5 on region; warped garment on ``garment``; person on ``skin`` and ``wall``
    keep     = not region, or garment, or skin, or wall, or extended garment

With the pose and the worn garment's keypoints, the body between the neck and the arms (the old garment, arms
and neck there) is never background in the target (``kgi.posed_arms.cover_shoulders``): it is garment inside
the garment's keypoint outline, else arm or neck skin. Garment pixels the warp does not reach there take the
warped garment's cloth mirrored across its outline (``extend_garment``) and are kept, not painted.

With the pose (``pose_nodes``), the arms the target parse draws in the painted pixels take the person's shape
(``kgi.posed_arms.shape_arms``, ``kgi.limbs``): the person's visible arm skin stays arm (its own silhouette)
unless the new garment covers it; where the old garment hid an arm, the pose's arm capsule is the arm; the
target parse's other painted arm pixels become the photo's own label there (background where it was the old
garment), except on the torso, where the old garment covered skin. On the torso above the hips, the painted old
garment that the target calls the lower garment, or an arm off the arms' capsules, is torso skin: a new garment
shorter than the old one bares the midriff (``_bare_midriff``; a new garment tucked in, its keypoints' hem below
the hips, leaves the lower garment on the photo's waistband); above the new garment's hem and below its
armpits, inside its keypoint outline, it is that garment.

So nothing of the old garment is kept (its pixels are in the region, and only the new garment, the person's
own skin away from it or wall of the wall's colour is pasted there), and the new garment is never painted: the
target parse's garment region is the warped garment. Outside the region the photo is kept even where the target
parse predicted garment the warp did not cover.

Parse maps are (B, H, W) integer labels: CIHP (0..19, ``kgi.data.labels.CIHP_LABELS``) for the person,
the 13 model classes (``PARSE13_LABELS``) for targets. Inside, each image is recomposed in numpy: its labels
as uint8 and masks as bool (``kgi.labelmaps``), its colours channels last, the skin test on the change region's
box, the image assembled by OpenCV's masked copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from kgi.data.labels import AGNOSTIC_CIHP, AGNOSTIC_PARSE13, FACE_CIHP, FACE_NECK, GARMENT_CIHP, LEFT_ARM, \
    HAIR_CIHP, MARGIN_CIHP, NECK_CIHP, NUM_CIHP, NUM_PARSE13, RIGHT_ARM, UPPER, UPPER_CLOTHES_CIHP
from kgi.graphs import HEM, HEM_CENTRE
from kgi.labelmaps import bounding_box, close_gaps, grow, is_any, label_maps, nearest_label, nearest_pixels, \
    pieces, pixels_of, small_holes, stack_maps, to_parse13
from kgi.limbs import ARM_NODES, TORSO_NODES, WORN_SLEEVES, garment_outline, on_forearm
from kgi.posed_arms import ARMPITS, ARMS, BOTTOM, HAIR, arm_layout_of, below_line, cover_shoulders_of, shape_arms_of, \
    waist_row
from kgi.warp import SEGMENT_NAMES, WarpResult

BLANK_VALUE = 0.5  # grey written on the region the inpainter paints
# Margin of the change region, a fraction of the image height: parses put the old garment's outline a few
# pixels off (10 pixels at 1024 rows).
MARGIN = 0.01
# The widest crack or notch of the warped garment filled as garment, a fraction of the height: segments meet
# with a few pixels between them, and their outline steps where the spline of the segment chosen at the warp's
# geometry size (``kgi.warp``) leaves the garment.
GARMENT_CRACK = 0.006
# A piece of the target's garment apart from the rest smaller than this fraction of the image is a speck.
GARMENT_SPECK = 0.0002
# A piece of the target's garment apart from the rest that is nowhere this thick (a fraction of the height) is a
# sliver.
GARMENT_SLIVER = 0.012
SIDE_REACH = 0.05  # of the height: painted torso skin beside the new garment this near it is its cloth
MIRROR_DEPTH = 0.01  # of the height: cloth carried beyond the warp is taken from at most this far inside it
SKIN_REFERENCE_CIHP = (10, 13)  # neck and face: always skin, unlike what a parse calls arms (sleeves, often)
DARKEST_SKIN = 0.4  # a kept skin pixel is at least this fraction of the face's median brightness
SKIN_CHROMA_TOLERANCE = 0.06  # and its red and green shares of r + g + b within this of the face's at its brightness
# Skin in shadow is redder (light scattered under the skin comes out red): on seven genuine people the red share
# of face and neck pixels rises by 0.05 to 0.16 for each unit of log brightness below their median, and the green
# share falls by 0.03 to 0.04. The slopes are learnt per person (``_shadow_slope``), at most this steep.
MAX_SHADOW_SLOPE = 0.25
# A piece of a parse's arms, not of the skin's colour, this large (a fraction of the image) is a sleeve: the largest
# such piece of a genuine bare arm (shadow, bracelet, a hand on dark trousers) is under 0.2%.
SLEEVE_LABELLED_ARM = 0.005
# The old garment labelled background, trousers or skirt (``_garment_labelled_otherwise``): looked for this far
# from it (a fraction of the height), of its colour within this RGB distance.
MISLABEL_CIHP = (0, 9, 12)
MISLABEL_REACH = 0.1
GARMENT_COLOUR_TOLERANCE = 0.15
MIN_GARMENT_PIXELS = 400
# The old garment between the hair's ends that a parse calls hair (``_garment_under_hair``): looked for in the hair
# this near the garment (a fraction of the height), its colours compared with those of the hair this far from it
# and of the garment this near the hair, each described by the median colours of PALETTE_BANDS bands of its
# pixels by brightness; a pixel nearer the garment's by HAIR_END_MARGIN (RGB in [0, 1]) is the garment's, and so
# are the hair ends' pixels in its gaps narrower than about HAIR_END_CLOSING of the height (a lace's light holes).
HAIR_END_REACH = 0.03
HAIR_END_CLOSING = 0.003
OWN_HAIR_DISTANCE = 0.06
PALETTE_BANDS = 8
PALETTE_SAMPLES = 2048  # a palette is learnt from at most this many of its pixels
HAIR_END_MARGIN = 0.1
# The photo's wall in the change region is kept where the target keeps wall and every channel is within
# WALL_TOLERANCE of the wall's local colour: the mean of the photo's wall outside the region around it (a
# Gaussian of WALL_REACH of the height), where that wall weighs at least WALL_EVIDENCE.
WALL_REACH = 0.02
WALL_TOLERANCE = 6 / 255
WALL_EVIDENCE = 0.05
# Below the target's waist, a piece of the warped garment's body narrower than this fraction of the hips is a
# strip down the skirt's side, not an untucked hem (``_strips_below_the_waist``).
WAIST_STRIP = 0.25
MIN_REFERENCE_SAMPLES = 10  # grid samples of a label needed for its median colour
SAMPLE_STEP = 4  # medians are taken on every 4th row and column
# A visible arm this far (a fraction of the height) below its side's worn armpit hangs beside the body, in front
# of the new garment's body, unless its sleeve is long (``_arms_in_front``).
BELOW_ARMPIT = 0.01
SLEEVE_OF_ARM = {label: sleeve for sleeve in WORN_SLEEVES for label, joints in ARM_NODES.items()
                 if joints == sleeve.arm}  # the garment's sleeve on each arm (``kgi.limbs.WornSleeve``)


class RecomposeInputError(ValueError):
    """Inputs recomposition cannot use: wrong shapes or dtypes, labels out of range."""


@dataclass
class Recomposition:
    """The inpainter's starting point.

    Attributes:
        image: (B, 3, H, W) in [0, 1]: the person, change region grey (0.5), the warped garment and the
            person's remaining skin pasted.
        keep_mask: (B, 1, H, W) float {0, 1}: 1 where ``image`` is known (person pixels kept, garment or
            skin pasted), 0 where the inpainter must paint.
        target_parse13: (B, H, W) long, the target parse as composed: upper exactly on the pasted garment.
        skin_mask: (B, 1, H, W) float {0, 1}: the person's visible skin kept in ``image``, of the lit skin's
            colour (neck and arms away from the old garment, without highlights, bracelets and deep shadows; the
            face where there is none): what painted skin's colour and detail are learnt from.
    """

    image: torch.Tensor
    keep_mask: torch.Tensor
    target_parse13: torch.Tensor
    skin_mask: torch.Tensor


def _check_parse(parse: torch.Tensor, name: str, num_labels: int = NUM_PARSE13) -> None:
    if parse.dim() != 3 or parse.dtype.is_floating_point or parse.dtype == torch.bool:
        raise RecomposeInputError(
            f"{name} must be a (B, H, W) integer label map, got {tuple(parse.shape)} {parse.dtype}")
    if parse.numel() and (int(parse.min()) < 0 or int(parse.max()) >= num_labels):
        raise RecomposeInputError(f"{name} has labels outside 0..{num_labels - 1}")


def _change_region(parse_cihp: np.ndarray, margin_px: int) -> tuple[np.ndarray, np.ndarray]:
    """``change_region`` of one (H, W) uint8 CIHP parse: two (H, W) bool."""
    near_old_garment = grow(is_any(parse_cihp, GARMENT_CIHP), margin_px)
    grown = grow(is_any(parse_cihp, (*GARMENT_CIHP, NECK_CIHP)), margin_px) & is_any(parse_cihp, MARGIN_CIHP)
    return is_any(parse_cihp, AGNOSTIC_CIHP) | grown, near_old_garment


def change_region(parse_cihp: torch.Tensor, margin_px: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixels a new garment may change, and those near the old garment: two (B, H, W) bool.

    Args:
        parse_cihp: (B, H, W) integer CIHP labels of the person photo.
        margin_px: how far the region grows beyond the old garment and neck (into ``MARGIN_CIHP``).

    Returns ``(region, near_old_garment)``: ``AGNOSTIC_CIHP``, and the old garment and neck grown by the margin
    into ``MARGIN_CIHP`` (the arms are not grown: the photo beside an arm is kept unless the new garment covers
    it); and the old garment (``GARMENT_CIHP``) grown by the margin, where even the person's own skin is
    repainted.
    """
    _check_parse(parse_cihp, "parse_cihp", NUM_CIHP)
    regions = [_change_region(parse, margin_px) for parse in label_maps(parse_cihp)]
    return tuple(stack_maps([masks[i] for masks in regions], parse_cihp, torch.bool) for i in range(2))


def _skin_like(person: np.ndarray, parse_cihp: np.ndarray, box: tuple[slice, slice]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Two (h, w) bool masks on ``box`` of the (H, W, 3) float ``person`` with (H, W) uint8 ``parse_cihp``: its
    pixels of the colour of the person's face and neck (``SKIN_REFERENCE_CIHP``) at their own brightness, and
    those of the lit skin's colour. With b = r + g + b, b0 its median over the face and neck, x = min(log(b / b0), 0)
    and s the red or green share of b: b >= ``DARKEST_SKIN`` b0 (shadows pass, a dark sleeve does not) and
    |s - (s0 + k x)| <= ``SKIN_CHROMA_TOLERANCE`` for both shares (a coloured sleeve does not pass), s0 the share's
    median and k its slope into the shadows, fitted through the median by least squares on the face and neck's
    skin-coloured pixels (``_shadow_slope``); k = 0 for the lit skin's colour. Which skin is the person's own takes
    the first (with k = 0 the shadow under the jaw, redder than the lit face, failed and was repainted: a
    patchwork of kept and painted neck); the colour and detail painted skin learns, the second (the shadows between
    fingers laid on a painted arm were a rash of dark spots). Medians are the lower middle values. Everything
    where a person shows no face or neck."""
    pixels = person[box]  # (h, w, 3)
    reference = is_any(parse_cihp, SKIN_REFERENCE_CIHP)
    reference_box = bounding_box(reference)  # its pixels are read there, in the image's row-major order
    if reference_box is None:
        return np.ones(pixels.shape[:2], bool), np.ones(pixels.shape[:2], bool)

    def shares(colours: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # (..., 3): brightness, shares
        brightness = colours[..., 0] + colours[..., 1] + colours[..., 2]  # numpy's sum over 3 is 20x slower
        floored = np.maximum(brightness, 1e-3)
        return brightness, colours[..., 0] / floored, colours[..., 1] / floored

    def lower_median(values: np.ndarray) -> float:  # (N,) -> (), as torch.median
        middle = (len(values) - 1) // 2
        return float(np.partition(values, middle)[middle])

    def darkness(brightness: np.ndarray, median: float) -> np.ndarray:  # x = min(log(b / b0), 0)
        return np.minimum(np.log(np.maximum(brightness, 1e-3) / max(median, 1e-3)), 0)

    skin_brightness, skin_red, skin_green = shares(person[reference_box][reference[reference_box]])
    median_brightness, median_red, median_green = (lower_median(values) for values in
                                                   (skin_brightness, skin_red, skin_green))
    # The slopes are fitted on the face and neck's pixels of the skin's colour (not lips, eyes or strands of hair).
    skin_coloured = (skin_brightness >= DARKEST_SKIN * median_brightness) \
        & (np.abs(skin_red - median_red) <= 2 * SKIN_CHROMA_TOLERANCE) \
        & (np.abs(skin_green - median_green) <= 2 * SKIN_CHROMA_TOLERANCE)
    reference_darkness = darkness(skin_brightness[skin_coloured], median_brightness)
    red_slope, green_slope = (_shadow_slope(reference_darkness, values[skin_coloured] - median)
                              for values, median in ((skin_red, median_red), (skin_green, median_green)))
    brightness, red, green = shares(pixels)
    pixel_darkness = darkness(brightness, median_brightness)
    bright_enough = brightness >= DARKEST_SKIN * median_brightness
    red, green = red - median_red, green - median_green  # offsets from the lit skin's shares
    lit_skin_colour = bright_enough & (np.abs(red) <= SKIN_CHROMA_TOLERANCE) & (np.abs(green) <= SKIN_CHROMA_TOLERANCE)
    skin_colour = bright_enough & (np.abs(red - red_slope * pixel_darkness) <= SKIN_CHROMA_TOLERANCE) \
        & (np.abs(green - green_slope * pixel_darkness) <= SKIN_CHROMA_TOLERANCE)
    return skin_colour, lit_skin_colour


def _shadow_slope(darkness: np.ndarray, offsets: np.ndarray) -> float:
    """The least-squares k of ``offsets`` = k ``darkness`` (both (N,): a colour share's offsets from its median,
    and x = min(log(b / b0), 0)), clipped to ``MAX_SHADOW_SLOPE`` either way; 0 without shadows to fit."""
    spread = float(darkness @ darkness)
    if spread < 1e-6:
        return 0.0
    return float(np.clip(darkness @ offsets / spread, -MAX_SHADOW_SLOPE, MAX_SHADOW_SLOPE))


def _fill_garment_holes(target: np.ndarray, parse_cihp: np.ndarray, max_fraction: float) -> np.ndarray:
    """``fill_garment_holes`` of one (H, W) uint8 target parse and CIHP parse."""
    height, width = target.shape
    holes = small_holes(target == UPPER, max_fraction * height * width) & ~is_any(parse_cihp, (14, 15))
    return np.where(holes, UPPER, target).astype(np.uint8)


def fill_garment_holes(target_parse13: torch.Tensor, parse_cihp: torch.Tensor, max_fraction: float = 0.005
                       ) -> torch.Tensor:
    """The target parse with small holes in its garment region filled as garment: (B, H, W) long.

    A hole is a 4-connected region of other labels enclosed by the garment (touching no image border) and
    smaller than ``max_fraction`` of the image; the person's own visible arm (an arm in front of the garment) is
    never a hole. The parse network, seeing a garment-agnostic person, sometimes leaves such islands (a stray arm
    blob on the torso), which would be painted as skin in the middle of the new garment.
    """
    return stack_maps([_fill_garment_holes(target, parse, max_fraction) for target, parse in
                       zip(label_maps(target_parse13), label_maps(parse_cihp))], target_parse13)


def cover_old_neckline(target_parse13: torch.Tensor, parse_cihp: torch.Tensor, pose_nodes: np.ndarray,
                       garment_keypoints: np.ndarray) -> torch.Tensor:
    """The target parse with garment wherever it draws the neck inside the worn garment's outline, below the
    lower of its neck corners (nodes 0 and 4) or the pose's neck node, on the photo's neck or old garment:
    (B, H, W) long. The parse network draws the neck down an old V or scoop neckline's skin whatever the new
    garment is; a higher neckline (its worn keypoints, ``kgi.limbs.garment_outline``, whose neckline runs through
    nodes 0-4) covers it. Above both rows the neck stays, where the worn neckline tilts up the side of a turned
    head's neck. (Cut below the neckline's centre instead, a crew neck lower than its corners kept the neck
    between its curve and that row: a flat-topped notch instead of a round neckline.)

    Args:
        target_parse13: (B, H, W) 13-class target parse. parse_cihp: (B, H, W) CIHP parse of the photo.
        pose_nodes: (B, 10, 2) normalised pose-graph nodes (node 1 the neck).
        garment_keypoints: (B, 32, 2) normalised keypoints of the worn garment.
    """
    covered = []
    for target, parse, nodes, keypoints in zip(label_maps(target_parse13), label_maps(parse_cihp),
                                               np.asarray(pose_nodes, np.float64),
                                               np.asarray(garment_keypoints, np.float64)):
        height, width = target.shape
        outline = garment_outline(keypoints * [width, height], (height, width))
        outline[:max(int(np.ceil(min(nodes[1, 1], keypoints[[0, 4], 1].max()) * height)), 0)] = False
        neck = (target == FACE_NECK) & outline & is_any(parse, AGNOSTIC_CIHP)
        covered.append(np.where(neck, UPPER, target).astype(np.uint8))
    return stack_maps(covered, target_parse13)


def _mirrored_sources(known: np.ndarray, where: np.ndarray, depth: float) -> tuple[np.ndarray, np.ndarray]:
    """The garment pixel each pixel of ``where`` takes its cloth from (``extend_garment``): (N,) rows and columns
    for the N pixels of ``where`` in row-major order; ``known`` and ``where`` (H, W) bool, ``depth`` in pixels.
    Without garment, the pixels themselves."""
    found = nearest_pixels(known, where)
    if found is None:
        return pixels_of(where)
    (rows, columns), (nearest_rows, nearest_columns) = found
    height, width = known.shape
    inward_rows, inward_columns = nearest_rows - rows, nearest_columns - columns  # p to n: (n - p), d long
    distance = np.hypot(inward_rows, inward_columns)
    folded = depth - np.abs(np.mod(distance, 2 * depth) - depth)  # t(d): d up to the depth, then back and forth
    scale = folded / np.maximum(distance, 1e-9)
    mirror_rows = np.clip(np.rint(nearest_rows + inward_rows * scale).astype(np.int64), 0, height - 1)
    mirror_columns = np.clip(np.rint(nearest_columns + inward_columns * scale).astype(np.int64), 0, width - 1)
    inside = known[mirror_rows, mirror_columns]
    return np.where(inside, mirror_rows, nearest_rows), np.where(inside, mirror_columns, nearest_columns)


def extend_garment(garment_image: torch.Tensor, garment: torch.Tensor, depth: float) -> torch.Tensor:
    """The warped garment's cloth carried beyond its pixels, (B, 3, H, W): each pixel p, d from its nearest garment
    pixel n, takes the garment pixel n + (n - p) t(d) / d, t the triangle wave that rises from 0 to ``depth`` and
    back (so t(d) = d, the mirror image 2n - p, up to ``depth``), or n itself where that pixel is no garment. A
    strip between a sleeve and the torso continues the weave or print (mirrored) instead of a blur of its colours;
    a wide one repeats the garment's outermost ``depth`` pixels, not the print inside them (mirrored all the way, a
    side as wide as 40 pixels took the print's outline from deep inside). (``recompose`` takes it on the pixels
    it extends only, ``depth`` ``MIRROR_DEPTH`` of the height.)

    Args:
        garment_image: (B, 3, H, W) the warped garment. garment: (B, H, W) bool where it is known.
        depth: how far inside the garment, in pixels, the cloth is taken from.
    """
    filled = []
    for image, known in zip(garment_image, garment.cpu().numpy()):
        rows, columns = _mirrored_sources(known, np.ones_like(known), depth)
        filled.append(image[:, torch.from_numpy(rows), torch.from_numpy(columns)].view_as(image))
    return torch.stack(filled)


def agnostic_region(parse13: torch.Tensor) -> torch.Tensor:
    """Where a new garment may change the person: (B, H, W) bool, pixels labelled upper garment or arm
    (``AGNOSTIC_PARSE13``) in ``parse13``, a (B, H, W) integer 13-class parse."""
    return torch.isin(parse13, torch.tensor(AGNOSTIC_PARSE13, device=parse13.device))


def agnostic_parse(parse13: torch.Tensor) -> torch.Tensor:
    """The garment-agnostic parse: one-hot (B, 13, H, W) float32 with every channel zero ("unknown") where
    the person's parse is upper garment or arm (``AGNOSTIC_PARSE13``).

    Args:
        parse13: (B, H, W) integer labels 0..12 of the person's parse.
    """
    _check_parse(parse13, "parse13")
    one_hot = F.one_hot(parse13.long(), NUM_PARSE13).permute(0, 3, 1, 2).float()  # (B, H, W, 13) -> (B, 13, H, W)
    return one_hot * (~agnostic_region(parse13)).unsqueeze(1).float()


def _sleeve_pixels(warp: WarpResult) -> torch.Tensor:
    """(B, H, W) bool: the warped garment's pixels its sleeve segments show; all of them for a single spline,
    whose segments are not known."""
    garment = warp.mask[:, 0] > 0.5
    if warp.segment_masks.shape[1] != len(SEGMENT_NAMES):
        return garment
    # The segments (the backbone and ``kgi.limbs.SLEEVE_SEGMENTS``) partition the mask: the sleeves show what the
    # backbone does not (one channel read, not four).
    return garment & ~(warp.segment_masks[:, SEGMENT_NAMES.index("backbone")] > 0.5)


def _arms_in_front(candidates: np.ndarray, parse13: np.ndarray, pose_nodes, garment_keypoints) -> np.ndarray:
    """(H, W) bool: the pixels of ``candidates`` (the photo's visible arm where the new garment's body, not its
    sleeves, would be pasted) in front of the garment: on a forearm (``kgi.limbs.on_forearm``: a forearm across
    the body), or, given the worn garment's (32, 2) normalised ``garment_keypoints`` and a sleeve on that arm
    whose cuff is above the elbow (short, or none), more than ``BELOW_ARMPIT`` of the height below the sleeve's
    armpit (an arm hanging beside the body hides the garment's side: a short-sleeved or sleeveless top's body cut
    the arm's inner edge off). An upper arm higher up is under the garment's shoulder, which its body fills where
    the sleeves' polygons leave a gap; a long sleeve covers the whole arm. ``pose_nodes`` (10, 2) normalised."""
    in_front = np.zeros_like(candidates)
    if not candidates.any():
        return in_front
    height, width = candidates.shape
    nodes = np.asarray(pose_nodes, np.float64) * [width, height]
    keypoints = None if garment_keypoints is None else np.asarray(garment_keypoints, np.float64) * [width, height]
    rows, columns = pixels_of(candidates)
    labels = parse13[rows, columns]
    for label in ARMS:
        own = labels == label
        arm_rows, arm_columns = rows[own], columns[own]
        front = on_forearm(np.stack([arm_columns, arm_rows], 1).astype(np.float64), nodes, label)
        if keypoints is not None:
            sleeve = SLEEVE_OF_ARM[label]
            if keypoints[list(sleeve.cuff), 1].max() < nodes[sleeve.arm[1], 1]:  # the cuff above the elbow
                front |= arm_rows > keypoints[sleeve.armhole[1], 1] + BELOW_ARMPIT * height
        in_front[arm_rows, arm_columns] = front
    return in_front


def _sleeves_labelled_arm(parse_cihp: np.ndarray, skin_like: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pieces of the (H, W) uint8 CIHP parse's arms that are not of the skin's colour (``skin_like``,
    (H, W) bool) and larger than ``SLEEVE_LABELLED_ARM`` of the image: sleeves that the parse calls arms (VITON-HD's
    own parses do so with tight long sleeves). A shadow or a bracelet on an arm is a much smaller piece. (The
    worn landmarks' ``kgi.landmarks.sleeves_labelled_as_arms`` finds a sleeve's exact extent by the garment's
    colour, 20-75 ms at 1024 rows; here the skin test already made decides, in a few.)"""
    not_skin = is_any(to_parse13(parse_cihp), ARMS) & ~skin_like
    found = np.zeros(parse_cihp.shape, bool)
    box = bounding_box(not_skin)
    if box is None:
        return found
    count, pieces, stats, _ = cv2.connectedComponentsWithStats(not_skin[box].view(np.uint8), connectivity=8)
    large = stats[:, cv2.CC_STAT_AREA] >= SLEEVE_LABELLED_ARM * parse_cihp.size
    large[0] = False  # OpenCV's piece 0 is everything else
    if large.any():
        found[box] = large[pieces]
    return found


def _hair_coloured(person: np.ndarray, parse_cihp: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """(H, W) bool: those of ``pixels`` (H, W bool) of the hair's colour rather than the old garment's: nearer the
    median colour of what the (H, W) uint8 CIHP parse calls hair than that of the old garment (``GARMENT_CIHP``)
    by ``GARMENT_COLOUR_TOLERANCE`` (RGB in [0, 1]; ``person`` (H, W, 3) float). None where the parse shows too
    little of either, or the two are alike (dark hair, a black top)."""
    found = np.zeros(pixels.shape, bool)
    if not pixels.any():
        return found
    grid = (slice(None, None, SAMPLE_STEP), slice(None, None, SAMPLE_STEP))  # where medians are taken
    samples = person[grid]
    hair, garment = samples[parse_cihp[grid] == HAIR_CIHP], samples[is_any(parse_cihp[grid], GARMENT_CIHP)]
    if min(len(hair), len(garment)) < MIN_REFERENCE_SAMPLES:
        return found
    colours = person[pixels]  # (N, 3)
    to_hair = np.linalg.norm(colours - np.median(hair, axis=0), axis=1)
    to_garment = np.linalg.norm(colours - np.median(garment, axis=0), axis=1)
    found[pixels] = to_hair < to_garment - GARMENT_COLOUR_TOLERANCE
    return found


def _own_skin_colour(skin_labelled: np.ndarray, skin_like: np.ndarray, near_old_garment: np.ndarray,
                     person: np.ndarray, parse_cihp: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of ``skin_labelled`` (the parse's arms or neck, (H, W) bool) that are the person's
    own, away from the old garment: those of the skin's colour (``skin_like``), and the pieces of another colour
    that do not reach ``near_old_garment``: a highlight on the knuckles, the lit edge of a hand, a bracelet or a
    deep shadow belong to the arm, while an off-colour piece reaching the old garment is its cuff or collar.
    Pixels of the hair's colour (``_hair_coloured``; ``person`` (H, W, 3) float and its CIHP parse) are no piece of
    a cuff or collar: strands of long hair over the neck reached the old neckline, and were painted over as skin,
    a pale strip between the neck and the hair."""
    candidates = skin_labelled & ~near_old_garment
    off_colour = candidates & ~skin_like
    off_colour &= ~_hair_coloured(person, parse_cihp, off_colour)
    box = bounding_box(off_colour, 1)
    if box is None:
        return candidates
    count, pieces = cv2.connectedComponents(off_colour[box].view(np.uint8), connectivity=8)
    reaching = np.zeros(count, bool)
    reaching[np.unique(pieces[grow(near_old_garment[box], 1) & off_colour[box]])] = True
    reaching[0] = False
    own = candidates.copy()
    own[box] &= ~reaching[pieces]
    return own


def _garment_labelled_otherwise(person: np.ndarray, parse_cihp: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of the old garment's colour that the (H, W) uint8 CIHP parse calls background,
    trousers or skirt (``MISLABEL_CIHP``), in pieces touching its garment (``GARMENT_CIHP``) within
    ``MISLABEL_REACH`` of the height: a parse that gives a dark sleeve beside white jeans to the jeans and the wall
    leaves the sleeve out of the change region, kept in the result. A pixel counts when it is within
    ``GARMENT_COLOUR_TOLERANCE`` of the garment's median colour (RGB in [0, 1]; ``person`` (H, W, 3) float) and
    farther by as much again from the median of its own label's pixels away from the garment: where the two
    colours are alike (navy top, dark jeans; white top, pale wall) nothing is moved."""
    height = parse_cihp.shape[0]
    garment = is_any(parse_cihp, GARMENT_CIHP)
    reach = max(round(MISLABEL_REACH * height), 1)
    box = bounding_box(garment, reach)
    found = np.zeros(parse_cihp.shape, bool)
    if box is None or np.count_nonzero(garment) < MIN_GARMENT_PIXELS:
        return found
    colours, labels, inside = person[box], parse_cihp[box], garment[box]
    grid = (slice(None, None, SAMPLE_STEP), slice(None, None, SAMPLE_STEP))  # where medians are taken
    garment_colour = np.median(colours[grid][inside[grid]], axis=0)
    red, green, blue = (colours[..., channel] - garment_colour[channel] for channel in range(3))
    to_garment = np.sqrt(red * red + green * green + blue * blue)  # numpy's norm over 3 channels is far slower
    near_garment = is_any(labels, MISLABEL_CIHP) & (to_garment < GARMENT_COLOUR_TOLERANCE)
    if not near_garment.any():
        return found
    away = ~grow(inside, reach // 2)
    candidates = np.zeros(inside.shape, bool)
    for label in MISLABEL_CIHP:
        own = labels == label
        asked = own & near_garment
        reference = colours[grid][(own & away)[grid]]
        if not asked.any() or len(reference) < MIN_REFERENCE_SAMPLES:
            continue
        to_own = np.linalg.norm(colours[asked] - np.median(reference, axis=0), axis=1)
        candidates[asked] = to_own > to_garment[asked] + GARMENT_COLOUR_TOLERANCE
    if not candidates.any():
        return found
    count, pieces = cv2.connectedComponents(candidates.view(np.uint8), connectivity=8)
    touching = np.zeros(count, bool)
    touching[np.unique(pieces[grow(inside, 1) & candidates])] = True
    touching[0] = False
    found[box] = touching[pieces]
    return found


def _palette(colours: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """(PALETTE_BANDS, 3): the median colour of each of ``PALETTE_BANDS`` equal bands by brightness of the
    (h, w, 3) contiguous ``colours`` at the (h, w) bool ``pixels`` (at least ``PALETTE_BANDS`` of them; at most
    ``PALETTE_SAMPLES``, evenly spaced in scan order, are read)."""
    flat = np.flatnonzero(pixels)
    samples = colours.reshape(-1, 3)[flat[::max(len(flat) // PALETTE_SAMPLES, 1)]]  # (N, 3)
    order = np.argsort(samples.sum(axis=1), kind="stable")
    return np.stack([np.median(samples[band], axis=0) for band in np.array_split(order, PALETTE_BANDS)])


def _palette_distance(colours: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(N,) the distance of each of (N, 3) ``colours`` to its nearest colour of ``palette`` (K, 3)."""
    squared = np.einsum("nc,nc->n", colours, colours)[:, None] - 2 * colours @ palette.T \
        + np.einsum("kc,kc->k", palette, palette)[None]  # (N, K): |c|^2 - 2 c.p + |p|^2
    return np.sqrt(np.maximum(squared.min(axis=1), 0))


def _garment_under_hair(person: np.ndarray, parse_cihp: np.ndarray) -> np.ndarray:
    """(H, W) bool: the old garment seen between the hair's ends that the (H, W) uint8 CIHP parse calls hair:
    its hair within ``HAIR_END_REACH`` of the height of its garment (``GARMENT_CIHP``) whose colour (``person``
    (H, W, 3) float) is nearer the palette (``_palette``) of the garment there, within that reach of the hair,
    than the palette of the hair ``OWN_HAIR_DISTANCE`` or more from the garment by ``HAIR_END_MARGIN``, with the
    hair ends' pixels in its narrow gaps (``HAIR_END_CLOSING``), in pieces touching the garment. A palette keeps
    every colour of its pixels, so black lace on a light grey knit is the garment's colour, and hair in shadow
    the hair's: where the hair and the garment share their colours (dark hair on a black top) nothing is moved.
    Both parses of a genuine person in a lace-shouldered sweater called the lace between her hair's ends hair:
    kept, it showed in patches beside the new garment's shoulders."""
    height = parse_cihp.shape[0]
    found = np.zeros(parse_cihp.shape, bool)
    hair, garment = parse_cihp == HAIR_CIHP, is_any(parse_cihp, GARMENT_CIHP)
    # On the hair's box grown by the distance that makes hair the hair's own: every distance to the garment shorter
    # than that is measured there as on the whole image.
    box = bounding_box(hair, round(OWN_HAIR_DISTANCE * height) + 1)
    if box is None or np.count_nonzero(garment) < MIN_GARMENT_PIXELS:
        return found
    colours, hair, garment = np.ascontiguousarray(person[box]), hair[box], garment[box]
    reach = max(round(HAIR_END_REACH * height), 1)
    to_garment = cv2.distanceTransform((~garment).view(np.uint8), cv2.DIST_L2, 3)
    ends = hair & (to_garment <= reach)
    own_hair = hair & (to_garment >= OWN_HAIR_DISTANCE * height)
    garment_by_hair = garment & grow(ends, reach)
    enough = MIN_REFERENCE_SAMPLES * PALETTE_BANDS  # pixels to describe a palette by
    if not ends.any() or min(np.count_nonzero(own_hair), np.count_nonzero(garment_by_hair)) < enough:
        return found
    asked = colours.reshape(-1, 3)[np.flatnonzero(ends)]  # (N, 3)
    of_garment = np.zeros_like(ends)
    of_garment[ends] = _palette_distance(asked, _palette(colours, garment_by_hair)) + HAIR_END_MARGIN \
        < _palette_distance(asked, _palette(colours, own_hair))
    of_garment |= close_gaps(of_garment, max(round(HAIR_END_CLOSING * height), 1)) & ends  # a lace's light holes
    found[box] = pieces(of_garment, touching=grow(garment, 1))
    return found


def _bare_midriff(target: np.ndarray, painted_old_garment: np.ndarray, painted_wall: np.ndarray,
                  layout: tuple[np.ndarray, np.ndarray], pose_nodes, garment_keypoints, waistband: np.ndarray
                  ) -> np.ndarray:
    """The (H, W) uint8 target with the painted old garment on the torso above the hips that it calls the lower
    garment, or an arm outside the arms' capsules, made torso skin (``FACE_NECK``, the 13 classes' skin of the
    face, neck and torso): a new garment shorter than the old one bares the midriff down to where the old one
    ended. The parse network draws the trousers up to the new hem instead, in an arch whose top the photo never
    showed, and arm wedges beside it (painted in the arms' shading, a seam against the torso's). Between the
    new garment's armpits and its hem, inside its keypoint outline, the torso is that garment's instead, and so
    is the painted wall there that the target calls an arm or the lower garment (the photo's gap between an arm
    and a narrower old garment): a warp narrower there than the body left a notch of bare skin between a tee's
    side and the arm hanging beside it, and the gap, an arm's label, flecks of skin inside a wider tee.

    A new garment whose keypoints put its hem centre (node 18) below the hips is tucked into the lower garment,
    not shorter: on the ``waistband`` ((H, W) bool, the photo's lower garment grown by the change region's
    margin), where the old top bloused over the waistband, the target's lower garment stays (a band of skin was
    painted between a tucked-in top and the skirt). ``painted_old_garment`` and ``painted_wall`` (H, W) bool,
    ``layout`` the (arms, torso) of ``kgi.limbs.arm_layout``, ``pose_nodes`` (10, 2) and ``garment_keypoints``
    (32, 2, or None) normalised."""
    arms, torso = layout
    hips = np.asarray(pose_nodes, np.float64)[list(TORSO_NODES[2:]), 1].min()
    keypoints = None if garment_keypoints is None else np.asarray(garment_keypoints, np.float64)
    lower = target == BOTTOM
    if keypoints is not None and keypoints[HEM_CENTRE, 1] > hips:
        lower &= ~waistband
    torso_above_hips = (torso > 0) & (lower | (is_any(target, ARMS) & (arms == 0)))
    torso_above_hips[max(int(hips * target.shape[0]), 0):] = False
    torso_above_hips &= painted_old_garment | painted_wall
    if not torso_above_hips.any():
        return target
    midriff = torso_above_hips & painted_old_garment
    covered = np.zeros_like(midriff)
    if keypoints is not None:
        keypoints = keypoints * [target.shape[1], target.shape[0]]  # (32, 2) pixels
        below_armpits, below_hem = (below_line(keypoints[nodes], target.shape) for nodes in (ARMPITS, list(HEM)))
        covered = torso_above_hips & below_armpits & ~below_hem & garment_outline(keypoints, target.shape)
    return np.where(covered, UPPER, np.where(midriff, FACE_NECK, target)).astype(np.uint8)


def _strips_below_the_waist(garment: np.ndarray, sleeves: np.ndarray, target: np.ndarray, pose_nodes
                            ) -> np.ndarray:
    """(H, W) bool: the strips of the warped garment (H, W) bool ``garment``, less its ``sleeves``, below the
    target's waist: its parts there narrower than ``WAIST_STRIP`` of the hips (what a horizontal opening that
    long takes away), in pieces at least twice that long downward and apart from the sleeves.

    The waist is the (H, W) uint8 ``target``'s (``kgi.posed_arms.waist_row``; pose nodes (10, 2) normalised). A
    top the target tucks into the skirt there, with its hem at the hips in the keypoints, was warped down the
    skirt's side where the photo's old garment hung beside it: a strip of cloth between the skirt and the arm. An
    untucked hem spans the hips below the waist, a hem's corners over the skirt's sides are short, and the body's
    side between a long sleeve and the skirt touches the sleeve: all stay.
    """
    height, width = target.shape
    nodes = np.asarray(pose_nodes, np.float64) * [width, height]
    hips = nodes[list(TORSO_NODES[2:]), 0]
    strip_width = round(WAIST_STRIP * abs(hips[1] - hips[0]))
    waist = waist_row(target, nodes)
    if waist is None or strip_width < 2:
        return np.zeros_like(garment)
    below = garment & ~sleeves
    below[:waist] = False
    found = np.zeros_like(garment)
    # On the box of what lies below, grown so that the opening and the sleeves' reach see what they would on the
    # whole image (OpenCV's erosion takes the outside of its input for foreground).
    box = bounding_box(below, strip_width + 2)
    if box is None:
        return found
    below = below[box]
    narrow = below & ~cv2.morphologyEx(below.view(np.uint8), cv2.MORPH_OPEN, np.ones((1, strip_width), np.uint8)
                                       ).view(bool)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(narrow.view(np.uint8), connectivity=8)
    strips = stats[:, cv2.CC_STAT_HEIGHT] >= 2 * strip_width
    strips[np.unique(labels[grow(sleeves[box], 2)])] = False
    strips[0] = False
    found[box] = strips[labels]
    return found


def _like_the_wall(person: np.ndarray, wall: np.ndarray, candidates: np.ndarray, reach: float) -> np.ndarray:
    """(H, W) bool: the ``candidates`` whose colour is the wall's around them, every channel within
    ``WALL_TOLERANCE`` of the local mean of the (H, W) bool ``wall`` pixels of the (H, W, 3) float ``person``
    (a Gaussian of ``reach`` pixels, computed at a quarter of that scale and read at the candidates), where that
    wall weighs at least ``WALL_EVIDENCE``."""
    like = np.zeros_like(candidates)
    box = bounding_box(candidates, round(3 * reach))
    if box is None:
        return like
    box_height, box_width = candidates[box].shape
    shrink = max(1, int(reach // 4))
    small_width, small_height = max(1, box_width // shrink), max(1, box_height // shrink)
    weighted = np.empty((box_height, box_width, 4), np.float32)  # weight, then the weighted colours
    weighted[..., 0] = wall[box]
    np.multiply(person[box], weighted[..., :1], out=weighted[..., 1:])
    small = cv2.GaussianBlur(cv2.resize(weighted, (small_width, small_height), interpolation=cv2.INTER_AREA),
                             (0, 0), reach / shrink)
    rows, columns = pixels_of(candidates[box])
    # Bilinear reads of the small sums at the candidates' centres: (N, 1) maps, (N, 1, 4) sums.
    map_x = ((columns + 0.5) * (small_width / box_width) - 0.5).astype(np.float32)[:, None]
    map_y = ((rows + 0.5) * (small_height / box_height) - 0.5).astype(np.float32)[:, None]
    sums = cv2.remap(small, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[:, 0]  # (N, 4)
    mean = sums[:, 1:] / np.maximum(sums[:, :1], 1e-6)
    close = (np.abs(person[box][rows, columns] - mean) <= WALL_TOLERANCE).all(axis=1) & (sums[:, 0] >= WALL_EVIDENCE)
    like[box[0].start + rows[close], box[1].start + columns[close]] = True
    return like


def _recompose_one(person: np.ndarray, parse_cihp: np.ndarray, target: np.ndarray, garment_image: np.ndarray,
                   warp_mask: np.ndarray, sleeves: np.ndarray, neck_hole: np.ndarray, margin_px: int, pose_nodes,
                   garment_keypoints) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``recompose`` of one image: (H, W, 3) float person and warped garment, (H, W) uint8 CIHP and target parse,
    (H, W) bool warp mask, its sleeves' pixels and its neck hole; returns the image (H, W, 3), the keep mask (H, W)
    bool, the target (H, W) uint8 and the skin mask (H, W) bool."""
    height, width = target.shape
    # The garment's own neck hole is the neck, where the photo shows the body (the old garment or the neck) and the
    # target draws garment or background there (the parse network's neckline is not the garment's): left so, the
    # body between the shoulders became garment, the cloth mirrored into the hole (a tongue, a bar).
    body = is_any(parse_cihp, (*GARMENT_CIHP, NECK_CIHP))
    target = np.where(neck_hole & body & ((target == UPPER) | (target == 0)), FACE_NECK, target).astype(np.uint8)
    region, near_old_garment = _change_region(parse_cihp, margin_px)
    skin_like = np.zeros((height, width), bool)  # only ever taken on the region (arms, neck)
    lit_skin_like = np.zeros((height, width), bool)
    box = bounding_box(region)
    if box is not None:
        skin_like[box], lit_skin_like[box] = _skin_like(person, parse_cihp, box)
    # The old garment where the parse calls it something else: repainted as garment is (a sleeve called an arm
    # never gives the arm its shape, a sleeve called the trousers or the wall, or lace between the hair's ends
    # called hair, is not kept).
    mislabelled = _sleeves_labelled_arm(parse_cihp, skin_like) | _garment_labelled_otherwise(person, parse_cihp) \
        | _garment_under_hair(person, parse_cihp)
    if mislabelled.any():
        parse_cihp = np.where(mislabelled, UPPER_CLOTHES_CIHP, parse_cihp).astype(np.uint8)
        region, near_old_garment = _change_region(parse_cihp, margin_px)
    parse13 = to_parse13(parse_cihp)
    photo_arm = is_any(parse13, ARMS)
    own_skin_colour = _own_skin_colour(photo_arm | (parse_cihp == NECK_CIHP), skin_like, near_old_garment, person,
                                       parse_cihp)
    visible_arms = photo_arm & own_skin_colour
    if pose_nodes is not None:  # the person's visible arm is the arm (its own silhouette) unless garment covers it
        arm = region & visible_arms & (target != UPPER)
        arm |= _arms_in_front(region & visible_arms & (target == UPPER) & ~sleeves, parse13, pose_nodes,
                              garment_keypoints)
        target = np.where(arm, parse13, target)
    own_skin = (((parse13 == LEFT_ARM) & (target == LEFT_ARM)) | ((parse13 == RIGHT_ARM) & (target == RIGHT_ARM))
                | ((parse_cihp == NECK_CIHP) & (target == FACE_NECK)))
    kept_skin = own_skin & own_skin_colour
    garment = warp_mask & ~kept_skin
    if pose_nodes is not None:
        garment &= ~_strips_below_the_waist(garment, sleeves, target, pose_nodes)
    cracks = close_gaps(garment, round(GARMENT_CRACK * height)) & ~garment & region & ~kept_skin & ~neck_hole
    target = np.where(garment | cracks, UPPER, target)
    uncovered = (target == UPPER) & ~garment & ~cracks
    target = np.where(uncovered & (~region | photo_arm), parse13, target)  # the photo's arm is still there
    target = nearest_label(target, (target != UPPER) & (target != HAIR), uncovered & region & ~photo_arm)

    blanked = region & ~garment & ~kept_skin
    if pose_nodes is not None:
        layout = arm_layout_of(parse13, visible_arms, pose_nodes)
        target = shape_arms_of(target, blanked, parse_cihp, visible_arms, layout)
        if garment_keypoints is not None:
            target = cover_shoulders_of(target, parse_cihp, region, layout, pose_nodes, garment_keypoints)
        target = _bare_midriff(target, blanked & is_any(parse_cihp, GARMENT_CIHP), blanked & (parse_cihp == 0),
                               layout, pose_nodes, garment_keypoints, grow(parse13 == BOTTOM, margin_px))
    # Specks of garment apart from the rest (a strip of the old neckline inside the new garment's keypoint outline
    # but off the warp, filled with mirrored cloth: dark dashes on the neck) and slivers, pieces nowhere as thick
    # as GARMENT_SLIVER (the garment's side seen past a hand beside the hips: a dark line along the hand), take
    # their nearest other label.
    new_garment = target == UPPER
    specks = pieces(new_garment, smaller_than=GARMENT_SPECK * height * width, connectivity=4)  # a line too
    sliver_width = round(GARMENT_SLIVER * height)
    if sliver_width >= 2:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (sliver_width, sliver_width))
        specks |= pieces(new_garment, within=~cv2.morphologyEx(new_garment.view(np.uint8), cv2.MORPH_OPEN, disc
                                                               ).view(bool))
    if specks.any():  # and the warped garment's own specks and slivers are not pasted
        target = nearest_label(target, (target != UPPER) & ~specks, specks)
        garment &= ~specks
        blanked = region & ~garment & ~kept_skin
    # Wall wholly in a crack between the new garment and an arm (the photo's thin gap between an arm and the old
    # garment, which the new garment's side nearly fills): its cloth, not a ragged sliver of painted wall. Wall
    # that widens beyond a crack somewhere (a real gap) and notches of an arm's outline off the garment stay wall.
    new_garment = target == UPPER
    in_crack = close_gaps(is_any(target, ARMS) | new_garment, round(GARMENT_CRACK * height))
    beside_garment = grow(new_garment, 1)
    sliver = pieces((target == 0) & region, within=in_crack, touching=beside_garment)
    if garment_keypoints is not None:
        # A piece of painted torso skin beside the new garment, wholly between its armpits and its hem, is the
        # body's side beside a warp narrower than the body: a top wraps the body there, so it is the garment's
        # cloth, up to SIDE_REACH from it (a strip of skin down the garment's side, shaded apart from the arm
        # beside it, was 32-41 pixels wide on the shop photos at 1024 rows). Skin that reaches above the armpits
        # is the shoulder's, beside a strap and down a deep armhole (cut at the armpits, its lower end was a tab
        # of cloth); below the hem, a midriff.
        side_skin = (target == FACE_NECK) & region & ~kept_skin
        reach = SIDE_REACH * height
        side_box = bounding_box(side_skin, int(np.ceil(reach)))  # every garment pixel within reach of that skin
        if side_box is not None:
            keypoints = np.asarray(garment_keypoints, np.float64) * [width, height]
            between = below_line(keypoints[ARMPITS], (height, width)) \
                & ~below_line(keypoints[list(HEM)], (height, width))
            near_garment = np.zeros_like(side_skin)
            near_garment[side_box] = cv2.distanceTransform((~new_garment[side_box]).view(np.uint8), cv2.DIST_L2,
                                                           3) <= reach
            sliver |= pieces(side_skin, within=between & near_garment, touching=beside_garment)
    target = np.where(sliver, UPPER, target)
    extended = (target == UPPER) & ~garment  # garment the warp does not reach: cracks, ``cover_shoulders``
    # The photo's wall where the target keeps wall and it looks like the wall around it is the photo's own (the
    # old garment's blurred edge and its shadow in the margin, unlike it, are painted): left to the inpainter, it
    # was a band of smooth paint around the new garment, a quarter to nearly half of what was painted.
    kept_wall = _like_the_wall(person, (parse_cihp == 0) & ~region, blanked & (target == 0) & (parse_cihp == 0),
                               WALL_REACH * height)
    blanked &= ~kept_wall
    # Visible arm skin that ``cover_shoulders`` puts under a new sleeve takes the sleeve's cloth (kept as skin, it
    # left a line of skin along the sleeve's edge).
    kept_skin &= ~extended
    # OpenCV's masked copies: a twentieth of the time of numpy's boolean indexing.
    image = cv2.copyTo(np.full_like(person, BLANK_VALUE), region.view(np.uint8), person.copy())
    image = cv2.copyTo(garment_image, garment.view(np.uint8), image)
    if extended.any():
        rows, columns = _mirrored_sources(garment, extended, max(MIRROR_DEPTH * height, 1.0))
        image[extended] = garment_image[rows, columns]
    image = cv2.copyTo(person, (kept_skin | kept_wall).view(np.uint8), image)
    keep = ~(blanked & ~extended)
    skin = kept_skin & lit_skin_like  # the colour painted skin takes is learnt from skin of the lit skin's colour
    if np.count_nonzero(skin) < 0.001 * height * width:  # no neck or arm to learn from: the face
        skin = keep & (parse_cihp == FACE_CIHP)
    return image, keep, target.astype(np.uint8), skin


def recompose(
    person: torch.Tensor,
    parse_cihp: torch.Tensor,
    target_parse13: torch.Tensor,
    warp: WarpResult,
    margin_px: int = 0,
    pose_nodes: torch.Tensor | np.ndarray | None = None,
    garment_keypoints: torch.Tensor | np.ndarray | None = None,
) -> Recomposition:
    """The person with the change region blanked, the warped garment and kept skin pasted, and the target parse
    as composed. See the module docstring for the exact rule.

    Args:
        person: (B, 3, H, W) person photo in [0, 1].
        parse_cihp: (B, H, W) integer CIHP parse of the person photo.
        target_parse13: (B, H, W) integer 13-class parse of the person wearing the new garment.
        warp: the warped garment (``kgi.warp.warp_garment``) at the same size.
        margin_px: the change region's margin (``change_region``); ``MARGIN`` of the height in the pipeline.
        pose_nodes: (B, 10, 2) normalised pose-graph nodes: painted arms take the person's shape
            (``kgi.posed_arms.shape_arms``); None leaves the target parse's arms as they are.
        garment_keypoints: (B, 32, 2) normalised keypoints of the worn garment; with the pose, the body between
            the neck and the arms is never background (``kgi.posed_arms.cover_shoulders``).
    """
    if person.dim() != 4 or person.shape[1] != 3:
        raise RecomposeInputError(f"person must be (B, 3, H, W), got {tuple(person.shape)}")
    batch, _, height, width = person.shape
    _check_parse(target_parse13, "target_parse13")
    _check_parse(parse_cihp, "parse_cihp", NUM_CIHP)
    for name, tensor in (("parse_cihp", parse_cihp), ("target_parse13", target_parse13)):
        if tensor.shape != (batch, height, width):
            raise RecomposeInputError(f"{name} must be {(batch, height, width)}, got {tuple(tensor.shape)}")
    if warp.garment.shape != person.shape or warp.mask.shape != (batch, 1, height, width):
        raise RecomposeInputError(
            f"warp must match person {tuple(person.shape)}, got garment {tuple(warp.garment.shape)} "
            f"and mask {tuple(warp.mask.shape)}")

    nodes = [None] * batch if pose_nodes is None else np.asarray(pose_nodes)
    keypoints = [None] * batch if garment_keypoints is None else np.asarray(garment_keypoints)
    # Channels last (the pipeline's person images are), contiguous for OpenCV.
    people = np.ascontiguousarray(person.permute(0, 2, 3, 1).cpu().numpy())  # (B, H, W, 3)
    garments = np.ascontiguousarray(warp.garment.to(person.dtype).permute(0, 2, 3, 1).cpu().numpy())
    neck_holes = (torch.zeros_like(warp.mask) if warp.neck_hole is None else warp.neck_hole)[:, 0] > 0.5
    images, keeps, targets, skins = zip(*(
        _recompose_one(*arrays, margin_px, sample_nodes, sample_keypoints) for *arrays, sample_nodes, sample_keypoints
        in zip(people, label_maps(parse_cihp), label_maps(target_parse13), garments,
               (warp.mask[:, 0] > 0.5).cpu().numpy(), _sleeve_pixels(warp).cpu().numpy(), neck_holes.cpu().numpy(),
               nodes, keypoints)))
    return Recomposition(image=torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(person.device),
                         keep_mask=stack_maps(keeps, person, torch.float32)[:, None],
                         target_parse13=stack_maps(targets, person),
                         skin_mask=stack_maps(skins, person, torch.float32)[:, None])
