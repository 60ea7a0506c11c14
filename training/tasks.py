"""What each of the three models needs from the generic training loop: a ``Task`` per model.

A task builds its model, saves and loads it in the model's own format, turns shard rows into model-ready numpy
columns (``preprocess``: decoding, resizing, augmentation and sketch drawing; it runs in Ray Data's CPU
``map_batches`` stage, ahead of the workers) and computes the loss on a batch of tensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kgi.data.labels import NUM_PARSE13, PARSE13_LABELS
from kgi.data.pose import parse_openpose, pose_graph_nodes
from kgi.data.sample import TryOnSample
from kgi.data.storage import MemoryStorage
from kgi.data.vitonhd import read_pair
from kgi.models.inpainter import SpadeUNet, make_training_scheduler, noise_prediction_loss
from kgi.models.keypoints import KeypointGNN, keypoint_loss, mirror_keypoints
from kgi.models.parse import ParseUNet, parse_input, parse_loss
from kgi.recompose import agnostic_parse
from training.config import TrainConfig

WEIGHTS_FILE = "model.safetensors"


def decode_row(row: dict, height: int | None) -> TryOnSample:
    """A shard row (see ``training.shards.SCHEMA``) as a ``TryOnSample``, through the VITON-HD reader's code."""
    stem = row["person_name"].rsplit(".", 1)[0]
    files = {
        f"train/image/{row['person_name']}": row["image"],
        f"train/cloth/{row['cloth_name']}": row["cloth"],
        f"train/cloth-mask/{row['cloth_name']}": row["cloth_mask"],
        f"train/image-parse-v3/{stem}.png": row["parse"],
        f"train/openpose_json/{stem}_keypoints.json": row["pose_json"].encode(),
        f"train/cloth-landmark-json/{stem}.json": row["cloth_landmarks_json"].encode(),
        f"train/image-landmark-json/{stem}.json": row["image_landmarks_json"].encode(),
    }
    return read_pair(MemoryStorage(files, name=f"shard row {row['person_name']}"), "train",
                     row["person_name"], row["cloth_name"], mode="paired", height=height)


def _rows(batch: dict[str, np.ndarray]) -> list[dict]:
    return [{key: batch[key][i] for key in batch} for i in range(len(batch["person_name"]))]


class Task:
    """Base of the three tasks; ``cfg`` is the run's ``TrainConfig``."""

    model_class: type
    cache_preprocessed = False  # True when preprocess is deterministic and its output small (kept in memory)

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    def build_model(self) -> torch.nn.Module:
        return self.model_class(**self.cfg.model_config)

    def save_model(self, model: torch.nn.Module, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        model.save(directory / WEIGHTS_FILE)

    def load_model(self, directory: Path) -> torch.nn.Module:
        return self.model_class.load(directory / WEIGHTS_FILE)


class KeypointsTask(Task):
    """Stage 1: flat-garment keypoints + pose -> worn keypoints. Needs no pixels, only the JSON columns."""

    model_class = KeypointGNN
    cache_preprocessed = True  # 32 + 10 + 32 points per pair; the mirror augmentation happens in ``loss``

    def preprocess(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cloth_kp, pose_nodes, worn_kp = [], [], []
        for row in _rows(batch):
            cloth_doc = json.loads(row["cloth_landmarks_json"])
            worn_doc = json.loads(row["image_landmarks_json"])
            pose = parse_openpose(row["pose_json"], source=f"shard row {row['person_name']}")
            cloth_kp.append(np.asarray(cloth_doc["keypoints"], np.float32) / [cloth_doc["width"], cloth_doc["height"]])
            worn_kp.append(np.asarray(worn_doc["keypoints"], np.float32) / [worn_doc["width"], worn_doc["height"]])
            pose_nodes.append(pose_graph_nodes(pose, worn_doc["width"], worn_doc["height"]))
        return {"cloth_kp": np.stack(cloth_kp).astype(np.float32), "pose_nodes": np.stack(pose_nodes),
                "worn_kp": np.stack(worn_kp).astype(np.float32)}

    def loss(self, model, batch, generator):
        cloth_kp, pose_nodes, worn_kp = batch["cloth_kp"], batch["pose_nodes"], batch["worn_kp"]
        flip = torch.rand(cloth_kp.shape[0], generator=generator, device=cloth_kp.device) < 0.5
        mirrored = mirror_keypoints(cloth_kp, pose_nodes, worn_kp)
        cloth_kp, pose_nodes, worn_kp = (torch.where(flip[:, None, None], m, x)
                                         for m, x in zip(mirrored, (cloth_kp, pose_nodes, worn_kp)))
        return keypoint_loss(model(cloth_kp, pose_nodes), worn_kp)


class ParseTask(Task):
    """Stage 2a: agnostic parse + skeleton + garment drawing -> 13-class target parse.

    The garment drawing uses the ground-truth worn keypoints jittered by a few pixels, so the network learns
    to tolerate the imprecision of stage 1's predictions it will see at inference.
    """

    model_class = ParseUNet
    keypoint_jitter = 0.01  # standard deviation, in normalised units

    def preprocess(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        samples = [decode_row(row, self.cfg.height) for row in _rows(batch)]
        parse13 = torch.from_numpy(np.stack([s.parse13 for s in samples])).long()  # (B, H, W)
        height, width = parse13.shape[1:]
        worn_kp = torch.from_numpy(np.stack([s.worn_keypoints / [width, height] for s in samples])).float()
        worn_kp = worn_kp + self.keypoint_jitter * torch.randn_like(worn_kp)
        pose_nodes = torch.from_numpy(np.stack([s.pose_nodes for s in samples]))
        inputs = parse_input(agnostic_parse(parse13), pose_nodes, worn_kp.clamp(0, 1))
        return {"inputs": inputs.numpy(), "target": parse13.numpy().astype(np.uint8)}

    def loss(self, model, batch, generator):
        return parse_loss(model(batch["inputs"]), batch["target"].long())


class InpainterTask(Task):
    """Stage 3: the SPADE denoiser on whole person images conditioned on their parse (epsilon loss)."""

    model_class = SpadeUNet

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        self.scheduler = make_training_scheduler()

    def build_model(self) -> torch.nn.Module:
        config = dict(self.cfg.model_config)
        return SpadeUNet.from_preset(config.pop("preset", "tiny"), **config)

    def save_model(self, model, directory: Path) -> None:
        model.save_pretrained(directory)
        self.scheduler.save_pretrained(directory / "scheduler")

    def load_model(self, directory: Path) -> torch.nn.Module:
        return SpadeUNet.from_pretrained(directory)

    def preprocess(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        samples = [decode_row(row, self.cfg.height) for row in _rows(batch)]
        flip = np.random.default_rng().random(len(samples)) < 0.5  # mirror person and parse together
        images = np.stack([s.person[:, ::-1] if f else s.person for s, f in zip(samples, flip)])
        parse13 = np.stack([_mirror_parse(s.parse13) if f else s.parse13 for s, f in zip(samples, flip)])
        return {"images": images.transpose(0, 3, 1, 2).copy(), "parse13": parse13}  # (B, 3, H, W) uint8

    def loss(self, model, batch, generator):
        images01 = batch["images"].float() / 255.0
        onehot = F.one_hot(batch["parse13"].long(), NUM_PARSE13).permute(0, 3, 1, 2).float()  # (B, 13, H, W)
        loss = noise_prediction_loss(model, self.scheduler, images01, onehot, generator)
        return loss, {}


def _mirror_parse(parse13: np.ndarray) -> np.ndarray:
    """Flip a 13-class parse left-right, swapping the left/right arm, leg and shoe classes."""
    swap = np.arange(NUM_PARSE13)
    for side in ("arm", "leg", "shoe"):
        left, right = PARSE13_LABELS.index(f"left-{side}"), PARSE13_LABELS.index(f"right-{side}")
        swap[left], swap[right] = right, left
    return swap[parse13[:, ::-1]].astype(np.uint8)


TASKS: dict[str, type[Task]] = {"keypoints": KeypointsTask, "parse": ParseTask, "inpainter": InpainterTask}
