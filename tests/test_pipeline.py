"""The shipped model version (``models/default``) runs every stage on the genuine VITON-HD pair.

The shipped models were trained on synthetic people only; this checks that the whole method carries over to a
real photo well enough to be useful, against references computed from the genuine annotations: the garment
keypoints the landmark extractor reads off the genuine parse and pose, and the genuine upper-garment region.
At full resolution (the photo's own, ``kgi tryon``'s default): the files of ``--stages-dir``, a photo that is not
3:4, the region a new garment changes (old garment and neck skin) and a white garment pasted whole.
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
from dataclasses import fields, replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from PIL import Image

from kgi.baseline import geometric_transfer
from kgi.commands import tryon
from kgi.data.images import decode_rgb, encode_png
from kgi.data.garment import sample_garment, with_kind
from kgi.data.labels import AGNOSTIC_CIHP, BOTTOM, CIHP_LABELS, GARMENT_CIHP, NUM_PARSE13, UPPER
from kgi.data.synth import render_cloth
from kgi.data.vitonhd import VitonHD
from kgi.landmarks import flat_garment_keypoints, worn_garment_keypoints
from kgi.models.keypoints import GARMENT_MIRROR, mean_keypoint_error, mirror_keypoints, mirror_points
from kgi.pipeline import SamplerSettings, StageTwoOutput, TryOnPipeline, _labels, keypoint_inputs, seated_keypoints
from kgi.preprocess import Preprocessor, Uploads, paste_back

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "default"


@pytest.fixture(scope="module")
def genuine_result(vitonhd_sample):
    sample = VitonHD(vitonhd_sample, split="test", mode="paired", height=256)[0]
    sample.cloth_keypoints = flat_garment_keypoints(sample.cloth, sample.cloth_mask).keypoints
    pipeline = TryOnPipeline.from_pretrained(SHIPPED)
    return sample, pipeline([sample], seeds=[0], sampler=SamplerSettings(num_steps=2))[0]


def test_keypoints_on_the_genuine_person_beat_the_geometric_transfer(genuine_result):
    sample, result = genuine_result
    height, width = sample.size
    worn = worn_garment_keypoints(sample.parse, sample.pose).keypoints
    truth = torch.from_numpy(worn / [width, height]).float()[None]
    predicted = torch.from_numpy(result.worn_keypoints / [width, height]).float()[None]
    baseline = geometric_transfer(torch.from_numpy(sample.cloth_keypoints / [width, height]).float()[None],
                                  torch.from_numpy(sample.pose_nodes)[None])
    network_error = mean_keypoint_error(predicted, truth).item()
    # Measured 0.046 (network) vs 0.061 (baseline) of the image height with the shipped checkpoint.
    assert network_error < mean_keypoint_error(baseline, truth).item()
    assert network_error < 0.08


def test_stage_one_predicts_the_mirror_image_of_a_mirrored_pair(genuine_result):
    """Stage 1 averages the network over a horizontal flip: the keypoints of the mirrored garment on the mirrored
    person are the mirror image of the keypoints (the network alone, trained with flips, is only nearly so)."""
    sample, _ = genuine_result
    pipeline = TryOnPipeline.from_pretrained(SHIPPED, stages=("keypoints",))
    cloth_kp, pose_nodes = (torch.from_numpy(array).float() for array in keypoint_inputs([sample]))
    mirrored_cloth, mirrored_pose, _ = mirror_keypoints(cloth_kp, pose_nodes, cloth_kp)
    direct = torch.from_numpy(pipeline.predict_keypoints(cloth_kp.numpy(), pose_nodes.numpy()))
    mirrored = torch.from_numpy(pipeline.predict_keypoints(mirrored_cloth.numpy(), mirrored_pose.numpy()))
    torch.testing.assert_close(mirrored, mirror_points(direct, GARMENT_MIRROR), atol=1e-5, rtol=0)
    network = pipeline.keypoint_net(mirrored_cloth, mirrored_pose)
    assert (network - mirror_points(pipeline.keypoint_net(cloth_kp, pose_nodes), GARMENT_MIRROR)).abs().max() > 1e-3


def test_target_parse_puts_the_garment_where_the_genuine_one_is(genuine_result):
    sample, result = genuine_result
    predicted, genuine = result.target_parse13 == UPPER, sample.parse13 == UPPER
    assert (predicted & genuine).sum() / (predicted | genuine).sum() > 0.75  # measured 0.939 (250-step parse: 0.888)


def test_try_on_image_keeps_the_known_pixels(genuine_result):
    sample, result = genuine_result
    assert result.image.shape == (*sample.size, 3) and result.image.dtype == np.uint8
    assert 0.5 < result.keep_mask.mean() < 1.0  # something was inpainted, most of the photo kept
    kept = result.keep_mask
    assert np.abs(result.image[kept].astype(int) - result.recomposed[kept].astype(int)).max() <= 1
    assert result.unet_evaluations == 2


def test_the_target_parses_garment_borders_are_smooth_at_full_size_and_the_other_classes_as_at_512_rows():
    """Scores at 128 rows whose upper and lower garments' borders with the wall are 45-degree lines: at 1024 rows
    each border moves one pixel a row (the warped garment is cut to the upper one, the painted lower garment
    ends at the other; decided at 512 rows and upsampled, they stepped two pixels every two rows), and away from
    the garments every label is the one decided at 512 rows."""
    rows, columns = torch.meshgrid(torch.arange(128.0), torch.arange(96.0), indexing="ij")
    logits = torch.zeros(1, NUM_PARSE13, 128, 96)
    logits[0, UPPER] = 0.5 * (columns - rows - 10)  # the upper garment right of one line
    logits[0, BOTTOM] = 0.5 * (rows - columns - 40)  # the lower garment left of another; the wall (0) between
    labels = _labels(logits, 1024, 768)[0].numpy()
    assert labels.dtype == np.uint8
    upper_border = np.argmax(labels[160:600] == UPPER, axis=1)  # each row's first garment pixel (small rows 20-75)
    lower_border = 767 - np.argmax(labels[400:1000, ::-1] == BOTTOM, axis=1)  # its last (small rows 50-125)
    for border in (upper_border, lower_border):
        steps = np.diff(border)
        assert (np.abs(steps - 1) <= 1).all() and (steps == 1).mean() > 0.9, steps
    smoothed = logits
    for _ in range(2):
        smoothed = torch.nn.functional.avg_pool2d(smoothed, 3, stride=1, padding=1, count_include_pad=False)
    at_512 = torch.nn.functional.interpolate(smoothed, size=(512, 384), mode="bilinear").argmax(1)[0].numpy()
    at_512 = at_512.repeat(2, axis=0).repeat(2, axis=1)  # upsampled nearest
    others = ~np.isin(labels, (UPPER, BOTTOM)) & ~np.isin(at_512, (UPPER, BOTTOM))
    assert (labels[others] == at_512[others]).all() and set(np.unique(labels[others])) == {0}


def test_stage_two_output_pickles_its_tensors_as_out_of_band_arrays():
    # What Ray does between the ParseWarp and Inpaint deployments: pickle protocol 5 with out-of-band buffers.
    stage_two = StageTwoOutput(torch.randint(0, 13, (2, 8, 6)), torch.rand(2, 3, 8, 6), torch.rand(2, 3, 8, 6),
                               (torch.rand(2, 1, 8, 6) > 0.5).float(), (torch.rand(2, 1, 8, 6) > 0.5).float())
    buffers = []
    payload = pickle.dumps(stage_two, protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == len(fields(StageTwoOutput))  # one per tensor, none copied into the pickle stream
    restored = pickle.loads(payload, buffers=[bytes(buffer.raw()) for buffer in buffers])  # read-only, as in Ray
    for field in fields(StageTwoOutput):
        original, copy = getattr(stage_two, field.name), getattr(restored, field.name)
        assert copy.dtype == original.dtype and torch.equal(copy, original)
        copy.add_(1)  # writable


# --- full resolution -------------------------------------------------------------------------------------------

def genuine_files(root: Path, garment: str = "06396_00") -> dict[str, Path]:
    test = root / "test"
    return {"person": test / "image" / "00006_00.jpg", "garment": test / "cloth" / f"{garment}.jpg",
            "pose": test / "openpose_json" / "00006_00_keypoints.json",
            "parse": test / "image-parse-v3" / "00006_00.png",
            "cloth_mask": test / "cloth-mask" / f"{garment}.jpg"}


def uploads(files: dict[str, Path], **replaced: bytes) -> Uploads:
    data = {name: path.read_bytes() for name, path in files.items()}
    return Uploads(**{**data, **replaced})


@pytest.fixture(scope="module")
def shipped():
    return TryOnPipeline.from_pretrained(SHIPPED)


def test_stages_dir_writes_each_stage_at_the_photo_size(vitonhd_sample, tmp_path):
    files = genuine_files(vitonhd_sample)
    stages = tmp_path / "stages"
    arguments = [files["person"], files["garment"], "-o", tmp_path / "out.png", "--pose", files["pose"],
                 "--parse", files["parse"], "--cloth-mask", files["cloth_mask"], "--steps", "1", "--stages-dir", stages]
    parser = argparse.ArgumentParser()
    tryon.add_arguments(parser)
    assert tryon.run(parser.parse_args([str(argument) for argument in arguments])) == 0
    written = {path.name for path in stages.iterdir()}
    assert {"result.png", "warped_garment.png", "keep_mask.png", "target_parse.png"} <= written
    photo = np.asarray(Image.open(files["person"]))
    result, warped = (np.asarray(Image.open(stages / name)) for name in ("result.png", "warped_garment.png"))
    keep, target = (Image.open(stages / name) for name in ("keep_mask.png", "target_parse.png"))
    assert result.shape == warped.shape == photo.shape == (1024, 768, 3)  # the genuine photo's own size
    np.testing.assert_array_equal(result, np.asarray(Image.open(tmp_path / "out.png")))
    assert keep.mode == target.mode == "L" and keep.size == target.size == (768, 1024)
    keep, target = np.asarray(keep), np.asarray(target)
    assert set(np.unique(keep)) == {0, 255} and target.max() < NUM_PARSE13
    garment = warped.any(axis=2)
    assert garment.mean() > 0.1 and (target[garment] == UPPER).all()  # black where no garment
    assert (keep[garment] == 255).all() and (keep[target == UPPER] == 255).all()  # the new garment is never painted
    kept = keep == 255
    recomposed = np.asarray(Image.open(stages / "recomposed.png"))
    np.testing.assert_array_equal(result[kept], recomposed[kept])


def test_a_photo_that_is_not_3_4_comes_back_at_its_size(vitonhd_sample, shipped):
    files = genuine_files(vitonhd_sample)
    photo = np.asarray(Image.open(files["person"]))
    wide = np.pad(photo, ((0, 0), (100, 140), (0, 0)), mode="edge")  # 1024 x 1008: 100 columns left, 140 right
    parse = np.pad(np.asarray(Image.open(files["parse"])), ((0, 0), (100, 140)))
    pose = json.loads(files["pose"].read_text())
    for person in pose["people"]:
        joints = np.asarray(person["pose_keypoints_2d"], dtype=float).reshape(-1, 3)
        joints[joints[:, 2] > 0, 0] += 100
        person["pose_keypoints_2d"] = joints.ravel().tolist()
    sample = Preprocessor()(uploads(files, person=encode_jpeg(wide), parse=encode_png(parse),
                                    pose=json.dumps(pose).encode()), working_height=256)
    top, left, box_height, box_width = sample.frame.box
    assert (top, box_height, box_width) == (0, 1024, 768) and 90 <= left <= 150  # around the person
    result = shipped([sample], seeds=[0], sampler=SamplerSettings(num_steps=1))[0]
    pasted = paste_back(result.image, sample, decode_rgb(encode_jpeg(wide), source="person"))
    assert pasted.shape == wide.shape
    wide_decoded = decode_rgb(encode_jpeg(wide), source="person")
    outside = np.ones(wide.shape[:2], bool)
    outside[:, left:left + box_width] = False
    np.testing.assert_array_equal(pasted[outside], wide_decoded[outside])
    assert (pasted != wide_decoded).any(axis=2).mean() > 0.05  # and the try-on is in it


def test_the_old_garment_and_the_neck_are_changed_and_a_white_garment_is_pasted_whole(vitonhd_sample, shipped):
    files = genuine_files(vitonhd_sample)
    sample = Preprocessor()(uploads(files))
    height, width = sample.size
    garment_kp = shipped.predict_keypoints((sample.cloth_keypoints / [width, height])[None], sample.pose_nodes[None])
    stage_two = shipped.parse_and_warp([sample], garment_kp)
    keep = stage_two.keep_mask[0, 0].bool().numpy()
    pasted = stage_two.warped_garment[0].amax(0).numpy() > 0
    old_garment, neck = np.isin(sample.parse, GARMENT_CIHP), sample.parse == 10
    assert neck.sum() > 1000
    # Every pixel of the old garment is the new garment or painted; so is the neck next to it (the old neckline's
    # outline); the rest of the neck may stay the person's own skin.
    assert not (keep & old_garment & ~pasted).any()
    margin = round(0.01 * height)
    near_old = cv2.dilate(old_garment.astype(np.uint8), np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)) > 0
    assert (neck & near_old).sum() > 500 and not (keep & neck & near_old & ~pasted).any()
    changeable = np.isin(sample.parse, AGNOSTIC_CIHP)
    assert (~keep & ~changeable).sum() > 0  # the margin: the old garment's outline is repainted too

    white = sample.cloth.copy()
    white[sample.cloth_mask] = 250  # a white t-shirt of the same shape, on the product photo's white background
    white_two = shipped.warp_and_recompose([replace(sample, cloth=white)], seated_keypoints([sample], garment_kp),
                                           stage_two.target_parse13)
    white_pasted = white_two.warped_garment[0].amax(0).numpy() > 0
    assert white_pasted.sum() > 0.95 * pasted.sum()  # KGI's white filter dropped nearly all of it


def encode_jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_a_serving_stage_loads_its_own_network_alone():
    inpaint = TryOnPipeline.from_pretrained(SHIPPED, stages=("inpaint",))
    assert inpaint.unet is not None and inpaint.scheduler is not None
    assert inpaint.keypoint_net is None and inpaint.parse_net is None
    with pytest.raises(RuntimeError, match="without its keypoints network"):
        inpaint.predict_keypoints(np.zeros((1, 32, 2)), np.zeros((1, 10, 2)))
    keypoints = TryOnPipeline.from_pretrained(SHIPPED, stages=("keypoints",))
    assert keypoints.unet is None and keypoints.parse_net is None
    assert keypoints.predict_keypoints(np.full((1, 32, 2), 0.5), np.full((1, 10, 2), 0.5)).shape == (1, 32, 2)
    with pytest.raises(ValueError, match="unknown \\['unet'\\]"):
        TryOnPipeline.from_pretrained(SHIPPED, stages=("unet",))


def test_a_camisole_lands_on_the_torso_between_shoulders_and_hips(vitonhd_sample, shipped):
    """A hip-length synthetic camisole tried on the genuine person: the new garment (pasted or the target parse's
    upper garment) covers the torso from below the armpits down to the hips or the top of the person's trousers,
    whichever is higher (the trousers are kept), not only its upper half (straps taken for a short top)."""
    rng = np.random.default_rng(24)
    params = sample_garment(rng)
    while params.sleeve != "none":
        params = sample_garment(rng)
    params = replace(with_kind(params, rng, "camisole"), length=1.9, pattern="solid", print_kind="none")
    _, alpha, photo, *_ = render_cloth(params, rng, 1024)
    sample = Preprocessor()(uploads(genuine_files(vitonhd_sample), garment=encode_png(photo),
                                    cloth_mask=encode_png((alpha >= 0.5).astype(np.uint8) * 255)))
    height, width = sample.size
    garment_kp = shipped.predict_keypoints(*keypoint_inputs([sample]))
    stage_two = shipped.parse_and_warp([sample], garment_kp)
    garment = (stage_two.warped_garment[0].amax(0).numpy() > 0) | (stage_two.target_parse13[0].numpy() == UPPER)
    shoulders, hips = sample.pose[[2, 5], :2], sample.pose[[9, 12], :2]
    left, right = np.sort(hips[:, 0]).round().astype(int)  # the torso's core, between the hip joints
    trousers = np.isin(sample.parse[:, left:right], [CIHP_LABELS.index(name) for name in ("pants", "skirt")])
    top = shoulders[:, 1].mean()
    bottom = min(hips[:, 1].mean(), np.flatnonzero(trousers.mean(axis=1) > 0.5).min(initial=height))
    rows = np.arange(round(top + 0.3 * (bottom - top)), round(bottom))  # below the armpits, down to hips/trousers
    upper_half, lower_half = np.array_split(rows, 2)
    assert garment[upper_half, left:right].mean() > 0.9
    assert garment[lower_half, left:right].mean() > 0.85  # measured 0.93
