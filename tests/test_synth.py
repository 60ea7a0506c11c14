"""The synthetic VITON-HD generator: garment geometry, determinism, the written layout read back, the
consistency of images, parse maps, poses and keypoints, and the ``kgi synth`` command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from kgi.cli import CommandError
from kgi.commands import synth as synth_command
from kgi.data.garment import sample_garment
from kgi.data.garment_geometry import flat_keypoints, garment_mesh, worn_keypoints
from kgi.data.images import encode_jpeg
from kgi.data.pose import parse_openpose
from kgi.data.synth import SynthError, generate, make_pair, sample_person
from kgi.data.vitonhd import VitonHD
from kgi.graphs import NUM_GARMENT_NODES, SLEEVE_TYPES, WARP_SEGMENTS

HEIGHT, WIDTH = 128, 96
N_TRAIN, N_TEST = 36, 8
SEED = 3
FOLDERS = ("image", "cloth", "cloth-mask", "image-parse-v3", "openpose_json", "cloth-landmark-json",
           "image-landmark-json")
ALLOWED_LABELS = {0, 2, 5, 9, 10, 12, 13, 14, 15, 16, 17, 18, 19}
UPPER, LEFT_ARM, RIGHT_ARM, HAIR = 5, 14, 15, 2
# Each garment node's mirror twin: the neckline and sides pair up across the centre, 6..13 with 30..23.
MIRROR = [4, 3, 2, 1, 0, 31, *range(30, 22, -1), 22, 21, 20, 19, 18, 17, 16, 15, 14, *range(13, 5, -1), 5]
# A keypoint "lands on" a region when a pixel of it lies within this many pixels (keypoints sit on outlines).
TOLERANCE_PX = 2.0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "data"
    generate(root, N_TRAIN, N_TEST, height=HEIGHT, seed=SEED, progress=False)
    return root


@pytest.fixture(scope="module")
def samples(dataset: Path) -> list:
    """Every pair of both splits read back through the VITON-HD reader (paired: the worn keypoints are known)."""
    return [sample for split in ("train", "test") for sample in VitonHD(dataset, split=split, mode="paired")]


def _stems(root: Path, split: str) -> list[str]:
    lines = (root / f"{split}_pairs.txt").read_text().splitlines()
    return [name[:-len(".jpg")] for line in lines for name in line.split()]


def _distance_to(mask: np.ndarray) -> np.ndarray:
    """(H, W) float32 pixel distance of every pixel to the nearest pixel of ``mask``."""
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)


def _lookup(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Values of an (H, W) map at continuous (x, y) points (pixel j covers [j, j+1])."""
    height, width = field.shape
    columns = np.clip(np.floor(points[:, 0]).astype(int), 0, width - 1)
    rows = np.clip(np.floor(points[:, 1]).astype(int), 0, height - 1)
    return field[rows, columns]


def _polygon_mask(points: np.ndarray, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(mask, [np.round((points - 0.5) * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return mask.astype(bool)


# --- garment geometry ------------------------------------------------------------------------------------

def _garment(sleeve: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    while True:
        params = sample_garment(rng)
        if params.sleeve == sleeve:
            return params


@pytest.mark.parametrize("sleeve", SLEEVE_TYPES)
def test_flat_keypoints_are_a_symmetric_centred_layout(sleeve):
    points = flat_keypoints(_garment(sleeve), 256, 192)
    assert points.shape == (NUM_GARMENT_NODES, 2)
    assert (points >= 0).all() and (points[:, 0] <= 192).all() and (points[:, 1] <= 256).all()
    mirrored = points[MIRROR] * (-1, 1) + (192, 0)  # reflected in the photo's vertical centre line
    np.testing.assert_allclose(mirrored, points, atol=0.5)
    assert points[2, 0] == pytest.approx(96, abs=0.5) and points[18, 0] == pytest.approx(96, abs=0.5)
    assert points[0, 0] < points[4, 0] and points[5, 0] < points[31, 0]  # node 0 and 5 on the image left
    assert points[2, 1] > points[0, 1] and points[18, 1] > points[14, 1]  # neckline dips, hem below the armpits


def test_sleeveless_nodes_lie_between_shoulder_and_armpit():
    points = flat_keypoints(_garment("none"), 256, 192)
    shoulder, armpit = points[5], points[14]
    along = (points[6:14] - shoulder) @ (armpit - shoulder) / np.sum((armpit - shoulder) ** 2)
    assert np.all(np.diff(along) > 0) and along[0] > 0 and along[-1] < 1


def test_flat_sleeves_point_down_and_out():
    for sleeve in ("long", "short"):
        points = flat_keypoints(_garment(sleeve), 256, 192)
        outward = points[9] - points[5]  # shoulder to the cuff's outer corner, image-left sleeve
        angle = np.degrees(np.arctan2(outward[1], -outward[0]))
        assert 10 < angle < 80, (sleeve, angle)


def _standing_pose(elbow_bend_degrees: float) -> np.ndarray:
    """A BODY_25 pose (pixels at 256 x 192): arms hanging, the right forearm turned in by the given angle."""
    pose = np.zeros((25, 3))
    pose[:, 2] = 0.9
    neck, mid_hip = np.array([96.0, 80.0]), np.array([96.0, 180.0])
    pose[1, :2], pose[8, :2] = neck, mid_hip
    pose[2, :2], pose[5, :2] = neck + (-30, 2), neck + (30, 2)
    pose[9, :2], pose[12, :2] = mid_hip + (-18, 0), mid_hip + (18, 0)
    pose[3, :2], pose[6, :2] = pose[2, :2] + (-8, 62), pose[5, :2] + (8, 62)
    turn = np.radians(elbow_bend_degrees)
    pose[4, :2] = pose[3, :2] + 58 * np.array([np.sin(turn), np.cos(turn)])
    pose[7, :2] = pose[6, :2] + (4, 58)
    pose[0, :2] = neck + (0, -36)
    return pose


def _body_shape():
    """A body shape drawn the way the generator draws its people."""
    return sample_person(np.random.default_rng(1), 256).body


def test_worn_long_sleeve_follows_the_arm_and_bends_at_the_elbow():
    params = _garment("long")
    straight_pose, bent_pose = _standing_pose(0.0), _standing_pose(80.0)
    body = _body_shape()
    straight = worn_keypoints(params, straight_pose, body)
    bent = worn_keypoints(params, bent_pose, body)
    # The image-left sleeve (6-13) is on the person's right arm (joints 2-3-4); its cuff ends near the wrist.
    cuff = (bent[9] + bent[10]) / 2
    assert np.linalg.norm(cuff - bent_pose[4, :2]) < np.linalg.norm(cuff - bent_pose[7, :2])
    assert np.linalg.norm(cuff - bent_pose[4, :2]) < 0.35 * 58
    # Bending the elbow turns the forearm part of the sleeve and leaves the other sleeve where it was.
    def forearm_direction(points):
        vector = (points[9] + points[10]) / 2 - (points[7] + points[12]) / 2
        return vector / np.linalg.norm(vector)
    assert forearm_direction(straight) @ forearm_direction(bent) < np.cos(np.radians(50))
    np.testing.assert_allclose(straight[23:31], bent[23:31], atol=1e-3)
    # Shoulders on the pose shoulders, neckline around the neck, hem below the armpits.
    assert np.linalg.norm(bent[5] - bent_pose[2, :2]) < 15 and np.linalg.norm(bent[31] - bent_pose[5, :2]) < 15
    assert abs(bent[2, 0] - 96) < 3 and bent[18, 1] > bent[14, 1] + 20


def test_mesh_has_the_same_topology_flat_and_worn():
    for sleeve in SLEEVE_TYPES:
        params = _garment(sleeve)
        flat = garment_mesh(flat_keypoints(params, 256, 192), sleeve)
        worn = garment_mesh(worn_keypoints(params, _standing_pose(30.0), _body_shape()), sleeve)
        assert flat.vertices.shape == worn.vertices.shape
        assert flat.layers.keys() == worn.layers.keys()
        assert ("left_sleeve" in flat.layers) == (sleeve != "none")
        for name, triangles in flat.layers.items():
            np.testing.assert_array_equal(triangles, worn.layers[name])


# --- determinism -----------------------------------------------------------------------------------------

def test_a_pair_is_a_function_of_seed_and_index(dataset):
    first, again = make_pair(SEED, 5, HEIGHT), make_pair(SEED, 5, HEIGHT)
    for field in ("person", "cloth", "cloth_mask", "parse", "pose", "cloth_keypoints", "worn_keypoints"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field), err_msg=field)
    # Regenerated alone, the pair's image is byte-identical to the file the dataset run wrote.
    assert encode_jpeg(first.person, 95) == (dataset / "train" / "image" / "00005_00.jpg").read_bytes()
    other_seed = make_pair(SEED + 1, 5, HEIGHT)
    assert not np.array_equal(first.person, other_seed.person)
    assert not np.array_equal(first.person, make_pair(SEED, 6, HEIGHT).person)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_a_pair_is_the_same_scene_at_every_height(index):
    small, large = make_pair(SEED, index, 64), make_pair(SEED, index, 192)
    assert (small.sleeve, small.tags) == (large.sleeve, large.tags)
    np.testing.assert_allclose(large.worn_keypoints, 3 * small.worn_keypoints, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(large.cloth_keypoints, 3 * small.cloth_keypoints, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(large.pose[:, 2] > 0, small.pose[:, 2] > 0)
    np.testing.assert_allclose(large.pose[:, :2], 3 * small.pose[:, :2], rtol=1e-4, atol=1e-2)
    # The pictures agree too: the large parse shrunk to the small size matches it almost everywhere.
    shrunk = cv2.resize(large.parse, (48, 64), interpolation=cv2.INTER_NEAREST)
    assert np.mean(shrunk == small.parse) > 0.9


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    runs = {name: tmp_path / name for name in ("first", "again", "other")}
    for name, root in runs.items():
        generate(root, 3, 3, height=HEIGHT, seed=SEED + (name == "other"), progress=False)

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    first, again, other = (files(root) for root in runs.values())
    assert first == again
    assert first.keys() == other.keys()
    differing = [rel for rel in first if first[rel] != other[rel]]
    assert "train/image/00000_00.jpg" in differing and "train/cloth/00000_00.jpg" in differing


# --- layout ----------------------------------------------------------------------------------------------

def test_layout_is_complete_and_pairs_files_name_existing_files(dataset):
    train_lines = (dataset / "train_pairs.txt").read_text().splitlines()
    test_lines = (dataset / "test_pairs.txt").read_text().splitlines()
    assert len(train_lines) == N_TRAIN and len(test_lines) == N_TEST
    for line in train_lines:  # paired
        person, cloth = line.split()
        assert person == cloth
    test_people = [line.split()[0] for line in test_lines]
    test_cloths = [line.split()[1] for line in test_lines]
    assert all(p != c for p, c in zip(test_people, test_cloths))  # unpaired, like the real test list
    assert sorted(test_cloths) == sorted(test_people)  # every test garment is tried on once
    assert not set(test_people) & {line.split()[0] for line in train_lines}
    for split in ("train", "test"):
        stems = sorted(set(_stems(dataset, split)))
        for folder in FOLDERS:
            names = sorted(p.name for p in (dataset / split / folder).iterdir())
            suffix = {"image-parse-v3": ".png", "openpose_json": "_keypoints.json", "cloth-landmark-json": ".json",
                      "image-landmark-json": ".json"}.get(folder, ".jpg")
            assert names == [stem + suffix for stem in stems], (split, folder)
    info = json.loads((dataset / "synth.json").read_text())
    assert (info["seed"], info["height"], info["width"]) == (SEED, HEIGHT, WIDTH)
    assert (info["train_pairs"], info["test_pairs"]) == (N_TRAIN, N_TEST)
    assert info["version"]


def test_files_have_the_vitonhd_formats(dataset, vitonhd_sample):
    stem = _stems(dataset, "test")[0]
    for folder in ("image", "cloth"):
        image = Image.open(dataset / "test" / folder / f"{stem}.jpg")
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (WIDTH, HEIGHT))
    mask = Image.open(dataset / "test" / "cloth-mask" / f"{stem}.jpg")
    assert (mask.format, mask.mode, mask.size) == ("JPEG", "L", (WIDTH, HEIGHT))
    values = np.asarray(mask)
    assert np.mean((values < 30) | (values > 225)) > 0.97  # 0/255, blurred only at the edges by JPEG
    parse = Image.open(dataset / "test" / "image-parse-v3" / f"{stem}.png")
    genuine = Image.open(vitonhd_sample / "test" / "image-parse-v3" / "00006_00.png")
    assert parse.mode == genuine.mode == "P"
    assert parse.getpalette()[:60] == genuine.getpalette()[:60]  # the 20 CIHP colours
    cloth_doc = json.loads((dataset / "test" / "cloth-landmark-json" / f"{stem}.json").read_text())
    worn_doc = json.loads((dataset / "test" / "image-landmark-json" / f"{stem}.json").read_text())
    assert set(cloth_doc) == {"width", "height", "sleeve", "keypoints"}
    assert set(worn_doc) == {"width", "height", "sleeve", "keypoints", "tags"}
    for doc in (cloth_doc, worn_doc):
        assert (doc["width"], doc["height"]) == (WIDTH, HEIGHT) and doc["sleeve"] in SLEEVE_TYPES
        assert np.asarray(doc["keypoints"]).shape == (NUM_GARMENT_NODES, 2)
    assert isinstance(worn_doc["tags"], list)


def test_reader_loads_synthetic_and_genuine_alike(dataset, vitonhd_sample):
    synthetic = VitonHD(dataset, split="test", mode="unpaired", height=64)[0]
    genuine = VitonHD(vitonhd_sample, split="test", mode="unpaired", height=64)[0]
    for field in ("person", "cloth", "cloth_mask", "parse", "pose"):
        assert getattr(synthetic, field).shape == getattr(genuine, field).shape, field
        assert getattr(synthetic, field).dtype == getattr(genuine, field).dtype, field
    assert synthetic.cloth_keypoints is not None and synthetic.worn_keypoints is None  # unpaired: another garment


# --- content ---------------------------------------------------------------------------------------------

def test_parse_labels_come_from_the_allowed_set_and_cover_the_person(samples):
    seen = set()
    for sample in samples:
        labels = set(np.unique(sample.parse).tolist())
        assert labels <= ALLOWED_LABELS, (sample.person_name, labels - ALLOWED_LABELS)
        assert {0, 2, 5, 13}.issubset(labels), sample.person_name  # background, hair, garment, face
        assert labels & {14, 15} and labels & {9, 12}, sample.person_name  # arms, a lower garment
        seen |= labels
        # The labels agree with the picture: a light backdrop, arms and face of one skin tone.
        assert np.median(sample.person[sample.parse == 0], axis=0).min() > 150, sample.person_name
        face_skin = np.median(sample.person[sample.parse == 13], axis=0)
        for arm in labels & {14, 15}:  # inside the arm (antialiased edges blend with what is around)
            interior = cv2.erode((sample.parse == arm).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            if interior.sum() >= 10:
                arm_skin = np.median(sample.person[interior], axis=0)
                assert np.abs(arm_skin - face_skin).max() < 30, (sample.person_name, arm_skin, face_skin)
    assert {9, 12} <= seen  # pants and skirts both occur


def test_garment_keypoints_land_on_the_garment(samples):
    """Worn keypoints on upper-clothes pixels (or on an arm or hair covering them); flat ones on the mask."""
    worn_misses = outside = 0
    for sample in samples:
        flat_distance = _lookup(_distance_to(sample.cloth_mask), sample.cloth_keypoints)
        assert flat_distance.max() <= TOLERANCE_PX, (sample.person_name, flat_distance.max())
        worn = sample.worn_keypoints
        inside = ((worn >= 0) & (worn <= (WIDTH, HEIGHT))).all(axis=1)  # a cuff may leave the picture
        upper = _lookup(_distance_to(sample.parse == UPPER), worn)
        occluded = np.isin(_lookup(sample.parse, worn), (LEFT_ARM, RIGHT_ARM, HAIR))
        worn_misses += int(np.sum((upper > TOLERANCE_PX) & ~occluded & inside))
        outside += int(np.sum(~inside))
    assert worn_misses <= 0.01 * NUM_GARMENT_NODES * len(samples), worn_misses
    assert outside <= 0.01 * NUM_GARMENT_NODES * len(samples), outside


def test_a_sleeved_garment_is_as_long_for_its_shoulder_width_on_the_body_as_flat(samples):
    """Its shoulder points sit out on the arms, so its lengths grow with its shoulder width: the body below the
    armpits over the shoulder width, and a short sleeve's length over it, are the flat garment's (generator 1.4
    drew sleeved bodies 0.73-0.76 of that, and stage 1 learnt to end t-shirts above genuine hips)."""
    def body_and_sleeve(keypoints):
        width = np.linalg.norm(keypoints[31] - keypoints[5])
        body = np.linalg.norm(keypoints[18] - keypoints[[14, 22]].mean(0))
        sleeve = np.linalg.norm(keypoints[[9, 10]].mean(0) - keypoints[[6, 13]].mean(0))  # first station to cuff
        return np.array([body, sleeve]) / width

    sleeved = [s for s in samples if s.sleeve != "none"]
    assert len(sleeved) >= 10
    for sample in sleeved:
        flat, worn = body_and_sleeve(sample.cloth_keypoints), body_and_sleeve(sample.worn_keypoints)
        assert abs(worn[0] / flat[0] - 1) < 0.02, (sample.person_name, flat, worn)
        if sample.sleeve == "short":
            assert abs(worn[1] / flat[1] - 1) < 0.02, (sample.person_name, flat, worn)


def test_sleeve_types_all_occur_and_the_parse_agrees(samples):
    sleeves = [sample.sleeve for sample in samples]
    for sleeve in SLEEVE_TYPES:  # roughly equal shares
        assert sleeves.count(sleeve) >= 0.15 * len(samples), (sleeve, sleeves.count(sleeve))
    for sample in samples:
        garment = sample.parse == UPPER
        arms = np.isin(sample.parse, (LEFT_ARM, RIGHT_ARM))
        assert arms.sum() > 0.003 * HEIGHT * WIDTH, sample.person_name
        cuffs = np.stack([(sample.worn_keypoints[9] + sample.worn_keypoints[10]) / 2,
                          (sample.worn_keypoints[26] + sample.worn_keypoints[27]) / 2])
        if sample.sleeve == "long":  # the cuff midpoints are on the garment (or under the other arm)
            on_garment = _lookup(_distance_to(garment), cuffs) <= TOLERANCE_PX
            assert (on_garment | _lookup(arms, cuffs)).all(), sample.person_name
        if sample.sleeve == "short":  # a short sleeve ends above the elbow
            for cuff, (shoulder, elbow) in zip(cuffs, ((2, 3), (5, 6))):
                if sample.pose[shoulder, 2] > 0 and sample.pose[elbow, 2] > 0:
                    upper_arm = np.linalg.norm(sample.pose[elbow, :2] - sample.pose[shoulder, :2])
                    assert np.linalg.norm(cuff - sample.pose[shoulder, :2]) < upper_arm, sample.person_name


def test_cloth_photo_is_a_garment_on_near_white(samples):
    for sample in samples:
        background = sample.cloth[~sample.cloth_mask]
        assert background.mean() > 225, sample.cloth_name
        assert 0.12 < sample.cloth_mask.mean() < 0.8, sample.cloth_name  # genuine sample: 0.36, 0.43
        # The garment is centred: its bounding box's centre is near the photo's.
        rows, columns = np.nonzero(sample.cloth_mask)
        assert abs((columns.min() + columns.max()) / 2 - WIDTH / 2) < 0.05 * WIDTH, sample.cloth_name
        assert abs((rows.min() + rows.max()) / 2 - HEIGHT / 2) < 0.08 * HEIGHT, sample.cloth_name


def test_crossed_arms_cover_the_torso_garment(samples):
    crossed = [s for s in samples if "crossed_arms" in s.tags]
    others = [s for s in samples if "crossed_arms" not in s.tags]
    assert crossed and others
    assert 0.05 <= len(crossed) / len(samples) <= 0.45

    def forearm_over_torso(sample) -> int:
        """Pixels of the forearms (skin or sleeve, along the pose's elbow-wrist bones) over the garment body."""
        torso = _polygon_mask(sample.worn_keypoints[list(WARP_SEGMENTS["backbone"])], HEIGHT, WIDTH)
        forearms = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
        for elbow, wrist in ((3, 4), (6, 7)):
            if sample.pose[elbow, 2] > 0 and sample.pose[wrist, 2] > 0:
                a, b = np.round(sample.pose[[elbow, wrist], :2]).astype(int)
                cv2.line(forearms, tuple(a), tuple(b), 1, max(1, HEIGHT // 64))
        covering = np.isin(sample.parse, (LEFT_ARM, RIGHT_ARM, UPPER))
        return int(np.sum(torso & forearms.astype(bool) & covering))

    crossed_overlap = [forearm_over_torso(s) for s in crossed]
    assert min(crossed_overlap) > 0.04 * HEIGHT
    assert np.mean(crossed_overlap) > 3 * np.mean([forearm_over_torso(s) for s in others])
    # Where a bare forearm crosses, skin covers the garment: arm labels inside the torso outline.
    bare = [s for s in crossed if s.sleeve != "long"]
    for sample in bare:
        torso = _polygon_mask(sample.worn_keypoints[list(WARP_SEGMENTS["backbone"])], HEIGHT, WIDTH)
        assert np.isin(sample.parse[torso], (LEFT_ARM, RIGHT_ARM)).sum() > 0.002 * HEIGHT * WIDTH, sample.person_name


def test_pose_json_reads_back_and_looks_like_openpose(dataset, samples):
    missing = 0
    for split in ("train", "test"):
        for path in sorted((dataset / split / "openpose_json").iterdir()):
            pose = parse_openpose(path.read_bytes(), source=str(path))
            found = pose[:, 2] > 0
            assert found[[1, 8]].all(), path.name  # neck and mid-hip
            assert ((pose[found, 2] >= 0.6) & (pose[found, 2] <= 0.95)).all(), path.name
            assert (pose[found, 0] < WIDTH).all() and (pose[found, 1] < HEIGHT).all(), path.name
            assert np.array_equal(pose[~found], np.zeros((int((~found).sum()), 3))), path.name
            if found[2] and found[5]:
                assert pose[2, 0] < pose[5, 0], path.name  # the person's right shoulder is on the image left
            found_core = found[[0, 15, 16, 17, 18, 3, 4, 6, 7]]
            missing += int((~found_core).sum())
    assert missing > 0  # some face or arm joints go undetected, as with real OpenPose
    for sample in samples:  # the pose sits on the person
        neck = np.round(sample.pose[1, :2]).astype(int)
        assert sample.parse[min(neck[1], HEIGHT - 1), min(neck[0], WIDTH - 1)] != 0, sample.person_name


# --- errors and the command --------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(n_train=0, n_test=4), "n_train"),
    (dict(n_train=2, n_test=1), "n_test"),
    (dict(n_train=2, n_test=4, height=130), "height"),
    (dict(n_train=2, n_test=4, seed=-1), "seed"),
])
def test_generate_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(SynthError, match=message):
        generate(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_generate_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(SynthError, match="not empty"):
        generate(tmp_path, 2, 2, height=64, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def _command(out, **options) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    synth_command.add_arguments(parser)
    argv = [str(out)] + [item for key, value in options.items() for item in (f"--{key.replace('_', '-')}", str(value))]
    return parser.parse_args(argv)


def test_command_writes_a_dataset_and_a_preview(tmp_path):
    preview = tmp_path / "sheet.png"
    assert synth_command.run(_command(tmp_path / "data", pairs=3, height=64, seed=1, preview=preview)) == 0
    assert len((tmp_path / "data" / "train_pairs.txt").read_text().splitlines()) == 3
    assert len((tmp_path / "data" / "test_pairs.txt").read_text().splitlines()) == 8  # max(3 // 5, 8)
    sheet = np.asarray(Image.open(preview))
    assert sheet.ndim == 3 and sheet.shape[0] % 64 == 0 and sheet.shape[1] % 48 == 0 and sheet.std() > 10


@pytest.mark.parametrize("options, message", [
    (dict(pairs=0), "--pairs"),
    (dict(pairs=4, test_pairs=1), "--test-pairs"),
    (dict(pairs=4, height=66), "--height"),
    (dict(pairs=4, preview="sheet.jpg"), "--preview"),
])
def test_command_rejects_bad_arguments(tmp_path, options, message):
    with pytest.raises(CommandError, match=message):
        synth_command.run(_command(tmp_path / "data", **options))


def test_command_refuses_a_non_empty_output(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x").write_text("x")
    with pytest.raises(CommandError, match="not empty"):
        synth_command.run(_command(tmp_path / "data", pairs=2, height=64))
