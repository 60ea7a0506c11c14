"""Garment-agnostic parse and recomposition: which pixels are kept, blanked, pasted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kgi.data.labels import (AGNOSTIC_PARSE13, FACE_NECK, GARMENT_CIHP, LEFT_ARM, NUM_PARSE13, PARSE13_LABELS,
                             RIGHT_ARM, UPPER)
from kgi.limbs import (GARMENT_OUTLINE, GARMENT_TORSO_NODES, MAX_SHORT_SLEEVE_LENGTH, SHOULDER_OUTSIDE,
                       _scale_between, body_span, centre_long_sleeves, fit_short_sleeves, seat_shoulder_seams)
from kgi.posed_arms import cover_shoulders, waist_row
from kgi.recompose import BLANK_VALUE, SKIN_CHROMA_TOLERANCE, RecomposeInputError, agnostic_parse, change_region, \
    cover_old_neckline, extend_garment, recompose
from kgi.warp import SEGMENT_NAMES, WarpResult

HEIGHT, WIDTH = 12, 9
HAIR = PARSE13_LABELS.index("hair")


def random_parse(batch: int, seed: int) -> torch.Tensor:
    return torch.randint(0, NUM_PARSE13, (batch, HEIGHT, WIDTH), generator=torch.Generator().manual_seed(seed))


def test_agnostic_parse_is_one_hot_except_on_garment_and_arms():
    parse = random_parse(2, 0)
    agnostic = agnostic_parse(parse)
    assert agnostic.shape == (2, NUM_PARSE13, HEIGHT, WIDTH) and agnostic.dtype == torch.float32
    unknown = torch.isin(parse, torch.tensor(AGNOSTIC_PARSE13))
    assert unknown.any() and (~unknown).any()
    assert (agnostic.sum(1)[unknown] == 0).all()
    assert (agnostic.sum(1)[~unknown] == 1).all()
    assert (agnostic.argmax(1)[~unknown] == parse[~unknown]).all()
    for label in AGNOSTIC_PARSE13:
        assert agnostic[:, label].sum() == 0


def test_agnostic_parse_refuses_bad_maps():
    with pytest.raises(RecomposeInputError, match="parse13"):
        agnostic_parse(torch.rand(1, HEIGHT, WIDTH))
    with pytest.raises(RecomposeInputError, match="outside"):
        agnostic_parse(torch.full((1, HEIGHT, WIDTH), NUM_PARSE13))


SKIN = torch.tensor([0.85, 0.64, 0.52])
# CIHP labels of the scene's person.
FACE, NECK, UPPER_CLOTHES, PERSON_RIGHT_ARM, PERSON_LEFT_ARM, BACKGROUND = 13, 10, 5, 15, 14, 0


def scene() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, WarpResult]:
    """A person in rows: face (0-1), neck (2), garment (3-5), right arm (6-8), left arm (9-11); CIHP labels.

    The target parse puts the new garment on rows 2-6 (over the neck and the top of the right arm), keeps the
    right arm on rows 7-8 and turns the left arm into garment on 9-10 (a longer sleeve). The warp covers rows
    3-5 and 9 only.
    """
    shade = torch.rand(1, 1, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(1)) * 0.3 + 0.7
    person = SKIN.view(1, 3, 1, 1) * shade  # skin everywhere, in light and shadow
    parse = torch.tensor([FACE] * 2 + [NECK] + [UPPER_CLOTHES] * 3 + [PERSON_RIGHT_ARM] * 3 + [PERSON_LEFT_ARM] * 3)
    parse = parse.view(1, HEIGHT, 1).expand(1, HEIGHT, WIDTH).clone()
    target = torch.tensor([FACE_NECK] * 3 + [UPPER] * 3 + [RIGHT_ARM] * 3 + [LEFT_ARM] * 3)
    target = target.view(1, HEIGHT, 1).expand(1, HEIGHT, WIDTH).clone()
    target[:, 2:7] = UPPER
    target[:, 9:11] = UPPER
    mask = torch.zeros(1, 1, HEIGHT, WIDTH)
    mask[..., 3:6, :] = 1
    mask[..., 9, :] = 1
    garment = torch.rand(1, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(2)) * 0.3 * mask
    return person, parse, target, WarpResult(garment=garment, mask=mask, segment_masks=mask)


def test_the_margins_wall_is_kept_where_it_looks_like_the_wall_and_painted_where_it_does_not():
    """A blue top on a grey wall, replaced by a narrower garment: the change region's margin reaches 3 pixels
    into the wall. There the wall, of the grey around it, is the photo's own and kept; the old top's blurred
    edge (a column half blue) and its shadow (a darker grey) in the margin are painted, and so is the old top."""
    parse, target = person_in_a_top()
    wall = torch.tensor([0.8, 0.8, 0.78]).view(1, 3, 1, 1)
    person = wall.expand(1, 3, SCENE_HEIGHT, SCENE_WIDTH).clone()
    person[:, :, 28:76, 16:57] = torch.tensor([0.15, 0.2, 0.6]).view(3, 1, 1)  # the old top
    person[:, :, 28:76, 15] = (wall[0, :, :, 0] + torch.tensor([[0.15], [0.2], [0.6]])) / 2  # its blurred edge
    person[:, :, 40:50, 57] = 0.6  # its shadow on the wall
    target[0, 30:76, 20:53] = UPPER
    composed = recompose(person, parse, target, backbone_warp(slice(30, 76), slice(20, 53)), margin_px=3)
    keep = composed.keep_mask[0, 0]
    assert keep[50:76, 13:15].all() and keep[30:40, 57:60].all()  # the wall in the margin
    torch.testing.assert_close(composed.image[0, :, 50:76, 13:15], person[0, :, 50:76, 13:15])
    assert not keep[28:76, 15].any() and not keep[40:50, 57].any()  # the old top's edge, its shadow
    assert not keep[30:76, 16:20].any() and not keep[30:76, 53:57].any()  # the old top beside the new garment


def test_keep_mask_marks_kept_and_pasted_pixels_and_blanks_the_rest():
    person, parse, target, warp = scene()
    result = recompose(person, parse, target, warp)
    assert result.image.shape == person.shape and result.keep_mask.shape == (1, 1, HEIGHT, WIDTH)
    keep, image = result.keep_mask[0, 0], result.image[0]
    rows = {name: slice(*bounds) for name, bounds in {
        "face": (0, 2), "neck_the_warp_missed": (2, 3), "pasted_garment": (3, 6), "arm_now_garment": (6, 7),
        "kept_right_arm": (7, 9), "pasted_sleeve": (9, 10), "unwarped_sleeve": (10, 11), "kept_left_arm": (11, 12),
    }.items()}
    for name in ("face", "kept_right_arm", "kept_left_arm"):
        assert (keep[rows[name]] == 1).all(), name
        torch.testing.assert_close(image[:, rows[name]], person[0, :, rows[name]])
    for name in ("pasted_garment", "pasted_sleeve"):
        assert (keep[rows[name]] == 1).all(), name
        torch.testing.assert_close(image[:, rows[name]], warp.garment[0, :, rows[name]])
    for name in ("neck_the_warp_missed", "arm_now_garment", "unwarped_sleeve"):
        assert (keep[rows[name]] == 0).all(), name
        assert (image[:, rows[name]] == BLANK_VALUE).all(), name
    # The composed target: garment exactly where it was pasted, the missed pixels their nearest other label.
    composed = result.target_parse13[0, :, 0].tolist()
    assert composed == [FACE_NECK] * 3 + [UPPER] * 3 + [RIGHT_ARM] * 3 + [UPPER, LEFT_ARM, LEFT_ARM]


def test_change_region_takes_the_neck_and_a_margin_and_repaints_skin_next_to_the_old_garment():
    person, parse, target, warp = scene()
    parse[:, 6, :] = BACKGROUND  # the old garment's outline labelled background (a parse a pixel off)
    target[:, 6, :] = RIGHT_ARM
    region, near_old = change_region(parse, margin_px=1)
    assert region[0, 2].all() and not region[0, :2].any()  # the neck joins, the face never does
    assert region[0, 6].all() and near_old[0, 6].all() and near_old[0, 2].all()
    result = recompose(person, parse, target, warp, margin_px=1)
    keep = result.keep_mask[0, 0]
    assert (keep[6:7] == 0).all() and (keep[7:9] == 1).all()  # the arm next to the old garment is repainted
    person[:, :, 8] = torch.tensor([0.40, 0.12, 0.15]).view(3, 1)  # a burgundy sleeve the parse calls arm
    assert (recompose(person, parse, target, warp, margin_px=1).keep_mask[0, 0, 8] == 0).all()
    old_garment = torch.isin(parse, torch.tensor(GARMENT_CIHP))[0]
    pasted = warp.mask[0, 0] > 0
    assert (keep[old_garment & ~pasted] == 0).all()  # nothing of the old garment is kept


def test_the_margin_grows_from_the_old_garment_and_neck_not_from_an_arm_lying_on_the_trousers():
    """A hand on the trousers far below the old top: the trousers beside it are the photo's, kept (grown from the
    arm, a band of them was repainted around the hand, a blurred second outline); next to the old top they are
    in the margin."""
    upper, pants, left_arm = 5, 9, 15  # CIHP labels
    parse = torch.full((1, 40, 30), pants)
    parse[:, :10] = upper
    parse[:, 5:, 10:15] = left_arm  # the arm, from under the old sleeve down over the trousers
    region = change_region(parse, margin_px=2)[0][0]
    assert region[5:, 10:15].all()  # the arm itself may change (a new sleeve may cover it)
    assert region[10:12, 3].all() and not region[12:, 3].any()  # the margin below the old top
    assert not region[20:, 8:10].any() and not region[20:, 15:17].any()  # none beside the hand


def test_arm_skin_stays_in_front_of_the_garment_where_the_target_keeps_the_arm():
    person, parse, target, warp = scene()
    mask = torch.ones_like(warp.mask)  # a careless warp covering everything
    result = recompose(person, parse, target, WarpResult(warp.garment, mask, mask))
    torch.testing.assert_close(result.image[..., 7:9, :], person[..., 7:9, :])
    torch.testing.assert_close(result.image[..., 6:7, :], warp.garment[..., 6:7, :])
    assert (result.keep_mask == 1).all()


def test_recompose_is_per_sample_and_refuses_mismatches():
    person, parse, target, warp = scene()
    with pytest.raises(RecomposeInputError, match="parse_cihp"):
        recompose(person, parse + 20, target, warp)
    other = recompose(person.flip(-1), parse, target, warp)
    single = recompose(person, parse, target, warp)
    batched = recompose(torch.cat([person, person.flip(-1)]), parse.expand(2, -1, -1), target.expand(2, -1, -1),
                        WarpResult(*(t.expand(2, -1, -1, -1) for t in (warp.garment, warp.mask, warp.mask))))
    torch.testing.assert_close(batched.image, torch.cat([single.image, other.image]))
    with pytest.raises(RecomposeInputError, match="target_parse13"):
        recompose(person, parse, target[:, :5], warp)
    with pytest.raises(RecomposeInputError, match="warp"):
        recompose(person, parse, target, WarpResult(warp.garment[..., :5], warp.mask, warp.mask))


SCENE_HEIGHT, SCENE_WIDTH = 96, 72
SCENE_POSE = np.array([[36, 15], [36, 28], [22, 32], [18, 50], [16, 66], [50, 32], [54, 50], [56, 66], [28, 70],
                       [44, 70]], np.float64) / [SCENE_WIDTH, SCENE_HEIGHT]


def person_in_a_top() -> tuple[torch.Tensor, torch.Tensor]:
    """A 96x72 person in an old top, shoulders (row 28) to hips: the CIHP parse and a target parse of the face
    and neck alone, both (1, H, W) long; its pose is ``SCENE_POSE``."""
    parse = torch.zeros(1, SCENE_HEIGHT, SCENE_WIDTH, dtype=torch.long)
    parse[0, 8:24, 30:43] = 13  # face
    parse[0, 24:30, 33:40] = 10  # neck
    parse[0, 28:76, 16:57] = 5  # the old top, shoulders to hips
    target = torch.zeros(1, SCENE_HEIGHT, SCENE_WIDTH, dtype=torch.long)
    target[0, 8:30, 30:43] = FACE_NECK
    return parse, target


def person_in_blue(parse: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) photo of ``parse``'s person: the old top (and the wall) blue, the face, neck and left arm
    (CIHP 13, 10, 14) skin."""
    person = torch.zeros(1, 3, SCENE_HEIGHT, SCENE_WIDTH)
    person[:] = torch.tensor([0.15, 0.2, 0.6]).view(1, 3, 1, 1)
    for label in (13, 10, 14):
        person[:, :, parse[0] == label] = SKIN.view(3, 1)
    return person


def backbone_warp(rows: slice, columns: slice) -> WarpResult:
    """A warped garment of random colours on ``rows`` x ``columns`` of the scene, all of it the backbone segment."""
    mask = torch.zeros(1, 1, SCENE_HEIGHT, SCENE_WIDTH)
    mask[0, 0, rows, columns] = 1
    segments = torch.zeros(1, len(SEGMENT_NAMES), SCENE_HEIGHT, SCENE_WIDTH)
    segments[:, SEGMENT_NAMES.index("backbone")] = mask[:, 0]
    return WarpResult(torch.rand(1, 3, SCENE_HEIGHT, SCENE_WIDTH) * mask, mask, segments)


def worn_rectangle(corners: dict[int, tuple[int, int]], hem_row: int = 76) -> np.ndarray:
    """(1, 32, 2) normalised keypoints of a garment drawn as its outline's ``corners`` (node: pixel) and, for the
    other outline nodes, the hem corners below the image-right and image-left shoulders' columns."""
    keypoints = np.zeros((32, 2))
    right, left = corners[31][0], corners[5][0]
    for position, node in enumerate(GARMENT_OUTLINE):
        keypoints[node] = corners.get(node, (right, hem_row) if 6 <= position < 18 else (left, hem_row))
    return (keypoints / [SCENE_WIDTH, SCENE_HEIGHT])[None]


def test_the_body_between_neck_and_arms_is_garment_inside_the_garment_outline_and_skin_elsewhere():
    """A new garment that starts lower than the old one: the old garment's shoulders the target calls background
    become garment inside the worn keypoints' outline and skin above it; the photo's background and the old
    garment away from the shoulders (a loose hem) keep the target's background."""
    parse, target = person_in_a_top()
    target[0, 40:76, 18:55] = UPPER
    keypoints = worn_rectangle({0: (30, 36), 1: (33, 36), 2: (36, 36), 3: (39, 36), 4: (42, 36), 31: (54, 36),
                                5: (18, 36)}, hem_row=75)  # a rectangle from row 36 to the hips
    region = change_region(parse, 1)[0]
    covered = cover_shoulders(target, parse, region, torch.zeros_like(region), SCENE_POSE[None], keypoints)[0]
    assert covered[37, 36] == UPPER and covered[38, 24] == UPPER  # inside the outline, above the predicted top
    assert covered[30, 24] in (FACE_NECK, LEFT_ARM, RIGHT_ARM) and covered[31, 45] in (FACE_NECK, LEFT_ARM, RIGHT_ARM)
    assert covered[5, 5] == 0 and covered[72, 16] == 0  # the photo's background; the old top far below the shoulders
    assert (covered[target[0] != 0] == target[0][target[0] != 0]).all()  # only background changes


def test_the_photos_neck_beside_a_narrower_target_neck_stays_neck_inside_a_crew_necks_outline():
    """The parse network draws the neck a column narrower on each side than the photo's, and the worn crew neck's
    corners sit up the neck's sides, so its outline takes in those columns: they are the neck, not two lines of
    cloth up it."""
    parse, target = person_in_a_top()
    target[0, 24:30, 30:43] = 0
    target[0, 24:30, 34:39] = FACE_NECK  # the photo's neck is columns 33-39
    target[0, 30:76, 18:55] = UPPER
    keypoints = worn_rectangle({0: (31, 20), 1: (33, 30), 2: (36, 31), 3: (39, 30), 4: (41, 20), 31: (55, 28),
                                5: (18, 28)})
    region = change_region(parse, 1)[0]
    covered = cover_shoulders(target, parse, region, torch.zeros_like(region), SCENE_POSE[None], keypoints)[0]
    assert (covered[24:28, [33, 39]] == FACE_NECK).all()


def test_the_old_tops_side_hanging_beside_the_skirt_under_a_tucked_in_top_is_not_garment():
    """A new top tucked into a skirt (the target's bottom garment from row 56, the waist) while the old top hangs
    down to the hips: the worn keypoints' outline reaches the hips, but the old top's side beside the skirt below
    the waist keeps the target's background, not a strip of cloth down the skirt; the side above it is garment."""
    parse, target = person_in_a_top()
    target[0, 30:56, 18:53] = UPPER
    target[0, 56:90, 20:53] = PARSE13_LABELS.index("bottom")
    target[0, 44:50, 53:56] = 0  # a hole at the side above the waist
    keypoints = worn_rectangle({0: (30, 30), 1: (33, 30), 2: (36, 31), 3: (39, 30), 4: (42, 30), 31: (56, 30),
                                5: (17, 30)}, hem_row=75)
    region = change_region(parse, 1)[0]
    covered = cover_shoulders(target, parse, region, torch.zeros_like(region), SCENE_POSE[None], keypoints)[0]
    assert (covered[44:50, 53:56] == UPPER).all()
    assert (covered[58:74, 53:56] == 0).all()


def test_the_waist_is_where_the_bottom_garment_spans_half_the_hips_and_none_without_hips():
    target = np.zeros((100, 80), np.uint8)
    target[40:50, 38:42] = PARSE13_LABELS.index("bottom")  # a narrow strip of it higher up
    target[60:, 20:60] = PARSE13_LABELS.index("bottom")
    nodes = SCENE_POSE * [80, 100]  # hips 16 columns apart
    assert waist_row(target, nodes) == 60
    nodes[[8, 9]] = 0  # no hips in the pose
    assert waist_row(target, nodes) is None


def test_a_loose_old_sleeve_beside_the_shoulder_is_not_skin():
    """The old top's loose shoulder reaches more than a shoulder radius out from the left shoulder joint, above
    it; a sleeveless top replaces it. The body's top there is the shoulder's (``SHOULDER_CAP`` radii above the
    joint, one radius out), so the old garment beyond it keeps the target's background, not a slab of skin."""
    parse, target = person_in_a_top()
    parse[0, 24:40, 50:60] = 5  # the old top's loose shoulder, up and out
    target[0, 36:76, 18:50] = UPPER
    keypoints = worn_rectangle({0: (30, 36), 1: (33, 36), 2: (36, 36), 3: (39, 36), 4: (42, 36), 31: (50, 36),
                                5: (18, 36)}, hem_row=75)
    region = change_region(parse, 1)[0]
    covered = cover_shoulders(target, parse, region, torch.zeros_like(region), SCENE_POSE[None], keypoints)[0]
    assert (covered[29:31, 54:57] == 0).all()  # 4-6 columns (over a radius) out from the joint, above it


def shoulders_person(height: int = 200, width: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """A body whose upper outline slopes from the neck (row 60) down to the shoulders' ends (row 70), and its
    pose nodes in pixels: (H, W) bool, (10, 2)."""
    body = np.zeros((height, width), bool)
    for column in range(30, 121):
        top = 60 + round(10 * abs(column - 75) / 45)
        body[top:170, column] = True
    nodes = np.array([[75, 40], [75, 62], [45, 72], [38, 110], [36, 150], [105, 72], [112, 110], [114, 150],
                      [55, 165], [95, 165]], np.float64)
    return body, nodes


def garment_with_seams_at(left_row: float, right_row: float) -> np.ndarray:
    """(32, 2) pixels: a garment whose neckline ends are at columns 62/88 and shoulder ends at 40/110, each side's
    seam horizontal at the given row; the rest below them."""
    keypoints = np.tile(np.array([[75.0, 150.0]]), (32, 1))
    for node, (x, row) in {0: (62, left_row), 1: (68, left_row + 6), 2: (75, (left_row + right_row) / 2 + 10),
                           3: (82, right_row + 6), 4: (88, right_row), 5: (40, left_row), 6: (36, left_row + 10),
                           31: (110, right_row), 30: (114, right_row + 10)}.items():
        keypoints[node] = (x, row)
    return keypoints


def test_a_shoulder_seam_stage_one_places_low_or_high_is_seated_on_the_body_top_and_follows_its_slope():
    body, nodes = shoulders_person()
    low = garment_with_seams_at(78, 76)  # 6-15 rows below the body's top (reach: 19 rows): a "cold shoulder"
    seated = seat_shoulder_seams(low, nodes, body)
    body_top = {x: np.flatnonzero(body[:, x])[0] for x in (40, 62, 88, 110)}
    for node, x in ((0, 62), (5, 40), (4, 88), (31, 110)):
        assert abs(seated[node, 1] - body_top[x]) <= 2, (node, seated[node], body_top[x])
    assert seated[5, 1] > seated[0, 1]  # the seam slopes down to the shoulder as the body does
    assert np.allclose(seated[6, 1] - seated[5, 1], low[6, 1] - low[5, 1])  # the sleeve's outer node moves along
    unmoved = [n for n in range(32) if n not in (0, 1, 2, 3, 4, 5, 6, 30, 31)]
    assert np.array_equal(seated[unmoved], low[unmoved])
    high = seat_shoulder_seams(garment_with_seams_at(50, 52), nodes, body)  # floating above the shoulders
    assert abs(high[5, 1] - body_top[40]) <= 2 and abs(high[31, 1] - body_top[110]) <= 2


def test_a_seams_shoulder_end_is_seated_on_a_shoulder_that_rounds_off_below_the_seams_line():
    """The seam's line is fitted to the body's top along its inner part; a shoulder rounds off at its end, below
    that line (a tee's square shoulder corner stood above a genuine person's rounded shoulder): the shoulder end,
    and the sleeve's outer node with it, goes down onto the body's top in its column, where that is no steeper
    than ``MAX_TOP_SLOPE``."""
    body = np.zeros((400, 300), bool)
    for column in range(60, 241):
        out = abs(column - 150)  # from the neck's middle
        top = 120 + 20 * out / 90 + 0.018 * max(out - 50, 0) ** 2  # straight, then rounding off past 50 columns
        body[int(round(top)):340, column] = True
    _, nodes = shoulders_person()
    nodes = nodes * 2
    high = garment_with_seams_at(50, 52) * 2  # floating above the shoulders; shoulder ends at columns 80 and 220
    seated = seat_shoulder_seams(high, nodes, body)
    for node, column in ((5, 80), (31, 220)):
        body_top = np.flatnonzero(body[:, column])[0]
        assert abs(seated[node, 1] - body_top) <= 1, (node, seated[node], body_top)
    assert np.allclose(seated[6, 1] - seated[5, 1], high[6, 1] - high[5, 1])  # the sleeve's outer node moves along


def test_a_seam_farther_below_its_shoulder_than_the_other_is_seated_with_it():
    """A person turned to the camera: stage 1 puts one seam near the body's top and the other farther below
    than the reach a lone seam gets; a garment on one shoulder is on both, so both are seated: the shoulder ends on
    the body's top, and the neckline, moved as one ring and turned with the shoulders, within 6 rows of it (two
    level seams at different heights are a shear no worn garment makes, so the ring does not follow it fully)."""
    body, nodes = shoulders_person()
    lopsided = garment_with_seams_at(76, 90)  # the image-right seam 22-27 rows below the body's top
    seated = seat_shoulder_seams(lopsided, nodes, body)
    body_top = {x: np.flatnonzero(body[:, x])[0] for x in (62, 40, 88, 110)}
    for node, x, within in ((0, 62, 6), (5, 40, 2), (4, 88, 6), (31, 110, 2)):
        assert abs(seated[node, 1] - body_top[x]) <= within, (node, seated[node], body_top[x])
    moved = seated[:5] - lopsided[:5]  # the neckline's five nodes: a shift and a turn, linear in the column
    slope, intercept = np.polyfit(lopsided[:5, 0], moved[:, 1], 1)
    assert np.allclose(moved[:, 1], slope * lopsided[:5, 0] + intercept) and slope < 0


def test_the_neck_rising_beside_one_neckline_end_does_not_raise_that_end_alone():
    """The body's top rises steeply towards the neck beside the image-right neckline end only (a collar standing
    up the neck, a raised shoulder): that seam's fitted line climbs to its neckline end, but the neckline is a ring
    around the neck and moves as one, so stage 1's level neckline stays level (its two ends moved end by end stood
    up to 40 rows apart at 1024 rows on genuine people: a horn up one side of the neck)."""
    body, nodes = shoulders_person()
    for column in range(80, 110):  # up to 20 rows above the shoulders' line next to the neck
        top = np.flatnonzero(body[:, column])[0]
        body[top - round(20 * (110 - column) / 30):top, column] = True
    level = garment_with_seams_at(66, 66)
    seated = seat_shoulder_seams(level, nodes, body)
    assert abs(seated[4, 1] - seated[0, 1]) <= 3, seated[[0, 4]]
    assert abs(seated[31, 1] - np.flatnonzero(body[:, 110])[0]) <= 2  # the shoulder end is still seated


def test_a_seam_under_long_hair_is_not_seated_on_the_hairs_lower_edge():
    """Long hair hangs over the image-left shoulder down to row 90: the body's top there is the hair's lower edge,
    not the shoulder's, and the seam's shoulder end stays where stage 1 put it rather than drop to it; the other
    seam is still seated, and the neckline, a ring, rises with it on both sides. Hair lying on a shoulder does not
    stop its seam from rising to the body's top."""
    body, nodes = shoulders_person()
    hair = np.zeros_like(body)
    hair[30:90, 30:70] = True
    body &= ~hair
    low = garment_with_seams_at(78, 76)
    seated = seat_shoulder_seams(low, nodes, body, hair)
    assert np.array_equal(seated[[5, 6]], low[[5, 6]])
    assert abs(seated[31, 1] - np.flatnonzero(body[:, 110])[0]) <= 2
    assert np.allclose(seated[:5, 1] - low[:5, 1], seated[4, 1] - low[4, 1]) and seated[4, 1] < low[4, 1] - 5
    without_hair = seat_shoulder_seams(low, nodes, body)  # the hair's edge taken for the body's top
    assert without_hair[5, 1] - low[5, 1] > 5
    # Hair lying on the shoulder ends where the body starts: a seam below it is raised there all the same.
    body, _ = shoulders_person()
    hair = np.zeros_like(body)
    for column in range(30, 70):
        top = np.flatnonzero(body[:, column])[0]
        hair[top - 8:top, column] = True
    deep = garment_with_seams_at(88, 76)
    raised = seat_shoulder_seams(deep, nodes, body, hair)
    assert abs(raised[5, 1] - np.flatnonzero(body[:, 40])[0]) <= 2


def test_a_seam_seen_clear_of_hair_is_not_raised_to_a_collar_standing_under_the_hair():
    """A shirt's collar stands up the neck beside the image-left neckline end (rows 50-62, columns 52-62) and hair
    falls on it: the body's top there is the collar's, right under the hair. Outward the shoulder's top shows clear
    of hair, and those columns alone seat the seam: the neckline end stays on the shoulders' line, not raised up
    the neck to the collar's top (a crew neck on 00034_00 reached her jaw)."""
    body, nodes = shoulders_person()
    hair = np.zeros_like(body)
    hair[35:50, 50:64] = True
    body[50:62, 52:63] = True  # the standing collar
    seams = garment_with_seams_at(66, 66)
    seated = seat_shoulder_seams(seams, nodes, body, hair)
    shoulders_line = 60 + 10 * (75 - 62) / 45  # the shoulder's top continued to the neckline end's column: 62.9
    assert shoulders_line - 2 <= seated[0, 1] <= seams[0, 1], seated[0]  # the collar's top: row 50
    assert abs(seated[5, 1] - np.flatnonzero(body[:, 40])[0]) <= 2, seated[5]
    # Hair on the inner columns alone, the body's top under it clear of any collar: those columns still count.
    body, _ = shoulders_person()
    hair = np.zeros_like(body)
    for column in range(48, 63):
        top = np.flatnonzero(body[:, column])[0]
        hair[top - 8:top, column] = True
    assert abs(seat_shoulder_seams(seams, nodes, body, hair)[0, 1] - shoulders_line) <= 3


def test_a_seam_reaching_past_the_shoulders_end_is_not_lowered_down_the_arms_side():
    """Stage 1 puts the image-right seam's end beyond the shoulder, over the arm's side, where the body's top falls
    steeply (3 rows a column): those columns are not the shoulder's top, and the seam follows the shoulder's slope
    instead of dropping its end down the arm (07445_00 in the shirt 09176: 43 pixels at 1024 rows, a bare
    shoulder)."""
    body, nodes = shoulders_person()
    for column in range(121, 140):  # the rounded end of the shoulder, down the arm
        body[70 + 3 * (column - 120):170, column] = True
    seams = garment_with_seams_at(66, 66)
    seams[[31, 30], 0] = (132, 136)  # the image-right seam's end past the shoulder's
    seated = seat_shoulder_seams(seams, nodes, body)
    shoulder_slope = 60 + 10 * (132 - 75) / 45  # the shoulder's top, continued to column 132: row 72.7
    assert abs(seated[31, 1] - shoulder_slope) <= 3, seated[31]


def test_a_seam_under_a_head_tilted_over_the_shoulder_is_not_raised_to_the_jaw():
    """The head tilts over the image-right shoulder: under the face (columns 84-107, down to row 50) the body
    starts at the jaw, the neck rising above the shoulder. Those columns are not the shoulder's top, and the seam
    stays where stage 1 put it, on the shoulder, rather than rise to the jaw."""
    body, nodes = shoulders_person()
    face = np.zeros_like(body)
    face[20:50, 84:108] = True
    body[50:70, 84:108] = True  # the neck under the jaw
    seams = garment_with_seams_at(64, 66)
    seated = seat_shoulder_seams(seams, nodes, body, face=face)
    assert np.abs(seated[[3, 4, 30, 31], 1] - seams[[3, 4, 30, 31], 1]).max() <= 2
    assert seat_shoulder_seams(seams, nodes, body)[4, 1] < seams[4, 1] - 5  # the jaw taken for the shoulder


def test_a_seam_far_below_the_shoulders_or_off_the_body_stays_where_stage_one_put_it():
    body, nodes = shoulders_person()
    off_shoulder = garment_with_seams_at(130, 130)  # an off-shoulder top: seams 60 rows below the body's top
    assert np.array_equal(seat_shoulder_seams(off_shoulder, nodes, body), off_shoulder)
    nothing = np.zeros_like(body)
    low = garment_with_seams_at(78, 76)
    assert np.array_equal(seat_shoulder_seams(low, nodes, nothing), low)


def test_the_arm_the_target_draws_over_a_covered_shoulder_is_garment_and_cracks_in_the_garment_are_filled():
    height, width = SCENE_HEIGHT, SCENE_WIDTH
    parse, target = person_in_a_top()
    target[0, 30:76, 18:55] = UPPER
    target[0, 28:36, 46:57] = LEFT_ARM  # the parse network's arm up over the left shoulder
    keypoints = worn_rectangle({0: (30, 28), 1: (33, 30), 2: (36, 32), 3: (39, 30), 4: (42, 28), 31: (57, 28),
                                5: (16, 28)})  # shoulders to hips, seams on the body's top
    region = change_region(parse, 1)[0]
    covered = cover_shoulders(target, parse, region, torch.zeros_like(region), SCENE_POSE[None], keypoints)[0]
    assert (covered[28:34, 47:53] == UPPER).all()  # on the shoulder (its top-outer corner is not: SHOULDER_CAP)

    person = torch.full((1, 3, height, width), 0.8)
    garment = torch.zeros(1, 1, height, width)
    garment[0, 0, 30:76, 18:55] = 1
    garment[0, 0, 50:52, 18:55] = 0  # a two-row crack between two warp segments
    warp = WarpResult(torch.rand(1, 3, height, width) * garment, garment, garment)
    composed = recompose(person, parse, target.clone().masked_fill(target == LEFT_ARM, UPPER), warp,
                         margin_px=1)
    assert (composed.target_parse13[0, 50:52, 20:53] == UPPER).all()
    assert composed.keep_mask[0, 0, 50:52, 20:53].all()  # filled with the garment's colours, not painted


def test_a_hole_the_garment_encloses_is_cloth_unless_the_photo_shows_an_arm_or_the_wall_there():
    """The warp leaves a hole in a sleeve or the torso (a bent elbow) that the target draws as arm: enclosed by the
    garment, on the old garment, it is cloth. Where the photo shows the person's arm outside the new sleeves (a
    hand in front of the garment) or the wall (between an arm and the body), it stays what the target says."""
    parse, target = person_in_a_top()
    target[0, 30:76, 18:50] = UPPER  # a sleeveless top...
    target[0, 30:76, 50:58] = LEFT_ARM  # ... and the bare left arm beside it (bones at columns 50-56)
    target[0, 44:48, 40:44] = LEFT_ARM  # on the old garment
    target[0, 60:64, 40:44] = LEFT_ARM  # on the photo's hand
    parse[0, 60:64, 40:44] = 14
    target[0, 58:62, 26:30] = 0  # on the photo's wall
    parse[0, 58:62, 26:30] = 0
    keypoints = worn_rectangle({0: (30, 28), 1: (33, 30), 2: (36, 32), 3: (39, 30), 4: (42, 28), 31: (50, 28),
                                5: (18, 28)})  # the torso's outline, no sleeves
    region = change_region(parse, 1)[0]
    covered = cover_shoulders(target, parse, region, torch.zeros_like(region), SCENE_POSE[None], keypoints)[0]
    assert (covered[44:48, 40:44] == UPPER).all()
    assert (covered[60:64, 40:44] == LEFT_ARM).all() and (covered[58:62, 26:30] == 0).all()


def test_the_neck_the_target_draws_down_an_old_v_neckline_is_garment_below_the_new_neckline():
    """The photo's V neckline shows neck skin down to row 40, and the target draws the neck there; a new garment
    whose worn neckline is at row 31 covers the V below it. The neck above the new neckline, or above both its
    centre and the neck node where one side of it climbs the neck, stays neck."""
    parse, target = person_in_a_top()
    parse[0, 28:40, 34:39] = 10  # the V's skin
    target[0, 30:76, 18:55] = UPPER
    target[0, 24:40, 34:39] = FACE_NECK
    keypoints = worn_rectangle({0: (30, 31), 1: (33, 31), 2: (36, 31), 3: (39, 31), 4: (42, 31), 31: (55, 31),
                                5: (18, 31)})
    covered = cover_old_neckline(target, parse, SCENE_POSE[None], keypoints)[0]
    assert (covered[32:40, 34:39] == UPPER).all() and (covered[24:30, 34:39] == FACE_NECK).all()
    low_neck_node = SCENE_POSE.copy()
    low_neck_node[1, 1] = 36 / SCENE_HEIGHT  # BlazePose's neck, between the shoulder joints, below the V's top
    covered = cover_old_neckline(target, parse, low_neck_node[None], keypoints)[0]
    assert (covered[32:40, 34:39] == UPPER).all()
    neckline_up_the_neck = worn_rectangle({0: (30, 28), 1: (33, 28), 2: (36, 28), 3: (39, 28), 4: (42, 28),
                                           31: (55, 28), 5: (18, 28)})
    neckline_up_the_neck[0, [3, 4], 1] = 20 / SCENE_HEIGHT  # its centre where the neck node is, one side higher
    covered = cover_old_neckline(target, parse, SCENE_POSE[None], neckline_up_the_neck)[0]
    assert (covered[24:28, 34:39] == FACE_NECK).all()  # above the lower neck corner and the neck node (row 28)
    crew = worn_rectangle({0: (30, 26), 1: (33, 29), 2: (36, 33), 3: (39, 29), 4: (42, 26), 31: (55, 26),
                           5: (18, 26)})  # a round neckline, its centre 7 rows below its corners
    target[0, 24:40, 30:43] = FACE_NECK  # the neck the target draws, wider than the V
    covered = cover_old_neckline(target, parse, low_neck_node[None], crew)[0]
    assert (covered[29:33, 31] == UPPER).all() and (covered[30:33, 41] == UPPER).all()  # beside the curve: garment
    assert (covered[27:32, 36] == FACE_NECK).all()  # inside the neckline: neck
    assert (covered[target[0] != FACE_NECK] == target[0][target[0] != FACE_NECK]).all()


@pytest.mark.parametrize("drawn", [LEFT_ARM, 0, PARSE13_LABELS.index("bottom")])
@pytest.mark.parametrize("sleeve_rows, long_sleeve", [(slice(30, 68), True), (slice(30, 42), False)])
def test_an_arm_strip_beside_a_long_sleeve_is_garment_and_beside_a_bare_forearm_stays_arm(sleeve_rows, long_sleeve,
                                                                                           drawn):
    """The parse network draws a strip of arm (or background, or the recomposition takes the skirt below as the
    nearest label of garment the warp leaves open) between a new sleeve and the torso, on the old garment: the
    arm's bone beside it is under a long sleeve (the strip is cloth), but bare below a short one (it is not)."""
    parse, target = person_in_a_top()
    target[0, 30:76, 22:48] = UPPER  # the new garment's torso
    target[0, 30:68, 50:58] = LEFT_ARM  # the left arm (bones at columns 50-56)...
    target[0, sleeve_rows, 50:58] = UPPER  # ... under a long or a short sleeve
    target[0, 50:66, 48:50] = drawn  # the strip between them
    keypoints = worn_rectangle({0: (30, 28), 1: (33, 30), 2: (36, 32), 3: (39, 30), 4: (42, 28), 31: (47, 28),
                                5: (16, 28)})  # the outline of the torso alone: the strip is outside it
    region = change_region(parse, 1)[0]
    covered = cover_shoulders(target, parse, region, torch.zeros_like(region), SCENE_POSE[None], keypoints)[0]
    strip = covered[50:66, 48:50]
    if long_sleeve:
        assert (strip != LEFT_ARM).all() and (strip == UPPER).float().mean() > 0.8
    else:
        assert (strip != UPPER).all()


def test_an_arm_behind_a_sleeveless_tops_side_shows_beside_it_below_the_armpit_and_not_at_the_shoulder():
    """A sleeveless top whose side flares out over the left arm's bones (the arm hangs behind the body): the strip
    of arm the target draws beside the side, on the old garment, is bare arm below the armpit (the arm there is in
    no sleeve; garment, it stepped out of the side as a block across the arm, 00891_00 in 06429_00), but cloth
    beside the shoulder, where the bone is under the garment's shoulder."""
    parse, target = person_in_a_top()
    target[0, 30:76, 22:53] = UPPER  # the new garment, over the left arm's bones (columns 50-54 down to row 45)
    target[0, 30:60, 53:60] = LEFT_ARM  # the strip beside its side, on the old garment up to column 56
    keypoints = worn_rectangle({0: (30, 28), 1: (33, 30), 2: (36, 32), 3: (39, 30), 4: (42, 28), 31: (53, 28),
                                22: (53, 36), 14: (16, 36), 5: (16, 28)})  # armpits at row 36; no sleeves
    region = change_region(parse, 1)[0]
    covered = cover_shoulders(target, parse, region, torch.zeros_like(region), SCENE_POSE[None], keypoints)[0]
    assert (covered[38:44, 54:57] == LEFT_ARM).all()  # below the armpits, on the old garment: the arm
    assert (covered[30:35, 54:57] == UPPER).all()  # beside the shoulder: the garment's


def test_bare_arm_beside_a_sleeve_narrower_than_it_takes_the_sleeves_cloth_not_the_skin():
    """The person's bare arm is wider than the new long sleeve pasted along its bone: the arm's edges beside the
    sleeve are under it (``cover_shoulders``), garment in the target and its cloth in the image, not lines of the
    person's skin kept along the sleeve's edges."""
    parse, target = person_in_a_top()
    parse[0, 28:76, 16:57] = 0
    parse[0, 28:76, 22:48] = 5  # a sleeveless old top
    parse[0, 30:70, 49:61] = 14  # the bare left arm beside it (bones at columns 50-56)
    person = person_in_blue(parse)
    target[0, 28:76, 22:48] = UPPER
    target[0, 30:70, 49:61] = LEFT_ARM
    target[0, 30:68, 51:58] = UPPER  # the new long sleeve along the arm, narrower than it
    mask = (target == UPPER).float()[:, None]
    segments = torch.zeros(1, len(SEGMENT_NAMES), SCENE_HEIGHT, SCENE_WIDTH)
    segments[:, SEGMENT_NAMES.index("backbone")] = mask[:, 0]
    warp = WarpResult(torch.rand(1, 3, SCENE_HEIGHT, SCENE_WIDTH) * mask, mask, segments)
    keypoints = worn_rectangle({0: (30, 28), 1: (33, 30), 2: (36, 32), 3: (39, 30), 4: (42, 28), 31: (47, 28),
                                5: (22, 28)})
    composed = recompose(person, parse, target, warp, margin_px=1, pose_nodes=SCENE_POSE[None],
                         garment_keypoints=keypoints)
    edges = (slice(36, 48), [49, 50, 58, 59])  # the upper arm's edges beside the sleeve
    assert (composed.target_parse13[0][edges] == UPPER).all()
    assert (composed.keep_mask[0, 0][edges] == 1).all()
    assert not (composed.skin_mask[0, 0][edges] > 0).any()
    skin_left = (composed.image[0, :, 36:48, [49, 50, 58, 59]] - SKIN.view(3, 1, 1)).abs().amax(0) < 1e-6
    assert not skin_left.any()


@pytest.mark.parametrize("cuff_row", [38, 66])
def test_an_arm_hanging_beside_the_body_below_a_short_sleeve_is_in_front_of_the_garments_body(cuff_row):
    """The new garment's body is pasted over the person's bare upper arm hanging beside her (a loose top): below the
    garment's armpit the arm is in front of the garment where its sleeve is short (the arm hides the garment's
    side); above, it is under the garment's shoulder. A long sleeve (its cuff below the elbow) covers the arm."""
    parse, target = person_in_a_top()
    parse[0, 28:76, 16:57] = 0
    parse[0, 28:76, 22:48] = 5  # a sleeveless old top
    parse[0, 30:70, 49:61] = 14  # the bare left arm beside it (bones at columns 50-56)
    person = person_in_blue(parse)
    target[0, 28:76, 22:61] = UPPER  # a loose new top over the arm
    mask = (target == UPPER).float()[:, None]
    segments = torch.zeros(1, len(SEGMENT_NAMES), SCENE_HEIGHT, SCENE_WIDTH)
    segments[:, SEGMENT_NAMES.index("backbone")] = mask[:, 0]  # its body alone, no sleeve pixels
    warp = WarpResult(torch.rand(1, 3, SCENE_HEIGHT, SCENE_WIDTH) * mask, mask, segments)
    keypoints = worn_rectangle({0: (30, 28), 1: (33, 30), 2: (36, 32), 3: (39, 30), 4: (42, 28), 31: (60, 28),
                                22: (48, 36), 26: (60, cuff_row), 27: (60, cuff_row), 5: (22, 28)})
    composed = recompose(person, parse, target, warp, margin_px=1, pose_nodes=SCENE_POSE[None],
                         garment_keypoints=keypoints)
    upper_arm = composed.target_parse13[0, 41:48, 52:59]  # below the armpit (row 36), above the elbow (row 50)
    if cuff_row < 40:
        assert (upper_arm == LEFT_ARM).all()
        torch.testing.assert_close(composed.image[0, :, 41:48, 52:59], person[0, :, 41:48, 52:59])
    else:
        assert (upper_arm == UPPER).all()
    assert (composed.target_parse13[0, 30:34, 52:59] != LEFT_ARM).all()  # at the shoulder: under the garment


def test_a_thin_wall_gap_between_the_new_garment_and_an_arm_is_cloth_and_a_notch_of_the_arm_stays_wall():
    """The photo shows a two-pixel strip of wall between the old top and the bare arm (touching above and below it),
    which the target keeps: with the new garment's side there, it is a crack between garment and arm, filled with
    the garment's cloth and kept, not a sliver of painted wall. A notch of the same width in the arm's own outline
    is the wall, and so is a strip that widens beyond a crack (a real gap between arm and body). (Without the pose,
    so that the arms keep the target's shape.)"""
    for widens in (False, True):
        parse, target = person_in_a_top()
        parse[0, 28:76, 16:57] = 0
        parse[0, 28:76, 22:47] = 5  # a sleeveless old top
        parse[0, 30:70, 47:61] = 14  # the bare left arm...
        parse[0, 36:64, 47:49] = 0  # ... wall at columns 47-48 between it and the top
        parse[0, 40:43, 59:61] = 0  # a notch in the arm's outer edge
        if widens:
            parse[0, 56:64, 47:53] = 0
        target[0, 28:76, 22:47] = UPPER
        target[0, 30:70, 47:61] = torch.where(parse[0, 30:70, 47:61] == 14, LEFT_ARM, 0)
        mask = (target == UPPER).float()[:, None]
        warp = WarpResult(torch.rand(1, 3, SCENE_HEIGHT, SCENE_WIDTH) * mask, mask, mask)
        composed = recompose(person_in_blue(parse), parse, target, warp, margin_px=2)
        assert (composed.target_parse13[0, 36:56, 47:49] == (0 if widens else UPPER)).all()
        assert composed.keep_mask[0, 0, 36:56, 47:49].all() != widens
        assert (composed.target_parse13[0, 40:43, 59:61] == 0).all()


@pytest.mark.parametrize("case", ["crack", "side", "widens", "above the armpits"])
def test_painted_torso_skin_beside_the_new_garment_between_its_armpits_and_hem_is_its_cloth(case):
    """The old top reaches the bare arm; the new garment's warp stops short of it, where the target draws torso
    skin: a strip of painted skin down the garment's side, shaded apart from the arm. Below the garment's armpits
    (row 34) and above its hem, within ``SIDE_REACH`` of it (4.8 pixels at 96 rows), a top wraps the body there:
    the strip is its cloth, kept, two pixels wide (a crack) or four. Where the skin reaches farther (the body's side
    well clear of the new garment: eight pixels) it stays skin, and so it does above the armpits (a strap top's
    shoulder). (Without the pose, so that the arms keep the target's shape.)"""
    strip_end = {"crack": 50, "side": 52, "widens": 56, "above the armpits": 50}[case]
    parse, target = person_in_a_top()
    parse[0, 28:76, 16:57] = 0
    parse[0, 28:76, 22:50] = 5  # a sleeveless old top
    parse[0, 30:70, 50:61] = 14  # the bare left arm beside it
    target[0, 28:76, 22:48] = UPPER
    target[0, 30:70, strip_end:61] = LEFT_ARM
    target[0, 36:56, 48:strip_end] = FACE_NECK  # the strip the warp leaves
    mask = (target == UPPER).float()[:, None]
    warp = WarpResult(torch.rand(1, 3, SCENE_HEIGHT, SCENE_WIDTH) * mask, mask, mask)
    armpit_row = 60 if case == "above the armpits" else 34
    keypoints = worn_rectangle({0: (30, 28), 1: (33, 30), 2: (36, 32), 3: (39, 30), 4: (42, 28), 31: (48, 28),
                                5: (22, 28), 14: (22, armpit_row), 22: (48, armpit_row)})
    composed = recompose(person_in_blue(parse), parse, target, warp, margin_px=2, garment_keypoints=keypoints)
    cloth = case in ("crack", "side")
    strip = (0, slice(36, 50), slice(48, strip_end))
    assert (composed.target_parse13[strip] == (UPPER if cloth else FACE_NECK)).all()
    assert composed.keep_mask[0, 0, 36:50, 48:strip_end].all() == cloth


def test_a_speck_of_garment_apart_from_the_rest_takes_its_nearest_other_label():
    """A pixel of the old neckline's band up on the neck, which the target calls wall, lies inside the new
    garment's keypoint outline (its neckline at row 22) but off the warp: made garment, it was a dash of mirrored
    cloth on the neck; apart from the garment, it is the neck."""
    parse, target = person_in_a_top()
    parse[0, 26, 36] = 5
    target[0, 26, 36] = 0
    target[0, 30:76, 18:55] = UPPER
    mask = (target == UPPER).float()[:, None]
    warp = WarpResult(torch.rand(1, 3, SCENE_HEIGHT, SCENE_WIDTH) * mask, mask, mask)
    keypoints = worn_rectangle({0: (30, 22), 1: (33, 22), 2: (36, 22), 3: (39, 22), 4: (42, 22), 31: (55, 28),
                                5: (18, 28)})
    composed = recompose(person_in_blue(parse), parse, target, warp, margin_px=1, pose_nodes=SCENE_POSE[None],
                         garment_keypoints=keypoints)
    assert composed.target_parse13[0, 26, 36] == FACE_NECK
    assert (composed.target_parse13[0, 30:76, 18:55] == UPPER).all()


def test_garment_extended_beyond_the_warp_continues_its_cloth_mirrored_from_its_outermost_pixels():
    stripes = torch.rand(1, 3, 8, 30, generator=torch.Generator().manual_seed(0))  # a print of vertical lines
    stripes = stripes[:, :, :1].expand(1, 3, 8, 30)
    known = torch.zeros(1, 8, 30, dtype=torch.bool)
    known[:, :, :20] = True
    extended = extend_garment(stripes, known, depth=4)
    assert torch.equal(extended[..., :20], stripes[..., :20])
    for offset in range(1, 5):  # column 19 + offset mirrors column 19 - offset up to the depth
        assert torch.equal(extended[..., 19 + offset], stripes[..., 19 - offset])
    for offset in range(5, 11):  # then back towards the outline and in again: never deeper than 4 columns
        assert torch.equal(extended[..., 19 + offset], stripes[..., 19 - (4 - abs(offset % 8 - 4))])


def test_garment_the_warp_leaves_open_next_to_long_hair_is_skin_not_hair():
    height, width = SCENE_HEIGHT, SCENE_WIDTH
    parse, target = person_in_a_top()
    parse[0, 8:40, 43:50] = 2  # long hair down the image-right side, over the old top's collar
    target[0, 8:40, 43:50] = HAIR
    target[0, 30:76, 18:55] = UPPER
    target[0, 30:40, 43:50] = HAIR
    garment = torch.zeros(1, 1, height, width)
    garment[0, 0, 30:76, 18:55] = 1
    garment[0, 0, 30:44, 30:42] = 0  # a deep neckline's hole, its right edge next to the hair
    warp = WarpResult(torch.rand(1, 3, height, width) * garment, garment, garment)
    composed = recompose(torch.full((1, 3, height, width), 0.8), parse, target, warp, margin_px=1)
    hole = composed.target_parse13[0, 32:44, 32:42]
    assert not (hole == HAIR).any() and (hole == FACE_NECK).any()


def flat_tshirt(sleeve_scale: float = 1.0) -> np.ndarray:
    """(32, 2) pixels: a flat short-sleeved T-shirt (``kgi.graphs`` numbering), its sleeves ``sleeve_scale``
    times as long, shoulders at rows 45, armpits at row 70, hem at row 160."""
    keypoints = np.zeros((32, 2))
    keypoints[:5] = [(62, 40), (68, 46), (75, 50), (82, 46), (88, 40)]
    keypoints[5], keypoints[14] = (40, 45), (44, 70)
    sleeve = np.array([(35, 48), (28, 56), (22, 64), (18, 70), (30, 80), (34, 76), (38, 72), (42, 68)], float)
    keypoints[6:14] = keypoints[5] + sleeve_scale * (sleeve - keypoints[5])
    keypoints[15:22] = [(45, 100), (46, 130), (47, 160), (75, 160), (103, 160), (104, 130), (105, 100)]
    keypoints[[31, 22]] = (150 - keypoints[[5, 14], 0])[:, None] * [1, 0] + keypoints[[5, 14]] * [0, 1]
    keypoints[23:31] = np.stack([150 - keypoints[13:5:-1, 0], keypoints[13:5:-1, 1]], 1)
    return keypoints


def test_a_short_sleeve_drawn_down_to_the_elbow_and_into_the_chest_is_rebuilt_along_the_upper_arm():
    _, nodes = shoulders_person()  # arms hang: shoulders (45, 72) / (105, 72), elbows (38, 110) / (112, 110)
    flat = flat_tshirt()
    worn = flat + [0, 27]  # the torso where the person is
    worn[6:14] = [(40, 75), (36, 92), (34, 106), (31, 124), (58, 104), (60, 92), (58, 86), (52, 80)]  # a "wing"
    rebuilt = fit_short_sleeves(worn, flat, nodes)
    assert not np.allclose(rebuilt[6:14], worn[6:14])
    torso = [n for n in range(32) if n not in range(5, 14) and n not in range(23, 32)]
    assert np.array_equal(rebuilt[torso], worn[torso])  # the torso stays as stage 1 put it, but for the shoulders
    other_arm = (nodes[6] - nodes[5]) / np.linalg.norm(nodes[6] - nodes[5])
    other_cuff = rebuilt[[26, 27]].mean(0) - nodes[5]  # the other sleeve is only turned around its arm
    assert abs(other_cuff[0] * other_arm[1] - other_cuff[1] * other_arm[0]) < 1e-6
    sleeve_length = np.linalg.norm(rebuilt[[9, 10]].mean(0) - rebuilt[[5, 14]].mean(0))
    flat_length = np.linalg.norm(flat[[9, 10]].mean(0) - flat[[5, 14]].mean(0))
    assert 0.6 * flat_length < sleeve_length < 1.6 * flat_length  # as long as the flat sleeve, not to the elbow
    upper_arm = (nodes[3] - nodes[2]) / np.linalg.norm(nodes[3] - nodes[2])
    across = rebuilt[6:14] - nodes[2]
    off_bone = np.abs(across[:, 0] * upper_arm[1] - across[:, 1] * upper_arm[0])
    assert off_bone.max() < 15, off_bone  # around the upper arm's bone, none in the chest (the torso's x >= 45)
    assert rebuilt[[10, 11, 12], 0].max() < 52
    normal = np.array([-upper_arm[1], upper_arm[0]])
    assert abs((rebuilt[[9, 10]].mean(0) - nodes[2]) @ normal) < 1e-6  # the cuff's midpoint on the bone line
    np.testing.assert_allclose(fit_short_sleeves(rebuilt, flat, nodes), rebuilt, atol=1e-9)  # now plausible: kept


def test_a_short_sleeve_hung_from_inside_the_shoulder_is_moved_out_to_its_edge():
    """Stage 1 puts a genuine person's shoulder node inside the shoulder joint (a wrap top's image-right
    shoulder): the node and its sleeve move out across the upper arm to ``SHOULDER_OUTSIDE`` of the span, so the
    garment covers the shoulder instead of leaving it to be painted as skin."""
    _, nodes = shoulders_person()
    flat = flat_tshirt()
    worn = fit_short_sleeves(flat + [0, 27], flat, nodes)
    inside = worn.copy()
    inside[[31, *range(23, 31)]] -= [20, 0]  # the image-right shoulder and sleeve 20 pixels towards the neck
    fitted = fit_short_sleeves(inside, flat, nodes)
    along = (nodes[6] - nodes[5]) / np.linalg.norm(nodes[6] - nodes[5])
    outward = -np.array([-along[1], along[0]])  # image-right: away from the torso
    assert outward[0] > 0
    assert (fitted[31] - nodes[5]) @ outward == pytest.approx(SHOULDER_OUTSIDE * body_span(nodes))
    cuff = fitted[[26, 27]].mean(0) - nodes[5]
    assert abs(cuff @ outward) < 1e-6  # and the sleeve around the arm
    np.testing.assert_allclose(fitted[:23], worn[:23], atol=1e-9)  # the other side as it was


def test_a_long_sleeve_hung_inside_the_forearm_has_its_cuff_centred_on_it():
    """Stage 1 hangs a genuine person's long sleeve beside the forearm, towards the body (08909_00 in the blouse
    02783_00: a tenth of the shoulder span): the cuff's and the near-cuff nodes' midpoints move across onto the
    forearm's line, nothing moves along the arm, and the elbow, the armhole, the torso and a sleeve already
    around its forearm stay. A short sleeve, or an arm whose wrist or elbow was lost (at the joint before it),
    is left alone."""
    _, nodes = shoulders_person()  # image-left forearm (38, 110) -> (36, 150); image-right (112, 110) -> (114, 150)
    flat = flat_tshirt(sleeve_scale=3.0)  # sleeves longer than the upper arm
    worn = flat + [0, 27]
    worn[6:14] = [(33, 80), (30, 110), (28, 130), (27, 150), (45, 150), (46, 130), (46, 110), (50, 85)]
    worn[23:31] = np.stack([150 - worn[13:5:-1, 0], worn[13:5:-1, 1]], 1)  # mirrored: around its forearm
    hung_inside = worn.copy()
    hung_inside[[8, 9, 10, 11]] += [7, 0]  # the cuff and the nodes above it 7 pixels towards the body
    centred = centre_long_sleeves(hung_inside, flat, nodes)
    along = (nodes[4] - nodes[3]) / np.linalg.norm(nodes[4] - nodes[3])
    normal = np.array([-along[1], along[0]])
    for pair in ([9, 10], [8, 11]):
        assert abs((centred[pair].mean(0) - nodes[3]) @ normal) < 1e-9  # on the forearm's line
        np.testing.assert_allclose((centred[pair] - hung_inside[pair]) @ along, 0, atol=1e-9)  # moved across only
        assert np.linalg.norm(centred[pair].mean(0) - worn[pair].mean(0)) < 0.5  # near where it was drawn
    unmoved = [n for n in range(32) if n not in (8, 9, 10, 11)]
    np.testing.assert_array_equal(centred[unmoved], hung_inside[unmoved])
    short = fit_short_sleeves(flat_tshirt() + [0, 27], flat_tshirt(), nodes)
    short[[9, 10]] += [7, 0]
    np.testing.assert_array_equal(centre_long_sleeves(short, flat_tshirt(), nodes), short)
    for lost, before in (([4, 7], [3, 6]), ([3, 6], [2, 5])):  # wrists, then elbows, lost: at the joint before
        lost_joints = nodes.copy()
        lost_joints[lost] = lost_joints[before]
        np.testing.assert_array_equal(centre_long_sleeves(hung_inside, flat, lost_joints), hung_inside)


def test_a_plausible_short_sleeve_drawn_too_long_is_shortened_along_its_axis():
    """Stage 1 draws some genuine people's short sleeves a half longer than the flat sleeve: a sleeve longer than
    ``MAX_SHORT_SLEEVE_LENGTH`` times the flat one's (times the torso scale) is shortened to that, its cuff as
    wide; one within it stays as long."""
    _, nodes = shoulders_person()
    flat = flat_tshirt()
    worn = fit_short_sleeves(flat + [0, 27], flat, nodes)  # both sleeves around the arms, as long as flat
    long_worn = worn.copy()
    for armhole, sleeve in (([5, 14], slice(6, 14)), ([31, 22], slice(23, 31))):
        middle = worn[armhole].mean(0)
        long_worn[sleeve] = middle + 1.5 * (worn[sleeve] - middle)  # 1.5 times as long (and wide)
    fitted = fit_short_sleeves(long_worn, flat, nodes)
    torso_scale = _scale_between(flat[list(GARMENT_TORSO_NODES)], worn[list(GARMENT_TORSO_NODES)])
    assert torso_scale == pytest.approx(1, abs=0.02)  # a shifted copy, its shoulders moved out to their edges
    for armhole, cuff in (([5, 14], [9, 10]), ([31, 22], [27, 26])):
        flat_length = np.linalg.norm(flat[cuff].mean(0) - flat[armhole].mean(0))
        length = np.linalg.norm(fitted[cuff].mean(0) - fitted[armhole].mean(0))
        assert length == pytest.approx(MAX_SHORT_SLEEVE_LENGTH * torso_scale * flat_length, rel=1e-6)
        cuff_width = np.linalg.norm(fitted[cuff[0]] - fitted[cuff[1]])
        assert cuff_width > 1.4 * np.linalg.norm(worn[cuff[0]] - worn[cuff[1]])  # only its length changed
    torso = [n for n in range(32) if n not in range(6, 14) and n not in range(23, 31)]
    assert np.array_equal(fitted[torso], long_worn[torso])
    slightly_long = worn.copy()
    slightly_long[6:14] = worn[[5, 14]].mean(0) + 1.2 * (worn[6:14] - worn[[5, 14]].mean(0))
    kept = fit_short_sleeves(slightly_long, flat, nodes)  # turned around the arm, as long as it was

    def length(keypoints):
        return np.linalg.norm(keypoints[[9, 10]].mean(0) - keypoints[[5, 14]].mean(0))

    assert length(kept) == pytest.approx(length(slightly_long), rel=1e-9) and length(kept) > 1.15 * length(worn)


def test_a_short_sleeve_beside_the_arm_is_turned_around_it_and_long_sleeves_stay():
    """A plausible short sleeve hanging beside the arm (as stage 1 hangs genuine people's image-left sleeves) is
    turned about its armhole until its cuff's midpoint is on the upper arm's bone line, its shape kept; a sleeve
    around the arm, long sleeves and sleeveless garments stay where stage 1 put them."""
    _, nodes = shoulders_person()
    flat = flat_tshirt()
    worn = fit_short_sleeves(flat + [0, 27], flat, nodes)  # both sleeves around the arms
    np.testing.assert_allclose(fit_short_sleeves(worn, flat, nodes), worn, atol=1e-9)
    beside = worn.copy()
    armhole = worn[[5, 14]].mean(0)
    angle = np.radians(12)  # turned outwards (image-left: clockwise in image axes, y down)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    beside[6:14] = (worn[6:14] - armhole) @ rotation.T + armhole
    assert beside[[9, 10]].mean(0)[0] < worn[[9, 10]].mean(0)[0] - 3  # hangs outside the arm
    fitted = fit_short_sleeves(beside, flat, nodes)
    np.testing.assert_allclose(fitted, worn, atol=1e-6)  # turned back around the arm
    long_flat = flat_tshirt(sleeve_scale=4.0)  # longer than the upper arm: the rebuild does not bend at elbows
    long_worn = long_flat + [0, 27]
    long_worn[6:14] = worn[6:14]  # far too short against the flat sleeve
    assert np.array_equal(fit_short_sleeves(long_worn, long_flat, nodes), long_worn)
    sleeveless = flat.copy()
    sleeveless[6:14] = flat[5] + np.linspace(0, 1, 8)[:, None] * (flat[14] - flat[5])
    sleeveless[23:31] = flat[22] + np.linspace(0, 1, 8)[:, None] * (flat[31] - flat[22])
    assert np.array_equal(fit_short_sleeves(worn, sleeveless, nodes), worn)


def test_garment_the_warp_does_not_reach_over_the_photos_arm_is_that_arm_not_the_wall():
    height, width = 96, 72
    parse = torch.zeros(1, height, width, dtype=torch.long)
    parse[0, 8:24, 30:43] = 13  # face
    parse[0, 28:76, 20:52] = 5  # a sleeveless old top
    parse[0, 30:70, 52:60] = 14  # the person's bare left arm beside it
    target = torch.zeros(1, height, width, dtype=torch.long)
    target[0, 8:30, 30:43] = FACE_NECK
    target[0, 28:76, 20:60] = UPPER  # the network's new garment, a sleeve over the arm
    garment = torch.zeros(1, 1, height, width)
    garment[0, 0, 28:76, 20:53] = 1  # the warp stops at the body's side
    warp = WarpResult(torch.rand(1, 3, height, width) * garment, garment, garment)
    composed = recompose(torch.full((1, 3, height, width), 0.8), parse, target, warp, margin_px=1)
    assert (composed.target_parse13[0, 32:68, 54:60] == LEFT_ARM).all()


@pytest.mark.parametrize("under_a_sleeve", [False, True])
def test_a_forearm_across_the_body_stays_in_front_of_the_new_garment_unless_a_sleeve_covers_it(under_a_sleeve):
    """The photo shows the person's forearm across the old top, and the target parse draws the new garment over
    it: the forearm is in front of the new garment's body (kept, arm), but a new sleeve pasted there covers it."""
    parse, target = person_in_a_top()
    parse[0, 50:58, 24:50] = 14  # the bare left forearm across the old top
    person = person_in_blue(parse)
    target[0, 28:76, 16:57] = UPPER  # the network's new garment over the whole body, forearm included
    mask = torch.zeros(1, 1, SCENE_HEIGHT, SCENE_WIDTH)
    mask[0, 0, 28:76, 16:57] = 1
    segments = torch.zeros(1, len(SEGMENT_NAMES), SCENE_HEIGHT, SCENE_WIDTH)
    segments[:, SEGMENT_NAMES.index("backbone")] = mask[:, 0]
    if under_a_sleeve:  # a long sleeve pasted across the body over the forearm
        segments[:, :, 48:60, 20:54] = 0
        segments[:, SEGMENT_NAMES.index("left_low"), 48:60, 20:54] = 1
    warp = WarpResult(torch.rand(1, 3, SCENE_HEIGHT, SCENE_WIDTH) * mask, mask, segments)
    pose = SCENE_POSE.copy()
    pose[[6, 7]] = np.array([[52, 50], [24, 56]]) / [SCENE_WIDTH, SCENE_HEIGHT]  # elbow out, wrist across the body
    composed = recompose(person, parse, target, warp, margin_px=1, pose_nodes=pose[None])
    forearm = (slice(52, 56), slice(27, 47))  # away from its outline, the old garment's margin
    if under_a_sleeve:
        assert (composed.target_parse13[0][forearm] == UPPER).all()
        torch.testing.assert_close(composed.image[0][(slice(None), *forearm)], warp.garment[0][(slice(None), *forearm)])
    else:
        assert (composed.target_parse13[0][forearm] == LEFT_ARM).all()
        torch.testing.assert_close(composed.image[0][(slice(None), *forearm)], person[0][(slice(None), *forearm)])
        assert (composed.keep_mask[0, 0][forearm] == 1).all()


def test_a_sleeve_the_parse_calls_an_arm_is_repainted_as_the_old_garment_not_kept_as_an_arm():
    """VITON-HD's own parses call tight long sleeves arms. A large piece of the parse's arm that is not of the
    face's colour is the old garment's sleeve: a sleeveless top's painted arm is the pose's arm there, and the
    rest of the sleeve is wall, not an arm as wide as the sleeve."""
    parse, target = person_in_a_top()
    parse[0, 30:68, 57:66] = 15  # the left sleeve, labelled left arm (CIHP 15)
    parse[0, 68:74, 56:62] = 15  # the bare left hand below it
    person = torch.zeros(1, 3, SCENE_HEIGHT, SCENE_WIDTH)
    person[:] = torch.tensor([0.15, 0.2, 0.6]).view(1, 3, 1, 1)  # the old top, its sleeves (and the wall) blue
    person[0, :, 0:4, :] = 0.9  # the wall (the sleeve's piece is the sleeve, not the whole blue image)
    for label in (13, 10):
        person[:, :, parse[0] == label] = SKIN.view(3, 1)
    person[0, :, 68:74, 56:62] = SKIN.view(3, 1, 1)
    target[0, 28:76, 18:55] = UPPER  # a sleeveless top...
    target[0, 30:74, 55:66] = LEFT_ARM  # ... and the network's arm as wide as the old sleeve
    warp = backbone_warp(slice(28, 76), slice(18, 55))
    composed = recompose(person, parse, target, warp, margin_px=1, pose_nodes=SCENE_POSE[None])
    outside_the_arm = (slice(40, 60), slice(63, 66))  # the sleeve beyond the pose's arm capsule
    assert (composed.target_parse13[0][outside_the_arm] == 0).all()
    assert (composed.keep_mask[0, 0, 30:68, 57:66] == 0).all()  # nothing of the sleeve kept
    assert (composed.target_parse13[0, 44:56, 55:57] == LEFT_ARM).all()  # the arm inside its capsule


@pytest.mark.parametrize("keypoint_hem", [None, 56])
def test_a_new_garment_shorter_than_the_old_bares_the_midriff_above_the_hips(keypoint_hem):
    """The new top ends at row 56 (in its keypoints too, or without them), the old one at row 76; the target
    network draws the trousers up to the new hem, and an arm wedge beside it. Above the hips (row 70) the old
    garment's place is torso skin; below, the target's trousers stay."""
    parse, target = person_in_a_top()
    person = torch.full((1, 3, SCENE_HEIGHT, SCENE_WIDTH), 0.5)
    for label in (13, 10):
        person[:, :, parse[0] == label] = SKIN.view(3, 1)
    target[0, 28:56, 18:55] = UPPER
    target[0, 56:76, 18:55] = 4  # the lower garment (13 classes), up to the new hem
    target[0, 56:62, 24:30] = LEFT_ARM  # a wedge of arm on the torso, off the arms' capsules
    warp = backbone_warp(slice(28, 56), slice(18, 55))
    keypoints = None if keypoint_hem is None else worn_rectangle(
        {0: (30, 28), 1: (33, 30), 2: (36, 32), 3: (39, 30), 4: (42, 28), 31: (54, 28), 5: (18, 28)}, keypoint_hem)
    composed = recompose(person, parse, target, warp, margin_px=1, pose_nodes=SCENE_POSE[None],
                         garment_keypoints=keypoints)
    midriff = composed.target_parse13[0, 58:70, 28:46]
    assert (midriff == FACE_NECK).all()
    assert (composed.target_parse13[0, 58:62, 25:29] == FACE_NECK).all()  # the wedge too
    assert (composed.target_parse13[0, 71:76, 28:46] == 4).all()  # below the hips
    assert (composed.keep_mask[0, 0, 58:76, 28:46] == 0).all()  # painted


@pytest.mark.parametrize("wall_gap", [False, True])
def test_the_torso_the_warp_leaves_open_beside_a_new_garment_is_that_garment_between_its_armpits_and_hem(wall_gap):
    """The new top reaches row 76 (its keypoints' hem, armpits at row 40) but its warp leaves a strip of the
    image-left torso open (columns 24-30), where the target draws an arm wedge off the arms' capsules. Between
    the armpits and the hem the new garment covers the torso: inside its keypoint outline the strip is garment,
    not bare torso skin (a notch of skin between a tee's side and the arm hanging beside it, 00035_00). So is a
    gap of wall the photo shows there between the old top and its sleeve (flecks of painted arm inside a tee)."""
    parse, target = person_in_a_top()
    if wall_gap:
        parse[0, 46:58, 26:28] = 0
    person = torch.full((1, 3, SCENE_HEIGHT, SCENE_WIDTH), 0.5)
    for label in (13, 10):
        person[:, :, parse[0] == label] = SKIN.view(3, 1)
    target[0, 28:76, 30:55] = UPPER
    target[0, 44:60, 24:30] = RIGHT_ARM
    warp = backbone_warp(slice(28, 76), slice(30, 55))
    keypoints = worn_rectangle({0: (30, 28), 1: (33, 30), 2: (36, 32), 3: (39, 30), 4: (42, 28), 31: (54, 28),
                                5: (18, 28), 14: (18, 40), 22: (54, 40)})
    composed = recompose(person, parse, target, warp, margin_px=1, pose_nodes=SCENE_POSE[None],
                         garment_keypoints=keypoints)
    assert (composed.target_parse13[0, 46:58, 25:29] == UPPER).all()


@pytest.mark.parametrize("keypoint_hem", [60, 86])
def test_a_tucked_in_top_leaves_the_skirts_waistband_where_the_old_top_bloused_over_it(keypoint_hem):
    """The old top bloused over the skirt's waistband down to row 62 (the skirt below it); the target draws the
    new top to row 58 and the skirt from there. A new top whose keypoints put its hem below the hips (row 70) is
    tucked in: the painted band between its hem and the skirt, on the waistband, is the skirt. A top whose hem is
    above the hips (row 60) is shorter than the old one: the band is bared midriff."""
    parse, target = person_in_a_top()
    parse[0, 62:96, 16:57] = 12  # the skirt (CIHP), the old top above it
    person = torch.full((1, 3, SCENE_HEIGHT, SCENE_WIDTH), 0.5)
    for label in (13, 10):
        person[:, :, parse[0] == label] = SKIN.view(3, 1)
    target[0, 28:58, 18:55] = UPPER
    target[0, 58:96, 18:55] = 4
    warp = backbone_warp(slice(28, 58), slice(18, 55))
    keypoints = worn_rectangle({0: (30, 28), 1: (33, 30), 2: (36, 32), 3: (39, 30), 4: (42, 28), 31: (54, 28),
                                5: (18, 28)}, keypoint_hem)
    composed = recompose(person, parse, target, warp, margin_px=4, pose_nodes=SCENE_POSE[None],
                         garment_keypoints=keypoints)
    band = composed.target_parse13[0, 58:62, 30:46]
    assert (band == (4 if keypoint_hem > 70 else FACE_NECK)).all()
    assert (composed.keep_mask[0, 0, 58:62, 30:46] == 0).all()  # painted


def test_a_sliver_of_the_warped_garment_apart_from_the_rest_is_not_pasted():
    """At 256 rows the warped garment's body is pasted, and beyond the bare arm beside it a piece of its side two
    pixels wide (thinner than ``GARMENT_SLIVER`` of the height, 3 pixels, everywhere) shows past the hand: not
    pasted (a dark line along the hand), the photo's wall or the arm instead."""
    height, width = 256, 192
    parse = torch.zeros(1, height, width, dtype=torch.long)
    parse[0, 10:50, 80:110] = 13  # face
    parse[0, 60:200, 40:150] = 5  # the old top
    parse[0, 60:200, 150:166] = 14  # the bare left arm beside it
    person = torch.full((1, 3, height, width), 0.9)  # the wall
    person[0, :, parse[0] == 5] = torch.tensor([0.1, 0.2, 0.6]).view(3, 1)
    for label in (13, 14):
        person[:, :, parse[0] == label] = SKIN.view(3, 1)
    target = torch.zeros(1, height, width, dtype=torch.long)
    target[0, 10:50, 80:110] = FACE_NECK
    target[0, 60:200, 40:150] = UPPER
    target[0, 60:200, 150:166] = LEFT_ARM
    target[0, 150:190, 166:168] = UPPER  # the sliver, past the arm
    mask = (target == UPPER).float()[:, None]
    segments = torch.zeros(1, len(SEGMENT_NAMES), height, width)
    segments[:, SEGMENT_NAMES.index("backbone")] = mask[:, 0]
    warp = WarpResult(torch.rand(1, 3, height, width) * 0.3 * mask, mask, segments)
    composed = recompose(person, parse, target, warp, margin_px=1)
    sliver = (slice(150, 190), slice(166, 168))
    assert not (composed.target_parse13[0][sliver] == UPPER).any()
    pasted = torch.isclose(composed.image[0][(slice(None), *sliver)], warp.garment[0][(slice(None), *sliver)])
    assert not pasted.all(0).any()
    body = (slice(70, 190), slice(50, 140))
    torch.testing.assert_close(composed.image[0][(slice(None), *body)], warp.garment[0][(slice(None), *body)])


@pytest.mark.parametrize("hem", ["tucked", "untucked"])
def test_a_strip_of_the_new_top_down_the_skirts_side_is_not_worn_but_an_untucked_hem_is(hem):
    """The target tucks the new top into the skirt (its bottom garment spans the hips from row 56, the waist),
    but the warp, its hem at the hips, runs down the skirt's side where the old top hung beside it: a strip 3
    pixels wide, under a quarter of the hips, to row 76. It is not the garment (below an untucked hem neither).
    An untucked hem spanning the hips below the waist is."""
    parse, target = person_in_a_top()
    person = torch.full((1, 3, SCENE_HEIGHT, SCENE_WIDTH), 0.8)
    target[0, 30:56, 18:55] = UPPER
    target[0, 56:90, 20:53] = PARSE13_LABELS.index("bottom")
    target[0, 56:76, 54:57] = UPPER  # the parse network follows the warp's outline
    warp = backbone_warp(slice(30, 76), slice(18, 57))
    warp.mask[0, 0, 56:76, :54] = 0  # below the waist, only the strip...
    if hem == "untucked":
        warp.mask[0, 0, 56:62, 18:57] = 1  # ... or a hem across the hips as well
        target[0, 56:62, 18:57] = UPPER
    warp.garment.mul_(warp.mask)
    composed = recompose(person, parse, target, warp, margin_px=1, pose_nodes=SCENE_POSE[None])
    worn = composed.target_parse13[0] == UPPER
    assert worn[40:50, 20:53].all() and not worn[64:76, 54:57].any()
    assert worn[57:61, 20:53].all() == (hem == "untucked")


@pytest.mark.parametrize("trousers", ["white", "dark"])
def test_a_sleeve_the_parse_gives_to_the_trousers_or_the_wall_is_repainted_unless_its_colour_is_theirs(trousers):
    """The photo's dark long sleeve hangs beside the trousers, and the parse labels its lower end trousers and
    wall: of the old garment's colour, unlike white trousers and the pale wall, touching the old garment, it is
    the old garment and is not kept. Where the trousers are dark as the sleeve, their label is taken as it is."""
    parse, target = person_in_a_top()
    parse[0, 76:96, 16:57] = 9  # the trousers below the top
    parse[0, 60:76, 57:62] = 5  # the left sleeve...
    parse[0, 76:84, 57:60] = 9  # ... its end labelled trousers
    parse[0, 76:84, 60:62] = 0  # ... and wall
    person = torch.full((1, 3, SCENE_HEIGHT, SCENE_WIDTH), 0.85)  # the pale wall
    person[0, :, parse[0] == 9] = 0.97 if trousers == "white" else 0.08
    person[0, :, 60:84, 57:62] = 0.05  # the dark sleeve, down to its end
    person[0, :, 28:76, 16:57] = 0.05  # the dark top
    for label in (13, 10):
        person[:, :, parse[0] == label] = SKIN.view(3, 1)
    target[0, 28:76, 16:57] = UPPER
    target[0, 76:96, 16:57] = 4
    mask = torch.zeros(1, 1, SCENE_HEIGHT, SCENE_WIDTH)
    mask[0, 0, 28:76, 16:57] = 1
    warp = WarpResult(torch.rand(1, 3, SCENE_HEIGHT, SCENE_WIDTH) * mask, mask, mask)
    composed = recompose(person, parse, target, warp, margin_px=1)
    labelled_trousers, labelled_wall = composed.keep_mask[0, 0, 77:83, 57:59], composed.keep_mask[0, 0, 77:83, 60:62]
    assert (labelled_wall == 0).all()
    assert (labelled_trousers == 0).all() if trousers == "white" else (labelled_trousers == 1).all()


def test_a_highlight_on_a_bare_arm_is_kept_and_an_off_colour_piece_reaching_the_old_garment_is_repainted():
    """The skin test rejects a pale highlight (the lit edge of a hand, knuckles) as readily as a cuff; only an
    off-colour piece that reaches the old garment is its cuff: the highlight is the person's, and kept."""
    parse, target = person_in_a_top()
    parse[0, 30:74, 57:66] = 14  # the bare left arm beside the old top
    person = person_in_blue(parse)
    highlight, cuff = (slice(62, 66), slice(61, 65)), (slice(40, 43), slice(58, 63))
    person[(0, slice(None), *highlight)] = 0.97
    person[(0, slice(None), *cuff)] = torch.tensor([0.1, 0.1, 0.3]).view(3, 1, 1)
    target[0, 28:76, 16:57] = UPPER
    target[0, 30:74, 57:66] = LEFT_ARM
    composed = recompose(person, parse, target, backbone_warp(slice(28, 76), slice(16, 57)), margin_px=1)
    assert (composed.keep_mask[(0, 0, *highlight)] == 1).all()
    torch.testing.assert_close(composed.image[(0, slice(None), *highlight)], person[(0, slice(None), *highlight)])
    assert (composed.keep_mask[(0, 0, *cuff)] == 0).all()
    assert (composed.skin_mask[(0, 0, *highlight)] == 0).all()  # painted skin's colour is not learnt from it
    assert (composed.keep_mask[0, 0, 45:60, 59:66] == 1).all()  # the rest of the arm


def test_strands_of_hair_over_the_neck_are_kept_and_a_collar_the_parse_calls_neck_is_repainted():
    """Long brown hair beside the face, and on the neck two thin strips that reach the old top's neckline, neither
    of the skin's colour: one of the hair's colour (strands over the neck, kept: painted as skin they were a pale
    strip between the neck and the hair), one of the old top's (its collar, repainted)."""
    parse, target = person_in_a_top()
    hair = torch.tensor([0.45, 0.3, 0.18]).view(3, 1)
    parse[0, 0:24, 22:30] = 2
    parse[0, 0:24, 43:51] = 2
    person = person_in_blue(parse)
    person[0, :, parse[0] == 2] = hair
    strands, collar = (slice(24, 28), 34), (slice(24, 28), 37)
    person[(0, slice(None), *strands)] = hair
    person[(0, slice(None), *collar)] = torch.tensor([0.15, 0.2, 0.6]).view(3, 1)
    composed = recompose(person, parse, target, backbone_warp(slice(30, 76), slice(16, 57)), margin_px=1)
    kept_strands = (0, slice(None), slice(24, 27), 34)  # the last row is within the margin of the old top
    assert (composed.keep_mask[0, 0, 24:27, 34] == 1).all()
    torch.testing.assert_close(composed.image[kept_strands], person[kept_strands])
    assert (composed.keep_mask[0, 0, 24:28, 37] == 0).all()


@pytest.mark.parametrize("hair_colour", ["light", "dark"])
def test_the_old_garment_between_the_hairs_ends_that_the_parse_calls_hair_is_repainted_unless_of_the_hairs_colour(
        hair_colour):
    """Light brown hair, with a dark brown strand, falls onto an old top whose black lace yoke shows between the
    hair's ends, a light hole in it; the parse calls that patch hair. Its colour is the lace's, none of the hair's:
    it is the old garment, repainted, hole and all (kept, it showed in patches beside the new garment's shoulder),
    and the dark strand is kept. Black hair on the black yoke: the same patch is taken as the hair, and kept."""
    parse, target = person_in_a_top()
    parse[0, 8:36, 20:32] = 2  # a lock of hair, its ends over the old top (rows 28-35)
    target[0, 8:36, 20:32] = HAIR
    person = person_in_blue(parse)
    person[0, :, 28:40, 16:57] = 0.05  # the black yoke
    person[0, :, 40:76, 16:57] = 0.8  # the light grey knit below it
    light, dark = ((torch.tensor([0.6, 0.4, 0.25]), torch.tensor([0.3, 0.2, 0.12])) if hair_colour == "light"
                   else (torch.tensor([0.06, 0.05, 0.05]), torch.tensor([0.04, 0.04, 0.04])))
    person[0, :, 8:36, 20:32] = light.view(3, 1, 1)
    person[0, :, 10:35, 28] = dark.view(3, 1)  # a strand in shadow
    lace = (slice(33, 36), slice(21, 26))  # within the reach of the old top
    person[(0, slice(None), *lace)] = 0.05
    person[0, :, 34, 23] = 0.9  # a hole in the lace
    composed = recompose(person, parse, target, backbone_warp(slice(36, 76), slice(16, 57)), margin_px=1)
    assert (composed.keep_mask[0, 0, 26:34, 28] == 1).all()  # the strand
    if hair_colour == "light":
        assert (composed.keep_mask[(0, 0, *lace)] == 0).all()
    else:
        assert (composed.keep_mask[0, 0, 33:35, 21:26] == 1).all()  # row 35 is the old top's margin


def test_a_shadow_down_the_neck_redder_than_the_lit_face_is_kept_and_a_red_collar_is_repainted():
    """Skin in shadow is redder than lit skin. The face is lit above and shadowed under the jaw (0.6 of its
    brightness, its red share 0.08 higher: beyond the flat tolerance), and that shadow runs down the neck to the
    old top's neckline: it is the person's skin, kept, as the face's own shadow teaches. A red collar strip as
    dark reaching the neckline is not skin at any brightness: repainted."""
    parse, target = person_in_a_top()
    person = person_in_blue(parse)
    shadow, red = torch.tensor([0.60, 0.35, 0.25]), torch.tensor([0.60, 0.15, 0.20])
    assert shadow[0] / shadow.sum() - SKIN[0] / SKIN.sum() > SKIN_CHROMA_TOLERANCE
    person[0, :, 20:24, 30:43] = shadow.view(3, 1, 1)  # under the jaw
    neck_shadow, collar = (slice(24, 28), slice(33, 36)), (slice(24, 28), 38)
    person[(0, slice(None), *neck_shadow)] = shadow.view(3, 1, 1)
    person[(0, slice(None), *collar)] = red.view(3, 1)
    composed = recompose(person, parse, target, backbone_warp(slice(30, 76), slice(16, 57)), margin_px=1)
    kept_shadow = (0, slice(None), slice(24, 27), slice(33, 36))  # the last row is within the margin of the old top
    assert (composed.keep_mask[0, 0, 24:27, 33:36] == 1).all()
    torch.testing.assert_close(composed.image[kept_shadow], person[kept_shadow])
    assert (composed.keep_mask[0, 0, 24:28, 38] == 0).all()


def test_the_garments_own_neck_hole_is_the_neck_even_where_the_target_draws_garment():
    """The parse network drew the new garment, and a band of background, up to the hair over a neck hole the warp
    leaves open (the inside of the back, behind the front neckline: ``WarpResult.neck_hole``). The hole's garment
    pixels took their nearest label, next to long hair the wall, and the body's background between the shoulders
    becomes garment, filled with the cloth mirrored into the hole (on 08909_00 a tongue of cloth inside the
    neckline, on a shop photo a bar across a wrap's V). The hole is the person's neck."""
    parse, target = person_in_a_top()
    parse[0, 8:34, 24:31] = 2  # long hair down the image-left side of the neck, onto the old top
    parse[0, 8:34, 42:49] = 2  # and the image-right side
    target[0, 28:76, 18:55] = UPPER  # the new garment, drawn up over the neckline...
    target[0, 30:32, 31:42] = 0  # ... with a band of background across it (the body between the shoulders)
    target[0, 8:34, 24:31] = HAIR
    target[0, 8:34, 42:49] = HAIR
    warp = backbone_warp(slice(28, 76), slice(18, 55))
    hole = (slice(28, 36), slice(31, 42))  # the warp's neck hole, below the corners at row 28
    warp.mask[(0, 0, *hole)] = 0
    warp.garment[(0, slice(None), *hole)] = 0
    warp.segment_masks[(0, slice(None), *hole)] = 0
    person = torch.full((1, 3, SCENE_HEIGHT, SCENE_WIDTH), 0.9)
    person[:, :, parse[0] == 5] = torch.tensor([0.15, 0.2, 0.6]).view(3, 1)
    for label in (13, 10):
        person[:, :, parse[0] == label] = SKIN.view(3, 1)
    keypoints = worn_rectangle({0: (31, 28), 1: (33, 33), 2: (36, 35), 3: (39, 33), 4: (42, 28), 31: (55, 28),
                                5: (18, 28)}, hem_row=75)
    with_hole = WarpResult(warp.garment, warp.mask, warp.segment_masks, neck_hole=torch.zeros_like(warp.mask))
    with_hole.neck_hole[(0, 0, *hole)] = 1
    composed = recompose(person, parse, target, with_hole, margin_px=1, pose_nodes=SCENE_POSE[None],
                         garment_keypoints=keypoints)
    assert (composed.target_parse13[(0, *hole)] == FACE_NECK).all()
    assert (composed.keep_mask[(0, 0, *hole)] == 0).all()  # painted as the neck, no cloth pasted there
