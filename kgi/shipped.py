"""Where the files the product ships beside its code are: the default model version, the synthetic parser's
weights, the example request and the local Serve config.

In a checkout they are the repository's own (``models/``, ``examples/``, ``platform/serve/local.yaml``). A wheel
carries copies of exactly those as package data under ``kgi/_shipped/`` (``setup.py`` puts them there), laid out
the same way, so every default below holds wherever the package is installed. The genuine VITON-HD data is never
shipped: :data:`CHECKOUT_DIR` tells whether there is a repository to look beside.

What the commands write when they are not told where (``kgi export``'s versions, the ``kgi models`` registry,
``kgi bench``'s results and data) goes into the checkout, and, installed, into this user's folders
(:func:`output_dir`): never into the installed package, which is read-only to its users and replaced on upgrade.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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


def output_dir(repo_path: str, user_path: str, *, checkout_dir: Path | None = CHECKOUT_DIR,
               environ: Mapping[str, str] = os.environ) -> Path:
    """Where a command writes when it is not told: ``repo_path`` in the checkout when running from one; installed
    from a wheel, ``user_path`` in this user's kgi folders (the XDG base directories), never in the package.

    Args:
        repo_path: the folder relative to the repository root, e.g. ``"models"``.
        user_path: the folder relative to the user's folders: ``"data/..."`` is under ``$XDG_DATA_HOME/kgi``
            (default ``~/.local/share/kgi``), ``"cache/..."`` under ``$XDG_CACHE_HOME/kgi`` (default ``~/.cache/kgi``).
        checkout_dir: the repository root, None when installed (:data:`CHECKOUT_DIR`).
        environ: the environment the XDG variables are read from.
    """
    if checkout_dir is not None:
        return checkout_dir / repo_path
    kind, _, rest = user_path.partition("/")
    if kind not in ("data", "cache"):
        raise ValueError(f"user_path must start with data/ or cache/, got {user_path!r}")
    variable, default = ("XDG_DATA_HOME", ".local/share") if kind == "data" else ("XDG_CACHE_HOME", ".cache")
    value = environ.get(variable, "")  # the spec ignores a relative path there
    base = Path(value) if os.path.isabs(value) else Path(environ.get("HOME") or Path.home()) / default
    return base / "kgi" / rest


# The folder of model versions the commands write by default and the default local registry (kgi export, kgi
# models): the repository's models/ (beside the shipped default version) or, installed, ~/.local/share/kgi/models.
LOCAL_MODELS_DIR = output_dir("models", "data/models")
