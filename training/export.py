"""``kgi export``: a training run's latest checkpoint into a model version folder that serving loads.

A version holds all three stages (``kgi.pipeline``); exporting a run replaces the stage that run trained and
keeps the others from a base version, so three runs exported one after another build a complete version.
The inpainter is exported with its EMA weights when the run kept them. ``version.yaml`` records where each
stage's weights came from (run, step, data, resolution), and a fresh ``manifest.json`` (``kgi.registry``) the
sha256 of every file, so the folder is a version of the local registry that holds it (``models/``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import ray.train

from kgi.pipeline import VERSION_FILE, VersionInfo
from kgi.registry import write_manifest
from training.config import TrainConfig
from kgi.data.storage import arrow_filesystem
from training.loop import CONFIG_FILE, HISTORY_FILE


def latest_checkpoint(run_uri: str) -> ray.train.Checkpoint:
    """The latest checkpoint of the run folder ``run_uri`` (``<storage_path>/<run_name>``, local or s3://)."""
    filesystem, path = arrow_filesystem(run_uri)
    try:
        result = ray.train.Result.from_path(path, storage_filesystem=filesystem)
    except RuntimeError as exc:
        raise FileNotFoundError(f"{run_uri}: not a training run ({exc})") from None
    if result.checkpoint is None:
        raise FileNotFoundError(f"{run_uri}: the run has no checkpoint yet")
    return result.checkpoint


def export(run_uris: list[str], version_dir: Path, name: str, base: Path | None = None) -> VersionInfo:
    """Write (or update) the version ``version_dir`` with the stages trained by ``run_uris``.

    Args:
        run_uris: run folders, ``<storage_path>/<run_name>``; each replaces the stage it trained.
        version_dir: the version folder to write; it is replaced atomically (built beside it, then renamed).
        name: the version's name.
        base: the version the other stages come from when ``version_dir`` does not exist yet; may be None
            when the runs cover all three stages.
    """
    source = version_dir if (version_dir / VERSION_FILE).is_file() else base
    if source is not None and not (source / VERSION_FILE).is_file():
        raise FileNotFoundError(f"{source}: not a model version (no {VERSION_FILE})")
    version_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version_dir.name}.", dir=version_dir.parent))
    try:
        info = VersionInfo(name=name)
        if source is not None:
            shutil.copytree(source, staging, dirs_exist_ok=True)
            info = VersionInfo.read(staging)
        for run_uri in run_uris:
            _export_stage(run_uri, staging, info)
        missing = [f for f in ("keypoints.safetensors", "parse.safetensors", "inpainter") if not (staging / f).exists()]
        if missing:
            raise FileNotFoundError(f"version {name} would lack {', '.join(missing)}: export those runs too or "
                                    "give a base version")
        info.name = name
        info.write(staging)
        write_manifest(staging, name)  # replaces the base version's manifest: these are new files
        if version_dir.exists():
            old = version_dir.with_name(f".{version_dir.name}.old")
            version_dir.rename(old)
            staging.rename(version_dir)
            shutil.rmtree(old)
        else:
            staging.rename(version_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return info


def _export_stage(run_uri: str, staging: Path, info: VersionInfo) -> None:
    """Copy the stage ``run_uri`` trained into the version folder being built, and note where it came from."""
    with latest_checkpoint(run_uri).as_directory() as checkpoint:
        checkpoint = Path(checkpoint)
        cfg = TrainConfig(**json.loads((checkpoint / CONFIG_FILE).read_text()))
        step = json.loads((checkpoint / HISTORY_FILE).read_text().splitlines()[-1])["step"]
        if cfg.model == "inpainter":
            weights = checkpoint / ("ema" if (checkpoint / "ema").exists() else "model")
            shutil.rmtree(staging / "inpainter", ignore_errors=True)
            shutil.copytree(weights, staging / "inpainter")
            info.inpaint_height = cfg.height
        else:
            shutil.copyfile(checkpoint / "model" / "model.safetensors", staging / f"{cfg.model}.safetensors")
            if cfg.model == "parse":
                info.parse_height = cfg.height
    info.provenance = {**info.provenance, cfg.model: {"run": run_uri, "step": step, "data": cfg.data,
                                                      "height": cfg.height, "workers": cfg.num_workers}}
