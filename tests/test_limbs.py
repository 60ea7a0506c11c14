"""The person's pose against the parse: wrists that OpenPose placed far short of the hand the parse shows; the
worn garment's keypoints against the flat garment (a body shorter, for its shoulder width, than the flat one) and
against the photo's lower garment (a hem narrower than the hips it hangs over) and neck (a neckline narrower than
it)."""

from __future__ import annotations

import numpy as np
import pytest

from kgi.limbs import (BODY_BELOW_ARMPITS, MAX_BODY_STRETCH, MAX_HEM_WIDENING, MAX_NECKLINE_WIDENING, NECK_PROBE,
                       lengthen_short_body, widen_hem_to_lower_garment, widen_neckline_to_neck, wrists_on_hands)

HEIGHT, WIDTH = 120, 90
LEFT_ARM_CIHP, RIGHT_ARM_CIHP = 14, 15


def person(left_wrist: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """A BODY_25 pose (25, 3) and a CIHP parse (H, W): both arms hang from shoulders at row 30; the right arm's
    pose is right (wrist at its hand's top, row 80); the left arm's hand shows at rows 80-95 below a sleeve, and
    its wrist is ``left_wrist`` (x, y, confidence)."""
    pose = np.zeros((25, 3), np.float32)
    pose[1] = (45, 25, 0.9)  # neck
    pose[2], pose[3], pose[4] = (25, 30, 0.9), (22, 55, 0.9), (22, 80, 0.9)  # right shoulder, elbow, wrist
    pose[5], pose[6], pose[7] = (65, 30, 0.9), (68, 55, 0.4), left_wrist
    parse = np.zeros((HEIGHT, WIDTH), np.uint8)
    parse[80:95, 18:27] = RIGHT_ARM_CIHP  # the right hand
    parse[80:95, 64:73] = LEFT_ARM_CIHP  # the left hand
    return pose, parse


@pytest.mark.parametrize("confidence", [0.1, 0.0])
def test_a_wrist_far_short_of_its_hand_or_undetected_is_moved_onto_the_hand(confidence):
    pose, parse = person(left_wrist=(68, 62, confidence))  # OpenPose lost the forearm in its sleeve
    repaired = wrists_on_hands(pose, parse)
    assert 79 <= repaired[7, 1] <= 82 and 64 <= repaired[7, 0] <= 72  # the hand's top, where it leaves the sleeve
    assert repaired[7, 2] > 0
    np.testing.assert_array_equal(repaired[:7], pose[:7])  # nothing else moves
    np.testing.assert_array_equal(repaired[4], pose[4])  # the right wrist is at its hand already


def test_a_wrist_at_its_hand_and_a_bare_forearm_above_the_wrist_stay():
    pose, parse = person(left_wrist=(68, 82, 0.9))
    np.testing.assert_array_equal(wrists_on_hands(pose, parse), pose)
    parse[56:80, 64:73] = LEFT_ARM_CIHP  # a bare forearm from the elbow down: it starts above the wrist
    pose[7] = (68, 70, 0.9)
    np.testing.assert_array_equal(wrists_on_hands(pose, parse), pose)


def test_a_hand_out_of_an_arms_reach_is_not_taken_for_its_hand():
    pose, parse = person(left_wrist=(68, 62, 0.1))
    parse[80:95, 64:73] = 0
    parse[112:120, 64:73] = LEFT_ARM_CIHP  # a piece labelled left arm far below: 2.3 upper arms from the elbow
    np.testing.assert_array_equal(wrists_on_hands(pose, parse), pose)


def boxy_top(length_below_armpits: float, shoulder_width: float, tilt: float = 0.0) -> np.ndarray:
    """(32, 2) keypoints of a boxy top: shoulders 5/31 on row 0, armpits 14/22 on row 40, sides straight down to
    the hem ``length_below_armpits`` below them; every other node (neckline, sleeves) above the armpits. Tilted
    by ``tilt`` radians about the shoulders' midpoint."""
    half = shoulder_width / 2
    keypoints = np.zeros((32, 2))
    keypoints[:, 1] = np.linspace(-20, 35, 32)  # neckline and sleeves: all above the armpits
    keypoints[5], keypoints[31] = (-half, 0), (half, 0)
    keypoints[14], keypoints[22] = (-half, 40), (half, 40)
    for node, fraction in zip((15, 16, 17), (1 / 3, 2 / 3, 1.0)):
        keypoints[node] = (-half, 40 + fraction * length_below_armpits)
        keypoints[36 - node] = (half, 40 + fraction * length_below_armpits)  # 21, 20, 19
    keypoints[18] = (0, 40 + length_below_armpits)
    rotation = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]])
    return keypoints @ rotation.T + (300, 200)


@pytest.mark.parametrize("tilt", [0.0, 0.2])
def test_a_worn_body_shorter_than_the_flat_one_for_its_width_is_lengthened_below_the_armpits(tilt):
    """The flat top is as long below its armpits as its shoulders are wide; stage 1 wore it 0.75 as long, for the
    same width (the synthetic generator's proportions): its sides and hem are stretched along its axis to the flat
    proportions, their widths kept, and nothing above the armpits moves."""
    flat = boxy_top(200, 200)
    worn = boxy_top(90, 120, tilt)
    lengthened = lengthen_short_body(worn, flat)
    expected = boxy_top(120, 120, tilt)
    np.testing.assert_allclose(lengthened, expected, atol=1e-9)
    above = [node for node in range(32) if node not in BODY_BELOW_ARMPITS]
    np.testing.assert_array_equal(lengthened[above], worn[above])


def test_a_worn_body_far_shorter_than_the_flat_one_is_stretched_no_more_than_the_cap():
    """Stage 1 drew the body a quarter of its flat proportions: a wrong prediction, stretched by the cap alone."""
    lengthened = lengthen_short_body(boxy_top(30, 120), boxy_top(200, 200))
    np.testing.assert_allclose(lengthened, boxy_top(30 * MAX_BODY_STRETCH, 120), atol=1e-9)


def test_a_worn_body_as_long_as_the_flat_one_or_longer_is_kept():
    flat = boxy_top(200, 200)
    for length in (120, 150):
        worn = boxy_top(length, 120)
        np.testing.assert_array_equal(lengthen_short_body(worn, flat), worn)


def trousers(top_row: int, left: int, right: int) -> np.ndarray:
    """(600, 400) bool: a lower garment from ``top_row`` down, columns ``left`` to ``right`` (exclusive), and a
    speck of it far out on the image's left (a mislabelled patch of wall)."""
    lower = np.zeros((600, 400), bool)
    lower[top_row:, left:right] = True
    lower[320:340, 100:105] = True
    return lower


def test_a_hem_inside_the_trousers_it_hangs_over_reaches_their_sides():
    """The top's sides run down x = 240 and 360 to its hem at row 330; the photo shows the trousers from row 300,
    x = 220-379: each hem corner moves out 20 pixels, the side nodes above it by their share of the way down from
    the armpit, and nothing else moves."""
    worn = boxy_top(90, 120)
    widened = widen_hem_to_lower_garment(worn, trousers(300, 220, 380))
    expected = worn.copy()
    for nodes, outward in (((15, 16, 17), -1), ((21, 20, 19), 1)):
        for node, share in zip(nodes, (1 / 3, 2 / 3, 1.0)):
            expected[node, 0] += outward * 20 * share
    np.testing.assert_allclose(widened, expected, atol=1e-9)


def test_a_hem_above_the_lower_garment_or_wider_than_it_stays():
    worn = boxy_top(40, 120)  # the hem on row 280, above the trousers' top
    np.testing.assert_array_equal(widen_hem_to_lower_garment(worn, trousers(300, 220, 380)), worn)
    worn = boxy_top(90, 120)  # over trousers narrower than the hem
    np.testing.assert_array_equal(widen_hem_to_lower_garment(worn, trousers(300, 250, 350)), worn)
    np.testing.assert_array_equal(widen_hem_to_lower_garment(worn, np.zeros((600, 400), bool)), worn)


def test_a_hem_over_a_flared_skirt_reaches_no_farther_than_its_waistband():
    """A skirt whose waistband (rows 300-314) spans x = 230-369 flares below it by 0.8 pixel per row each side: on
    the hem's row (330) it reaches x = 218-381, but the hips a top hangs over are the waistband's width."""
    lower = np.zeros((600, 400), bool)
    for row in range(300, 600):
        flare = round(0.8 * max(row - 315, 0))
        lower[row, 230 - flare:370 + flare] = True
    widened = widen_hem_to_lower_garment(boxy_top(90, 120), lower)
    np.testing.assert_allclose(widened[[17, 19], 0], [230, 370])


def test_a_lower_garment_far_wider_than_the_hem_widens_it_no_more_than_the_cap():
    """Trousers whose parse runs 90 pixels out of the hem on the image's left (into the background): that corner
    moves by the cap alone; the right one, 25 pixels short, all the way."""
    widened = widen_hem_to_lower_garment(boxy_top(90, 120), trousers(300, 150, 385))
    cap = MAX_HEM_WIDENING * 120  # 60 pixels
    np.testing.assert_allclose(widened[[17, 19], 0], [240 - cap, 360 + 25])


def neck(left: int, right: int, bottom: int = 300) -> np.ndarray:
    """(600, 400) bool: a neck down to row ``bottom``, columns ``left`` to ``right`` (exclusive)."""
    mask = np.zeros((600, 400), bool)
    mask[200:bottom, left:right] = True
    return mask


def crew_neckline(corner_row: float, left: float, right: float) -> np.ndarray:
    """(32, 2) keypoints of ``boxy_top`` with a crew neckline: corners 0 and 4 at ``left`` and ``right`` on
    ``corner_row``, nodes 1-3 between them, deeper at the centre."""
    keypoints = boxy_top(90, 160)
    keypoints[:5, 0] = np.linspace(left, right, 5)
    keypoints[:5, 1] = corner_row + np.array([0, 20, 26, 20, 0])
    return keypoints


def test_a_neckline_narrower_than_the_neck_is_spread_around_it():
    """Stage 1 put a crew neckline's corners 80 pixels apart on a 100-pixel neck (read 2% of the height above
    them): its five nodes are spread about their midpoint until the corners are at the neck's sides; their rows
    and every other node stay."""
    worn = crew_neckline(290, 160, 240)
    widened = widen_neckline_to_neck(worn, neck(150, 250))
    assert round(290 - NECK_PROBE * 600) in range(200, 300)  # the neck shows on the row read
    expected = worn.copy()
    expected[:5, 0] = 200 + (worn[:5, 0] - 200) * 100 / 80
    np.testing.assert_allclose(widened, expected, atol=1e-9)
    np.testing.assert_allclose(widened[[0, 4], 0], [150, 250], atol=1e-9)


def test_a_neckline_as_wide_as_the_neck_or_where_no_neck_shows_stays_and_the_widening_is_bounded():
    worn = crew_neckline(290, 150, 250)
    np.testing.assert_array_equal(widen_neckline_to_neck(worn, neck(160, 240)), worn)  # wider than the neck
    narrow = crew_neckline(290, 180, 220)
    np.testing.assert_array_equal(widen_neckline_to_neck(narrow, np.zeros((600, 400), bool)), narrow)  # hidden
    np.testing.assert_array_equal(widen_neckline_to_neck(narrow, neck(150, 250, bottom=270)), narrow)  # a collar
    spread = widen_neckline_to_neck(narrow, neck(100, 300))  # a neck 5 times as wide: a wide shadow, a scarf
    np.testing.assert_allclose(spread[4, 0] - spread[0, 0], 40 * MAX_NECKLINE_WIDENING, atol=1e-9)
