"""The target parse's arms and shoulders as the pose has them (``kgi.limbs``): stage 2's label work on arms.

``pose_arms`` removes the arms stage 2a's network draws where the pose has none; ``shape_arms`` gives the arms
the inpainter paints the person's shape; ``cover_shoulders`` leaves no background on the body between the neck
and the arms (``kgi.recompose`` runs the last two, ``kgi.pipeline`` the first). Each takes and returns batched
tensors and works image by image in numpy (``kgi.labelmaps``).
"""

from __future__ import annotations

import numpy as np
import torch

from kgi.data.labels import AGNOSTIC_CIHP, FACE_NECK, GARMENT_CIHP, LEFT_ARM, NECK_CIHP, PARSE13_LABELS, RIGHT_ARM, \
    UPPER
from kgi.labelmaps import is_any, label_maps, nearest_label, small_holes, stack_maps, to_parse13
from kgi.limbs import TORSO_CORE, TORSO_NODES, arm_layout, shoulder_zone, sleeved_arm_pixels

HAIR = PARSE13_LABELS.index("hair")
BACKGROUND = PARSE13_LABELS.index("background")
BOTTOM = PARSE13_LABELS.index("bottom")
ARMS = (LEFT_ARM, RIGHT_ARM)
ARMPITS = [14, 22]  # the worn garment's armpit nodes (``kgi.graphs``)
SLEEVE_HOLE = 0.005  # of the image: an enclosed hole in the garment up to this size is a hole in its cloth


def _photo_label(parse13: np.ndarray) -> np.ndarray:
    """The photo's 13-class label, background where it shows garment or arms (what an arm pixel the pose cannot
    explain shows instead)."""
    return np.where(is_any(parse13, (UPPER, *ARMS)), 0, parse13).astype(np.uint8)


def arm_layout_of(parse13: np.ndarray, visible_arms: np.ndarray, pose_nodes) -> tuple[np.ndarray, np.ndarray]:
    """``kgi.limbs.arm_layout``'s (arms, torso) of one image, (H, W) uint8, the arms measured on ``visible_arms``
    (H, W) bool of its 13-class ``parse13`` (or on the sleeves of its upper garment where too little shows);
    ``pose_nodes`` (10, 2) normalised."""
    height, width = parse13.shape
    nodes = np.asarray(pose_nodes, dtype=np.float64) * [width, height]
    return arm_layout(nodes, np.where(visible_arms, parse13, 0).astype(np.uint8), parse13 == UPPER)


def _pose_arms(target: np.ndarray, parse_cihp: np.ndarray, pose_nodes) -> np.ndarray:
    """``pose_arms`` of one image: (H, W) uint8 target and CIHP parse, (10, 2) normalised pose nodes."""
    parse13 = to_parse13(parse_cihp)
    photo_arm = is_any(parse13, ARMS)
    arms, torso = arm_layout_of(parse13, photo_arm, pose_nodes)
    stray = is_any(target, ARMS) & ((arms == 0) | (torso == TORSO_CORE)) & ~photo_arm
    if not stray.any():
        return target
    return np.where(stray, np.where(torso > 0, UPPER, _photo_label(parse13)), target).astype(np.uint8)


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
    return stack_maps([_pose_arms(labels, parse, nodes) for labels, parse, nodes in
                       zip(label_maps(target), label_maps(parse_cihp), np.asarray(pose_nodes))], target)


def shape_arms_of(target: np.ndarray, painted: np.ndarray, parse_cihp: np.ndarray, visible_arms: np.ndarray,
                layout: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``shape_arms`` of one image: (H, W) uint8 labels and bool masks, ``layout`` its ``_arm_layout``."""
    arms, torso = layout
    parse13 = to_parse13(parse_cihp)
    photo_arm = is_any(parse13, ARMS)
    hidden = painted & (is_any(parse_cihp, GARMENT_CIHP) | (photo_arm & ~visible_arms))
    stray = painted & is_any(target, ARMS) & (arms == 0) & (torso == 0) & ~photo_arm
    labels = np.where(stray, _photo_label(parse13), target) if stray.any() else target
    capsule = hidden & (arms > 0) & (torso != TORSO_CORE) & (labels != HAIR) & (labels != FACE_NECK)
    return np.where(capsule, arms, labels).astype(np.uint8)


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
    shaped = []
    for labels, paint, parse, visible, nodes in zip(label_maps(target), painted.cpu().numpy(), label_maps(parse_cihp),
                                                    visible_arms.cpu().numpy(), np.asarray(pose_nodes)):
        layout = arm_layout_of(to_parse13(parse), visible, nodes)
        shaped.append(shape_arms_of(labels, paint, parse, visible, layout))
    return stack_maps(shaped, target)


def waist_row(target: np.ndarray, nodes: np.ndarray) -> int | None:
    """The target's waist: the first row where the (H, W) uint8 ``target``'s bottom garment spans half the hips
    (pose nodes (10, 2) in pixels), or None (none, or hips a pixel apart: no pose's hips). A narrow strip of
    bottom garment higher up (``recompose``'s nearest label for garment the warp leaves open) is not the waist."""
    hips = np.asarray(nodes, np.float64)[list(TORSO_NODES[2:]), 0]
    span = abs(hips[1] - hips[0])
    rows = np.flatnonzero((target == BOTTOM).sum(axis=1) >= span / 2) if span >= 2 else []
    return int(rows[0]) if len(rows) else None


def below_line(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the pixels below the polyline through ``points`` (N, 2) x, y (in the order of x), level beyond
    either end."""
    points = points[np.argsort(points[:, 0])]
    line = np.interp(np.arange(shape[1]), points[:, 0], points[:, 1])  # (W,) its row in each column
    return np.arange(shape[0])[:, None] > line[None, :]


def cover_shoulders_of(target: np.ndarray, parse_cihp: np.ndarray, region: np.ndarray,
                     layout: tuple[np.ndarray, np.ndarray], pose_nodes, garment_keypoints) -> np.ndarray:
    """``cover_shoulders`` of one image: (H, W) uint8 labels and bool ``region``, ``layout`` its ``_arm_layout``,
    normalised (10, 2) pose nodes and (32, 2) garment keypoints."""
    arms, torso = layout
    height, width = target.shape
    body = region & is_any(parse_cihp, AGNOSTIC_CIHP) & (target == BACKGROUND)
    target_arm = region & is_any(target, ARMS)
    on_old_garment = is_any(parse_cihp, GARMENT_CIHP)
    sleeve_arm = target_arm & on_old_garment
    nodes = np.asarray(pose_nodes, np.float64) * [width, height]
    # What the target may draw where an arm is under a new sleeve: the arm, on the old garment or the photo's
    # arm, or the bottom garment (``recompose``'s nearest label for garment the warp leaves open) above the hips.
    above_hips = np.arange(height)[:, None] < nodes[list(TORSO_NODES[2:]), 1].min()
    photo_arm = is_any(to_parse13(parse_cihp), ARMS)
    covered_arm = (target_arm & (on_old_garment | photo_arm)) \
        | (region & on_old_garment & (target == BOTTOM) & above_hips)
    keypoints = np.asarray(garment_keypoints, np.float64) * [width, height]
    zone, inside, sleeves = shoulder_zone(nodes, keypoints, (height, width))
    on_garment = body | (sleeve_arm & (zone | sleeves))  # not an arm hanging beside the body
    # The outline's body reaches no further down than the target's waist: the old garment's side that hangs over
    # the skirt beside a tucked-in top is not the new garment (it drew a strip of cloth down the skirt's side).
    # Sleeves hang below it.
    waist = waist_row(target, nodes)
    if waist is not None:
        on_garment &= (np.arange(height)[:, None] < waist) | sleeves
    hole = body & (zone | (torso > 0))
    # The arms in a sleeve or under the shoulders: their bones under the new garment anywhere but its torso below
    # the armpits (an arm behind the body there, beside a sleeveless top's side, shows beside it: bare).
    torso_below_armpits = inside & ~sleeves & below_line(keypoints[ARMPITS], (height, width))
    sleeved = sleeved_arm_pixels(nodes, (target == UPPER) & ~torso_below_armpits, covered_arm | hole)
    # The photo's neck is never made garment here: the parse network's neck is a pixel or two narrower than the
    # photo's, and a crew neck's outline reaches up the neck's sides (its corners), so that strip drew a line of
    # cloth up the neck. Where the new garment covers the neck, the warp has put it there already.
    garment = ((on_garment & inside) | ((covered_arm | hole) & sleeved)) & (parse_cihp != NECK_CIHP)
    labels = np.where(garment, UPPER, target)
    open_hole = hole & ~garment
    covered = np.where(open_hole & (arms > 0), arms, labels).astype(np.uint8)
    covered = nearest_label(covered, is_any(covered, (FACE_NECK, *ARMS)), open_hole & (arms == 0))
    # The photo's own arm is still an arm outside the new sleeves (a hand in front of the garment), and the wall
    # the photo shows is still wall (between an arm and the body).
    keep_out = (photo_arm & ~sleeves) | (parse_cihp == 0)
    cloth_holes = small_holes(covered == UPPER, SLEEVE_HOLE * height * width) & region & ~keep_out
    return np.where(cloth_holes, UPPER, covered).astype(np.uint8)


def cover_shoulders(target: torch.Tensor, parse_cihp: torch.Tensor, region: torch.Tensor, visible_arms: torch.Tensor,
                    pose_nodes, garment_keypoints) -> torch.Tensor:
    """The target parse with no background on the body between the neck and the arms, and garment wherever the
    new garment's keypoints put it on the old one: (B, H, W) long.

    Where the person's photo shows the old garment, an arm or the neck inside the change region, the body is
    there whatever the new garment is, and the target's background is a hole the wall would show through. Such
    pixels become garment inside the worn garment's keypoint outline (``kgi.limbs.shoulder_zone``), except on the
    photo's neck, which stays skin where the warp does not cover it, and below the target's waist outside the
    sleeves (the old top's side hanging beside the skirt a new top is tucked into); outside it,
    within the pose's shoulder zone (neck, trapezius, shoulders' tops) or torso (``kgi.limbs.arm_layout``), the
    pose's arm inside an arm capsule and elsewhere the nearest skin class of the target (neck or arm: what a
    shorter neckline or a sleeveless top leaves bare); elsewhere (a loose sleeve or hem) background may stay.
    Inside the outline, on the shoulders and in the new sleeves, the old garment is garment even where the target
    draws an arm: the parse network draws the arm up over a shoulder the new sleeve covers (a bare "cold
    shoulder") and across a bent sleeve's elbow the warp leaves open (an arm hanging bare beside the body,
    inside a wide garment's outline, stays arm). An arm the target draws on the old garment or the photo's arm
    where the arm's nearest bone is under the new garment (``kgi.limbs.sleeved_arm_pixels``), but not under its
    torso below the armpits (an arm behind the body, beside a sleeveless top's side, is bare), is garment too,
    outline or not, and so are the body's background there on the shoulders or torso and the bottom garment on
    the old garment above the hips: a strip of skin, wall or skirt between a long sleeve and the torso, or the
    photo's arm beside a sleeve narrower than it, is an arm the sleeve covers. Last, a hole the garment encloses
    (up to ``SLEEVE_HOLE`` of the image, in the change region: the warp leaves one at a bent elbow or between a
    sleeve and the torso) is garment, except where the photo shows the wall or the person's arm outside the new
    sleeves (a hand in front of the garment).

    Args:
        target: (B, H, W) 13-class target parse. parse_cihp: (B, H, W) CIHP parse of the photo.
        region: (B, H, W) bool the change region. visible_arms: (B, H, W) bool the photo's visible arm skin.
        pose_nodes: (B, 10, 2) normalised pose-graph nodes.
        garment_keypoints: (B, 32, 2) normalised keypoints of the worn garment (stage 1's, seated on the
            shoulders by ``kgi.pipeline.seated_keypoints``).
    """
    covered = []
    for labels, parse, inside, visible, nodes, keypoints in zip(
            label_maps(target), label_maps(parse_cihp), region.cpu().numpy(), visible_arms.cpu().numpy(),
            np.asarray(pose_nodes), np.asarray(garment_keypoints)):
        layout = arm_layout_of(to_parse13(parse), visible, nodes)
        covered.append(cover_shoulders_of(labels, parse, inside, layout, nodes, keypoints))
    return stack_maps(covered, target)
