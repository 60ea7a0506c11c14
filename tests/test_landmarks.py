"""Garment landmark extraction on real components: synthetic VITON-HD pairs written by the generator and read back
by the reader, their mirror images, the genuine VITON-HD pair, broken inputs, and the ``kgi landmarks`` command."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from bench.landmark_ties import tied_top
from kgi.cli import CommandError
from kgi.commands.landmarks import run as run_landmarks
from kgi.data.garment import GARMENT_KINDS, KINDS_BY_SLEEVE, sample_garment, with_kind
from kgi.data.images import encode_png
from kgi.data.synth import generate, make_pair, render_cloth
from kgi.data.vitonhd import VitonHD
from kgi.graphs import NUM_GARMENT_NODES
from kgi.landmarks import (
    UPPER_GARMENT_LABELS,
    GarmentLandmarks,
    LandmarkError,
    check_framing,
    flat_garment_keypoints,
    sleeves_labelled_as_arms,
    worn_garment_keypoints,
)
from kgi.landmarks.checks import MIN_CENTRE_REACH, garment_problems, landmark_problems
from kgi.landmarks.flat import ARMPIT_DEPTH_PRIOR
from kgi.landmarks.neckline import front_neckline
from kgi.models.keypoints import GARMENT_MIRROR
from kgi.pictures import draw_garment_keypoints
from kgi.preprocess import Preprocessor, Uploads

HEIGHT = 256
# The goals: mean keypoint distance as a fraction of the image height.
FLAT_GOAL, WORN_GOAL = 0.03, 0.05
# BODY_25 joints and CIHP labels that trade places in a mirror image.
BODY25_MIRROR = (0, 1, 5, 6, 7, 2, 3, 4, 8, 12, 13, 14, 9, 10, 11, 16, 15, 18, 17, 22, 23, 24, 19, 20, 21)
CIHP_MIRROR = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 14, 17, 16, 19, 18], dtype=np.uint8)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> str:
    """A generated dataset: 16 held-out test pairs at 256 x 192, with ground-truth landmarks."""
    root = tmp_path_factory.mktemp("synth") / "data"
    generate(str(root), n_train=1, n_test=16, height=HEIGHT, seed=6, progress=False)
    return str(root)


@pytest.fixture(scope="module")
def samples(synthetic_root):
    dataset = VitonHD(synthetic_root, split="test", mode="paired")
    return [dataset[i] for i in range(len(dataset))]


@pytest.fixture(scope="module")
def extracted(samples):
    """(flat, worn) landmarks of every synthetic sample."""
    return [(flat_garment_keypoints(s.cloth, s.cloth_mask), worn_garment_keypoints(s.parse, s.pose).keypoints)
            for s in samples]


def mean_error(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.linalg.norm(pred - target, axis=1).mean() / HEIGHT)


# --- synthetic pairs: accuracy, sleeve types, sides -------------------------------------------------------------


def test_synthetic_split_covers_every_case(samples):
    assert {s.sleeve for s in samples} == {"long", "short", "none"}
    assert any("crossed_arms" in s.tags for s in samples)


def test_errors_under_the_goals(samples, extracted):
    flat = [mean_error(f.keypoints, s.cloth_keypoints) for s, (f, _) in zip(samples, extracted)]
    worn = [mean_error(w, s.worn_keypoints) for s, (_, w) in zip(samples, extracted)]
    assert np.mean(flat) < FLAT_GOAL, flat
    assert np.mean(worn) < WORN_GOAL, worn
    crossed = [error for s, error in zip(samples, worn) if "crossed_arms" in s.tags]
    assert np.mean(crossed) < WORN_GOAL, crossed
    # No pair fails outright: every one stays within twice the goal.
    assert max(flat) < 2 * FLAT_GOAL and max(worn) < 2 * WORN_GOAL, (flat, worn)


def test_output_types(extracted):
    flat, worn = extracted[0]
    assert isinstance(flat, GarmentLandmarks)
    assert flat.keypoints.shape == worn.shape == (NUM_GARMENT_NODES, 2)
    assert flat.keypoints.dtype == worn.dtype == np.float32


def test_sleeve_type_detected(samples, extracted):
    assert [f.sleeve for f, _ in extracted] == [s.sleeve for s in samples]
    assert [worn_garment_keypoints(s.parse, s.pose).sleeve for s in samples] == [s.sleeve for s in samples]


def test_flat_left_is_image_left(extracted):
    for flat, _ in extracted:
        kp = flat.keypoints
        assert kp[0, 0] < kp[2, 0] < kp[4, 0]  # neckline runs image left to right
        assert kp[5, 0] < kp[31, 0] and kp[14, 0] < kp[22, 0] and kp[17, 0] < kp[19, 0]
        assert kp[6:14, 0].mean() < kp[23:31, 0].mean()


def _distance_to_bone(points: np.ndarray, bone: np.ndarray) -> np.ndarray:
    """Distance (N,) of points (N, 2) to the polyline ``bone`` (3, 2)."""
    distances = []
    for start, end in zip(bone[:-1], bone[1:]):
        t = np.clip((points - start) @ (end - start) / max((end - start) @ (end - start), 1e-9), 0, 1)
        distances.append(np.linalg.norm(points - (start + t[:, None] * (end - start)), axis=1))
    return np.min(distances, axis=0)


def test_worn_sleeves_follow_their_arms(samples, extracted):
    """Nodes 6-13 follow the person's right arm (BODY_25 2-3-4), 23-30 the left arm (5-6-7)."""
    for sample, (flat, worn) in zip(samples, extracted):
        if sample.sleeve == "none":
            continue
        right_arm, left_arm = sample.pose[[2, 3, 4], :2], sample.pose[[5, 6, 7], :2]
        if (sample.pose[[2, 3, 4, 5, 6, 7], 2] == 0).any():
            continue  # an undetected joint: no bone to compare with
        assert _distance_to_bone(worn[6:14], right_arm).mean() < _distance_to_bone(worn[6:14], left_arm).mean()
        assert _distance_to_bone(worn[23:31], left_arm).mean() < _distance_to_bone(worn[23:31], right_arm).mean()


def test_mirror_image_gives_mirrored_keypoints(samples, extracted):
    """A horizontally flipped garment and person give the same keypoints, flipped and renumbered. A front
    neckline whose inside is a Lab unit or two off the fabric's threshold (a synthetic deep V drawn nearly in the
    fabric's colour, its label at the centre) can read a node or two to either side of it, mirrored or not (1-2
    of 150 held-out synthetic garments, by 0.007-0.009 of the height): every garment within 0.01, on average
    within 0.002."""
    flat_errors = []
    for sample, (flat, worn) in zip(samples, extracted):
        width = sample.size[1]
        flip = np.array([-1.0, 1.0])
        shift = np.array([width - 1.0, 0.0])
        mirrored_flat = flat_garment_keypoints(sample.cloth[:, ::-1], sample.cloth_mask[:, ::-1])
        pose = sample.pose[list(BODY25_MIRROR)].copy()
        pose[:, 0] = np.where(pose[:, 2] > 0, width - 1 - pose[:, 0], 0)
        mirrored_worn = worn_garment_keypoints(CIHP_MIRROR[sample.parse[:, ::-1]], pose).keypoints
        assert mirrored_flat.sleeve == flat.sleeve
        back_flat = (shift + flip * mirrored_flat.keypoints)[list(GARMENT_MIRROR)]
        back_worn = (shift + flip * mirrored_worn)[list(GARMENT_MIRROR)]
        flat_errors.append(mean_error(back_flat, flat.keypoints))
        assert flat_errors[-1] < 0.01
        assert mean_error(back_worn, worn) < 0.01
    assert np.mean(flat_errors) < 0.002


# --- bad input -------------------------------------------------------------------------------------------------


def test_empty_and_full_masks_are_errors():
    rgb = np.full((64, 48, 3), 255, dtype=np.uint8)
    with pytest.raises(LandmarkError, match="cloth_mask is empty"):
        flat_garment_keypoints(rgb, np.zeros((64, 48), dtype=bool))
    with pytest.raises(LandmarkError, match="covers the whole image"):
        flat_garment_keypoints(rgb, np.ones((64, 48), dtype=bool))
    with pytest.raises(LandmarkError, match="cloth_rgb"):
        flat_garment_keypoints(rgb[..., 0], np.ones((64, 48), dtype=bool))
    with pytest.raises(LandmarkError, match="size"):
        flat_garment_keypoints(rgb, np.zeros((32, 48), dtype=bool))


def test_parse_without_garment_or_pose_without_shoulders_is_an_error(samples):
    sample = samples[0]
    no_garment = np.where(np.isin(sample.parse, UPPER_GARMENT_LABELS), 0, sample.parse).astype(np.uint8)
    with pytest.raises(LandmarkError, match="no upper garment"):
        worn_garment_keypoints(no_garment, sample.pose)
    no_shoulders = sample.pose.copy()
    no_shoulders[[1, 2, 5]] = 0
    with pytest.raises(LandmarkError, match="shoulders"):
        worn_garment_keypoints(sample.parse, no_shoulders)
    with pytest.raises(LandmarkError, match="body25"):
        worn_garment_keypoints(sample.parse, sample.pose[:18])
    with pytest.raises(LandmarkError, match="parse"):
        worn_garment_keypoints(sample.parse[None], sample.pose)


# --- one synthetic product photo per kind of top ------------------------------------------------------------------

# (kind, sleeve type): every kind the generator draws, with each sleeve type it comes in.
KINDS = [(kind, sleeve) for sleeve, kinds in KINDS_BY_SLEEVE.items() for kind in kinds]


@pytest.mark.parametrize(("kind", "sleeve"), KINDS, ids=[f"{kind}-{sleeve}" for kind, sleeve in KINDS])
def test_every_kind_of_top(kind, sleeve):
    """Three garments of each kind: the sleeve type found, and the keypoints within the flat goal."""
    errors = []
    for index in range(3):
        rng = np.random.default_rng([11, index, GARMENT_KINDS.index(kind)])
        params = sample_garment(rng)
        while params.sleeve != sleeve:
            params = sample_garment(rng)
        params = with_kind(params, rng, kind)
        _, alpha, photo, truth, _ = render_cloth(params, rng, HEIGHT)
        found = flat_garment_keypoints(photo, alpha >= 0.5)
        assert found.sleeve == sleeve, (kind, index)
        errors.append(mean_error(found.keypoints, truth))
    assert np.mean(errors) < FLAT_GOAL, errors


COLOURS = {"navy": (30, 36, 70), "red": (150, 40, 40), "sand": (200, 190, 150), "white": (244, 244, 240),
           "black": (28, 28, 30), "no": None}
# (fabric, label): a navy inside with no label is left out: shaded 10-50% darker, a dark fabric's inside can
# differ from its front by less than the colour tells (the outline's neckline is kept there).
NECKS = [("navy", "white"), ("navy", "black"), ("red", "no"), ("red", "white"), ("red", "black"), ("sand", "no"),
         ("sand", "white"), ("sand", "black")]


@pytest.mark.parametrize(("fabric", "label"), NECKS, ids=[f"{fabric}-{label}-label" for fabric, label in NECKS])
def test_a_front_neckline_below_the_inside_of_the_back_and_its_label(fabric, label):
    """A crew neck's product photo shows the inside of its back above the front neckline, shaded, with a brand
    label sewn at its centre: nodes 1-3 are on the front neckline, not on the back's (the outline's), and the
    label is above them."""
    base = COLOURS[fabric]
    rng = np.random.default_rng([12, sum(base)])
    params = sample_garment(rng)
    params = replace(with_kind(params, rng, "classic"), neckline="round", neck_depth=0.16, pattern="solid",
                     print_kind="none", colours=(base, *params.colours[1:]), shows_back=True,
                     label=COLOURS[label])
    _, alpha, photo, truth, _ = render_cloth(params, rng, HEIGHT)
    found = flat_garment_keypoints(photo, alpha >= 0.5).keypoints
    assert np.abs(found[[1, 2, 3]] - truth[[1, 2, 3]]).max() < 0.03 * HEIGHT, (found[:5], truth[:5])


@pytest.mark.parametrize("opening", ["label", "V"])
def test_a_label_alone_dips_to_a_round_neckline_and_a_v_stays_a_v(opening):
    """A white tee whose inside is as white as its front shows the black label sewn there, nothing else: the path
    round the label dips at the centre only, and a crew neckline is round, so nodes 1 and 3 go nearly as deep as
    node 2 and the whole label is above the neckline 0-1-2-3-4 (it would show at the person's neck otherwise).
    A V-neck's dark opening keeps nodes 1 and 3 on the V, half as deep."""
    height, width = 256, 192
    rgb = np.full((height, width, 3), 250, np.uint8)
    mask = np.zeros((height, width), bool)
    mask[20:240, 30:162] = True
    corners = np.array([[76.0, 20.0], [116.0, 20.0]])
    if opening == "label":
        rgb[22:34, 88:104] = 20  # the label, 12 rows deep, a sixth of the neck's width on each side
    else:
        columns = np.arange(width)
        bottom = 20 + 40 * (1 - np.abs(columns - 96) / 20)  # the V: 40 rows deep at the centre
        rgb[(np.arange(height)[:, None] < bottom[None]) & mask] = 60
    nodes = front_neckline(rgb, mask, corners, np.array([96.0, 20.0]), 220.0)
    depth = nodes[:, 1] - 20
    if opening == "label":
        assert depth[[0, 2]].min() >= 0.8 * depth[1] and depth[1] >= 12, nodes
        neckline = np.concatenate([corners[:1], nodes, corners[1:]])
        assert (np.interp(np.arange(88, 104), neckline[:, 0], neckline[:, 1]) >= 33).all()
    else:
        assert abs(depth[1] - 40) <= 3 and np.abs(depth[[0, 2]] - 20).max() <= 4, nodes


def test_a_print_below_the_neckline_across_plain_fabric_is_not_the_inside():
    """A navy tee's shaded inside and its label end at row 40; a white dot of the print starts 16 rows below,
    across plain navy: the neckline's centre is at the label's bottom, not down in the dot."""
    height, width = 256, 192
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:] = (30, 36, 70)  # navy
    mask = np.zeros((height, width), bool)
    mask[20:240, 30:162] = True
    rows, columns = np.mgrid[0:height, 0:width]
    inside = (rows - 20) < 16 * np.sqrt(np.clip(1 - ((columns - 96) / 20) ** 2, 0, 1))  # a round inside, 16 deep
    rgb[inside & mask] = (18, 22, 44)  # shaded
    rgb[22:40, 88:104] = (235, 200, 200)  # the label, down to row 40
    rgb[(rows - 66) ** 2 + (columns - 96) ** 2 < 100] = 235  # a dot, rows 56-76
    nodes = front_neckline(rgb, mask, np.array([[76.0, 20.0], [116.0, 20.0]]), np.array([96.0, 20.0]), 220.0)
    assert 36 <= nodes[1, 1] <= 44, nodes


# --- refusals and consistency checks -----------------------------------------------------------------------------


def _silhouette(polygons: list[list[tuple[float, float]]], height: int = 256) -> np.ndarray:
    """An (H, 3H/4) bool mask of polygons given in fractions of the width and height."""
    width = height * 3 // 4
    mask = np.zeros((height, width), np.uint8)
    for polygon in polygons:
        cv2.fillPoly(mask, [np.round(np.array(polygon) * [width, height]).astype(np.int32)], 1)
    return mask.astype(bool)


# Flat photos of garments that are no tops, as silhouettes (fractions of the photo's width and height).
NOT_TOPS = {
    "trousers": ([[(0.25, 0.05), (0.75, 0.05), (0.8, 0.95), (0.56, 0.95), (0.5, 0.35), (0.44, 0.95),
                   (0.2, 0.95)]], "trousers"),
    "dress to the knee": ([[(0.38, 0.03), (0.44, 0.03), (0.5, 0.07), (0.56, 0.03), (0.62, 0.03), (0.64, 0.14),
                            (0.62, 0.3), (0.7, 0.97), (0.3, 0.97), (0.38, 0.3), (0.36, 0.14)]], "dress"),
    "folded shirt": ([[(0.15, 0.3), (0.85, 0.3), (0.85, 0.75), (0.15, 0.75)]], "folded"),
}


@pytest.mark.parametrize("kind", list(NOT_TOPS))
def test_garments_that_are_no_tops_are_refused(kind):
    polygons, says = NOT_TOPS[kind]
    mask = _silhouette(polygons)
    rgb = np.where(mask[..., None], np.array([90, 90, 90], np.uint8), np.uint8(245)).astype(np.uint8)
    with pytest.raises(LandmarkError, match=says) as refusal:
        flat_garment_keypoints(rgb, mask)
    assert "not a top" in str(refusal.value) and "Send a photo of one upper garment" in str(refusal.value)


def test_a_cropped_top_whose_long_sleeves_hang_below_its_hem_is_no_pair_of_trousers():
    """Its middle ends at half its height with parts hanging on both sides, as trousers' does, but those parts
    are two thin sleeves, not legs as wide as the waistband (generator 1.5 pair 19 of seed 25: a long-sleeved
    crop top; refused as trousers before MIN_LEGS_WIDTH)."""
    sample = make_pair(25, 19, 256)
    mask = sample.cloth_mask
    rows, columns = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    centre = np.flatnonzero(mask[:, (columns.min() + columns.max()) // 2])
    assert (centre.max() - rows.min()) / np.ptp(rows) < MIN_CENTRE_REACH  # the trousers' outline, in part
    assert garment_problems(mask) == []
    assert flat_garment_keypoints(sample.cloth, mask).sleeve == "long"


def tied_garment(sleeve: str, tie_at: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic classic top of the ``sleeve`` type on a photo with backdrop below its hem, and the same top
    with a tie a tenth of its width wide hanging 18% of its height past the hem, knotted at its image-right side or
    at its middle (``tie_at``; ``bench.landmark_ties`` draws such tops at random): the photo, the mask without
    and the mask with the tie."""
    rng = np.random.default_rng([5, len(sleeve)])
    params = sample_garment(rng)
    while params.sleeve != sleeve:
        params = sample_garment(rng)
    photo, mask, tied_mask = tied_top(with_kind(params, rng, "classic"), rng, tie_at, 0.1, 0.18)
    rows = np.flatnonzero(mask.any(1))
    assert tied_mask[rows.max() + int(0.1 * np.ptp(rows))].any()  # the tie hangs past the hem
    return photo, mask, tied_mask


@pytest.mark.parametrize(("sleeve", "tie_at"), [("short", "side"), ("none", "side"), ("short", "middle"),
                                                ("none", "middle")])
def test_a_wide_tie_hanging_past_the_hem_is_not_read_as_the_body(sleeve, tie_at):
    """A wrap top's tie knotted at its side, or a tie-front top's at its middle, hanging past the hem as wide as a
    tenth of the garment (the genuine 04469's is 9%), is cut as the thin ties are: the hem and the sides stay where
    they are without it, not at the tie's end."""
    photo, mask, tied_mask = tied_garment(sleeve, tie_at)
    plain, tied = flat_garment_keypoints(photo, mask), flat_garment_keypoints(photo, tied_mask)
    assert tied.sleeve == plain.sleeve == sleeve
    moved = np.linalg.norm(tied.keypoints - plain.keypoints, axis=1) / HEIGHT
    assert moved[[17, 18, 19, 20, 21]].max() < 0.03, moved


def test_a_tie_at_the_middle_running_off_the_photo_is_no_cut_off_garment():
    """A product photo cropped through a tie-front top's knot, below its hem: the garment is whole in the photo
    (its hem is in), so it is read, not refused as cut off (``check_framing`` cuts the same ties first)."""
    photo, mask, tied_mask = tied_garment("short", "middle")
    rows = np.flatnonzero(mask.any(1))
    crop = rows.max() + int(0.1 * np.ptp(rows))  # through the tie, below the hem
    assert tied_mask[crop - 1].any()
    check_framing(tied_mask[:crop])
    found = flat_garment_keypoints(photo[:crop], tied_mask[:crop])
    plain = flat_garment_keypoints(photo, mask)
    assert np.abs(found.keypoints - plain.keypoints).max() < 0.03 * HEIGHT


def test_a_narrowing_middle_is_no_tie():
    """A bodysuit's crotch narrows over a fifth of its height to a band as narrow as a tie: it hangs from no hem,
    and its end stays the hem centre (a tie hangs from a hem twice its width or wider, ``TIE_ON_HEM`` of the
    height above it)."""
    photo, mask, _ = tied_garment("short", "side")
    rows, columns = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    width, height = np.ptp(columns) + 1, np.ptp(rows) + 1
    centre, hem = (columns.min() + columns.max()) / 2 / width, rows.max()  # the centre in widths
    crotch = np.array([[centre - 0.3, -0.1], [centre + 0.3, -0.1], [centre + 0.06, 0.08], [centre + 0.06, 0.15],
                       [centre - 0.06, 0.15], [centre - 0.06, 0.08]]) * [width, height] + [0, hem]
    narrowing = mask.copy().view(np.uint8)
    cv2.fillPoly(narrowing, [np.round(crotch).astype(np.int32)], 1)
    found = flat_garment_keypoints(photo, narrowing.view(bool))
    assert found.keypoints[18, 1] >= hem + 0.13 * height  # the crotch's end


# A boxy sleeveless top, as one polygon (fractions of the photo's width and height).
BOXY_TOP = [(0.32, 0.2), (0.42, 0.2), (0.5, 0.26), (0.58, 0.2), (0.68, 0.2), (0.95, 0.55), (0.95, 0.8), (0.05, 0.8),
            (0.05, 0.55)]


def test_a_boxy_sleeveless_top_is_no_folded_garment():
    """As convex and as wide as a folded garment, but narrowing to its shoulders: a top, with its landmarks."""
    mask = _silhouette([BOXY_TOP])
    assert garment_problems(mask) == []
    rgb = np.where(mask[..., None], np.array([90, 90, 90], np.uint8), np.uint8(245)).astype(np.uint8)
    assert flat_garment_keypoints(rgb, mask).sleeve == "none"


@pytest.mark.parametrize("shift, cut", [(-0.2, "top edge"), (0.2, "bottom edge")])
def test_a_garment_cut_off_by_the_photo_is_refused_not_read(shift, cut):
    """Its collar or hem off the photo's top or bottom edge: what is there cannot give the neckline or the hem (the
    Gucci tee 09166 scaled to 1.1 in its frame read node 2 9% of the height off), so it is refused, saying what to
    send."""
    mask = _silhouette([[(x, y + shift) for x, y in BOXY_TOP]])
    rgb = np.where(mask[..., None], np.array([90, 90, 90], np.uint8), np.uint8(245)).astype(np.uint8)
    with pytest.raises(LandmarkError, match=f"not wholly in the photo: it runs off the photo's {cut}") as refusal:
        flat_garment_keypoints(rgb, mask)
    assert "Send a photo with the whole garment in the frame" in str(refusal.value)


def test_a_garment_touching_the_photos_sides_is_read():
    """A sleeve's tip often touches a side of a tight product photo (the Gucci tee 09166 as sent): not refused."""
    mask = _silhouette([[(min(max((x - 0.5) / 0.9 + 0.5, 0.0), 1.0), y) for x, y in BOXY_TOP]])
    assert mask[:, 0].any() and mask[:, -1].any()
    rgb = np.where(mask[..., None], np.array([90, 90, 90], np.uint8), np.uint8(245)).astype(np.uint8)
    assert flat_garment_keypoints(rgb, mask).sleeve == "none"


def test_a_sleeve_cut_in_one_with_the_body_has_its_shoulder_above_the_armpit():
    """A dolman top: the shoulder line curves from the neck into a short cap with no corner. Its shoulders lie
    on the top straight above the armpits and its sleeve nodes outside the body's sides, not across the chest."""
    left = [(0.42, 0.1), (0.3, 0.11), (0.2, 0.14), (0.13, 0.2), (0.1, 0.27), (0.11, 0.33), (0.16, 0.37),
            (0.25, 0.42), (0.25, 0.9)]
    outline = left + [(1 - x, y) for x, y in left[::-1]]
    mask = _silhouette([[*outline[:1], (0.5, 0.14), *outline[1:]]])
    rgb = np.where(mask[..., None], np.array([40, 40, 90], np.uint8), np.uint8(245)).astype(np.uint8)
    keypoints = flat_garment_keypoints(rgb, mask).keypoints
    width = mask.shape[1]
    for shoulder, armpit, sleeve, outward in ((5, 14, range(6, 14), -1), (31, 22, range(23, 31), +1)):
        assert abs(keypoints[shoulder, 0] - keypoints[armpit, 0]) < 0.02 * width, keypoints[[shoulder, armpit]]
        assert (outward * (keypoints[list(sleeve), 0] - keypoints[armpit, 0]) > -0.02 * width).all(), \
            keypoints[list(sleeve)]


def test_a_sleeve_hanging_beside_the_body_has_its_cuff_on_its_level_hem():
    """A polo laid with its sleeves hanging down: each sleeve's far end is a corner, and its hem runs level from
    there back to the armpit. The cuff is that hem (not the corner, a cuff a few pixels wide that stage 1 spread
    into stepped wedges of the sleeve's band), and the inner nodes, with no inner edge to lie on, stay on the
    armhole's line, out of the body."""
    left = [(0.42, 0.08), (0.3, 0.11), (0.2, 0.15), (0.15, 0.21), (0.12, 0.3), (0.1, 0.4), (0.26, 0.41),
            (0.27, 0.6), (0.25, 0.9)]
    mask = _silhouette([[*left[::-1], (0.5, 0.13), *[(1 - x, y) for x, y in left]]])
    rgb = np.where(mask[..., None], np.array([40, 40, 90], np.uint8), np.uint8(245)).astype(np.uint8)
    keypoints = flat_garment_keypoints(rgb, mask).keypoints
    height, width = mask.shape
    for cuff, inner, armpit, outward in (((9, 10), (11, 12, 13), 14, -1), ((27, 26), (25, 24, 23), 22, +1)):
        far_corner = (0.5 + outward * 0.4) * width  # (0.1, 0.4) and its mirror image
        hem_width = abs(keypoints[armpit, 0] - far_corner)
        assert abs(keypoints[cuff[0], 0] - keypoints[cuff[1], 0]) > 0.8 * hem_width, keypoints[list(cuff)]
        assert (abs(keypoints[list(cuff), 1] / height - 0.405) < 0.02).all(), keypoints[list(cuff)]
        assert (outward * (keypoints[list(inner), 0] - keypoints[armpit, 0]) > -0.02 * width).all(), \
            keypoints[list(inner)]


def test_an_armpit_is_the_slits_top_corner_above_a_body_side_curving_in():
    """Short sleeves with a short inner edge, and a body whose sides curve in to a narrow waist: the concavity
    between sleeve and hem is deepest on the waist, far below the armpit. The armpits are the corners at the top
    of the slits (where the body side leaves the sleeve), and the shoulders the outline's corners above them."""
    left = [(0.37, 0.07), (0.2, 0.095), (0.02, 0.26), (0.12, 0.33), (0.19, 0.305), (0.28, 0.6), (0.2, 0.9)]
    mask = _silhouette([[*left, (0.5, 0.905), *[(1 - x, y) for x, y in left[::-1]], (0.5, 0.11)]], height=420)
    rgb = np.where(mask[..., None], np.array([40, 40, 90], np.uint8), np.uint8(245)).astype(np.uint8)
    found = flat_garment_keypoints(rgb, mask)
    height, width = mask.shape
    assert found.sleeve == "short"
    for armpit, shoulder, outward in ((14, 5, -1), (22, 31, +1)):
        corner = np.array([(0.5 + outward * 0.31) * width, 0.305 * height])
        assert np.linalg.norm(found.keypoints[armpit] - corner) <= 4, found.keypoints[armpit]
        assert np.linalg.norm(found.keypoints[shoulder] - [(0.5 + outward * 0.3) * width, 0.095 * height]) <= 4


def test_inner_sleeve_nodes_past_a_short_inner_edge_stay_out_of_the_body():
    """The same short sleeves: their inner edge (cuff corner to armpit) is shorter than the sleeve, so the cross-
    sections of the axis near the armhole miss it. The inner nodes there lie on the armhole's line (shoulder ->
    armpit), not mirrored across the axis into the body: there the warp read the body's cloth into the worn
    sleeve's upper half, and folded it (the polo 09163's navy sleeve flaps)."""
    left = [(0.37, 0.07), (0.2, 0.095), (0.02, 0.26), (0.12, 0.33), (0.19, 0.305), (0.28, 0.6), (0.2, 0.9)]
    mask = _silhouette([[*left, (0.5, 0.905), *[(1 - x, y) for x, y in left[::-1]], (0.5, 0.11)]], height=420)
    rgb = np.where(mask[..., None], np.array([40, 40, 90], np.uint8), np.uint8(245)).astype(np.uint8)
    keypoints = flat_garment_keypoints(rgb, mask).keypoints
    for shoulder, armpit, inner, outward in ((5, 14, [11, 12, 13], -1), (31, 22, [25, 24, 23], +1)):
        along = keypoints[armpit] - keypoints[shoulder]
        across = np.array([along[1], -along[0]]) / np.linalg.norm(along)
        across *= outward * np.sign(across[0])  # out of the body
        assert ((keypoints[inner] - keypoints[shoulder]) @ across > -1.0).all(), keypoints[inner]


def test_long_sleeves_lying_against_the_body_have_their_armpits_at_the_prior():
    """Each sleeve's inner edge touches the body's side down to half the garment's height, where the slit
    between them opens: the outline shows no armpit, and the slit's top lies deeper than an armhole can be
    (``MAX_ARMHOLE_DEPTH``, 0.46 of the height here). The armpits are at the prior (``ARMPIT_DEPTH_PRIOR`` of
    the body length, 0.37), as where the slit is closed to the hem, not at that deepest armhole: 02783's photo
    mask, closed 0.43 of the height down, had them 0.06-0.08 of the height below where the eye puts them."""
    left = [(0.4, 0.08), (0.08, 0.14), (0.05, 0.97), (0.2, 0.97), (0.28, 0.55), (0.3, 0.85)]
    outline = left + [(1 - x, y) for x, y in left[::-1]]
    mask = _silhouette([[*outline[:1], (0.5, 0.13), *outline[1:]]])
    rgb = np.where(mask[..., None], np.array([40, 40, 90], np.uint8), np.uint8(245)).astype(np.uint8)
    found = flat_garment_keypoints(rgb, mask)
    height = mask.shape[0]
    top, hem = np.flatnonzero(mask.any(1))[0], np.flatnonzero(mask[:, mask.shape[1] // 2])[-1]
    prior = top + ARMPIT_DEPTH_PRIOR * (hem - top)
    assert found.sleeve == "long"
    assert np.abs(found.keypoints[[14, 22], 1] - prior).max() <= 0.01 * height, found.keypoints[[14, 22]]


def test_an_inner_sleeve_node_in_a_slit_the_mask_keeps_as_a_hole_stays_on_the_sleeve_beside_it():
    """Long sleeves lying against the body, the slit between each and the body closed in the mask at both ends
    but open between (a hole, as the genuine mask of the blouse 02783 has it): the inner edge's top node (13,
    23), read on the line of the sleeve's inner edge, falls in the hole. It moves across to the sleeve's edge
    beside it, level with where it was read, not to the nearest point of the outline (that was the slit's
    bottom here, 0.09 of the height lower; on 02783, the sleeve's outer edge, onto node 6)."""
    left = [(0.4, 0.08), (0.08, 0.14), (0.05, 0.97), (0.2, 0.97), (0.28, 0.65), (0.3, 0.85)]
    outline = left + [(1 - x, y) for x, y in left[::-1]]
    closed = _silhouette([[*outline[:1], (0.5, 0.13), *outline[1:]]])
    slit = _silhouette([[(0.3, 0.45), (0.32, 0.45), (0.31, 0.62), (0.29, 0.62)]])
    holed = closed & ~(slit | slit[:, ::-1])
    read = {}
    for name, mask in (("closed", closed), ("holed", holed)):
        rgb = np.where(mask[..., None], np.array([40, 40, 90], np.uint8), np.uint8(245)).astype(np.uint8)
        read[name] = flat_garment_keypoints(rgb, mask).keypoints
    width = closed.shape[1]
    for node, outward in ((13, -1), (23, +1)):
        x, y = read["holed"][node]
        assert holed[int(round(y)), int(round(x))]  # on the garment
        assert abs(y - read["closed"][node, 1]) <= 2  # level with its reading on the closed slit
        hole_columns = np.flatnonzero(slit[int(round(y))] if outward < 0 else slit[int(round(y)), ::-1])
        assert outward * (x - (hole_columns.min() if outward < 0 else width - 1 - hole_columns.min())) >= 0


def test_tops_pass_the_garment_checks(samples):
    for sample in samples:
        assert garment_problems(sample.cloth_mask, sample.cloth_keypoints) == [], sample.cloth_name


def test_consistency_checks_accept_true_landmarks_and_name_each_fault(samples):
    sample = next(s for s in samples if s.sleeve == "short")
    truth = sample.cloth_keypoints.astype(np.float64)
    assert landmark_problems(truth, sample.cloth_mask) == []
    mirrored = truth.copy()
    mirrored[:, 0] = sample.size[1] - 1 - mirrored[:, 0]
    assert any("not left of" in problem for problem in landmark_problems(mirrored))
    tilted = truth.copy()
    tilted[22, 1] += 0.3 * (truth[18, 1] - truth[:5, 1].min())  # one armpit far below the other
    assert any("nodes 14 and 22" in problem for problem in landmark_problems(tilted))
    off = truth.copy()
    off[9] = [2.0, 2.0]  # a cuff in the photo's corner
    assert any("nodes 9 " in problem and "off the garment" in problem
               for problem in landmark_problems(off, sample.cloth_mask))
    assert "finite" in landmark_problems(truth[:10])[0]


def _landscape_top_cut_at_its_collar() -> np.ndarray:
    """A photo wider than 3:4 of the boxy top with its collar off the top edge: padded to 3:4 for its landmarks,
    the cut would no longer touch the frame."""
    mask = np.zeros((512, 800), bool)
    mask[:, 208:592] = _silhouette([[(x, y - 0.2) for x, y in BOXY_TOP]], height=512)
    return np.where(mask[..., None], np.array([40, 60, 120], np.uint8), np.uint8(250)).astype(np.uint8)


def _example_uploads(garment: np.ndarray) -> Uploads:
    """The bundled example person, pose and parse with ``garment`` as the garment photo."""
    examples = Path(__file__).resolve().parents[1] / "examples"
    return Uploads(person=(examples / "person.jpg").read_bytes(), garment=encode_png(garment),
                   pose=(examples / "person_keypoints.json").read_bytes(),
                   parse=(examples / "person_parse.png").read_bytes())


def test_the_preprocessor_checks_the_garment_photo_as_sent():
    """The landscape photo is padded to 3:4 before its landmarks are read; the padding would hide the cut."""
    with pytest.raises(LandmarkError, match=r"garment: its landmarks cannot be found \(the garment is not wholly"):
        Preprocessor()(_example_uploads(_landscape_top_cut_at_its_collar()), 256)


@pytest.mark.slow
@pytest.mark.parametrize("garment, says", [("trousers", "trousers"), ("cut", "not wholly in the photo")])
def test_refusal_over_http(service, garment, says):
    """Trousers sent as the garment, and a top whose collar runs off its landscape photo: a 422 whose message says
    why, through the whole service."""
    if garment == "trousers":
        mask = _silhouette(NOT_TOPS["trousers"][0], height=512)
        photo = np.where(mask[..., None], np.array([40, 60, 120], np.uint8), np.uint8(250)).astype(np.uint8)
    else:
        photo = _landscape_top_cut_at_its_collar()
    uploads = _example_uploads(photo)
    files = {"person": uploads.person, "garment": uploads.garment, "pose": uploads.pose, "parse": uploads.parse}
    response = httpx.post(f"{service}/v1/tryon", files=[(name, (name, data)) for name, data in files.items()],
                          timeout=120)
    assert response.status_code == 422, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "invalid_garment" and says in error["message"], error


# --- the genuine VITON-HD pair -----------------------------------------------------------------------------------


def _dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    grown = mask.copy()
    for _ in range(pixels):
        grown[1:] |= grown[:-1]
        grown[:-1] |= grown[1:]
        grown[:, 1:] |= grown[:, :-1]
        grown[:, :-1] |= grown[:, 1:]
    return grown


def _inside(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    columns, rows = np.round(points).astype(int).T
    return mask[rows.clip(0, mask.shape[0] - 1), columns.clip(0, mask.shape[1] - 1)]


def test_genuine_sample(vitonhd_sample):
    paired = VitonHD(vitonhd_sample, split="test", mode="paired")[0]
    unpaired = VitonHD(vitonhd_sample, split="test", mode="unpaired")[0]
    for cloth, mask, sleeve in ((paired.cloth, paired.cloth_mask, "long"),
                                (unpaired.cloth, unpaired.cloth_mask, "short")):
        flat = flat_garment_keypoints(cloth, mask)
        assert flat.sleeve == sleeve  # the black long-sleeve top, the striped t-shirt
        assert _inside(_dilate(mask, 3), flat.keypoints).all()
        assert flat.keypoints[5, 0] < flat.keypoints[31, 0]
    worn = worn_garment_keypoints(paired.parse, paired.pose).keypoints
    garment = np.isin(paired.parse, UPPER_GARMENT_LABELS)
    # The parse lost the lower half of the image-right sleeve (labelled pants and hand), so its nodes 25-28
    # may leave the garment region; they stay within 5% of the height of the person's garment and arms.
    lost = [25, 26, 27, 28]
    seen = [node for node in range(NUM_GARMENT_NODES) if node not in lost]
    assert _inside(_dilate(garment, 10), worn[seen]).all()
    person = _dilate(np.isin(paired.parse, UPPER_GARMENT_LABELS + (14, 15)), int(0.05 * paired.size[0]))
    assert _inside(person, worn[lost]).all()
    assert worn[9, 1] > worn[7, 1] > worn[5, 1]  # the image-left sleeve hangs down to the cuff
    assert worn_garment_keypoints(paired.parse, paired.pose, paired.person).sleeve == "long"


# The genuine people of ../shared/vitonhd-extra and the sleeves they wear. Their parses label the forearms in
# 07445's tight long sleeves as arms; 00891 holds its right forearm across the body (elbow and wrist undetected).
GENUINE_WORN = {"00891_00": "short", "07445_00": "long", "08909_00": "long"}


@pytest.mark.parametrize("stem", list(GENUINE_WORN))
def test_genuine_worn_sleeves(vitonhd_sample, stem):
    root = vitonhd_sample.parent / "vitonhd-extra"
    if not (root / "test_pairs.txt").is_file():
        pytest.skip(f"the genuine VITON-HD extra pairs are not at {root}")
    sample = next(s for s in (VitonHD(str(root), split="test", mode="unpaired")[i] for i in range(3))
                  if s.person_name == f"{stem}.jpg")
    worn = worn_garment_keypoints(sample.parse, sample.pose, sample.person)
    assert worn.sleeve == GENUINE_WORN[stem]
    garment = np.isin(sleeves_labelled_as_arms(sample.parse, sample.person), UPPER_GARMENT_LABELS)
    body = [0, 1, 2, 3, 4, 5, 14, 15, 16, 17, 18, 19, 20, 21, 22, 31]  # the contour nodes off the sleeves
    assert _inside(_dilate(garment, int(0.03 * sample.size[0])), worn.keypoints[body]).all()


# --- drawing and the command ---------------------------------------------------------------------------------------


def test_overlay_draws_without_touching_the_input(samples, extracted):
    image = samples[0].person
    before = image.copy()
    drawn = draw_garment_keypoints(image, extracted[0][1])
    np.testing.assert_array_equal(image, before)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert (drawn != image).any(axis=2).mean() > 0.01
    with pytest.raises(ValueError, match="keypoints"):
        draw_garment_keypoints(image, extracted[0][1][:10])


def test_command_writes_files_and_scores(synthetic_root, samples, extracted, tmp_path, capsys):
    out = tmp_path / "landmarks"
    args = argparse.Namespace(root=synthetic_root, split="test", out=out, eval=True, limit=None, photos=False)
    assert run_landmarks(args) == 0
    table = capsys.readouterr().out
    assert f"wrote landmarks of {len(samples)} pairs" in table
    rows = {line.split("  ")[0]: line.split()[-6:] for line in table.splitlines()[2:]}
    assert {"all", "sleeve long", "sleeve short", "sleeve none", "kind classic", "crossed arms"} <= set(rows)
    n, refused, flat_error, worn_error, flat_sleeve, worn_sleeve = rows["all"]
    assert int(n) == len(samples) and refused == "0" and flat_sleeve == worn_sleeve == "100.0%"
    assert float(flat_error.rstrip("%")) < 100 * FLAT_GOAL and float(worn_error.rstrip("%")) < 100 * WORN_GOAL
    for sample, (flat, worn) in zip(samples, extracted):
        stem = sample.person_name.removesuffix(".jpg")
        cloth_doc = json.loads((out / "cloth-landmark-json" / f"{stem}.json").read_text())
        image_doc = json.loads((out / "image-landmark-json" / f"{stem}.json").read_text())
        assert (cloth_doc["width"], cloth_doc["height"], cloth_doc["sleeve"]) == (HEIGHT * 3 // 4, HEIGHT,
                                                                                   flat.sleeve)
        np.testing.assert_allclose(cloth_doc["keypoints"], flat.keypoints, atol=0.01)
        np.testing.assert_allclose(image_doc["keypoints"], worn, atol=0.01)
        picture = np.array(Image.open(out / "overlay" / f"{stem}.png"))
        assert picture.shape == (HEIGHT, 2 * (HEIGHT * 3 // 4), 3)
    assert len(list((out / "overlay").iterdir())) == len(samples)
    args.limit, args.out = 2, tmp_path / "two"
    assert run_landmarks(args) == 0
    assert len(list((args.out / "overlay").iterdir())) == 2


def test_command_user_errors(tmp_path):
    with pytest.raises(CommandError, match="missing"):
        run_landmarks(argparse.Namespace(root=str(tmp_path / "nowhere"), split="test", out=tmp_path / "out",
                                         eval=False, limit=None, photos=False))


def test_command_on_a_folder_of_garment_photos(vitonhd_sample, tmp_path, capsys):
    """--photos: the genuine sample's garments with their masks beside them, then a photo of trousers."""
    out = tmp_path / "photos"
    args = argparse.Namespace(root=str(vitonhd_sample / "test" / "cloth"), photos=True, out=out, limit=None,
                              split="test", eval=False)
    assert run_landmarks(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[1:3]] == [["00006_00", "long"], ["06396_00", "short"]]
    assert len(list((out / "cloth-landmark-json").iterdir())) == 2
    assert np.array(Image.open(out / "sheet.png")).ndim == 3
    trousers = tmp_path / "trousers"
    trousers.mkdir()
    mask = _silhouette(NOT_TOPS["trousers"][0], height=256)
    garment = np.where(mask[..., None], np.array([40, 60, 120], np.uint8), np.uint8(250)).astype(np.uint8)
    (trousers / "jeans.png").write_bytes(encode_png(garment))
    args.root, args.out = str(trousers), tmp_path / "trousers-out"
    assert run_landmarks(args) == 1
    assert "jeans" in capsys.readouterr().out


def test_a_sleeve_outline_wholly_behind_its_armhole_centre_still_has_a_cuff():
    """A sleeve of a few pixels (a garment photo fitted small into its frame) can lie wholly behind its armhole
    centre along the axis it starts on: its cuff is then its farthest point, not an empty set (an IndexError,
    which the service answered with a 500)."""
    from kgi.landmarks.sleeves import _cuff_from_armhole

    path = np.array([[0.0, 0.0], [-1.0, 1.0], [-2.0, 0.0]])
    inner, outer, axis, normal = _cuff_from_armhole(path, np.array([5.0, 0.0]), np.array([0.0, 1.0]),
                                                    start=np.array([1.0, 0.0]))
    assert (inner, outer) == (0, 0)
    np.testing.assert_allclose(axis, [1.0, 0.0])
    assert normal @ np.array([0.0, 1.0]) > 0
