"""Preprocessing of arbitrary photos: built-in pose (BlazePose -> BODY_25), human parsers (ONNX, synthetic), the one
``kgi.preprocess.Preprocessor`` with and without them, and its users: the ``Preprocess`` deployment, ``kgi tryon``
and the service over HTTP with person and garment photos only."""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import os
import pickle
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace

import cv2
import httpx
import numpy as np
import pytest
import torch

from deployments.config import PreprocessArgs
from deployments.errors import RequestError, error_response
from deployments.preprocess import Preprocess
from kgi.cli import CommandError
from kgi.commands import prep, tryon
from kgi.data.images import ImageError, decode_gray, decode_labels, decode_rgb, encode_palette_png, encode_png
from kgi.data.labels import CIHP_LABELS, CIHP_PALETTE, NUM_CIHP, to_parse13
from kgi.data.pose import PoseError, openpose_json, parse_openpose
from kgi.data.sample import TryOnSample
from kgi.data.synth import make_pair
from kgi.graphs import POSE_BODY25_INDEX
from kgi.models.parse import iou_counts
from kgi.parsing import (
    DEFAULT_SYNTH_PARSER,
    OnnxParser,
    ParserUNet,
    ParserUnavailable,
    ParsingError,
    SynthParser,
    fit_image,
    make_parser,
    to_cihp,
)
from kgi.pose_estimation import (
    MediaPipePose,
    PoseEstimationError,
    PoseEstimatorUnavailable,
    SubprocessPose,
    body25_from_blazepose,
    check_rgb,
    make_pose_estimator,
)
from kgi.preprocess import (
    InputError,
    MissingInputError,
    Preprocessor,
    Uploads,
    cloth_mask_from_photo,
    fit_garment,
    fit_person,
    person_box,
)

from serving_support import REPO, keep_only_version, running_service

HAS_MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None
POSE_PYTHON = os.environ.get("KGI_POSE_PYTHON")  # an interpreter whose environment has mediapipe
# BlazePose landmark numbers (mediapipe's PoseLandmark), typed here from its documentation.
BLAZEPOSE = {"nose": 0, "left_eye": 2, "right_eye": 5, "left_ear": 7, "right_ear": 8, "left_shoulder": 11,
             "right_shoulder": 12, "left_elbow": 13, "right_elbow": 14, "left_wrist": 15, "right_wrist": 16,
             "left_hip": 23, "right_hip": 24, "left_knee": 25, "right_knee": 26}
# OpenPose BODY_25 joint numbers.
BODY25 = {"nose": 0, "neck": 1, "right_shoulder": 2, "right_elbow": 3, "right_wrist": 4, "left_shoulder": 5,
          "left_elbow": 6, "left_wrist": 7, "mid_hip": 8, "right_hip": 9, "right_knee": 10, "left_hip": 12,
          "left_knee": 13, "right_eye": 15, "left_eye": 16, "right_ear": 17, "left_ear": 18}


# --- pose ----------------------------------------------------------------------------------------------------

def random_landmarks(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(0.05, 0.95, (33, 2)), rng.uniform(0.6, 1.0, (33, 1))], axis=1)


def test_blazepose_landmarks_land_on_the_body25_joints_of_the_same_name():
    landmarks = random_landmarks(0)
    body25 = body25_from_blazepose(landmarks, width=300, height=400)
    assert body25.shape == (25, 3) and body25.dtype == np.float32
    for name, source in BLAZEPOSE.items():
        np.testing.assert_allclose(body25[BODY25[name], :2], landmarks[source, :2] * [300, 400], rtol=1e-5)
        assert body25[BODY25[name], 2] == pytest.approx(landmarks[source, 2])
    shoulders = landmarks[[BLAZEPOSE["left_shoulder"], BLAZEPOSE["right_shoulder"]], :2].mean(0) * [300, 400]
    hips = landmarks[[BLAZEPOSE["left_hip"], BLAZEPOSE["right_hip"]], :2].mean(0) * [300, 400]
    np.testing.assert_allclose(body25[BODY25["neck"], :2], shoulders, rtol=1e-5)
    np.testing.assert_allclose(body25[BODY25["mid_hip"], :2], hips, rtol=1e-5)
    assert (body25[[20, 23]] == 0).all()  # small toes: BlazePose has none
    assert (body25[list(POSE_BODY25_INDEX), 2] > 0).all()  # every pose-graph joint


def test_hidden_or_outside_landmarks_are_undetected_and_so_is_their_midpoint():
    landmarks = random_landmarks(1)
    landmarks[BLAZEPOSE["left_shoulder"], 2] = 0.2  # occluded
    landmarks[BLAZEPOSE["right_wrist"], 0] = 1.3  # outside the photo
    body25 = body25_from_blazepose(landmarks, width=300, height=400, min_visibility=0.5)
    for joint in ("left_shoulder", "right_wrist", "neck"):
        assert (body25[BODY25[joint]] == 0).all(), joint
    assert body25[BODY25["right_shoulder"], 2] > 0
    # An OpenPose file written from it reads back as the same pose.
    np.testing.assert_allclose(parse_openpose(openpose_json(body25)), body25, atol=1e-3)


def test_malformed_landmarks_and_images_are_refused():
    with pytest.raises(PoseEstimationError, match="landmarks"):
        body25_from_blazepose(np.zeros((17, 3)), 10, 10)
    with pytest.raises(PoseEstimationError, match="uint8"):
        check_rgb(np.zeros((40, 30, 3), np.float32))
    with pytest.raises(PoseEstimationError, match="too small"):
        check_rgb(np.zeros((8, 30, 3), np.uint8))


def genuine_person(root):
    person = decode_rgb((root / "test/image/00006_00.jpg").read_bytes(), source="person")
    openpose = parse_openpose((root / "test/openpose_json/00006_00_keypoints.json").read_text())
    return person, openpose


def assert_close_to_openpose(estimated: np.ndarray, openpose: np.ndarray, height: int) -> None:
    both = (estimated[:, 2] > 0) & (openpose[:, 2] > 0.1)
    assert both[list(POSE_BODY25_INDEX)].sum() >= 8
    distance = np.linalg.norm(estimated[both, :2] - openpose[both, :2], axis=1).mean() / height
    assert distance < 0.04  # measured 0.023 of the height on this photo


@pytest.mark.skipif(not HAS_MEDIAPIPE, reason="mediapipe is not importable here (it cannot share an environment "
                                              "with Ray: see kgi.pose_estimation); set KGI_POSE_PYTHON instead")
def test_mediapipe_pose_agrees_with_openpose_on_the_genuine_photo(vitonhd_sample):
    person, openpose = genuine_person(vitonhd_sample)
    estimator = MediaPipePose()
    assert_close_to_openpose(estimator.estimate(person), openpose, person.shape[0])
    with pytest.raises(PoseEstimationError, match="no person"):
        estimator.estimate(np.full((200, 150, 3), 255, np.uint8))


@pytest.mark.skipif(POSE_PYTHON is None, reason="KGI_POSE_PYTHON (an interpreter with mediapipe) is not set")
def test_subprocess_pose_agrees_with_openpose_on_the_genuine_photo(vitonhd_sample):
    person, openpose = genuine_person(vitonhd_sample)
    estimator = SubprocessPose(POSE_PYTHON)
    try:
        assert_close_to_openpose(estimator.estimate(person), openpose, person.shape[0])
        with pytest.raises(PoseEstimationError, match="no person"):
            estimator.estimate(np.full((200, 150, 3), 255, np.uint8))
        assert estimator.estimate(person)[1, 2] > 0  # the worker still answers after an error
        assert estimator.cpu_seconds() > 0  # what it used (kgi bench parse reports it per call)
    finally:
        estimator.close()
    assert estimator.cpu_seconds() is None  # the worker has gone


@pytest.mark.skipif(HAS_MEDIAPIPE, reason="this interpreter has mediapipe")
def test_without_mediapipe_the_estimators_say_what_to_install():
    with pytest.raises(PoseEstimatorUnavailable, match="mediapipe"):
        MediaPipePose()
    with pytest.raises(PoseEstimatorUnavailable, match="mediapipe"):  # a real worker process that lacks it
        SubprocessPose(sys.executable)
    with pytest.raises(PoseEstimatorUnavailable, match="cannot start"):
        SubprocessPose("/nonexistent/python")


def test_a_pose_worker_that_dies_says_why(tmp_path):
    """A worker environment that dies on start (a broken install): its exit code and the last thing it wrote on
    standard error are in the error, not lost."""
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'ImportError: libGL.so.1: cannot open shared object file' >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(PoseEstimatorUnavailable, match=r"code 3\): ImportError: libGL.so.1"):
        SubprocessPose(broken)


# --- label sets ----------------------------------------------------------------------------------------------

# (label set, its label number, the CIHP label it must become), from the datasets' published label orders.
LABEL_FACTS = [
    ("lip", 5, "upper-clothes"), ("lip", 10, "dress"), ("lip", 13, "face"), ("lip", 14, "left-arm"),
    ("lip", 15, "right-arm"), ("lip", 12, "skirt"), ("lip", 19, "right-shoe"),
    ("atr", 3, "sunglasses"), ("atr", 4, "upper-clothes"), ("atr", 5, "skirt"), ("atr", 6, "pants"),
    ("atr", 7, "dress"), ("atr", 8, "pants"), ("atr", 9, "left-shoe"), ("atr", 11, "face"),
    ("atr", 12, "left-leg"), ("atr", 14, "left-arm"), ("atr", 15, "right-arm"), ("atr", 16, "background"),
    ("atr", 17, "scarf"),
]


@pytest.mark.parametrize("label_set, label, cihp_name", LABEL_FACTS)
def test_label_sets_map_to_the_cihp_label_of_the_same_body_part(label_set, label, cihp_name):
    assert CIHP_LABELS[int(to_cihp(np.array([[label]]), label_set)[0, 0])] == cihp_name


def test_cihp_maps_to_itself_and_out_of_range_labels_are_refused():
    labels = np.arange(20, dtype=np.uint8).reshape(4, 5)
    np.testing.assert_array_equal(to_cihp(labels, "cihp"), labels)
    with pytest.raises(ParsingError, match="atr labels are 0..17"):
        to_cihp(np.array([[18]]), "atr")
    with pytest.raises(ValueError, match="label_set"):
        to_cihp(labels, "pascal")


# --- ONNX parser -----------------------------------------------------------------------------------------------

# Where each label set keeps upper clothes, pants and face (their published orders).
COLOUR_LABELS = {"cihp": (20, 5, 9, 13), "lip": (20, 5, 9, 13), "atr": (18, 4, 6, 11)}


class ColourParser(torch.nn.Module):
    """A stand-in parsing network: red pixels are upper clothes, green pants, blue face, dark background.

    A 1x1 convolution scores the labels from the colour, then 2x average pooling halves the output's resolution
    (real parsers answer at a lower resolution too).
    """

    def __init__(self, num_labels: int, upper: int, pants: int, face: int):
        super().__init__()
        self.score = torch.nn.Conv2d(3, num_labels, 1)
        with torch.no_grad():
            self.score.weight.zero_()
            self.score.bias.fill_(-10.0)
            self.score.bias[0] = 0.5
            for label, channel in ((upper, 0), (pants, 1), (face, 2)):
                self.score.weight[label, :, 0, 0] = -1.0
                self.score.weight[label, channel, 0, 0] = 1.0
                self.score.bias[label] = 0.0

    def forward(self, x):
        return torch.nn.functional.avg_pool2d(self.score(x), 2)


def export_colour_parser(path, label_set: str, size=(64, 64)):
    model = ColourParser(*COLOUR_LABELS[label_set]).eval()
    torch.onnx.export(model, torch.zeros(1, 3, *size), str(path), input_names=["image"],
                      output_names=["logits"], dynamo=False)
    return path


def colour_person() -> tuple[np.ndarray, np.ndarray]:
    """A 120x90 photo of colour blocks on black and the CIHP labels a correct parser gives it."""
    rgb = np.zeros((120, 90, 3), np.uint8)
    expected = np.zeros((120, 90), np.uint8)
    for (rows, cols), colour, label in (((slice(22, 58), slice(15, 75)), (255, 0, 0), 5),
                                        ((slice(64, 112), slice(25, 65)), (0, 255, 0), 9),
                                        ((slice(0, 18), slice(30, 60)), (0, 0, 255), 13)):
        rgb[rows, cols] = colour
        expected[rows, cols] = label
    return rgb, expected


@pytest.fixture
def onnx_tools():
    pytest.importorskip("onnxruntime", reason="onnxruntime (kgi-platform[parse]) is not installed")
    pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package")


@pytest.mark.parametrize("label_set", ["cihp", "lip", "atr"])
def test_onnx_parser_maps_its_labels_to_cihp_in_photo_geometry(tmp_path, onnx_tools, label_set):
    path = export_colour_parser(tmp_path / f"{label_set}.onnx", label_set)
    parser = OnnxParser(path, label_set, mean=(0, 0, 0), std=(1, 1, 1))
    assert parser.input_size == (64, 64)  # read from the model
    rgb, expected = colour_person()
    labels = parser.parse(rgb)
    assert labels.shape == rgb.shape[:2] and labels.dtype == np.uint8
    for label in (0, 5, 9, 13):
        region = expected == label
        iou = (region & (labels == label)).sum() / (region | (labels == label)).sum()
        assert iou > 0.8, (label, iou)  # the photo was fitted into a square 64x64 and answered at 32x32


def test_onnx_parser_channel_order_and_mismatches(tmp_path, onnx_tools):
    path = export_colour_parser(tmp_path / "atr.onnx", "atr")
    rgb, expected = colour_person()
    as_bgr = OnnxParser(path, "atr", mean=(0, 0, 0), std=(1, 1, 1), bgr=True).parse(rgb)
    assert (as_bgr[expected == 5] == 13).mean() > 0.9  # red seen in the blue channel: face
    with pytest.raises(ParsingError, match=r"\(1, 20, h, w\)"):
        OnnxParser(path, "lip", mean=(0, 0, 0), std=(1, 1, 1)).parse(rgb)
    with pytest.raises(ValueError, match="input_size"):
        OnnxParser(path, "atr", (473, 473))
    with pytest.raises(ValueError, match="output"):
        OnnxParser(path, "atr", output="fusion")
    with pytest.raises(ParserUnavailable, match="does not exist"):
        OnnxParser(tmp_path / "missing.onnx", "atr")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ParsingError, match="cannot be loaded"):
        OnnxParser(tmp_path / "junk.onnx", "atr")


# --- synthetic parser ----------------------------------------------------------------------------------------

def test_fit_image_keeps_the_aspect_ratio_and_reports_the_box():
    image, (top, left, inner_h, inner_w) = fit_image(np.full((100, 50, 3), 200, np.uint8), 64, 64)
    assert image.shape == (64, 64, 3) and (top, left, inner_h, inner_w) == (0, 16, 64, 32)
    assert (image[:, left:left + inner_w] == 200).all() and (image[:, :left] == 0).all()


def test_parser_unet_shapes_and_refusals():
    model = ParserUNet(base_channels=4, max_channels=8, levels=2, input_height=32)
    assert model.input_size == (32, 24)
    assert model(torch.rand(2, 3, 32, 24)).shape == (2, 20, 32, 24)
    with pytest.raises(ParsingError, match="multiples of 4"):
        model(torch.rand(1, 3, 30, 24))
    with pytest.raises(ValueError, match="input_height"):
        ParserUNet(levels=4, input_height=100)


def mean_iou13(predicted: np.ndarray, reference: np.ndarray) -> float:
    intersection, union = iou_counts(torch.from_numpy(to_parse13(predicted)), torch.from_numpy(to_parse13(reference)))
    return float((intersection[union > 0] / union[union > 0]).mean())


def test_synth_parser_parses_a_held_out_synthetic_person():
    parser = SynthParser()  # the shipped weights (models/parser/README.md, trained on seed 1000)
    sample = make_pair(seed=3, index=0, height=256)
    labels = parser.parse(sample.person)
    assert labels.shape == (256, 192) and labels.dtype == np.uint8
    assert mean_iou13(labels, sample.parse) > 0.6
    wide = np.pad(sample.person, ((0, 0), (40, 40), (0, 0)), mode="edge")  # not 3:4: fitted, then mapped back
    assert parser.parse(wide).shape == wide.shape[:2]


def test_synth_parser_without_weights_says_how_to_make_them(tmp_path):
    with pytest.raises(ParserUnavailable, match="kgi train synth_parser"):
        SynthParser(tmp_path / "none.safetensors")
    assert DEFAULT_SYNTH_PARSER.name == "synth_parser.safetensors"


# --- choosing the sources ------------------------------------------------------------------------------------

def test_sources_are_built_from_their_names(monkeypatch, tmp_path):
    assert make_pose_estimator("none") is None and make_parser("none") is None
    assert isinstance(make_parser("synthetic"), SynthParser)
    with pytest.raises(ValueError, match="pose source"):
        make_pose_estimator("openpose")
    with pytest.raises(ValueError, match="parser source"):
        make_parser("schp")
    with pytest.raises(ValueError, match="path of the .onnx model"):
        make_parser("onnx")
    with pytest.raises(ParserUnavailable, match="none.safetensors' do not exist"):
        make_parser("synthetic", tmp_path / "none.safetensors")
    monkeypatch.setenv("KGI_POSE_PYTHON", "/nonexistent/python")  # the interpreter comes from the environment
    with pytest.raises(PoseEstimatorUnavailable, match="/nonexistent/python"):
        make_pose_estimator("mediapipe")


@pytest.mark.skipif(HAS_MEDIAPIPE, reason="this interpreter has mediapipe")
def test_mediapipe_source_without_an_environment_says_what_to_set(monkeypatch):
    monkeypatch.delenv("KGI_POSE_PYTHON", raising=False)
    with pytest.raises(PoseEstimatorUnavailable, match="KGI_POSE_PYTHON=/opt/kgi-pose/bin/python"):
        make_pose_estimator("mediapipe")


# --- Preprocessor: the rules ------------------------------------------------------------------------------------

HEIGHT, WIDTH = 256, 192


class GroundTruthPose:
    """A pose estimator that knows the synthetic person's pose (or finds nobody): tests the wiring only."""

    def __init__(self, pose: np.ndarray | None):
        self.pose = pose

    def estimate(self, rgb: np.ndarray) -> np.ndarray:
        if self.pose is None:
            raise PoseEstimationError("no person found in the photo")
        return self.pose


@pytest.fixture(scope="module")
def synthetic_request() -> tuple[TryOnSample, Uploads]:
    sample = make_pair(seed=3, index=1, height=HEIGHT)
    uploads = Uploads(person=encode_png(sample.person), garment=encode_png(sample.cloth),
                      pose=openpose_json(sample.pose).encode(), parse=encode_palette_png(sample.parse, CIHP_PALETTE))
    return sample, uploads


def genuine_uploads(root, **changes) -> Uploads:
    """The genuine pair: person 00006_00 with the striped t-shirt 06396_00, pose and parse included."""
    test = root / "test"
    uploads = Uploads(person=(test / "image" / "00006_00.jpg").read_bytes(),
                      garment=(test / "cloth" / "06396_00.jpg").read_bytes(),
                      pose=(test / "openpose_json" / "00006_00_keypoints.json").read_bytes(),
                      parse=(test / "image-parse-v3" / "00006_00.png").read_bytes())
    return replace(uploads, **changes)


def test_preprocessor_estimates_what_the_request_lacks(synthetic_request):
    sample, uploads = synthetic_request
    given = Preprocessor()(uploads, HEIGHT)
    estimated = Preprocessor(GroundTruthPose(sample.pose), SynthParser())(replace(uploads, pose=None, parse=None),
                                                                           HEIGHT)
    assert estimated.tags == ("estimated-parse", "estimated-pose") and given.tags == ()
    np.testing.assert_allclose(estimated.pose, given.pose, atol=1e-2)
    assert estimated.parse.shape == given.parse.shape and mean_iou13(estimated.parse, given.parse) > 0.6
    np.testing.assert_array_equal(estimated.cloth_mask, given.cloth_mask)


def test_preprocessor_names_the_missing_field(synthetic_request):
    sample, uploads = synthetic_request
    with pytest.raises(MissingInputError) as missing_pose:
        Preprocessor(parser=SynthParser())(replace(uploads, pose=None), HEIGHT)
    assert missing_pose.value.field == "pose" and "OpenPose BODY_25 JSON as 'pose'" in str(missing_pose.value)
    with pytest.raises(MissingInputError) as missing_parse:
        Preprocessor(GroundTruthPose(sample.pose))(replace(uploads, parse=None), HEIGHT)
    assert missing_parse.value.field == "parse" and "CIHP label PNG" in str(missing_parse.value)
    with pytest.raises(InputError) as nobody:
        Preprocessor(GroundTruthPose(None))(replace(uploads, pose=None), HEIGHT)
    assert nobody.value.field == "person" and "'pose'" in str(nobody.value)
    copy = pickle.loads(pickle.dumps(missing_pose.value))  # Ray carries it between processes
    assert type(copy) is MissingInputError and copy.field == "pose" and str(copy) == str(missing_pose.value)


def test_preprocessor_refuses_a_parser_that_breaks_the_protocol(synthetic_request):
    _, uploads = synthetic_request

    class WrongSize:
        def parse(self, rgb):
            return np.zeros((10, 10), np.uint8)

    with pytest.raises(RuntimeError, match="WrongSize.parse returned"):
        Preprocessor(parser=WrongSize())(replace(uploads, parse=None), HEIGHT)


def test_cloth_mask_matches_the_shipped_cloth_mask(vitonhd_sample):
    """Every genuine garment with a mask: white stripes on white (06396_00), long sleeves close to the body
    (00006_00), pale yellow on white (06429_00), prints, lace (measured 0.983-0.996)."""
    ious = {}
    for cloth in sorted([*vitonhd_sample.glob("test/cloth/*.jpg"),
                         *(vitonhd_sample.parent / "vitonhd-extra").glob("test/cloth/*.jpg")]):
        garment = decode_rgb(cloth.read_bytes(), source="garment")
        shipped = decode_gray((cloth.parent.parent / "cloth-mask" / cloth.name).read_bytes(),
                              source="cloth_mask") >= 128
        computed = cloth_mask_from_photo(garment)
        ious[cloth.stem] = (computed & shipped).sum() / (computed | shipped).sum()
    assert len(ious) >= 2 and min(ious.values()) > 0.97, ious


def test_cloth_mask_of_a_white_camisole_cut_out_onto_white():
    """A product cut out onto one flat colour: a white camisole (RGB 230) whose ruffled trim, joining its straps
    to its body, is all but the backdrop's white (243 on 246). The trim stays garment, so the straps do too."""
    photo = np.full((400, 300, 3), 246, np.uint8)
    photo[120:380, 60:240] = 230  # body
    photo[20:110, 70:90] = photo[20:110, 210:230] = 230  # straps
    photo[110:120, 60:240] = 243  # the trim: 5.2 from the backdrop, under the 7 a noisy backdrop needs
    mask = cloth_mask_from_photo(photo)
    assert mask[30:380, 75:85].all() and mask[30:380, 215:225].all()  # the straps down through the trim
    assert not mask[20:105, 100:200].any() and not mask[:, :55].any()  # between the straps, beside the garment
    noisy = photo.copy()
    noisy[:, :40] = np.random.default_rng(0).integers(236, 256, (400, 40, 1), dtype=np.uint8)
    # A backdrop with noise of its own (its frame's) keeps the tolerance of 7: the trim is taken for backdrop,
    # and the straps, cut off, are no part of the garment.
    assert not cloth_mask_from_photo(noisy)[30:100, 75:85].any()


def test_cloth_mask_of_a_white_tee_with_a_dark_print_on_a_dimmer_white():
    """A white tee (RGB 235) with a dark print over a third of it, photographed a little dark: the flat backdrop
    is 226, so the tee's white is 15.6 from it, under the tolerance of 18 a garment that stands out gets. Judged
    pale or not by its pixels past 18 (the print alone), the tee stood out and lost its white body to the
    backdrop; judged by all of it, it is pale and keeps it (04743_00's Minnie tee dimmed to 0.92: refused)."""
    photo = np.full((400, 300, 3), 226, np.uint8)
    photo[60:380, 50:250] = 235  # the tee
    photo[120:240, 70:230] = 40  # the print
    mask = cloth_mask_from_photo(photo)
    assert mask[60:380, 50:250].mean() > 0.99
    assert not mask[:, :45].any() and not mask[:55].any()


def test_cloth_mask_leaves_out_the_gap_between_a_hanging_sleeve_and_the_body_but_not_a_trim_across_it():
    """A navy top whose sleeve hangs beside the body, 6 pixels from it (the closing, 7 at 1024 rows, bridges
    that): the gap, open onto the backdrop below the cuff, is backdrop, not a white wedge of garment. A white
    line across the body, bridged the same way, is a trim: left out, it would part the garment."""
    photo = np.full((1024, 768, 3), 246, np.uint8)
    photo[250:950, 250:520] = 40  # body
    photo[250:700, 150:244] = 40  # the sleeve, hanging down beside it
    photo[250:280, 244:250] = 40  # joined to it at the shoulder
    photo[800:804, 250:520] = 246  # a white trim across the body, below the sleeve
    mask = cloth_mask_from_photo(photo)
    assert not mask[300:690, 245:249].any()
    assert mask[252:948, 252:518].all() and mask[252:698, 152:242].all()  # the trim too


def test_fit_person_crops_photos_to_their_largest_3_4_box_around_the_person():
    height, width = 400, 600  # wider than 3:4: crop to 300 columns
    person = np.zeros((height, width, 3), np.uint8)
    person[:, 400:] = 200
    parse = np.zeros((height, width), np.uint8)
    pose = np.zeros((25, 3), np.float32)
    pose[[1, 2, 5], :] = [[420, 100, 1], [380, 120, 1], [460, 120, 1]]  # the person stands right of centre
    pose[7] = [50, 300, 1]  # a stray detection far left
    cropped, cropped_parse, moved = fit_person(person, parse, pose)
    assert cropped.shape == (400, 300, 3) and cropped_parse.shape == (400, 300)
    left = 420 - 150  # the window is centred on the neck
    np.testing.assert_array_equal(cropped, person[:, left:left + 300])
    np.testing.assert_allclose(moved[[1, 2, 5]], pose[[1, 2, 5]] - [left, 0, 0])
    assert (moved[7] == 0).all()  # fell outside the window: undetected

    pose[1] = 0  # no neck: the median detected joint (x = 380 of 50, 380, 460) is the centre
    _, _, moved = fit_person(person, parse, pose)
    np.testing.assert_allclose(moved[2], pose[2] - [380 - 150, 0, 0])
    assert (moved[0] == 0).all()  # undetected joints stay (0, 0, 0)

    narrow = np.random.default_rng(0).integers(0, 256, (400, 200, 3), dtype=np.uint8)  # narrower than 3:4
    narrow_parse = np.zeros((400, 200), np.uint8)
    narrow_parse[60:300, 50:150] = 5  # the upper body: rows 60-299, centre row 180
    standing = np.zeros((25, 3), np.float32)
    standing[1] = [100, 80, 1]
    cropped, cropped_parse, shifted = fit_person(narrow, narrow_parse, standing)
    top = 180 - 264 // 2  # 264 x 198: the largest 3:4 box, centred on the upper body (and the neck: column 1)
    np.testing.assert_array_equal(cropped, narrow[top:top + 264, 1:199])
    np.testing.assert_array_equal(cropped_parse, narrow_parse[top:top + 264, 1:199])
    np.testing.assert_allclose(shifted[1], [99, 80 - top, 1])
    assert (shifted[0] == 0).all()


def test_a_person_small_in_the_photo_gets_a_box_framing_them_as_viton_hd_does():
    """A full-length shot: the person's head-to-hips is a third of a 3:4 photo. The box frames them as the models
    learnt (head at the top, mid hip at 0.7 of its height), all upper-body joints inside it; a person already
    framed so (VITON-HD: head top at 2%, mid hip at 69%) keeps the whole photo."""
    height, width = 1200, 900
    pose = np.zeros((25, 3), np.float32)
    joints = {0: (450, 330), 1: (450, 380), 2: (400, 385), 5: (500, 385), 3: (385, 470), 6: (515, 470),
              4: (380, 560), 7: (520, 560), 8: (450, 610)}  # nose ... mid hip, the head's top at row 290
    for joint, (x, y) in joints.items():
        pose[joint] = [x, y, 1]
    parse = np.zeros((height, width), np.uint8)
    parse[290:340, 420:480] = 2  # hair
    parse[340:620, 390:510] = 5  # upper clothes
    top, left, box_height, box_width = person_box(parse, pose)
    assert box_height < 0.5 * height and box_height % 4 == 0 and box_width * 4 == box_height * 3
    assert abs((290 - top) / box_height - 0.02) < 0.01 and abs((610 - top) / box_height - 0.70) < 0.01
    inside = (pose[:9, 0] > left) & (pose[:9, 0] < left + box_width) & (pose[:9, 1] > top)
    assert inside[pose[:9, 2] > 0].all()

    viton = np.zeros((1024, 768), np.uint8)
    viton[20:60, 330:430] = 2
    framed = pose.copy()
    framed[:9, :2] = (framed[:9, :2] - [450, 290]) * [1, (707 - 20) / 320] + [384, 20]  # mid hip at row 707
    assert person_box(viton, framed) == (0, 0, 1024, 768)


def test_fit_garment_pads_with_the_background_colour_and_moves_keypoints():
    garment = np.full((100, 200, 3), 240, np.uint8)  # wider than 3:4: pad top and bottom to 267 rows
    garment[40:60, 80:120] = 30
    mask = np.zeros((100, 200), bool)
    mask[40:60, 80:120] = True
    keypoints = np.tile(np.array([[80.0, 40.0]], np.float32), (32, 1))
    padded, padded_mask, moved = fit_garment(garment, mask, keypoints)
    assert padded.shape == (267, 200, 3) and padded_mask.shape == (267, 200)
    top = (267 - 100) // 2
    assert (padded[:top] == 240).all() and padded_mask.sum() == mask.sum()
    np.testing.assert_allclose(moved[0], [80, 40 + top])
    assert padded_mask[40 + top, 80]


@pytest.mark.parametrize("layout", ["wide", "tall"])
def test_extreme_aspect_uploads_keep_their_keypoints_on_the_garment(synthetic_request, layout):
    """A garment photo at the decoders' limit of 4:1 (or 1:4), at 4x the working size, is resized before it is
    padded; its keypoints still land on the garment, where the upload's own geometry puts them."""
    sample, uploads = synthetic_request
    garment = cv2.resize(sample.cloth, None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR)  # (4H, 4W, 3)
    height, width = garment.shape[:2]
    canvas_shape = (height, 4 * height) if layout == "wide" else (4 * width, width)
    top, left = (canvas_shape[0] - height) // 2, (canvas_shape[1] - width) // 2
    canvas = np.empty((*canvas_shape, 3), np.uint8)
    canvas[:] = garment[2, 2]  # the photo's own background colour
    canvas[top:top + height, left:left + width] = garment
    keypoints = sample.cloth_keypoints * 4 + [left, top]
    extreme = replace(uploads, garment=encode_png(canvas), garment_keypoints=json.dumps(keypoints.tolist()).encode())

    result = Preprocessor()(extreme, HEIGHT)

    assert result.cloth.shape == (HEIGHT, WIDTH, 3) and result.cloth_mask.shape == (HEIGHT, WIDTH)
    # Where the upload puts them: padded to 3:4 around the centre, then scaled to the working size.
    padded_height, padded_width = max(canvas_shape[0], round(canvas_shape[1] * 4 / 3)), \
        max(canvas_shape[1], round(canvas_shape[0] * 3 / 4))
    expected = (keypoints + [(padded_width - canvas_shape[1]) / 2, (padded_height - canvas_shape[0]) / 2]) \
        * [WIDTH / padded_width, HEIGHT / padded_height]
    np.testing.assert_allclose(result.cloth_keypoints, expected, atol=1.0)
    near_garment = cv2.dilate(result.cloth_mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    columns, rows = np.clip(np.round(result.cloth_keypoints).astype(int).T, 0, [[WIDTH - 1], [HEIGHT - 1]])
    assert near_garment[rows, columns].all()


def test_an_extreme_aspect_garment_photo_costs_a_few_copies_of_itself(synthetic_request):
    """Memory of preprocessing a 4:1 garment photo at 4x the working height, traced by tracemalloc (numpy and
    OpenCV arrays): padding it to 3:4 at its own size would hold 5.3x its bytes, the mask rule in float on the
    whole photo 12x; resized first and computed in strips, the peak stays under 4.5x the decoded photo."""
    _, uploads = synthetic_request
    # A short-sleeved garment: the request's own, a tank with ties, fitted this small into the landmarks' frame
    # (177 rows) has its ties' stubs read as armpits and is refused, at any working size.
    sleeved = make_pair(seed=3, index=6, height=HEIGHT).cloth
    garment = cv2.resize(sleeved, None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR)
    height, width = garment.shape[:2]
    canvas = np.empty((height, 4 * height, 3), np.uint8)
    canvas[:] = garment[:, :1]  # the backdrop widened, row by row (the synthetic backdrop darkens downwards)
    canvas[:, (4 * height - width) // 2:][:, :width] = garment
    extreme = replace(uploads, garment=encode_png(canvas))
    preprocessor = Preprocessor()
    preprocessor(extreme, HEIGHT)  # warm-up: first-call allocations are not the photo's
    tracemalloc.start()
    try:
        preprocessor(extreme, HEIGHT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4.5 * canvas.nbytes, f"peak {peak / canvas.nbytes:.1f}x the photo"


def test_preprocessor_on_the_genuine_pair(vitonhd_sample):
    uploads = genuine_uploads(vitonhd_sample)
    sample = Preprocessor(max_bytes=10_000_000, max_pixels=10_000_000)(uploads, HEIGHT)
    assert sample.size == (HEIGHT, WIDTH) and sample.tags == ()
    assert sample.person.shape == (HEIGHT, WIDTH, 3) and sample.parse.shape == (HEIGHT, WIDTH)
    assert sample.cloth.shape == (HEIGHT, WIDTH, 3) and sample.cloth_mask.shape == (HEIGHT, WIDTH)
    original = parse_openpose(uploads.pose)[:, :2] * HEIGHT / 1024
    # Her left wrist (joint 7), which OpenPose put at her hip, 280 px (of 1024) short of her hand, is moved onto
    # the hand (``kgi.limbs.wrists_on_hands``); the other joints are the sent ones, scaled.
    np.testing.assert_allclose(np.delete(sample.pose[:, :2], 7, 0), np.delete(original, 7, 0), atol=1e-3)
    assert sample.pose[7, 1] > original[7, 1] + 0.2 * HEIGHT
    labels = set(np.unique(decode_labels(uploads.parse, source="parse")))
    assert set(np.unique(sample.parse)) <= labels  # nearest-neighbour resizing invents no label
    keypoints = sample.cloth_keypoints
    assert keypoints.shape == (32, 2)
    near_garment = cv2.dilate(sample.cloth_mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    on_outline = near_garment[np.clip(np.round(keypoints[:, 1]).astype(int), 0, HEIGHT - 1),
                              np.clip(np.round(keypoints[:, 0]).astype(int), 0, WIDTH - 1)]
    assert on_outline.all()  # keypoints lie on the computed garment mask's outline


def test_preprocessor_says_what_is_wrong(vitonhd_sample):
    preprocessor = Preprocessor(max_bytes=10_000_000, max_pixels=10_000_000)
    with pytest.raises(ImageError, match="person: 87905 bytes exceeds"):
        Preprocessor(max_bytes=50_000)(genuine_uploads(vitonhd_sample), HEIGHT)
    with pytest.raises(InputError, match="garment_keypoints: expected 32"):
        preprocessor(genuine_uploads(vitonhd_sample, garment_keypoints=b"[[1, 2]]"), HEIGHT)
    uploads = genuine_uploads(vitonhd_sample)
    small_parse = cv2.resize(decode_labels(uploads.parse, source="parse"), (96, 128), interpolation=cv2.INTER_NEAREST)
    with pytest.raises(InputError, match="parse: 96x128 does not match the person photo's 768x1024"):
        preprocessor(replace(uploads, parse=encode_png(small_parse)), HEIGHT)
    with pytest.raises(PoseError, match="pose: no person"):
        preprocessor(replace(uploads, pose=b'{"people": []}'), HEIGHT)
    blank = encode_png(np.full((400, 300, 3), 250, np.uint8))
    with pytest.raises(InputError, match="garment: no garment silhouette.*plain background"):
        preprocessor(replace(uploads, garment=blank), HEIGHT)


# --- the Preprocess deployment and kgi tryon: the same rules, configured sources ---------------------------------

def test_the_deployment_says_what_to_send_or_configure(vitonhd_sample):
    uploads = genuine_uploads(vitonhd_sample, pose=None, parse=None)
    bare = Preprocess.func_or_class(PreprocessArgs(), 10_000_000, 10_000_000)  # the replica's class, in-process
    with pytest.raises(RequestError) as refused:
        asyncio.run(bare(uploads, HEIGHT))
    answer = error_response(refused.value)
    message = json.loads(answer.body)["error"]["message"]
    assert answer.status_code == 422 and json.loads(answer.body)["error"]["code"] == "missing_input"
    assert "as 'pose'" in message and "preprocess.pose.source: mediapipe" in message
    sources = PreprocessArgs(pose={"source": "mediapipe", "python": "/nonexistent/python", "required": False})
    with pytest.raises(RequestError, match="as 'parse'; or configure a human parser .*preprocess.parser.source"):
        asyncio.run(Preprocess.func_or_class(sources, 10_000_000, 10_000_000)(replace(uploads, pose=genuine_uploads(
            vitonhd_sample).pose), HEIGHT))
    with pytest.raises(RequestError, match="as 'pose'; or make this service's pose estimator .*/nonexistent/python"):
        asyncio.run(Preprocess.func_or_class(sources, 10_000_000, 10_000_000)(uploads, HEIGHT))
    photo_parser = PreprocessArgs(pose={"source": "mediapipe", "python": "/nonexistent/python", "required": False},
                                  parser={"source": "mediapipe"})  # unavailable, and optional as the pose is
    with pytest.raises(RequestError, match="as 'parse'; or make this service's photo parser .*/nonexistent/python"):
        asyncio.run(Preprocess.func_or_class(photo_parser, 10_000_000, 10_000_000)(replace(
            uploads, pose=genuine_uploads(vitonhd_sample).pose), HEIGHT))
    with pytest.raises(PoseEstimatorUnavailable, match="/nonexistent/python"):  # required: the replica fails
        Preprocess.func_or_class(PreprocessArgs(pose={"source": "mediapipe", "python": "/nonexistent/python"}),
                                 10_000_000, 10_000_000)


def tryon_args(*arguments: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kgi tryon")
    tryon.add_arguments(parser)
    return parser.parse_args([str(argument) for argument in arguments])


def test_kgi_tryon_estimates_the_parse_and_says_what_is_missing(tmp_path, capsys):
    examples = REPO / "examples"
    person, garment, pose = examples / "person.jpg", examples / "garment.jpg", examples / "person_keypoints.json"
    with pytest.raises(CommandError, match="as 'pose'; or pass --pose-estimator mediapipe"):
        tryon.run(tryon_args(person, garment, "-o", tmp_path / "out.png", "--pose-estimator", "none", "--parser",
                             "synthetic"))
    with pytest.raises(CommandError, match="as 'parse'; or pass --parser mediapipe"):
        tryon.run(tryon_args(person, garment, "-o", tmp_path / "out.png", "--pose", pose, "--parser", "none"))
    with pytest.raises(CommandError, match="--parser-onnx is the model of --parser onnx"):
        tryon.run(tryon_args(person, garment, "-o", tmp_path / "out.png", "--parser", "synthetic",
                             "--parser-onnx", tmp_path / "x.onnx"))
    assert tryon.run(tryon_args(person, garment, "-o", tmp_path / "out.png", "--pose", pose, "--steps", "1",
                                "--height", "64", "--stages", tmp_path / "sheet.png", "--parser", "synthetic")) == 0
    assert "estimated: parse (the synthetic parser parses synthetic people only)" in capsys.readouterr().err
    photo_shape = decode_rgb(person.read_bytes(), source="person").shape  # made at 64 rows, pasted into the photo
    assert decode_rgb((tmp_path / "out.png").read_bytes(), source="out").shape == photo_shape
    assert decode_rgb((tmp_path / "sheet.png").read_bytes(), source="sheet").shape[0] > 256


@pytest.mark.parametrize("module", ["kgi", "kgi.cli"])
def test_kgi_run_as_a_module_answers_a_bad_photo_in_one_line(tmp_path, module):
    """``python -m kgi`` and ``python -m kgi.cli`` (what a checkout without the installed ``kgi`` script runs)
    give the same one-line error as ``kgi`` (what is wrong first: the photo, or the photo parser on a machine
    without its environment): the commands' ``CommandError`` is caught there too (``-m kgi.cli`` printed a
    traceback)."""
    not_a_photo = tmp_path / "person.jpg"
    not_a_photo.write_text("hello")
    done = subprocess.run([sys.executable, "-m", module, "tryon", str(not_a_photo),
                           str(REPO / "examples" / "garment.jpg"), "-o", str(tmp_path / "out.png")],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("kgi tryon: error: ") and "Traceback" not in done.stderr


# --- the service over HTTP: person and garment only ----------------------------------------------------------------

def one_version_with_the_pose_estimator_of_this_machine(config: dict) -> None:
    """local.yaml's sources, its pose estimator named explicitly when this machine has one; version "default" only."""
    (application,) = config["applications"]
    application["args"]["preprocess"]["pose"]["python"] = POSE_PYTHON
    keep_only_version(config, "default")


@pytest.fixture(scope="module")
def preprocess_service(model_root) -> Iterator[str]:
    with running_service(model_root, one_version_with_the_pose_estimator_of_this_machine) as url:
        yield url


def post_tryon(url: str, uploads: Uploads) -> httpx.Response:
    files = {name: (name, data) for name, data in (("person", uploads.person), ("garment", uploads.garment),
                                                   ("pose", uploads.pose), ("parse", uploads.parse)) if data}
    return httpx.post(f"{url}/v1/tryon", files=files, timeout=300,
                      data={"response": "json", "stages": "true", "steps": "1"})


def b64decode_png(text: str, decoder=decode_rgb) -> np.ndarray:
    return decoder(base64.b64decode(text), source="answer")


@pytest.mark.slow
def test_service_takes_the_annotations_when_sent_and_computes_the_parse_when_not(preprocess_service,
                                                                              vitonhd_sample):
    uploads = genuine_uploads(vitonhd_sample)
    given = post_tryon(preprocess_service, uploads)
    assert given.status_code == 200, given.text
    assert given.json()["estimated"] == []
    # local.yaml tries on at the photo's own resolution: the genuine 1024x768 photo's parse comes back as sent.
    np.testing.assert_array_equal(b64decode_png(given.json()["stages"]["parse"], decode_labels),
                                  decode_labels(uploads.parse, source="parse"))

    parsed = post_tryon(preprocess_service, replace(uploads, parse=None))
    if POSE_PYTHON is None:  # local.yaml's photo parser lives in the pose environment: without it, send 'parse'
        assert parsed.status_code == 422 and parsed.json()["error"]["code"] == "missing_input", parsed.text
        return
    assert parsed.status_code == 200, parsed.text
    body = parsed.json()
    assert body["estimated"] == ["parse"]
    parse = b64decode_png(body["stages"]["parse"], decode_labels)
    assert parse.shape == (1024, 768) and parse.max() < NUM_CIHP
    # The parse is the configured parser's (the photo parser), on the same photo.
    photo_parser = make_parser("mediapipe", python=POSE_PYTHON)
    expected = photo_parser.parse(decode_rgb(uploads.person, source="person"))
    photo_parser.close()
    assert (parse == expected).mean() > 0.99
    # The sent pose, both times, but for the left wrist, moved onto the hand each parse shows (20 px apart at most).
    sent_pose, parsed_pose = np.asarray(given.json()["stages"]["pose"]), np.asarray(body["stages"]["pose"])
    np.testing.assert_allclose(np.delete(parsed_pose, 7, 0), np.delete(sent_pose, 7, 0))
    assert np.abs(parsed_pose[7, :2] - sent_pose[7, :2]).max() <= 20


@pytest.mark.slow
def test_service_with_person_and_garment_only(preprocess_service, vitonhd_sample):
    uploads = genuine_uploads(vitonhd_sample, pose=None, parse=None)
    response = post_tryon(preprocess_service, uploads)
    if POSE_PYTHON is None:  # the configured estimator is unavailable: the 422 says what to send and set
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "missing_input"
        assert "as 'pose'" in error["message"] and "KGI_POSE_PYTHON" in error["message"]
        return
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["estimated"] == ["parse", "pose"]
    openpose = parse_openpose(genuine_uploads(vitonhd_sample).pose)
    estimated = np.asarray(body["stages"]["pose"], np.float32)
    assert_close_to_openpose(estimated, openpose, 1024)  # at the photo's own resolution (local.yaml)


@pytest.mark.slow
@pytest.mark.skipif(POSE_PYTHON is None, reason="KGI_POSE_PYTHON (an interpreter with mediapipe) is not set")
def test_service_refuses_a_photo_of_two_people(preprocess_service, vitonhd_sample):
    person = decode_rgb((vitonhd_sample / "test" / "image" / "00006_00.jpg").read_bytes(), source="person")
    two = encode_png(np.concatenate([person, person[:, ::-1]], axis=1))
    response = post_tryon(preprocess_service, genuine_uploads(vitonhd_sample, person=two, pose=None, parse=None))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith("person: two or more people found: send a photo of one")


# --- kgi prep eval ----------------------------------------------------------------------------------------------------

def test_prep_eval_prints_the_figures(vitonhd_sample, capsys):
    parser = argparse.ArgumentParser(prog="kgi prep")
    prep.add_arguments(parser)
    arguments = ["eval", str(vitonhd_sample), str(vitonhd_sample), "--synth-people", "2", "--parser", "synthetic"]
    assert prep.run(parser.parse_args(arguments)) == 0
    lines = capsys.readouterr().out.splitlines()
    mask_line = next(line for line in lines if line.startswith("cloth mask"))
    assert "over 4 garments" in mask_line and float(mask_line.split("min ")[1].split(")")[0]) > 0.98
    parse_lines = [line for line in lines if line.startswith("parse SynthParser")]
    assert len(parse_lines) == 2 and "synthetic (seed 7, 2 people)" in parse_lines[1]
    assert "upper garment IoU" in parse_lines[0] and any(line.startswith("  per class: background") for line in lines)
    assert "(2 people)" in parse_lines[0]  # the roots' people pooled, then each on its own line
    assert sum(line.startswith("  00006_00.jpg: mIoU") for line in lines) == 2
    assert any(line.startswith("  time per photo: mean") for line in lines)
    assert any(line.startswith("pose") for line in lines)  # figures, or why they were skipped


def test_a_garments_landmarks_do_not_depend_on_the_person_photos_size(vitonhd_sample):
    """The garment photo is read in one frame (``LANDMARK_HEIGHT`` rows) whatever the working size: the genuine
    striped t-shirt's keypoints at 256 rows are its keypoints at 1024, scaled. (Read at the working size, its
    nodes moved by 2% of the height between 512 and 1024 rows, 06802's cap sleeves by 14% between 768 and 1024,
    and the wrap top 04469 was refused at 768.)"""
    uploads = genuine_uploads(vitonhd_sample)
    limits = dict(max_bytes=10_000_000, max_pixels=10_000_000)
    small, full = (Preprocessor(**limits)(uploads, rows) for rows in (256, 1024))
    assert small.sleeve == full.sleeve
    np.testing.assert_allclose(small.cloth_keypoints / 256, full.cloth_keypoints / 1024, atol=1e-4)
