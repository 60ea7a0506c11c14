"""Painted pixels that belong to the photo: skin in the person's colour, background continued, arms of the
person's shape with smooth outlines (``kgi.composite``, ``kgi.limbs``, ``kgi.posed_arms.shape_arms``)."""

from __future__ import annotations

import numpy as np
import torch

from kgi.composite import SkinModel, composite, push_pull_fill
from kgi.data.labels import BOTTOM, FACE_NECK, LEFT_ARM, RIGHT_ARM, UPPER
from kgi.limbs import ARM_NODES, arm_layout
from kgi.posed_arms import pose_arms, shape_arms

HEIGHT, WIDTH = 256, 192
SKIN = np.array([0.80, 0.58, 0.47], np.float32)
WALL = np.array([0.86, 0.87, 0.88], np.float32)

def person_scene():
    """A wall, a face-neck of skin (kept), a garment (kept) and a left arm whose upper half is painted; the
    inpainter's output is green everywhere (so nothing painted may come from it where the photo knows better)."""
    parse = np.zeros((HEIGHT, WIDTH), np.uint8)
    parse[20:70, 80:112] = FACE_NECK
    parse[70:180, 60:132] = UPPER
    parse[75:200, 132:150] = LEFT_ARM
    rows = np.linspace(0.9, 1.1, HEIGHT, dtype=np.float32)[:, None, None]
    image = np.broadcast_to(WALL * rows, (HEIGHT, WIDTH, 3)).copy()  # a wall with a gradient
    image[parse == FACE_NECK] = SKIN
    image[parse == UPPER] = (0.2, 0.2, 0.6)
    image[parse == LEFT_ARM] = SKIN * 0.95
    keep = np.ones((HEIGHT, WIDTH), bool)
    keep[60:130, 125:160] = False  # the upper arm and the wall next to it
    image[~keep] = 0.5
    reference = (parse == FACE_NECK) | ((parse == LEFT_ARM) & keep)
    as_tensor = lambda array: torch.from_numpy(np.ascontiguousarray(array))  # noqa: E731
    small = torch.zeros(1, 3, 64, 48)
    small[:, 1] = 1  # green
    return (small, as_tensor(image).permute(2, 0, 1)[None], as_tensor(keep)[None, None].float(),
            as_tensor(parse)[None].long(), as_tensor(reference)[None, None].float(), parse, keep, image)

def composited(image: np.ndarray, keep: np.ndarray, parse: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``composite`` of one (H, W, 3) float32 image with its (H, W) keep mask, target parse and visible skin,
    an inpainter's output of zeros: the (H, W, 3) result."""
    as_tensor = lambda array: torch.from_numpy(np.ascontiguousarray(array))  # noqa: E731
    return composite(torch.zeros(1, 3, 64, 48), as_tensor(image).permute(2, 0, 1)[None],
                     as_tensor(keep)[None, None].float(), as_tensor(parse)[None].long(),
                     as_tensor(reference)[None, None].float())[0].permute(1, 2, 0).numpy()


def test_painted_skin_takes_the_persons_skin_and_painted_wall_continues_the_wall():
    small, known, keep_mask, target, skin_mask, parse, keep, image = person_scene()
    result = composite(small, known, keep_mask, target, skin_mask)[0].permute(1, 2, 0).numpy()
    assert (result[keep] == image[keep]).all()  # kept pixels exact
    painted_arm = ~keep & (parse == LEFT_ARM)
    wall_inside = np.pad(np.lib.stride_tricks.sliding_window_view(parse == 0, (7, 7)).all((2, 3)), 3)
    painted_wall = ~keep & wall_inside  # 3 pixels from other classes (their soft borders)
    inner_arm = painted_arm & (np.abs(np.arange(WIDTH) - 141) < 5)[None]  # away from its outline
    assert np.abs(result[inner_arm].mean(0) - SKIN).max() < 0.06, result[inner_arm].mean(0)
    # The wall: within 10 levels (grain) of the kept wall on the same rows (a vertical gradient), never green.
    expected = WALL * np.linspace(0.9, 1.1, HEIGHT, dtype=np.float32)[:, None]
    rows = np.nonzero(painted_wall)[0]
    assert np.abs(result[painted_wall] - expected[rows]).max() < 0.04
    assert np.abs(result[painted_wall].mean(0) - expected[rows].mean(0)).max() < 3 / 255

def test_a_painted_band_of_the_trousers_takes_their_cloth_not_the_colour_of_a_button_beside_it():
    """The old top's margin over the trousers' waistband is painted as trousers; a white button sits on the kept
    waistband just below it. The band is filled from the trousers' typical colour, not a pale smudge of the
    button's (the wall, whose shadows are its own, is filled from all of its pixels)."""
    parse = np.zeros((HEIGHT, WIDTH), np.uint8)
    parse[100:220, 50:140] = BOTTOM
    trousers = np.array([0.45, 0.12, 0.10], np.float32)
    image = np.broadcast_to(WALL, (HEIGHT, WIDTH, 3)).copy()
    image[parse == BOTTOM] = trousers
    image[112:122, 90:100] = 0.95  # the button
    keep = np.ones((HEIGHT, WIDTH), bool)
    keep[100:110, 50:140] = False  # the band above it
    image[~keep] = 0.5
    result = composited(image, keep, parse, np.zeros((HEIGHT, WIDTH), bool))
    above_the_button = result[102:110, 86:104]
    assert np.abs(above_the_button.mean((0, 1)) - trousers).max() < 3 / 255, above_the_button.mean((0, 1))


def test_push_pull_fill_keeps_the_known_and_spreads_it():
    values = np.random.default_rng(0).random((32, 24, 3)).astype(np.float32)
    weight = np.zeros((32, 24), np.float32)
    weight[:, :10] = 1
    filled = push_pull_fill(values * weight[..., None], weight)
    np.testing.assert_allclose(filled[:, :10], values[:, :10], atol=1e-6)
    assert (filled >= values[:, :10].min() - 1e-6).all() and (filled <= values[:, :10].max() + 1e-6).all()

def _segment_distance(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    direction = end - start
    t = np.clip(((points - start) @ direction) / (direction @ direction), 0, 1)
    return np.linalg.norm(points - (start + t[:, None] * direction), axis=1)

def test_arm_outline_is_the_capsule_to_a_pixel_at_full_resolution():
    """A diagonal arm at 1024 rows: every pixel more than a pixel inside the tapered capsule is arm, every pixel
    more than a pixel outside is not (no steps of the parse network's 8-pixel cells)."""
    nodes = np.zeros((10, 2))
    nodes[[1, 2, 5, 8, 9]] = [(384, 300), (300, 300), (468, 300), (330, 480), (438, 480)]
    nodes[[6, 7]] = [(560, 480), (650, 640)]  # the left arm, diagonal
    nodes[[3, 4]] = nodes[2]  # the right arm not found
    arms, torso = arm_layout(nodes, np.zeros((1024, 768), np.uint8))
    assert torso[400, 384] and not torso[400, 740]
    rows, columns = np.mgrid[400:620, 480:700]
    pixels = np.stack([columns.ravel(), rows.ravel()], 1).astype(np.float64)
    elbow, wrist = nodes[6], nodes[7]
    span = 168  # the shoulder span (the torso is shorter than 168 / 0.77)
    r_elbow, r_wrist = 0.10 * span, 0.075 * span
    t = np.clip(((pixels - elbow) @ (wrist - elbow)) / np.sum((wrist - elbow) ** 2), 0, 1)
    radius = r_elbow + t * (r_wrist - r_elbow)
    distance = _segment_distance(pixels, elbow, wrist) - radius
    drawn = arms[rows.ravel(), columns.ravel()] == LEFT_ARM
    assert drawn[distance < -1.5].all() and not drawn[(distance > 1.5) & (t > 0) & (t < 1)].any()
    right_shoulder_disc = np.pi * (0.12 * span) ** 2  # the right arm was not found: its shoulder's disc only
    assert ARM_NODES[RIGHT_ARM] == (2, 3, 4) and abs((arms == RIGHT_ARM).sum() / right_shoulder_disc - 1) < 0.1

def test_painted_arm_is_no_wider_than_the_persons():
    """The target parse draws the arm as wide as the old sleeve; among painted pixels the arm keeps to the
    pose's capsule, scaled to the person's visible forearm, and the rest of the old sleeve becomes background."""
    height, width = 512, 384
    nodes = np.zeros((10, 2))
    nodes[[1, 2, 5, 8, 9]] = [(192, 150), (150, 150), (234, 150), (160, 330), (224, 330)]
    nodes[[6, 7]] = [(260, 250), (270, 350)]
    nodes[[3, 4]] = [(124, 250), (114, 350)]
    parse_cihp = np.zeros((height, width), np.int64)
    parse_cihp[140:340, 140:244] = 5  # the old garment
    parse_cihp[140:260, 244:300] = 5  # its loose left sleeve, to the elbow
    columns, rows = np.meshgrid(np.arange(width), np.arange(height))
    to_forearm = _segment_distance(np.stack([columns.ravel(), rows.ravel()], 1).astype(float), nodes[6], nodes[7])
    visible = (to_forearm.reshape(height, width) < 9) & (rows >= 262)  # below the sleeve, 18 pixels wide: thin
    parse_cihp[visible] = 14
    target = torch.zeros(1, height, width, dtype=torch.long)
    target[0, 140:260, 244:300] = LEFT_ARM  # as wide as the sleeve
    painted = torch.from_numpy(parse_cihp == 5)[None] & (target == LEFT_ARM)
    def arm_widths(visible_arm: np.ndarray) -> np.ndarray:
        shaped = shape_arms(target, painted, torch.from_numpy(parse_cihp)[None], torch.from_numpy(visible_arm)[None],
                            torch.from_numpy(nodes / [width, height]).float()[None])[0].numpy()
        arm = (shaped == LEFT_ARM) & painted[0].numpy()
        assert (shaped[painted[0].numpy() & ~arm] == 0).all()  # the rest of the sleeve is background
        return arm[200:240].sum(1)  # rows across the upper arm, above the elbow

    own, default = arm_widths(visible), arm_widths(np.zeros_like(visible))
    assert 15 <= own.min() and own.max() <= 0.5 * 56, own  # arm-wide, not sleeve-wide (56)
    assert (own <= default).all() and own.mean() < 0.9 * default.mean()  # the thin person's own scale

def test_a_hidden_upper_arm_runs_from_the_shoulder_into_the_arm_where_it_shows():
    """The pose's upper arm is 12 pixels off the arm that shows below a sleeve: the hidden part joins the shoulder
    to the visible arm (no step where it comes out of the sleeve), and stays the capsule at the shoulder."""
    height, width = 512, 384
    nodes = np.zeros((10, 2))
    nodes[[1, 2, 5, 8, 9]] = [(192, 150), (150, 150), (234, 150), (160, 330), (224, 330)]
    nodes[[6, 7]] = [(260, 250), (270, 350)]
    nodes[[3, 4]] = [(124, 250), (114, 350)]
    columns, rows = np.meshgrid(np.arange(width), np.arange(height))
    pixels = np.stack([columns.ravel(), rows.ravel()], 1).astype(float)
    offset = np.array([12.0, 0.0])  # the arm's own bone, outside the pose's
    to_bone = _segment_distance(pixels, nodes[5] + offset, nodes[6] + offset).reshape(height, width)
    visible = np.where((to_bone < 15) & (rows >= 210) & (rows < 250), LEFT_ARM, 0).astype(np.uint8)
    arms, _ = arm_layout(nodes, visible)
    shown = np.flatnonzero(visible[210] == LEFT_ARM)
    assert (arms[207, shown[1]:shown[-1]] == LEFT_ARM).all()  # just above where it shows: as wide, as far out
    shoulder_row = np.flatnonzero(arms[150] == LEFT_ARM)
    assert shoulder_row.min() >= 234 - 0.12 * 138.6 * 1.5 - 1 and shoulder_row.max() <= 234 + 0.12 * 138.6 * 1.5 + 1

def hanging_left_arm() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pose nodes (10, 2) of a person whose left arm hangs straight down (shoulder (234, 150), elbow (234, 250),
    wrist (234, 350)), and the pixels' columns and rows of a 512x384 image."""
    nodes = np.zeros((10, 2))
    nodes[[1, 2, 5, 8, 9]] = [(192, 150), (150, 150), (234, 150), (160, 330), (224, 330)]
    nodes[[6, 7]] = [(234, 250), (234, 350)]
    nodes[[3, 4]] = [(150, 250), (150, 350)]
    columns, rows = np.meshgrid(np.arange(384), np.arange(512))
    return nodes, columns, rows


def test_a_painted_forearm_runs_into_the_hand_below_a_cuff_without_a_notch():
    """The hand shows from 1.5 wrist radii below the wrist, 1.6 times as wide as the wrist: between the wrist and
    the hand the arm widens row by row into the hand (the wrist's round end left background on either side)."""
    nodes, columns, rows = hanging_left_arm()
    r_wrist = 0.075 * 138.6  # the span is 0.77 of the torso's 180 rows
    hand_top = int(350 + 1.5 * r_wrist)
    hand = (rows >= hand_top) & (rows < hand_top + 40) & (np.abs(columns - 234) <= 1.6 * r_wrist)
    arms, _ = arm_layout(nodes, np.where(hand, LEFT_ARM, 0).astype(np.uint8))
    widths = (arms[350:hand_top + 1] == LEFT_ARM).sum(1)  # wrist row to the hand's top row
    assert (np.diff(widths) >= -1).all(), widths
    assert widths[-1] >= hand[hand_top].sum() - 1 and widths[0] >= 2 * r_wrist - 2


def test_an_arm_hidden_in_a_tight_sleeve_is_no_wider_than_the_sleeve():
    """No arm skin shows: the arm is as the default radii draw it, unless the sleeve around it is narrower (a tight
    long sleeve): then it keeps inside the sleeve. A loose sleeve leaves the default."""
    nodes, columns, rows = hanging_left_arm()
    no_skin = np.zeros((512, 384), np.uint8)
    default, _ = arm_layout(nodes, no_skin)
    tight = (np.abs(columns - 234) <= 10) & (rows >= 140) & (rows <= 360)  # 21 pixels across; the default 28-33
    loose = (np.abs(columns - 234) <= 30) & (rows >= 140) & (rows <= 360)
    in_tight, _ = arm_layout(nodes, no_skin, tight)
    in_loose, _ = arm_layout(nodes, no_skin, loose)
    rows_along = slice(170, 340)  # the bones, away from the shoulder's and the wrist's discs
    outside = np.abs(columns - 234) > 11  # more than a pixel outside the tight sleeve
    assert ((default == LEFT_ARM) & outside)[rows_along].any()
    assert not ((in_tight == LEFT_ARM) & outside)[rows_along].any()
    np.testing.assert_array_equal(in_loose, default)


def test_arms_the_pose_cannot_explain_leave_the_target_parse():
    """A patch of arm on the torso (it would cut a hole in the new garment) becomes garment; one beside the body
    becomes the photo's background; the photo's own arm and the arms along the pose stay."""
    height, width = 512, 384
    nodes = np.zeros((10, 2))
    nodes[[1, 2, 5, 8, 9]] = [(192, 150), (150, 150), (234, 150), (160, 330), (224, 330)]
    nodes[[3, 4, 6, 7]] = [(130, 250), (125, 340), (254, 250), (259, 340)]  # arms hanging at the sides
    parse_cihp = np.zeros((height, width), np.int64)
    parse_cihp[140:340, 140:244] = 5
    parse_cihp[300:330, 300:320] = 14  # the photo's own (raised) hand
    target = torch.zeros(1, height, width, dtype=torch.long)
    target[0, 140:340, 160:230] = UPPER
    target[0, 240:280, 180:210] = LEFT_ARM  # on the torso
    target[0, 100:130, 330:370] = LEFT_ARM  # beside the body, far from the arm
    target[0, 240:300, 245:262] = LEFT_ARM  # along the pose's left forearm
    target[0, 300:330, 300:320] = LEFT_ARM
    cleaned = pose_arms(target, torch.from_numpy(parse_cihp)[None], (nodes / [width, height])[None])[0]
    assert (cleaned[240:280, 180:210] == UPPER).all()
    assert (cleaned[100:130, 330:370] == 0).all()
    assert (cleaned[240:300, 245:262] == LEFT_ARM).all() and (cleaned[300:330, 300:320] == LEFT_ARM).all()


def test_the_skin_profile_is_learnt_from_the_visible_arm_darkest_at_its_outline_not_from_its_blended_edge():
    """A visible arm shaded like a cylinder (brightness 0.5 at its outline to 0.8 at its middle) whose outermost
    pixels blend with a light wall: the learnt profile follows the shading and is never brighter at the outline."""
    parse = np.zeros((HEIGHT, WIDTH), np.uint8)
    parse[40:220, 60:100] = LEFT_ARM
    columns = np.arange(60, 100)
    depth = np.minimum(columns - 59, 100 - columns) / 20  # 0.05 at the outline .. 1 in the middle
    brightness = 0.8 - 0.3 * (1 - depth) ** 2
    image = np.zeros((HEIGHT, WIDTH, 3), np.float32) + WALL
    image[40:220, 60:100] = brightness[None, :, None] * (SKIN / SKIN.mean())
    image[40:220, [60, 99]] = WALL * 0.9  # the anti-aliased outline: half wall
    model = SkinModel(image, parse, parse == LEFT_ARM)
    painted = model.colours(np.linspace(0, 1, 11)).mean(1)
    assert (np.diff(painted) >= 0).all()  # darkest at the outline
    assert abs(painted[-1] - 0.8) < 0.03 and abs(painted[0] - 0.5) < 0.06



def test_a_painted_arm_meets_the_visible_arm_in_its_colour_not_in_the_colour_its_outline_mixes():
    """The visible upper half of an arm is darker than the face the skin is learnt from, and its last kept row
    mixes a grey cuff's colour (the photo's pixels along the old sleeve's edge): the painted arm's first rows take
    the visible arm's own colour, not the grey (a pale band across the wrist) nor the face's."""
    parse = np.zeros((HEIGHT, WIDTH), np.uint8)
    parse[10:40, 80:112] = FACE_NECK
    parse[40:220, 60:100] = LEFT_ARM
    image = np.zeros((HEIGHT, WIDTH, 3), np.float32) + WALL
    image[parse == FACE_NECK] = SKIN
    arm_colour = SKIN * np.float32(0.8)
    image[parse == LEFT_ARM] = arm_colour
    image[129, 60:100] = 0.5 * arm_colour + 0.5 * np.float32(0.45)
    keep = np.ones((HEIGHT, WIDTH), bool)
    keep[130:220, 55:105] = False  # the lower half of the arm and the wall beside it
    result = composited(np.where(keep[..., None], image, np.float32(0.5)), keep, parse, parse == FACE_NECK)
    first_rows = result[131:133, 60:100].mean((0, 1))
    assert np.abs(first_rows - arm_colour).max() < 0.02, first_rows


def test_a_painted_forearm_meets_a_hand_shaded_on_one_side_without_a_step_on_either_side():
    """At 1024 rows, a wrist 48 pixels wide: the hand below the painted forearm is shaded on its image-left 20
    pixels (0.75 of the brightness) and lit on the rest, as no skin model predicts. The forearm's last painted rows
    take each side's own colour, the shaded side as dark as the hand below it and the lit side as bright (averaged
    along the border over 15 pixels, the two sides' differences left a step across both)."""
    height, width = 4 * HEIGHT, 4 * WIDTH
    parse = np.zeros((height, width), np.uint8)
    parse[40:160, 320:448] = FACE_NECK
    parse[160:880, 300:348] = LEFT_ARM
    image = np.zeros((height, width, 3), np.float32) + WALL
    image[parse == FACE_NECK] = SKIN
    image[parse == LEFT_ARM] = SKIN
    image[680:880, 300:320] *= np.float32(0.75)  # the hand's shaded side
    keep = np.ones((height, width), bool)
    keep[160:680, 280:368] = False  # the forearm and the wall beside it
    result = composited(np.where(keep[..., None], image, np.float32(0.5)), keep, parse, parse == FACE_NECK)
    for side in (slice(302, 316), slice(326, 346)):
        painted, hand = result[672:680, side].mean((0, 1)), image[688:696, side].mean((0, 1))
        assert np.abs(painted - hand).max() < 0.03, (side, painted, hand)


LIT = np.linspace(0.6, 0.8, 40, dtype=np.float32)  # the visible arm's brightness across it, image left to right


def composited_lit_arm(strip: np.ndarray) -> np.ndarray:
    """An arm (rows 40-219, columns 60-99) lit from the image right (``LIT`` across every row), its lower half
    painted, and painted arm skin on ``strip`` (H, W bool) as well: the composited (H, W, 3) result."""
    parse = np.zeros((HEIGHT, WIDTH), np.uint8)
    parse[40:220, 60:100] = LEFT_ARM
    parse[strip] = LEFT_ARM
    image = np.zeros((HEIGHT, WIDTH, 3), np.float32) + WALL
    image[40:220, 60:100] = LIT[None, :, None] * (SKIN / SKIN.mean())
    keep = ~strip
    keep[130:220, 60:100] = False
    known = np.where(keep[..., None], image, np.float32(0.5))
    return composited(known, keep, parse, (parse == LEFT_ARM) & keep)


def test_painted_arms_are_lit_from_the_side_the_visible_arm_is_lit_from():
    """The visible upper half of an arm is lit from the image right (brightness 0.6 at its left edge to 0.8 at its
    right, across every row); its lower half is painted: darker on the left than on the right, as the photo's
    arm is, by about as much."""
    result = composited_lit_arm(np.zeros((HEIGHT, WIDTH), bool))
    painted = result[160:215].mean(-1)  # rows away from the seam with the visible half
    left, right = painted[:, 64:72].mean(), painted[:, 88:96].mean()
    photo_left, photo_right = LIT[4:12].mean(), LIT[28:36].mean()
    assert right - left > 0.6 * (photo_right - photo_left), (left, right)


def test_an_arm_with_another_of_its_class_on_the_same_rows_is_lit_across_itself():
    """As above, and a strip of the same class stands farther right on some of the painted rows (the body's other
    side, bared): the arm is lit across itself on those rows as on the others, not made the row's shaded left
    end (a dark band across it, as high as the strip)."""
    strip = np.zeros((HEIGHT, WIDTH), bool)
    strip[160:190, 150:170] = True
    result = composited_lit_arm(strip)
    arm = result[:, 64:96].mean(axis=(1, 2))  # (H,) the arm's brightness by row
    beside_the_strip, below_it = arm[165:185].mean(), arm[195:215].mean()
    assert abs(beside_the_strip - below_it) < 0.02, (beside_the_strip, below_it)


def test_painted_skin_beside_a_painted_arm_meets_it_without_a_line_or_a_step():
    """As above, and painted body skin (another skin class) right beside the arm's painted half on some rows (the
    body's side a sleeveless top bares next to the arm): lit across the two as one, the arm and that skin meet
    without a line where the classes meet, and the arm has no step where the body's side ends."""
    parse = np.zeros((HEIGHT, WIDTH), np.uint8)
    parse[40:220, 60:100] = LEFT_ARM
    parse[150:190, 40:60] = FACE_NECK
    image = np.zeros((HEIGHT, WIDTH, 3), np.float32) + WALL
    image[40:220, 60:100] = LIT[None, :, None] * (SKIN / SKIN.mean())
    keep = parse == 0
    keep[40:130, 60:100] = True
    result = composited(np.where(keep[..., None], image, np.float32(0.5)), keep, parse, (parse == LEFT_ARM) & keep)
    brightness = result.mean(-1)
    across_the_classes = np.abs(brightness[160:180, 59] - brightness[160:180, 60]).mean()
    assert across_the_classes < 0.02, across_the_classes
    down_the_arm = np.abs(np.diff(brightness[140:200, 62:80].mean(1)))  # row to row, past the side's ends
    assert down_the_arm.max() < 0.01, down_the_arm.max()


def test_painted_skin_beside_the_new_garment_is_in_its_shade(monkeypatch):
    """A sleeve's hem (kept garment) above a painted arm: the arm just below the hem is darker by the contact
    shade, the arm farther down is not; everything else is the same as without it."""
    import kgi.composite

    height, width = 512, 384
    parse = np.zeros((height, width), np.uint8)
    parse[40:120, 160:224] = FACE_NECK
    parse[120:200, 120:280] = UPPER  # the new garment's sleeve and torso, kept
    parse[200:450, 240:280] = LEFT_ARM  # the arm below the sleeve's hem, painted
    image = np.full((height, width, 3), 0.9, np.float32)
    image[parse == FACE_NECK] = SKIN
    image[parse == UPPER] = (0.2, 0.2, 0.6)
    keep = parse != LEFT_ARM

    def painted(shade: float) -> np.ndarray:
        monkeypatch.setattr(kgi.composite, "CONTACT_SHADE", shade)
        return composited(image, keep, parse, parse == FACE_NECK)

    shaded, plain = painted(0.08), painted(0.0)
    arm = (slice(None), slice(250, 270))
    ratio = shaded[arm].mean((1, 2)) / np.maximum(plain[arm].mean((1, 2)), 1e-6)  # per row
    reach = kgi.composite.CONTACT_REACH * height
    rows = np.arange(203, 216)  # away from the hem's feathered pixel or two
    expected = 1 - 0.08 * np.exp(-(rows - 199) / reach)  # the garment's last row is 199
    np.testing.assert_allclose(ratio[rows], expected, atol=0.003)
    assert ratio[203] < 0.98 and abs(ratio[260] - 1) < 1e-3 and abs(ratio[400] - 1) < 1e-3  # far below: untouched
    assert (shaded[keep] == plain[keep]).all()


def test_an_arm_painted_beside_painted_skin_of_the_body_has_no_outline_between_them():
    """Painted arm skin next to painted skin of the body (the torso a narrower top bares beside the arm): the skin
    darkens toward the skin's outline, not toward the border between the two classes, which drew a dark line
    down the skin, a second outline of the arm."""
    parse = np.zeros((HEIGHT, WIDTH), np.uint8)
    parse[20:70, 80:112] = FACE_NECK  # the face and neck, kept
    parse[70:200, 40:100] = UPPER
    parse[70:200, 100:116] = FACE_NECK  # the body's side, bared
    parse[70:200, 116:140] = LEFT_ARM  # the arm beside it
    image = np.broadcast_to(WALL, (HEIGHT, WIDTH, 3)).copy()
    image[parse == UPPER] = (0.2, 0.2, 0.6)
    image[(parse == FACE_NECK) | (parse == LEFT_ARM)] = SKIN
    keep = np.ones((HEIGHT, WIDTH), bool)
    # The body's side, the arm down to the last 15 rows and the wall beside it: too little arm shows to learn a
    # profile from, so the skin takes the default one, shaded toward the outline (``DEFAULT_SHADING``).
    keep[80:185, 100:150] = False
    reference = ((parse == FACE_NECK) | (parse == LEFT_ARM)) & keep
    result = composited(image, keep, parse, reference)
    brightness = result[100:150].mean(axis=(0, 2))  # (W,) down the painted rows
    border = brightness[114:118].mean()  # the two classes' border, columns 114-117 (0.44 before, against 0.62)
    beside = (brightness[106:110].mean() + brightness[122:126].mean()) / 2  # inside either class
    assert border > beside - 0.01, (border, beside)
