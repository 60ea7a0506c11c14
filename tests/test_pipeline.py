"""The shipped model version (``models/default``) runs every stage on the genuine VITON-HD pair.

The shipped models were trained on synthetic people only; this checks that the whole method carries over to a
real photo well enough to be useful, against references computed from the genuine annotations: the garment
keypoints the landmark extractor reads off the genuine parse and pose, and the genuine upper-garment region.
"""

from __future__ import annotations

import pickle
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch

from kgi.baseline import geometric_transfer
from kgi.data.labels import UPPER
from kgi.data.vitonhd import VitonHD
from kgi.landmarks import flat_garment_keypoints, worn_garment_keypoints
from kgi.models.keypoints import mean_keypoint_error
from kgi.pipeline import SamplerSettings, StageTwoOutput, TryOnPipeline

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
    truth = torch.from_numpy(worn_garment_keypoints(sample.parse, sample.pose).keypoints / [width, height]).float()[None]
    predicted = torch.from_numpy(result.garment_keypoints / [width, height]).float()[None]
    baseline = geometric_transfer(torch.from_numpy(sample.cloth_keypoints / [width, height]).float()[None],
                                  torch.from_numpy(sample.pose_nodes)[None])
    network_error = mean_keypoint_error(predicted, truth).item()
    # Measured 0.046 (network) vs 0.061 (baseline) of the image height with the shipped checkpoint.
    assert network_error < mean_keypoint_error(baseline, truth).item()
    assert network_error < 0.08


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


def test_stage_two_output_pickles_its_tensors_as_out_of_band_arrays():
    # What Ray does between the ParseWarp and Inpaint deployments: pickle protocol 5 with out-of-band buffers.
    stage_two = StageTwoOutput(torch.randint(0, 13, (2, 8, 6)), torch.rand(2, 3, 8, 6), torch.rand(2, 3, 8, 6),
                               (torch.rand(2, 1, 8, 6) > 0.5).float())
    buffers = []
    payload = pickle.dumps(stage_two, protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == 4  # one per tensor, none copied into the pickle stream
    restored = pickle.loads(payload, buffers=[bytes(buffer.raw()) for buffer in buffers])  # read-only, as in Ray
    for field in fields(StageTwoOutput):
        original, copy = getattr(stage_two, field.name), getattr(restored, field.name)
        assert copy.dtype == original.dtype and torch.equal(copy, original)
        copy.add_(1)  # writable
