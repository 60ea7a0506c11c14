"""Preprocessing of arbitrary photos: built-in pose (BlazePose -> BODY_25), human parsers (ONNX, synthetic) and
``prepare_sample`` with and without them."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

import numpy as np
import pytest
import torch

from kgi.commands import prep
from kgi.data.images import decode_rgb, encode_palette_png, encode_png
from kgi.data.labels import CIHP_LABELS, CIHP_PALETTE, to_parse13
from kgi.data.pose import openpose_json, parse_openpose
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
    to_cihp,
)
from kgi.pose_estimation import (
    MediaPipePose,
    PoseEstimationError,
    PoseEstimatorUnavailable,
    SubprocessPose,
    body25_from_blazepose,
    check_rgb,
)
from kgi.preprocess import InputError, prepare_sample

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
    finally:
        estimator.close()


@pytest.mark.skipif(HAS_MEDIAPIPE, reason="this interpreter has mediapipe")
def test_without_mediapipe_the_estimators_say_what_to_install():
    with pytest.raises(PoseEstimatorUnavailable, match="mediapipe"):
        MediaPipePose()
    with pytest.raises(PoseEstimatorUnavailable, match="mediapipe"):  # a real worker process that lacks it
        SubprocessPose(sys.executable)
    with pytest.raises(PoseEstimatorUnavailable, match="cannot start"):
        SubprocessPose("/nonexistent/python")


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
    parser = SynthParser()  # the shipped weights (scripts/train_parser.py, trained on seed 1000)
    sample = make_pair(seed=3, index=0, height=256)
    labels = parser.parse(sample.person)
    assert labels.shape == (256, 192) and labels.dtype == np.uint8
    assert mean_iou13(labels, sample.parse) > 0.6
    wide = np.pad(sample.person, ((0, 0), (40, 40), (0, 0)), mode="edge")  # not 3:4: fitted, then mapped back
    assert parser.parse(wide).shape == wide.shape[:2]


def test_synth_parser_without_weights_says_how_to_make_them(tmp_path):
    with pytest.raises(ParserUnavailable, match="train_parser"):
        SynthParser(tmp_path / "none.safetensors")
    assert DEFAULT_SYNTH_PARSER.name == "synth_parser.safetensors"


# --- prepare_sample ------------------------------------------------------------------------------------------

class GroundTruthPose:
    """A pose estimator that knows the synthetic person's pose (or finds nobody)."""

    def __init__(self, pose: np.ndarray | None):
        self.pose = pose

    def estimate(self, rgb: np.ndarray) -> np.ndarray:
        if self.pose is None:
            raise PoseEstimationError("no person found in the photo")
        return self.pose


@pytest.fixture(scope="module")
def synthetic_request():
    sample = make_pair(seed=3, index=1, height=256)
    files = {"person": encode_png(sample.person), "garment": encode_png(sample.cloth),
             "pose_json": openpose_json(sample.pose), "parse_png": encode_palette_png(sample.parse, CIHP_PALETTE)}
    return sample, files


def test_prepare_sample_estimates_what_the_request_lacks(synthetic_request):
    sample, files = synthetic_request
    given = prepare_sample(files["person"], files["garment"], pose_json=files["pose_json"],
                           parse_png=files["parse_png"])
    estimated = prepare_sample(files["person"], files["garment"], pose_estimator=GroundTruthPose(sample.pose),
                               parser=SynthParser())
    assert estimated.tags == ("estimated-parse", "estimated-pose") and given.tags == ()
    np.testing.assert_allclose(estimated.pose, given.pose, atol=1e-2)
    assert estimated.parse.shape == given.parse.shape and mean_iou13(estimated.parse, given.parse) > 0.6
    np.testing.assert_array_equal(estimated.cloth_mask, given.cloth_mask)


def test_prepare_sample_names_the_missing_field(synthetic_request):
    sample, files = synthetic_request
    with pytest.raises(InputError) as missing_pose:
        prepare_sample(files["person"], files["garment"], parse_png=files["parse_png"])
    assert missing_pose.value.field == "pose" and "no pose estimator is configured" in str(missing_pose.value)
    with pytest.raises(InputError) as missing_parse:
        prepare_sample(files["person"], files["garment"], pose_json=files["pose_json"])
    assert missing_parse.value.field == "parse" and "no human parser is configured" in str(missing_parse.value)
    with pytest.raises(InputError) as nobody:
        prepare_sample(files["person"], files["garment"], parse_png=files["parse_png"],
                       pose_estimator=GroundTruthPose(None))
    assert nobody.value.field == "person" and "'pose'" in str(nobody.value)


def test_prepare_sample_refuses_a_parser_that_breaks_the_protocol(synthetic_request):
    sample, files = synthetic_request

    class WrongSize:
        def parse(self, rgb):
            return np.zeros((10, 10), np.uint8)

    with pytest.raises(RuntimeError, match="WrongSize.parse returned"):
        prepare_sample(files["person"], files["garment"], pose_json=files["pose_json"], parser=WrongSize())


# --- kgi prep eval -------------------------------------------------------------------------------------------

def test_prep_eval_prints_the_figures(vitonhd_sample, capsys):
    parser = argparse.ArgumentParser(prog="kgi prep")
    prep.add_arguments(parser)
    assert prep.run(parser.parse_args(["eval", str(vitonhd_sample), "--synth-people", "2"])) == 0
    lines = capsys.readouterr().out.splitlines()
    mask_line = next(line for line in lines if line.startswith("cloth mask"))
    assert "over 2 garments" in mask_line and float(mask_line.split("min ")[1].split(")")[0]) > 0.98
    parse_lines = [line for line in lines if line.startswith("parse SynthParser")]
    assert len(parse_lines) == 2 and "synthetic (seed 7, 2 people)" in parse_lines[1]
    assert any(line.startswith("pose") for line in lines)  # figures, or why they were skipped
