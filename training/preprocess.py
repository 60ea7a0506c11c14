"""Shard rows to model-ready numpy columns, one function per model: the CPU stage that Ray Data runs ahead of
the training workers (``training.job.training_dataset``).

This module is kept apart from ``training.tasks``, which builds the models, so that a Ray Data worker imports
only the data code (0.4 s). A worker that unpickled a task's bound method imported the whole model stack
(torch, torch-geometric, diffusers: 4-5 s of CPU), and an epoch starts several such workers at once
(BENCHMARKS.md, "Training"). The keypoint and inpainter stages import no torch. The parse stage builds its
inputs with the inference code (``parse_input``, ``agnostic_parse``), so it imports torch, but only when it runs.

Each function takes a batch of shard rows (``kgi.data.shards.SCHEMA``: one numpy array per column, plus the
shard file each row came from, ``path``) and returns the columns its task's ``loss`` reads. ``Task.preprocessor``
binds the run's settings to them. A row that cannot be used raises ``DatasetError`` naming the shard, the pair
and the file in the row (``training.errors`` turns it into one line and stops the run).
"""

from __future__ import annotations

import json

import numpy as np

from kgi.data.images import resize_labels, width_for
from kgi.data.labels import MIRRORED_PARSE13
from kgi.data.pose import parse_openpose, pose_graph_nodes
from kgi.data.pose import PoseError
from kgi.data.shards import decode_row, row_source
from kgi.data.vitonhd import DatasetError, parse_landmarks

Batch = dict[str, np.ndarray]


def keypoints(batch: Batch) -> Batch:
    """Stage 1's columns, from the JSON columns only.

    Returns:
        ``cloth_kp`` (B, 32, 2) and ``worn_kp`` (B, 32, 2), each normalised by its own image size, and
        ``pose_nodes`` (B, 10, 2), all float32.
    """
    cloth_kp, pose_nodes, worn_kp = [], [], []
    for row in _rows(batch):
        source = row_source(row)
        cloth_kp.append(parse_landmarks(row["cloth_landmarks_json"], f"{source}/cloth_landmarks_json").keypoints)
        worn_kp.append(parse_landmarks(row["image_landmarks_json"], f"{source}/image_landmarks_json").keypoints)
        worn_doc = json.loads(row["image_landmarks_json"])
        try:
            pose = parse_openpose(row["pose_json"], source=f"{source}/pose_json")
        except PoseError as exc:
            raise DatasetError(str(exc)) from None
        pose_nodes.append(pose_graph_nodes(pose, worn_doc["width"], worn_doc["height"]))
    return {"cloth_kp": np.stack(cloth_kp), "pose_nodes": np.stack(pose_nodes), "worn_kp": np.stack(worn_kp)}


def parse(batch: Batch, *, height: int, keypoint_jitter: float) -> Batch:
    """Stage 2a's columns: the target-parse network's input and target.

    The garment contour is drawn from the ground-truth worn keypoints plus Gaussian noise of standard deviation
    ``keypoint_jitter`` (normalised units), so the network learns to tolerate stage 1's imprecision.

    Args:
        height: image height the pairs are resized to.
        keypoint_jitter: the noise's standard deviation.

    Returns:
        ``inputs`` (B, 19, H, W) float32 (``kgi.models.parse.parse_input``) and ``target`` (B, H, W) uint8.
    """
    import torch  # the inference code's torch implementation, imported where it runs (see the module docstring)

    from kgi.models.parse import parse_input
    from kgi.recompose import agnostic_parse

    samples = [decode_row(row, height) for row in _rows(batch)]
    parse13 = torch.from_numpy(np.stack([s.parse13 for s in samples])).long()  # (B, H, W)
    worn_kp = torch.from_numpy(np.stack([s.normalised(s.worn_keypoints) for s in samples])).float()
    worn_kp = worn_kp + keypoint_jitter * torch.randn_like(worn_kp)
    pose_nodes = torch.from_numpy(np.stack([s.pose_nodes for s in samples]))
    inputs = parse_input(agnostic_parse(parse13), pose_nodes, worn_kp.clamp(0, 1))
    return {"inputs": inputs.numpy(), "target": parse13.numpy().astype(np.uint8)}


def inpainter(batch: Batch, *, height: int) -> Batch:
    """Stage 3's columns: person images and their parse, each pair mirrored left-right with probability 1/2.

    Args:
        height: image height the pairs are resized to.

    Returns:
        ``images`` (B, 3, H, W) uint8 and ``parse13`` (B, H, W) uint8.
    """
    samples = [decode_row(row, height) for row in _rows(batch)]
    flip = np.random.default_rng().random(len(samples)) < 0.5  # mirror person and parse together
    images = np.stack([s.person[:, ::-1] if f else s.person for s, f in zip(samples, flip)])
    parse13 = np.stack([MIRRORED_PARSE13[s.parse13[:, ::-1]] if f else s.parse13 for s, f in zip(samples, flip)])
    return {"images": images.transpose(0, 3, 1, 2).copy(), "parse13": parse13}  # (B, H, W, 3) -> (B, 3, H, W)




def synth_parser(batch: Batch, *, height: int) -> Batch:
    """The synthetic parser's columns: each person photo fitted to the network's input (``height x 3/4 height``)
    as ``kgi.parsing.SynthParser`` fits photos, with its CIHP labels resized the same way.

    Returns:
        ``images`` (B, 3, h, w) uint8 and ``labels`` (B, h, w) uint8 CIHP labels.
    """
    from kgi.parsing import fit_image  # the inference code's fitting (imports torch), where it runs

    width = width_for(height)
    samples = [decode_row(row, None) for row in _rows(batch)]
    images = np.stack([fit_image(s.person, height, width)[0] for s in samples])  # (B, h, w, 3)
    labels = np.stack([resize_labels(s.parse, height, width) for s in samples])
    return {"images": images.transpose(0, 3, 1, 2).copy(), "labels": labels}


def repeat_rows(batch: Batch, *, times: int) -> Batch:
    """Every row ``times`` times in a row: a split smaller than one batch per worker still fills the batches."""
    return {column: np.repeat(values, times, axis=0) for column, values in batch.items()}


def _rows(batch: Batch) -> list[dict]:
    return [{key: batch[key][i] for key in batch} for i in range(len(batch["person_name"]))]
