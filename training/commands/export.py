"""Export a training run's latest checkpoint into a model version folder that serving and kgi tryon load.

A version holds all three stages; each run exported replaces the stage it trained, the others stay (from the
existing version, or from --base for a new one).

Examples:
  kgi export runs/keypoints runs/parse runs/inpainter --version v2 --base none
  kgi export s3://runs/inpainter-big --version v3 --base models/default

The version goes into --models: by default the repository's models/ in a checkout and, installed from a wheel,
~/.local/share/kgi/models ($XDG_DATA_HOME/kgi/models), never into the installed package.
"""

from __future__ import annotations

import re
from pathlib import Path

from kgi.cli import CommandError
from kgi.shipped import DEFAULT_VERSION, LOCAL_MODELS_DIR

HELP = "a run's checkpoint -> a model version folder"


def add_arguments(parser):
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s): <storage_path>/<run_name>, local or s3://")
    parser.add_argument("--version", required=True, metavar="NAME", help="version name (letters, digits, - _ .)")
    parser.add_argument("--models", type=Path, default=LOCAL_MODELS_DIR, metavar="DIR",
                        help="folder of model versions (default: %(default)s)")
    parser.add_argument("--base", default=str(DEFAULT_VERSION), metavar="DIR",
                        help="version the other stages come from when NAME is new (default: the shipped one; "
                             "'none' when the runs cover all three stages)")


def run(args) -> int:
    from training.export import export

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", args.version):
        raise CommandError("--version must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    args.models.mkdir(parents=True, exist_ok=True)
    try:
        base = None if args.base == "none" else Path(args.base)
        info = export(args.runs, args.models / args.version, args.version, base=base)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    stages = ", ".join(f"{stage} (step {p['step']})" for stage, p in info.provenance.items())
    print(f"{args.models / args.version}: version {info.name}; trained stages: {stages}")
    return 0
