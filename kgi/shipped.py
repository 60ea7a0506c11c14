"""Where the files the product ships beside its code are: the default model version, the synthetic parser's
weights, the example request and the local Serve config.

In a checkout they are the repository's own (``models/``, ``examples/``, ``platform/serve/local.yaml``). A wheel
carries copies of exactly those as package data under ``kgi/_shipped/`` (``setup.py`` puts them there), laid out
the same way, so every default below holds wherever the package is installed. The genuine VITON-HD data is never
shipped: :data:`CHECKOUT_DIR` tells whether there is a repository to look beside.
"""

from __future__ import annotations

from pathlib import Path

PACKAGED_DIR = Path(__file__).resolve().parent / "_shipped"
# The repository root when running from a checkout (editable install, tests); None when installed from a wheel.
CHECKOUT_DIR: Path | None = None if PACKAGED_DIR.is_dir() else Path(__file__).resolve().parents[1]
SHIPPED_DIR = PACKAGED_DIR if CHECKOUT_DIR is None else CHECKOUT_DIR
# What setup.py copies into the wheel, relative to the repository root (and to SHIPPED_DIR).
SHIPPED_PATHS = ("models/default", "models/parser", "models/MODEL_CARD.md", "examples", "platform/serve/local.yaml")

MODELS_DIR = SHIPPED_DIR / "models"  # a folder of model versions, and the default local registry
DEFAULT_VERSION = MODELS_DIR / "default"
SYNTH_PARSER = MODELS_DIR / "parser" / "synth_parser.safetensors"
EXAMPLES_DIR = SHIPPED_DIR / "examples"  # a synthetic person photo with its pose and parse, and a garment photo
LOCAL_SERVE_CONFIG = SHIPPED_DIR / "platform" / "serve" / "local.yaml"
