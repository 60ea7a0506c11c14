"""Stage 2b: the region a new garment changes, and the recomposed image the inpainter completes.

``recompose`` builds, from the person photo, its CIHP parse, the target parse (the person wearing the new
garment, predicted by stage 2a) and the warped garment (``kgi.warp``), the image the keep-mask sampler starts
from, the mask of pixels it must keep and the target parse as composed:

    region   = change_region: the old garment, its sleeves (arms) and the neck skin (``AGNOSTIC_CIHP``),
               grown by ``margin_px`` into background, lower garment and skin (``MARGIN_CIHP``)
    skin     = the person's arm (neck) where the target parse keeps that arm (face-neck), farther than the
               margin from the old garment (a cuff's or a neckline's outline is repainted, not kept) and
               of the colour of the person's face and neck (a sleeve labelled arm by the parse is repainted)
    garment  = the warped garment where it is not behind kept skin
    target   = upper exactly where ``garment`` is and in its cracks (``close_gaps``, ``GARMENT_CRACK``: filled
               with its nearest colours, kept); the target's other upper pixels take the person's label
               outside the region (the photo stays) and where the photo shows an arm (the arm is there, not the
               wall), and elsewhere their nearest label other than garment and hair (a neckline's hole next to
               long hair is the neck's skin)
    image    = person; grey 0.5 on region; warped garment on ``garment``; person on ``skin``
    keep     = not region, or garment, or skin, or extended garment

With the pose and the worn garment's keypoints, the body between the neck and the arms (the old garment, arms
and neck there) is never background in the target (``cover_shoulders``): it is garment inside the garment's
keypoint outline, else arm or neck skin. Garment pixels the warp does not reach there take the warped garment's
cloth mirrored across its outline (``extend_garment``) and are kept, not painted.

With the pose (``pose_nodes``), the arms the target parse draws in the painted pixels take the person's shape
(``kgi.limbs``): the person's visible arm skin stays arm (its own silhouette) unless the new garment covers it;
where the old garment hid an arm, the pose's arm capsule is the arm; the target parse's other painted arm pixels
become the photo's own label there (background where it was the old garment), except on the torso, where the old
garment covered skin.

So nothing of the old garment is kept (its pixels are in the region, and only the new garment or the
person's own skin away from it is pasted there), and the new garment is never painted: the target parse's
garment region is the warped garment. Outside the region the photo is kept even where the target parse
predicted garment the warp did not cover.

Parse maps are (B, H, W) integer labels: CIHP (0..19, ``kgi.data.labels.CIHP_LABELS``) for the person,
the 13 model classes (``PARSE13_LABELS``) for targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from kgi.data.labels import AGNOSTIC_CIHP, AGNOSTIC_PARSE13, CIHP_TO_PARSE13, FACE_CIHP, FACE_NECK, GARMENT_CIHP, \
    LEFT_ARM, MARGIN_CIHP, NUM_CIHP, NUM_PARSE13, PARSE13_LABELS, RIGHT_ARM, UPPER
from kgi.limbs import TORSO_CORE, arm_layout, shoulder_zone, sleeved_arm_pixels
from kgi.warp import WarpResult

BLANK_VALUE = 0.5  # grey written on the region the inpainter paints
# Margin of the change region, a fraction of the image height: parses put the old garment's outline a few
# pixels off (10 pixels at 1024 rows).
MARGIN = 0.01
# The widest crack or notch of the warped garment filled as garment, a fraction of the height: segments meet
# with a few pixels between them, and their outline steps where the spline of the segment chosen at the warp's
# geometry size (``kgi.warp``) leaves the garment.
GARMENT_CRACK = 0.006
NECK_CIHP = 10
SKIN_REFERENCE_CIHP = (10, 13)  # neck and face: always skin, unlike what a parse calls arms (sleeves, often)
DARKEST_SKIN = 0.4  # a kept skin pixel is at least this fraction of the face's median brightness
SKIN_CHROMA_TOLERANCE = 0.06  # and its red and green shares of r + g + b within this of the face's
HAIR = PARSE13_LABELS.index("hair")
BACKGROUND = PARSE13_LABELS.index("background")


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
        skin_mask: (B, 1, H, W) float {0, 1}: the person's visible skin kept in ``image`` (neck and arms away
            from the old garment; the face where there is none): what painted skin's colour is learnt from.
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


def _morphology(mask: torch.Tensor, operation: int, kernel: np.ndarray) -> torch.Tensor:
    """(B, H, W) bool ``mask`` through OpenCV's ``morphologyEx`` ``operation`` with ``kernel``, sample by sample
    on the CPU (100x torch's max pooling at 1024 rows)."""
    changed = [cv2.morphologyEx(sample.cpu().numpy().astype(np.uint8), operation, kernel) for sample in mask]
    return torch.from_numpy(np.stack(changed)).to(mask.device).bool()


def close_gaps(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, H, W) bool ``mask`` closed (dilated, then eroded) by a disc of ``radius`` pixels: its cracks and
    notches narrower than about the disc filled."""
    if radius <= 0:
        return mask
    return _morphology(mask, cv2.MORPH_CLOSE,
                       cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))


def grow(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, H, W) bool ``mask`` dilated by a (2 radius + 1)-pixel square."""
    if radius <= 0:
        return mask
    return _morphology(mask, cv2.MORPH_DILATE, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8))


def _isin(parse: torch.Tensor, labels: tuple[int, ...]) -> torch.Tensor:
    """(B, H, W) bool: ``parse``'s CIHP label is one of ``labels`` (a table lookup: 5x ``torch.isin``)."""
    table = torch.zeros(NUM_CIHP, dtype=torch.bool, device=parse.device)
    table[list(labels)] = True
    return table[parse.long()]


def change_region(parse_cihp: torch.Tensor, margin_px: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixels a new garment may change, and those near the old garment: two (B, H, W) bool.

    Args:
        parse_cihp: (B, H, W) integer CIHP labels of the person photo.
        margin_px: how far the region grows beyond the old garment, arms and neck (into ``MARGIN_CIHP``).

    Returns ``(region, near_old_garment)``: ``AGNOSTIC_CIHP`` grown by the margin into ``MARGIN_CIHP``; and the
    old garment (``GARMENT_CIHP``) grown by the margin, where even the person's own skin is repainted.
    """
    _check_parse(parse_cihp, "parse_cihp", NUM_CIHP)
    near_old_garment = grow(_isin(parse_cihp, GARMENT_CIHP), margin_px)
    changeable = _isin(parse_cihp, AGNOSTIC_CIHP)
    region = changeable | (grow(changeable, margin_px) & _isin(parse_cihp, MARGIN_CIHP))
    return region, near_old_garment


def _skin_like(person: torch.Tensor, parse_cihp: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: pixels of the colour of the person's face and neck (``SKIN_REFERENCE_CIHP``): at least
    ``DARKEST_SKIN`` of their median brightness (shadows pass, a dark sleeve does not) and red and green shares
    of r + g + b within ``SKIN_CHROMA_TOLERANCE`` of theirs (a shadow keeps its hue, a coloured sleeve does not).
    Everything where a person shows no face or neck."""
    brightness = person.sum(1)  # (B, H, W)
    chroma = person[:, :2] / brightness.clamp_min(1e-3).unsqueeze(1)  # (B, 2, H, W) red and green shares
    like = torch.ones_like(brightness, dtype=torch.bool)
    for index, reference in enumerate(_isin(parse_cihp, SKIN_REFERENCE_CIHP)):
        if not reference.any():
            continue
        floor = DARKEST_SKIN * brightness[index][reference].median()
        skin_chroma = chroma[index][:, reference].median(dim=1).values.view(2, 1, 1)
        like[index] = (brightness[index] >= floor) & \
            ((chroma[index] - skin_chroma).abs().amax(0) <= SKIN_CHROMA_TOLERANCE)
    return like


def fill_garment_holes(target_parse13: torch.Tensor, parse_cihp: torch.Tensor, max_fraction: float = 0.005
                       ) -> torch.Tensor:
    """The target parse with small holes in its garment region filled as garment: (B, H, W) long.

    A hole is a 4-connected region of other labels enclosed by the garment (touching no image border) and
    smaller than ``max_fraction`` of the image; the person's own visible arm (an arm in front of the garment) is
    never a hole. The parse network, seeing a garment-agnostic person, sometimes leaves such islands (a stray arm
    blob on the torso), which would be painted as skin in the middle of the new garment.
    """
    filled = target_parse13.clone()
    arms = _isin(parse_cihp, (14, 15))
    for index in range(len(target_parse13)):
        other = (target_parse13[index] != UPPER).cpu().numpy().astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(other, connectivity=4)
        height, width = other.shape
        left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
        inside = (left > 0) & (top > 0) & (left + stats[:, cv2.CC_STAT_WIDTH] < width) \
            & (top + stats[:, cv2.CC_STAT_HEIGHT] < height)
        holes = np.flatnonzero(inside & (stats[:, cv2.CC_STAT_AREA] < max_fraction * height * width))
        holes = holes[holes > 0]  # label 0 is the garment itself
        if holes.size:
            hole = torch.from_numpy(np.isin(labels, holes)).to(target_parse13.device) & ~arms[index]
            filled[index] = torch.where(hole, UPPER, filled[index])
    return filled


def _nearest_label(target: torch.Tensor, sources: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """``target`` with its pixels inside ``where`` relabelled as the nearest pixel of ``sources`` (Euclidean, per
    sample; OpenCV's distance transform, on the CPU). All (B, H, W); a sample without sources is left as it is."""
    relabelled = target.clone()
    for index in range(len(target)):
        source = sources[index].cpu().numpy()
        if not where[index].any() or not source.any():
            continue
        _, nearest = cv2.distanceTransformWithLabels((~source).astype(np.uint8), cv2.DIST_L2, 3,
                                                     labelType=cv2.DIST_LABEL_PIXEL)
        labels = target[index].cpu().numpy()[source]  # in the scan order OpenCV numbers them, from 1
        filled = torch.from_numpy(labels[nearest - 1].astype(np.int64)).to(target.device)
        relabelled[index] = torch.where(where[index], filled, target[index])
    return relabelled


def _arm_layouts(parse13: torch.Tensor, visible_arms: torch.Tensor, pose_nodes) -> list[tuple[torch.Tensor,
                                                                                             torch.Tensor]]:
    """Per sample, ``kgi.limbs.arm_layout``'s (arms, torso) as (H, W) long tensors."""
    height, width = parse13.shape[1:]
    layouts = []
    for index in range(len(parse13)):
        own = torch.where(visible_arms[index], parse13[index], 0).byte().cpu().numpy()
        nodes = np.asarray(pose_nodes[index], dtype=np.float64) * [width, height]
        arms, torso = arm_layout(nodes, own)
        layouts.append(tuple(torch.from_numpy(a).to(parse13.device).long() for a in (arms, torso)))
    return layouts


def _photo_label(parse13: torch.Tensor) -> torch.Tensor:
    """The photo's 13-class label, background where it shows garment or arms (what an arm pixel the pose cannot
    explain shows instead)."""
    return torch.where((parse13 == UPPER) | (parse13 == LEFT_ARM) | (parse13 == RIGHT_ARM), 0, parse13)


def pose_arms(target: torch.Tensor, parse_cihp: torch.Tensor, pose_nodes) -> torch.Tensor:
    """Stage 2a's target parse with the arms the pose cannot explain removed, (B, H, W) long: arm pixels off the
    photo's own arms that are outside the pose's arm capsules (``kgi.limbs``) or on the torso's core (where an
    arm in front of the body would show in the photo) become garment on the torso (the new garment covers the
    body there; what it does not cover is relabelled by ``recompose``) and the photo's label elsewhere. The
    parse network, trained on synthetic people, draws arms on genuine photos where the old garment was: as wide
    as a sleeve, or a patch on the torso that would cut a hole in the new garment.

    Args:
        target: (B, H, W) 13-class target parse. parse_cihp: (B, H, W) CIHP parse of the photo.
        pose_nodes: (B, 10, 2) normalised pose-graph nodes.
    """
    parse13 = torch.from_numpy(CIHP_TO_PARSE13).to(target.device)[parse_cihp.long()].long()
    photo_arm = (parse13 == LEFT_ARM) | (parse13 == RIGHT_ARM)
    cleaned = target.long().clone()
    for index, (arms, torso) in enumerate(_arm_layouts(parse13, photo_arm, pose_nodes)):
        labels = cleaned[index]
        stray = ((labels == LEFT_ARM) | (labels == RIGHT_ARM)) & ((arms == 0) | (torso == TORSO_CORE)) \
            & ~photo_arm[index]
        cleaned[index] = torch.where(stray, torch.where(torso > 0, UPPER, _photo_label(parse13[index])), labels)
    return cleaned


def shape_arms(target: torch.Tensor, painted: torch.Tensor, parse_cihp: torch.Tensor, visible_arms: torch.Tensor,
               pose_nodes) -> torch.Tensor:
    """The target parse with the arms of its ``painted`` pixels shaped by the pose (``kgi.limbs``), (B, H, W) long.

    Among the painted pixels: where the old garment (or an arm the parse labels but that is not skin) hid an
    arm, the pose's arm capsule is that arm (unless the target says hair or face there, or it is the torso's
    core: an arm in front of the body would show in the photo); the target's other arm
    pixels take the photo's own label (background where that was garment or arm), except on the torso (skin
    where the new garment is shorter than the old).

    Args:
        target: (B, H, W) 13-class target parse. painted: (B, H, W) bool pixels the inpainter paints.
        parse_cihp: (B, H, W) CIHP parse of the photo. visible_arms: (B, H, W) bool the photo's visible arm skin.
        pose_nodes: (B, 10, 2) normalised pose-graph nodes.
    """
    parse13 = torch.from_numpy(CIHP_TO_PARSE13).to(target.device)[parse_cihp.long()].long()
    photo_arm = (parse13 == LEFT_ARM) | (parse13 == RIGHT_ARM)
    shaped = target.clone()
    for index, (arms, torso) in enumerate(_arm_layouts(parse13, visible_arms, pose_nodes)):
        hidden = painted[index] & (_isin(parse_cihp[index], GARMENT_CIHP) | (photo_arm[index] & ~visible_arms[index]))
        labels = shaped[index]
        stray = painted[index] & ((labels == LEFT_ARM) | (labels == RIGHT_ARM)) & (arms == 0) & (torso == 0) \
            & ~photo_arm[index]
        labels = torch.where(stray, _photo_label(parse13[index]), labels)
        capsule = hidden & (arms > 0) & (torso != TORSO_CORE) & (labels != HAIR) & (labels != FACE_NECK)
        shaped[index] = torch.where(capsule, arms, labels)
    return shaped


def cover_shoulders(target: torch.Tensor, parse_cihp: torch.Tensor, region: torch.Tensor, visible_arms: torch.Tensor,
                    pose_nodes, garment_keypoints) -> torch.Tensor:
    """The target parse with no background on the body between the neck and the arms, and garment wherever the
    new garment's keypoints put it on the old one: (B, H, W) long.

    Where the person's photo shows the old garment, an arm or the neck inside the change region, the body is
    there whatever the new garment is, and the target's background is a hole the wall would show through. Such
    pixels become garment inside the worn garment's keypoint outline (``kgi.limbs.shoulder_zone``); outside it,
    within the pose's shoulder zone (neck, trapezius, shoulders' tops) or torso (``kgi.limbs.arm_layout``), the
    pose's arm inside an arm capsule and elsewhere the nearest skin class of the target (neck or arm: what a
    shorter neckline or a sleeveless top leaves bare); elsewhere (a loose sleeve or hem) background may stay.
    Inside the outline, on the shoulders and in the new sleeves, the old garment is garment even where the target
    draws an arm: the parse network draws the arm up over a shoulder the new sleeve covers (a bare "cold
    shoulder") and across a bent sleeve's elbow the warp leaves open (an arm hanging bare beside the body,
    inside a wide garment's outline, stays arm). An arm the target draws on the old garment or the photo's arm
    where the arm's nearest bone is under the new garment (``kgi.limbs.sleeved_arm_pixels``) is garment too,
    outline or not, and so is the body's background there on the shoulders or torso: a strip of skin or wall
    between a long sleeve and the torso, or the photo's arm beside a sleeve narrower than it, is an arm the
    sleeve covers.

    Args:
        target: (B, H, W) 13-class target parse. parse_cihp: (B, H, W) CIHP parse of the photo.
        region: (B, H, W) bool the change region. visible_arms: (B, H, W) bool the photo's visible arm skin.
        pose_nodes: (B, 10, 2) normalised pose-graph nodes.
        garment_keypoints: (B, 32, 2) normalised keypoints of the worn garment (stage 1's, seated on the
            shoulders by ``kgi.pipeline.seated_keypoints``).
    """
    height, width = target.shape[1:]
    parse13 = torch.from_numpy(CIHP_TO_PARSE13).to(target.device)[parse_cihp.long()].long()
    body = region & _isin(parse_cihp, AGNOSTIC_CIHP) & (target == BACKGROUND)
    target_arm = region & ((target == LEFT_ARM) | (target == RIGHT_ARM))
    sleeve_arm = target_arm & _isin(parse_cihp, GARMENT_CIHP)
    covered_arm = target_arm & (_isin(parse_cihp, GARMENT_CIHP) | (parse13 == LEFT_ARM) | (parse13 == RIGHT_ARM))
    covered = target.long().clone()
    bare = torch.zeros_like(body)
    for index, (arms, torso) in enumerate(_arm_layouts(parse13, visible_arms, pose_nodes)):
        nodes = np.asarray(pose_nodes[index], np.float64) * [width, height]
        zone, inside, sleeves = (torch.from_numpy(m).to(target.device) for m in shoulder_zone(
            nodes, np.asarray(garment_keypoints[index], np.float64) * [width, height], (height, width)))
        sleeved = torch.from_numpy(sleeved_arm_pixels(nodes, (covered[index] == UPPER).cpu().numpy()))
        sleeved = sleeved.to(target.device)
        on_garment = body[index] | (sleeve_arm[index] & (zone | sleeves))  # not an arm hanging beside the body
        hole = body[index] & (zone | (torso > 0))
        under_sleeve = (covered_arm[index] | hole) & sleeved
        labels = torch.where((on_garment & inside) | under_sleeve, UPPER, covered[index])
        open_hole = hole & ~inside & ~sleeved
        covered[index] = torch.where(open_hole & (arms > 0), arms, labels)
        bare[index] = open_hole & (arms == 0)
    skin = (covered == FACE_NECK) | (covered == LEFT_ARM) | (covered == RIGHT_ARM)
    return _nearest_label(covered, skin, bare)


def extend_garment(garment_image: torch.Tensor, garment: torch.Tensor) -> torch.Tensor:
    """The warped garment's cloth carried beyond its pixels, (B, 3, H, W): each pixel p takes the garment pixel
    mirrored across its nearest garment pixel n, 2n - p, or n itself where the mirror leaves the garment. A strip
    between a sleeve and the torso continues the weave or print (mirrored) instead of a blur of its colours.

    Args:
        garment_image: (B, 3, H, W) the warped garment. garment: (B, H, W) bool where it is known.
    """
    height, width = garment.shape[1:]
    rows, columns = np.mgrid[0:height, 0:width]  # (H, W) each
    filled = []
    for image, known in zip(garment_image, garment):
        known = known.cpu().numpy()
        if not known.any():
            filled.append(image)
            continue
        _, nearest = cv2.distanceTransformWithLabels((~known).astype(np.uint8), cv2.DIST_L2, 3,
                                                     labelType=cv2.DIST_LABEL_PIXEL)
        known_rows, known_columns = np.nonzero(known)  # in the scan order OpenCV numbers them, from 1
        nearest_row, nearest_column = known_rows[nearest - 1], known_columns[nearest - 1]
        mirror_row = np.clip(2 * nearest_row - rows, 0, height - 1)
        mirror_column = np.clip(2 * nearest_column - columns, 0, width - 1)
        inside = known[mirror_row, mirror_column]
        source = (torch.from_numpy(np.where(inside, mirror_row, nearest_row) * width
                                   + np.where(inside, mirror_column, nearest_column)).to(image.device))
        filled.append(image.flatten(1)[:, source.flatten()].view_as(image))  # (3, H*W) -> (3, H, W)
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
            (``shape_arms``); None leaves the target parse's arms as they are.
        garment_keypoints: (B, 32, 2) normalised keypoints of the worn garment; with the pose, the body between
            the neck and the arms is never background (``cover_shoulders``).
    """
    if person.dim() != 4 or person.shape[1] != 3:
        raise RecomposeInputError(f"person must be (B, 3, H, W), got {tuple(person.shape)}")
    batch, _, height, width = person.shape
    _check_parse(target_parse13, "target_parse13")
    for name, tensor in (("parse_cihp", parse_cihp), ("target_parse13", target_parse13)):
        if tensor.shape != (batch, height, width):
            raise RecomposeInputError(f"{name} must be {(batch, height, width)}, got {tuple(tensor.shape)}")
    if warp.garment.shape != person.shape or warp.mask.shape != (batch, 1, height, width):
        raise RecomposeInputError(
            f"warp must match person {tuple(person.shape)}, got garment {tuple(warp.garment.shape)} "
            f"and mask {tuple(warp.mask.shape)}")

    region, near_old_garment = change_region(parse_cihp, margin_px)
    parse13 = torch.from_numpy(CIHP_TO_PARSE13).to(parse_cihp.device)[parse_cihp.long()]
    target = target_parse13.long()
    skin_like = _skin_like(person, parse_cihp)
    photo_arm = (parse13 == LEFT_ARM) | (parse13 == RIGHT_ARM)
    visible_arms = photo_arm & skin_like & ~near_old_garment
    if pose_nodes is not None:  # the person's visible arm is the arm (its own silhouette) unless garment covers it
        target = torch.where(region & visible_arms & (target != UPPER), parse13.long(), target)
    own_skin = (((parse13 == LEFT_ARM) & (target == LEFT_ARM)) | ((parse13 == RIGHT_ARM) & (target == RIGHT_ARM))
                | ((parse_cihp == NECK_CIHP) & (target == FACE_NECK)))
    kept_skin = own_skin & ~near_old_garment & skin_like
    garment = (warp.mask[:, 0] > 0.5) & ~kept_skin
    cracks = close_gaps(garment, round(GARMENT_CRACK * height)) & ~garment & region & ~kept_skin
    target = torch.where(garment | cracks, UPPER, target)
    uncovered = (target == UPPER) & ~garment & ~cracks
    target = torch.where(uncovered & (~region | photo_arm), parse13, target)  # the photo's arm is still there
    target = _nearest_label(target, (target != UPPER) & (target != HAIR), uncovered & region & ~photo_arm)

    blanked = region & ~garment & ~kept_skin
    if pose_nodes is not None:
        target = shape_arms(target, blanked, parse_cihp, visible_arms, pose_nodes)
        if garment_keypoints is not None:
            target = cover_shoulders(target, parse_cihp, region, visible_arms, pose_nodes, garment_keypoints)
    extended = (target == UPPER) & ~garment  # garment the warp does not reach: cracks, ``cover_shoulders``
    image = torch.where(region[:, None], torch.full_like(person, BLANK_VALUE), person)
    image = torch.where(garment[:, None], warp.garment, image)
    if extended.any():
        image = torch.where(extended[:, None], extend_garment(warp.garment, garment), image)
    image = torch.where(kept_skin[:, None], person, image)
    keep = ~(blanked & ~extended)
    skin = kept_skin
    scarce = skin.flatten(1).sum(1) < 0.001 * height * width  # no neck or arm to learn from: the face
    skin = torch.where(scarce.view(-1, 1, 1), keep & (parse_cihp == FACE_CIHP), skin)
    return Recomposition(image=image, keep_mask=keep[:, None].float(), target_parse13=target,
                         skin_mask=skin[:, None].float())
