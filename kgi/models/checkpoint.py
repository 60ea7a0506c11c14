"""Saving and loading the stage models (keypoint GNN, parse networks) as one safetensors file each.

Kept apart from the models so that a model file imports only what its own layers need: the parse network does not
need torch-geometric, which only the keypoint GNN uses.
"""

from __future__ import annotations

import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn


class CheckpointError(ValueError):
    """A checkpoint file that is missing or was written for another model."""


class SafetensorsModel(nn.Module):
    """Save and load for the stage models: the weights in one safetensors file, the constructor arguments
    (``self.config``, a JSON-able dict every subclass sets) and the class name in the file's metadata."""

    config: dict

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights and config to ``path`` (a ``.safetensors`` file)."""
        state = {name: tensor.detach().contiguous() for name, tensor in self.state_dict().items()}
        save_file(state, os.fspath(path), metadata={"model": type(self).__name__, "config": json.dumps(self.config)})

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu"):
        """Build the model from a file written by :meth:`save`, in eval mode on ``device``."""
        if not os.path.isfile(path):
            raise CheckpointError(f"checkpoint {os.fspath(path)!r} does not exist")
        with safe_open(os.fspath(path), framework="pt", device=str(device)) as f:
            metadata = f.metadata() or {}
            if metadata.get("model") != cls.__name__:
                raise CheckpointError(
                    f"checkpoint {os.fspath(path)!r} holds a {metadata.get('model')!r}, not a {cls.__name__}")
            state = {name: f.get_tensor(name) for name in f.keys()}
        model = cls(**json.loads(metadata["config"]))
        model.load_state_dict(state)
        return model.to(device).eval()
