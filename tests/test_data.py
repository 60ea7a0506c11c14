"""The data layer on real inputs: the genuine VITON-HD pair (local and through a real S3 server), broken copies
of it, images in every mode cameras and editors produce, and arbitrary bytes and JSON."""

from __future__ import annotations

import io
import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from kgi.data.images import (
    ImageError,
    decode_gray,
    decode_labels,
    decode_rgb,
    encode_jpeg,
    encode_palette_png,
    encode_png,
    resize_labels,
    resize_mask,
    resize_rgb,
)
from kgi.data.labels import CIHP_PALETTE
from kgi.data.pose import PoseError, parse_openpose
from kgi.data.storage import LocalStorage, StoragePathError, open_root, validate_rel
from kgi.data.vitonhd import DatasetError, VitonHD
from kgi.graphs import NUM_GARMENT_NODES

from image_bytes import png_header_only  # tests/ helper

PERSON, OWN_CLOTH, OTHER_CLOTH = "00006_00.jpg", "00006_00.jpg", "06396_00.jpg"
BAD_PATHS = ["../secret", "a/../../b", "/etc/passwd", "a\\b", "a//b", "a/", "", ".", "a/./b", "..", "a/\x00"]


def raw_parse(root: Path) -> np.ndarray:
    """The parse PNG's stored indices, read with Pillow directly (independent of kgi.data.images)."""
    return np.array(Image.open(root / "test" / "image-parse-v3" / "00006_00.png"))


def raw_pose(root: Path) -> np.ndarray:
    doc = json.loads((root / "test" / "openpose_json" / "00006_00_keypoints.json").read_text())
    return np.array(doc["people"][0]["pose_keypoints_2d"], dtype=np.float32).reshape(25, 3)


# --- the genuine sample, local ----------------------------------------------------------------------------------


def test_sample_paired_full_resolution(vitonhd_sample):
    dataset = VitonHD(vitonhd_sample, split="test", mode="paired")
    assert len(dataset) == 1 and dataset.pairs == ((PERSON, OWN_CLOTH),)
    sample = dataset[0]
    assert (sample.person_name, sample.cloth_name) == (PERSON, OWN_CLOTH) and sample.paired
    assert sample.person.shape == sample.cloth.shape == (1024, 768, 3)
    assert sample.person.dtype == sample.cloth.dtype == np.uint8
    assert sample.cloth_mask.shape == (1024, 768) and sample.cloth_mask.dtype == bool
    raw_mask = np.array(Image.open(vitonhd_sample / "test" / "cloth-mask" / OWN_CLOTH))
    np.testing.assert_array_equal(sample.cloth_mask, raw_mask >= 128)
    # The black top lies inside its mask, the white studio background outside it.
    assert sample.cloth[sample.cloth_mask].mean() < 100 < 200 < sample.cloth[~sample.cloth_mask].mean()
    np.testing.assert_array_equal(sample.parse, raw_parse(vitonhd_sample))
    assert {5, 13, 14, 15} <= set(np.unique(sample.parse).tolist())  # upper clothes, face, both arms
    np.testing.assert_allclose(sample.pose[1], [374.624, 332.151, 0.801548], rtol=1e-6)  # the neck
    np.testing.assert_array_equal(sample.pose, raw_pose(vitonhd_sample))
    assert sample.cloth_keypoints is None and sample.worn_keypoints is None and sample.sleeve is None
    assert sample.tags == ()
    assert sample.pose_nodes.shape == (10, 2) and ((sample.pose_nodes >= 0) & (sample.pose_nodes <= 1)).all()


def test_sample_reduced_resolution_matches_full(vitonhd_sample):
    full = VitonHD(vitonhd_sample, mode="paired")[0]
    small = VitonHD(vitonhd_sample, mode="paired", height=256)[0]
    assert small.person.shape == small.cloth.shape == (256, 192, 3)
    assert small.cloth_mask.shape == small.parse.shape == (256, 192)
    # Area resize by 4 = the mean of each 4x4 block; nearest at pixel centres = the pixel at offset 2.
    blocks = full.person.reshape(256, 4, 192, 4, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(small.person.astype(np.float64) - blocks).max() <= 1.0
    np.testing.assert_array_equal(small.parse, full.parse[2::4, 2::4])
    np.testing.assert_array_equal(small.cloth_mask, full.cloth_mask[2::4, 2::4])
    np.testing.assert_allclose(small.pose[1], [374.624 / 4, 332.151 / 4, 0.801548], rtol=1e-6)
    np.testing.assert_allclose(small.pose_nodes, full.pose_nodes, atol=1e-6)


@pytest.mark.parametrize("height", [None, 512])
def test_sample_unpaired(vitonhd_sample, height):
    paired = VitonHD(vitonhd_sample, mode="paired", height=height)[0]
    unpaired = VitonHD(vitonhd_sample, mode="unpaired", height=height)[0]
    size = 1024 if height is None else height
    assert (unpaired.person_name, unpaired.cloth_name) == (PERSON, OTHER_CLOTH) and not unpaired.paired
    assert unpaired.cloth.shape == (size, size * 3 // 4, 3)
    np.testing.assert_array_equal(unpaired.person, paired.person)
    np.testing.assert_array_equal(unpaired.pose, paired.pose)
    assert np.abs(unpaired.cloth.astype(int) - paired.cloth.astype(int)).mean() > 20  # a different garment


def test_iteration_and_indexing(vitonhd_sample):
    dataset = VitonHD(vitonhd_sample, mode="unpaired", height=128)
    samples = list(dataset)
    assert [s.cloth_name for s in samples] == [OTHER_CLOTH]
    np.testing.assert_array_equal(dataset[-1].person, samples[0].person)
    with pytest.raises(IndexError):
        dataset[1]


@pytest.mark.parametrize("kwargs", [{"split": "val"}, {"mode": "both"}, {"height": 250}, {"height": 0}])
def test_bad_arguments(vitonhd_sample, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        VitonHD(vitonhd_sample, **kwargs)


# --- other resolutions and the optional landmark files ------------------------------------------------------------


@pytest.fixture
def root(vitonhd_sample, tmp_path) -> Path:
    """A writable copy of the genuine sample."""
    return Path(shutil.copytree(vitonhd_sample, tmp_path / "vitonhd"))


def rewrite_images(root: Path, height: int, width: int) -> None:
    """Store every image of the copy at another size (JPEG photos, PNG labels)."""
    test = root / "test"
    for folder in ("image", "cloth"):
        for path in (test / folder).iterdir():
            path.write_bytes(encode_jpeg(resize_rgb(decode_rgb(path.read_bytes(), source=""), height, width)))
    for path in (test / "cloth-mask").iterdir():
        mask = decode_gray(path.read_bytes(), source="") >= 128
        path.write_bytes(encode_png(resize_mask(mask, height, width)))
    parse_path = test / "image-parse-v3" / "00006_00.png"
    parse = resize_labels(decode_labels(parse_path.read_bytes(), source=""), height, width)
    parse_path.write_bytes(encode_palette_png(parse, CIHP_PALETTE))


def test_any_stored_resolution_at_3_to_4(root):
    rewrite_images(root, 512, 384)
    sample = VitonHD(root)[0]
    assert sample.person.shape == (512, 384, 3)
    np.testing.assert_allclose(sample.pose, raw_pose(root))  # stored as is: the reader does not rescale it
    assert VitonHD(root, height=1024)[0].person.shape == (1024, 768, 3)


def test_stored_resolution_not_3_to_4(root):
    rewrite_images(root, 500, 400)
    with pytest.raises(DatasetError, match=re.escape(str(root / "test" / "image" / PERSON)) + ".*3:4"):
        VitonHD(root)[0]


def landmark_doc(width: int, height: int, seed: int, **extra) -> dict:
    points = np.random.default_rng(seed).uniform(0, 1, size=(NUM_GARMENT_NODES, 2)) * [width, height]
    return {"width": width, "height": height, "sleeve": "long", "keypoints": points.round(2).tolist(), **extra}


def write_landmarks(root: Path) -> dict[str, dict]:
    test = root / "test"
    docs = {
        "cloth-landmark-json/00006_00.json": landmark_doc(768, 1024, 0),
        "cloth-landmark-json/06396_00.json": landmark_doc(768, 1024, 1, sleeve="short"),
        "image-landmark-json/00006_00.json": landmark_doc(384, 512, 2, tags=["crossed_arms"]),  # other scale
    }
    for rel, doc in docs.items():
        (test / rel).parent.mkdir(exist_ok=True)
        (test / rel).write_text(json.dumps(doc))
    return docs


def test_landmarks_rescaled_paired_and_unpaired(root):
    docs = write_landmarks(root)

    def pixels(doc: dict, height: int) -> np.ndarray:
        return np.array(doc["keypoints"]) * [height * 3 / 4 / doc["width"], height / doc["height"]]

    paired = VitonHD(root, mode="paired", height=256)[0]
    np.testing.assert_allclose(paired.cloth_keypoints, pixels(docs["cloth-landmark-json/00006_00.json"], 256),
                               rtol=1e-5)
    np.testing.assert_allclose(paired.worn_keypoints, pixels(docs["image-landmark-json/00006_00.json"], 256),
                               rtol=1e-5)
    assert paired.cloth_keypoints.dtype == np.float32 and paired.sleeve == "long"
    assert paired.tags == ("crossed_arms",)

    unpaired = VitonHD(root, mode="unpaired")[0]
    np.testing.assert_allclose(unpaired.cloth_keypoints, pixels(docs["cloth-landmark-json/06396_00.json"], 1024),
                               rtol=1e-5)
    assert unpaired.worn_keypoints is None  # the person wears a different garment from the sample's
    assert unpaired.sleeve == "short" and unpaired.tags == ("crossed_arms",)


# --- the same root through a real S3 server ------------------------------------------------------------------------


def upload(local: Path, uri: str) -> None:
    storage = open_root(uri)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        storage.write_bytes(path.relative_to(local).as_posix(), path.read_bytes())


@pytest.mark.parametrize("mode", ["paired", "unpaired"])
def test_sample_reads_identically_from_s3(vitonhd_sample, s3_server, mode):
    uri = s3_server.bucket(f"vitonhd-{mode}") + "/datasets/vitonhd"
    upload(vitonhd_sample, uri)
    for height in (None, 256):
        local, remote = VitonHD(vitonhd_sample, mode=mode, height=height)[0], VitonHD(uri, mode=mode, height=height)
        assert remote.pairs == VitonHD(vitonhd_sample, mode=mode).pairs
        remote_sample = pickle.loads(pickle.dumps(remote))[0]  # as a Ray or data-loader worker receives it
        for field in ("person", "cloth", "cloth_mask", "parse", "pose"):
            np.testing.assert_array_equal(getattr(remote_sample, field), getattr(local, field))


def test_bad_s3_object_is_named_by_its_uri(vitonhd_sample, s3_server):
    uri = s3_server.bucket("vitonhd-broken") + "/root"
    upload(vitonhd_sample, uri)
    open_root(uri).write_bytes("test/image/00006_00.jpg", b"\xff\xd8\xff\xe0 not really a JPEG")
    with pytest.raises(DatasetError, match=re.escape(f"{uri}/test/image/{PERSON}")):
        VitonHD(uri)[0]


# --- storage ------------------------------------------------------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def storage_root(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue("s3_server").bucket("storage-api") + f"/{tmp_path.name}"


def test_storage_round_trip(storage_root):
    storage = open_root(storage_root)
    assert storage.list() == [] and not storage.exists("a/b.bin")
    storage.write_bytes("a/b.bin", b"first")
    storage.write_bytes("a/b.bin", b"second")
    storage.write_bytes("a/c/d.txt", b"")
    storage.write_bytes("z.txt", b"z")
    assert storage.read_bytes("a/b.bin") == b"second" and storage.read_bytes("a/c/d.txt") == b""
    assert storage.exists("a/b.bin") and not storage.exists("a")  # folders are not files
    assert storage.list() == ["a/b.bin", "a/c/d.txt", "z.txt"]
    assert storage.list("a") == ["a/b.bin", "a/c/d.txt"] and storage.list("a/c") == ["a/c/d.txt"]
    assert storage.list("missing") == []
    assert storage.uri("a/b.bin") == storage_root.rstrip("/") + "/a/b.bin"
    with pytest.raises(FileNotFoundError, match=re.escape(storage.uri("a/nope.bin"))):
        storage.read_bytes("a/nope.bin")
    reopened = pickle.loads(pickle.dumps(storage))
    assert reopened.read_bytes("z.txt") == b"z"


def test_local_write_is_atomic_and_leaves_no_temporary_file(tmp_path):
    storage = LocalStorage(tmp_path)
    storage.write_bytes("x/y.bin", b"1" * 1000)
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["y.bin"]


@pytest.mark.parametrize("bad", BAD_PATHS)
def test_storage_rejects_bad_paths(storage_root, bad):
    storage = open_root(storage_root)
    for call in (storage.read_bytes, storage.exists, lambda rel: storage.write_bytes(rel, b"x")):
        with pytest.raises(StoragePathError, match="storage path"):
            call(bad)


@pytest.mark.parametrize("uri", ["s3://", "s3:///prefix", "s3://bucket/a/../b", "gs://bucket/x", "file:///tmp"])
def test_open_root_rejects_bad_roots(uri):
    with pytest.raises(StoragePathError, match=re.escape(uri)):
        open_root(uri)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab./\\\x00:~ "), max_size=12))
def test_accepted_paths_stay_inside_the_root(tmp_path_factory, rel):
    storage = LocalStorage(tmp_path_factory.getbasetemp() / "root")
    try:
        validate_rel(rel)
    except StoragePathError:
        with pytest.raises(StoragePathError):
            storage.exists(rel)
        return
    path = Path(storage.uri(rel))
    assert path.resolve().is_relative_to(storage.root.resolve()) and path != storage.root


# --- broken copies of the dataset -----------------------------------------------------------------------------------


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def shrink_cloth(path: Path) -> None:
    path.write_bytes(encode_jpeg(resize_rgb(decode_rgb(path.read_bytes(), source=""), 512, 384)))


def label_25(path: Path) -> None:
    parse = np.array(Image.open(path))
    parse[0, 0] = 25
    path.write_bytes(encode_palette_png(parse, CIHP_PALETTE + ((9, 9, 9),) * 6))


def write(text: str):
    return lambda path: path.write_text(text)


# (what to break, how, which file the error must name, a phrase of the problem)
BROKEN_ITEMS = [
    ("test/image-parse-v3/00006_00.png", Path.unlink, "test/image-parse-v3/00006_00.png", "missing"),
    ("test/cloth-mask/00006_00.jpg", Path.unlink, "test/cloth-mask/00006_00.jpg", "missing"),
    ("test/openpose_json/00006_00_keypoints.json", Path.unlink, "test/openpose_json/00006_00_keypoints.json",
     "missing"),
    ("test/image/00006_00.jpg", truncate, "test/image/00006_00.jpg", "truncated"),
    ("test/cloth/00006_00.jpg", write("<html>not an image</html>"), "test/cloth/00006_00.jpg", "not an image"),
    ("test/image-parse-v3/00006_00.png", truncate, "test/image-parse-v3/00006_00.png", "truncated|corrupt"),
    ("test/cloth/00006_00.jpg", shrink_cloth, "test/cloth/00006_00.jpg", "differs"),
    ("test/image-parse-v3/00006_00.png", label_25, "test/image-parse-v3/00006_00.png", "label 25"),
    ("test/openpose_json/00006_00_keypoints.json", write('{"people": [{"pose_keypoints_2d": [1, 2'),
     "test/openpose_json/00006_00_keypoints.json", "not valid JSON"),
    ("test/openpose_json/00006_00_keypoints.json", write('{"people": []}'),
     "test/openpose_json/00006_00_keypoints.json", "no person"),
    ("test/cloth-landmark-json/00006_00.json", write('{"width": 768,'), "test/cloth-landmark-json/00006_00.json",
     "not valid JSON"),
    ("test/image-landmark-json/00006_00.json", write(json.dumps({**landmark_doc(768, 1024, 0), "keypoints": []})),
     "test/image-landmark-json/00006_00.json", "keypoints"),
    ("test/cloth-landmark-json/00006_00.json", write(json.dumps(landmark_doc(768, 1024, 0, sleeve="cape"))),
     "test/cloth-landmark-json/00006_00.json", "sleeve"),
]


@pytest.mark.parametrize(("target", "damage", "named", "problem"), BROKEN_ITEMS,
                         ids=[f"{t.split('/')[1]}-{p.split('|')[0]}" for t, _, _, p in BROKEN_ITEMS])
def test_broken_item_names_the_file(root, target, damage, named, problem):
    (root / target).parent.mkdir(exist_ok=True)
    if not (root / target).exists():
        (root / target).write_text("{}")
    damage(root / target)
    dataset = VitonHD(root, mode="paired")
    with pytest.raises(DatasetError, match=f"{re.escape(str(root / named))}.*({problem})"):
        dataset[0]


BROKEN_PAIRS = [
    ("00006_00.jpg 06396_00.jpg\n00007_00.jpg 06396_00.jpg\n", "unpaired", "line 2.*test/image/00007_00.jpg"),
    ("00006_00.jpg 01234_00.jpg\n", "unpaired", "line 1.*test/cloth/01234_00.jpg"),
    ("00006_00.jpg\n", "paired", "line 1: expected 2 columns"),
    ("\n00006_00.jpg 06396_00.jpg extra\n", "unpaired", "line 2: expected 2 columns"),
    ("../image/00006_00.jpg 06396_00.jpg\n", "unpaired", "line 1: bad file name"),
    ("\n\n", "paired", "no pairs"),
]


@pytest.mark.parametrize(("pairs", "mode", "problem"), BROKEN_PAIRS)
def test_broken_pairs_file_names_the_line(root, pairs, mode, problem):
    (root / "test_pairs.txt").write_text(pairs)
    with pytest.raises(DatasetError, match=re.escape(str(root / "test_pairs.txt")) + f".*{problem}"):
        VitonHD(root, mode=mode)


def test_missing_pairs_file(root):
    (root / "test_pairs.txt").unlink()
    with pytest.raises(DatasetError, match=re.escape(str(root / "test_pairs.txt")) + ": missing"):
        VitonHD(root)


# --- images --------------------------------------------------------------------------------------------------------


def save(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def halves(height: int, width: int) -> np.ndarray:
    """Left half red, right half blue."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, : width // 2] = (255, 0, 0)
    rgb[:, width // 2:] = (0, 0, 255)
    return rgb


@pytest.mark.parametrize(("orientation", "expected"), [
    (1, lambda a: a), (3, lambda a: np.rot90(a, 2)), (6, lambda a: np.rot90(a, -1)), (8, lambda a: np.rot90(a, 1)),
])
def test_exif_orientation_applied(orientation, expected):
    stored = halves(32, 48)
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode_rgb(save(Image.fromarray(stored), "JPEG", quality=95, exif=exif), source="phone.jpg")
    want = expected(stored)
    assert decoded.shape == want.shape
    assert np.abs(decoded.astype(int) - want.astype(int)).mean() < 8


def test_rgba_composited_on_white():
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., :3] = (200, 0, 0)
    rgba[:, :2, 3] = 0  # transparent -> white
    rgba[:, 2:4, 3] = 255  # opaque -> the colour
    rgba[:, 4:, 3] = 128  # half -> halfway to white
    decoded = decode_rgb(save(Image.fromarray(rgba, "RGBA"), "PNG"), source="cutout.png")
    np.testing.assert_array_equal(decoded[:, :2], 255)
    np.testing.assert_array_equal(decoded[:, 2:4], np.broadcast_to([200, 0, 0], (4, 2, 3)))
    np.testing.assert_allclose(decoded[:, 4:], np.broadcast_to([227.5, 127.5, 127.5], (4, 2, 3)), atol=1.5)


def test_cmyk_jpeg_to_rgb():
    cmyk = np.zeros((16, 16, 4), np.uint8)
    cmyk[:, :8] = (0, 255, 255, 0)  # red
    cmyk[:, 8:] = (255, 255, 0, 0)  # blue
    decoded = decode_rgb(save(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=95), source="print.jpg")
    assert decoded.shape == (16, 16, 3)
    assert np.abs(decoded[:, :6].astype(int) - [255, 0, 0]).max() < 12
    assert np.abs(decoded[:, 10:].astype(int) - [0, 0, 255]).max() < 12


def test_16_bit_grayscale_png_scaled_not_clipped():
    values = np.array([[0, 257 * 64, 32896, 65535]], np.uint16)
    data = save(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    np.testing.assert_array_equal(decode_gray(data, source="scan.png"), [[0, 64, 128, 255]])
    np.testing.assert_array_equal(decode_rgb(data, source="scan.png")[0, :, 0], [0, 64, 128, 255])


def test_grayscale_and_palette_to_rgb():
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    decoded = decode_rgb(save(Image.fromarray(gray, "L"), "PNG"), source="gray.png")
    np.testing.assert_array_equal(decoded, np.repeat(gray[..., None], 3, axis=2))
    labels = np.arange(20, dtype=np.uint8).reshape(4, 5)
    decoded = decode_rgb(encode_palette_png(labels, CIHP_PALETTE), source="parse.png")
    np.testing.assert_array_equal(decoded, np.array(CIHP_PALETTE, np.uint8)[labels])


def test_labels_round_trip_and_refusals():
    labels = np.random.default_rng(0).integers(0, 20, size=(30, 20), dtype=np.uint8)
    np.testing.assert_array_equal(decode_labels(encode_palette_png(labels, CIHP_PALETTE), source="p.png"), labels)
    np.testing.assert_array_equal(decode_labels(encode_png(labels), source="l.png"), labels)
    with pytest.raises(ImageError, match="rgb.png: .*mode RGB"):
        decode_labels(encode_png(np.zeros((4, 4, 3), np.uint8)), source="rgb.png")
    with pytest.raises(ImageError, match="l.jpg: .*lossless"):
        decode_labels(save(Image.fromarray(labels, "L"), "JPEG"), source="l.jpg")
    with pytest.raises(ImageError, match="labels: value 19 has no palette entry"):
        encode_palette_png(labels, CIHP_PALETTE[:10])


def test_encode_round_trips():
    rgb = halves(16, 24)
    jpeg = encode_jpeg(rgb)
    assert jpeg[:2] == b"\xff\xd8" and np.abs(decode_rgb(jpeg, source="x").astype(int) - rgb).mean() < 8
    np.testing.assert_array_equal(decode_rgb(encode_png(rgb), source="x"), rgb)
    mask = np.eye(5, dtype=bool)
    np.testing.assert_array_equal(decode_gray(encode_png(mask), source="x"), mask * 255)
    with pytest.raises(ImageError, match=r"rgb: expected shape \(H, W, 3\)"):
        encode_jpeg(np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageError, match="dtype uint8"):
        encode_png(np.zeros((4, 4), np.float32))


def test_resizers():
    labels = np.random.default_rng(1).integers(0, 20, size=(40, 30), dtype=np.uint8)
    for height, width in ((20, 15), (80, 60), (7, 5)):
        resized = resize_labels(labels, height, width)
        assert resized.shape == (height, width) and set(np.unique(resized)) <= set(np.unique(labels))
    mask = labels > 9
    assert resize_mask(mask, 10, 30).dtype == bool
    np.testing.assert_array_equal(resize_mask(mask, 80, 60), np.repeat(np.repeat(mask, 2, 0), 2, 1))
    rgb = np.random.default_rng(2).integers(0, 256, size=(40, 30, 3), dtype=np.uint8)
    area = rgb.reshape(20, 2, 15, 2, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(resize_rgb(rgb, 20, 15).astype(np.float64) - area).max() <= 0.5 + 1e-9
    with pytest.raises(ImageError, match="mask"):
        resize_mask(labels, 10, 10)


def test_decompression_bomb_refused():
    bomb = png_header_only(20000, 20000)
    assert len(bomb) < 100
    with pytest.raises(ImageError, match="bomb.png: .*(pixels|decompression bomb)"):
        decode_rgb(bomb, source="bomb.png")


def test_pixel_limit_checked_before_decoding():
    """A 5000x5000 header with no pixel data: the limit refuses it from the header; without the limit Pillow
    gets as far as decoding and finds the data truncated."""
    header_only = png_header_only(5000, 5000)
    with pytest.raises(ImageError, match="big.png: 5000x5000 = 25000000 pixels exceeds the limit of 1000000"):
        decode_rgb(header_only, source="big.png", max_pixels=1_000_000)
    with pytest.raises(ImageError, match="big.png: (truncated|corrupt)"):
        decode_rgb(header_only, source="big.png")


def png_with_short_ihdr() -> bytes:
    """A PNG whose IHDR chunk declares 5 bytes instead of 13: Pillow raises ValueError here, not OSError."""
    png = encode_png(np.zeros((8, 8, 3), np.uint8))
    return png[:11] + b"\x05" + png[12:]


@pytest.mark.parametrize(("data", "kwargs", "problem"), [
    (b"", {}, "empty"),
    (b"GIF89a", {}, "not a readable image|not an image|truncated|corrupt"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n", {}, "not an image"),  # EPS would run Ghostscript: never opened
    (b"\x00" * 100, {}, "not an image"),
    (b"x" * 100, {"max_bytes": 99}, "100 bytes exceeds the limit of 99"),
    (png_with_short_ihdr(), {}, r"not a readable image \(ValueError"),
])
def test_unusable_bytes(data, kwargs, problem):
    with pytest.raises(ImageError, match=f"upload: ({problem})"):
        decode_rgb(data, source="upload", **kwargs)


def test_truncated_jpeg():
    data = encode_jpeg(np.random.default_rng(3).integers(0, 256, size=(64, 64, 3), dtype=np.uint8))
    with pytest.raises(ImageError, match="cut.jpg: truncated"):
        decode_rgb(data[: len(data) * 2 // 3], source="cut.jpg")


SEED_IMAGES = [
    save(Image.fromarray(halves(8, 8)), "PNG"), save(Image.fromarray(halves(8, 8)), "JPEG"),
    save(Image.fromarray(halves(8, 8)), "GIF"), save(Image.fromarray(halves(8, 8)), "BMP"),
    save(Image.fromarray(halves(8, 8)), "TIFF"), save(Image.fromarray(halves(8, 8)), "WEBP"),
    save(Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 999), "PNG"),
    save(Image.fromarray(np.zeros((8, 8, 4), np.uint8), "CMYK"), "JPEG"),
]


@st.composite
def damaged_images(draw) -> bytes:
    """A small valid image of some format with a few bytes overwritten and possibly cut short."""
    data = bytearray(draw(st.sampled_from(SEED_IMAGES)))
    for _ in range(draw(st.integers(0, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the corrupt TIFF tags it skips
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # headers of 89M..179M pixels
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=256), damaged_images()))
def test_decoders_raise_only_image_error(data):
    for decode in (decode_rgb, decode_gray, decode_labels):
        try:
            array = decode(data, source="fuzz", max_pixels=1_000_000)
        except ImageError as exc:
            assert str(exc).startswith("fuzz: ")
        else:
            assert array.dtype == np.uint8 and array.ndim == (3 if decode is decode_rgb else 2)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12)
keypoint_lists = st.lists(st.one_of(st.integers(), st.floats(), st.none(), st.text(max_size=2),
                                    st.lists(st.floats(), max_size=3)), min_size=74, max_size=76)
pose_documents = st.one_of(
    json_values, keypoint_lists,
    st.builds(lambda keypoints: {"people": [{"pose_keypoints_2d": keypoints}]}, keypoint_lists | json_values),
    st.builds(lambda people: {"people": people}, json_values))


@settings(max_examples=200, deadline=None)
@given(st.one_of(pose_documents.map(json.dumps), st.text(max_size=40)))
def test_parse_openpose_raises_only_pose_error(text):
    try:
        joints = parse_openpose(text, source="fuzz.json")
    except PoseError as exc:
        assert str(exc).startswith("fuzz.json: ")
    else:
        assert joints.shape == (25, 3) and joints.dtype == np.float32 and np.isfinite(joints).all()
        assert (joints >= 0).all()


@pytest.mark.parametrize("text", [
    json.dumps([10 ** 400] * 75),  # integers no float can hold
    "[" * 10_000 + "]" * 10_000,  # nesting deeper than the JSON decoder's recursion limit
], ids=["huge-integer", "deep-nesting"])
def test_parse_openpose_hostile_json(text):
    with pytest.raises(PoseError, match="fuzz.json: "):
        parse_openpose(text, source="fuzz.json")
