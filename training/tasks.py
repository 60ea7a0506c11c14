"""What each model needs from the generic training loop: a ``Task`` per model (the three KGI models and the
synthetic-only human parser).

A task builds its model, saves and loads it in the model's own format, names the function that turns shard rows
into model-ready numpy columns (``preprocessor``: decoding, resizing, augmentation and sketch drawing, from
``training.preprocess``; it runs in Ray Data's CPU ``map_batches`` stage, ahead of the workers) and computes the
loss on a batch of tensors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from kgi.data.labels import MIRRORED_CIHP, NUM_PARSE13
from kgi.models.inpainter import SpadeUNet, make_training_scheduler, noise_prediction_loss
from kgi.models.keypoints import KeypointGNN, keypoint_loss, mirror_keypoints
from kgi.models.parse import ParseUNet, parse_loss
from kgi.parsing import ParserUNet
from training import preprocess
from training.config import TrainConfig

WEIGHTS_FILE = "model.safetensors"
BatchTransform = Callable[[preprocess.Batch], preprocess.Batch]


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

    def load_pretrained(self, path: Path) -> torch.nn.Module:
        """The model in a shipped version's format (``TrainConfig.init_from``): one safetensors file."""
        return self.model_class.load(path)

    def preprocessor(self) -> BatchTransform:
        """The Ray Data stage: a ``training.preprocess`` function with this run's settings bound, which a Ray Data
        worker unpickles without importing this module and the models."""
        raise NotImplementedError


class KeypointsTask(Task):
    """Stage 1: flat-garment keypoints + pose -> worn keypoints. Needs no pixels, only the JSON columns."""

    model_class = KeypointGNN
    cache_preprocessed = True  # 32 + 10 + 32 points per pair; the mirror augmentation happens in ``loss``

    def preprocessor(self) -> BatchTransform:
        return preprocess.keypoints

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

    def preprocessor(self) -> BatchTransform:
        return functools.partial(preprocess.parse, height=self.cfg.height, keypoint_jitter=self.keypoint_jitter)

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

    def load_pretrained(self, path: Path) -> torch.nn.Module:
        return SpadeUNet.from_pretrained(path)

    def preprocessor(self) -> BatchTransform:
        return functools.partial(preprocess.inpainter, height=self.cfg.height)

    def loss(self, model, batch, generator):
        images01 = batch["images"].float() / 255.0
        onehot = F.one_hot(batch["parse13"].long(), NUM_PARSE13).permute(0, 3, 1, 2).float()  # (B, 13, H, W)
        loss = noise_prediction_loss(model, self.scheduler, images01, onehot, generator)
        return loss, {}


class SynthParserTask(Task):
    """The synthetic-only human parser (``kgi.parsing.ParserUNet``, what ``SynthParser`` loads): an RGB photo of a
    synthetic person -> its CIHP labels, at ``height`` rows. Trained on ``kgi synth`` people converted to shards.

    Augmentation, per pair: a horizontal flip with the left/right labels swapped (``MIRRORED_CIHP``) half of the
    time, and per-channel colour gains in [0.75, 1.25]. The loss is ``parse_loss`` (cross-entropy plus soft Dice).
    """

    model_class = ParserUNet
    cache_preprocessed = True  # photos fitted to the small input and their labels: deterministic, a few MB

    def build_model(self) -> torch.nn.Module:
        return ParserUNet(**{"input_height": self.cfg.height, **self.cfg.model_config})

    def preprocessor(self) -> BatchTransform:
        return functools.partial(preprocess.synth_parser, height=self.cfg.height)

    def loss(self, model, batch, generator):
        images, labels = batch["images"], batch["labels"].long()  # (B, 3, h, w) uint8, (B, h, w)
        batch_size, device = images.shape[0], images.device
        flip = torch.rand(batch_size, generator=generator, device=device) < 0.5
        mirrored = torch.from_numpy(MIRRORED_CIHP).long().to(device)[labels].flip(-1)
        labels = torch.where(flip[:, None, None], mirrored, labels)
        images = torch.where(flip[:, None, None, None], images.flip(-1), images).float() / 255
        gains = 0.75 + 0.5 * torch.rand(batch_size, 3, 1, 1, generator=generator, device=device)
        return parse_loss(model((images * gains).clamp(0, 1)), labels)


TASKS: dict[str, type[Task]] = {"keypoints": KeypointsTask, "parse": ParseTask, "inpainter": InpainterTask,
                                "synth_parser": SynthParserTask}
