"""Training job configuration, read from YAML (``kgi train MODEL --config FILE``)."""

from __future__ import annotations

import re

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from kgi.data.images import width_for

MODELS = ("keypoints", "parse", "inpainter", "synth_parser")
PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")  # Ray placement group strategies

# A run is one folder under storage_path: no separators, no "." or "..".
RUN_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"


@dataclass
class TrainConfig:
    """Everything a training run needs; every field has a default fit for the embedded local setup.

    Attributes:
        model: which model to train: "keypoints", "parse", "inpainter", or "synth_parser" (the synthetic-only
            human parser, ``kgi.parsing.ParserUNet``, at ``height`` rows).
        data: shard root written by ``kgi convert`` (local or ``s3://``); the ``train`` split is used.
        storage_path: where runs and checkpoints live (local or ``s3://bucket/prefix``).
        run_name: the run's name under ``storage_path``; rerunning the same name resumes it.
        height: training resolution (width = 3/4 height) for the image models.
        steps: optimizer steps in total (over all workers).
        batch_size: samples per worker per step.
        learning_rate: Adam learning rate.
        checkpoint_every: steps between checkpoints (and metric reports).
        num_workers: Ray Train workers (data parallel).
        use_gpu: one GPU per worker.
        cpus_per_worker: CPUs reserved by each worker.
        placement_strategy: how Ray places the workers on nodes: "PACK" (as few nodes as possible, the fastest
            gradient exchange), "SPREAD" (one per node where it can, so losing a node takes fewer workers down),
            or their strict forms "STRICT_PACK" / "STRICT_SPREAD" (wait until that placement is possible).
        max_failures: worker failures tolerated; the run restarts from its last checkpoint.
        precision: "fp32", "bf16" or "fp16" (autocast; GPU only, CPU runs stay fp32).
        ema_decay: keep an exponential moving average of the weights (inpainter); None disables it.
        seed: seeds the model init, the data order and the diffusion noise.
        model_config: keyword arguments of the model's constructor (sizes).
        init_from: weights a new run starts from instead of a random init, for fine-tuning: a file the model's
            ``save`` wrote (``models/default/keypoints.safetensors``, ``.../parse.safetensors``) or, for the
            inpainter, a ``save_pretrained`` folder (``models/default/inpainter``); the sizes must match
            ``model_config``. A run that resumes from its own checkpoint ignores it. None: random init.
    """

    model: str
    data: str
    storage_path: str = "runs"
    run_name: str | None = None
    height: int = 128
    steps: int = 1000
    batch_size: int = 16
    learning_rate: float = 1e-3
    checkpoint_every: int = 100
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    placement_strategy: str = "PACK"
    max_failures: int = 2
    precision: str = "fp32"
    ema_decay: float | None = None
    seed: int = 0
    model_config: dict = field(default_factory=dict)
    init_from: str | None = None

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.placement_strategy not in PLACEMENT_STRATEGIES:
            raise ValueError(f"placement_strategy must be one of {', '.join(PLACEMENT_STRATEGIES)}, "
                             f"got {self.placement_strategy!r}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")
        if self.height % 32:
            raise ValueError(f"height must be a multiple of 32, got {self.height}")
        if self.model == "synth_parser" and self.height % 64:
            raise ValueError(f"the synthetic parser's U-Net halves 4 times: height must be a multiple of 64 (width "
                             f"3/4 of it), got {self.height}")
        if self.model == "parse" and self.height % 128:
            raise ValueError(f"the parse U-Net halves 5 times: height must be a multiple of 128 (width 3/4 of it), "
                             f"got {self.height}")
        for name in ("steps", "batch_size", "checkpoint_every", "num_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.run_name is None:
            self.run_name = f"{self.model}"
        if not re.fullmatch(RUN_NAME_PATTERN, self.run_name):
            raise ValueError(f"run_name must be one folder name ({RUN_NAME_PATTERN}), got {self.run_name!r}")

    @property
    def width(self) -> int:
        return width_for(self.height)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> "TrainConfig":
        """Read a YAML file; ``overrides`` (e.g. from the command line) win over the file."""
        doc = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: expected a mapping of options")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ValueError(f"{path}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        doc.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**doc)

    def to_dict(self) -> dict:
        return asdict(self)
