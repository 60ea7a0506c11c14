"""The package works outside the checkout: the wheel, installed into a fresh virtual environment, runs ``kgi tryon``
on the genuine VITON-HD pair from a folder that is not the repository, with no flags beyond the two photos, their
pose and parse (and the output); and what the commands write by default goes into the user's folders, never into
the installed package.

A fresh environment with torch and Ray would take minutes and gigabytes to build, so the new one borrows this
environment's dependencies: a ``.pth`` file holding this environment's site-packages folder. A plain path line in
a ``.pth`` only appends that folder to ``sys.path``; the ``.pth`` files inside it, the editable install's finder
that maps ``kgi`` to the checkout among them, are not run, so ``kgi`` can only come from the wheel.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bench.common import RESULTS_DIR, cache_dir
from jobs.commands import infer as infer_command
from kgi.commands.models import DEFAULT_REGISTRY
from kgi.data.images import decode_rgb
from kgi.shipped import LOCAL_MODELS_DIR, MODELS_DIR, SHIPPED_PATHS, output_dir
from training.commands.export import add_arguments as export_arguments

REPO = Path(__file__).resolve().parents[1]
PERSON, GARMENT = "00006_00", "06396_00"
# What an installed kgi writes by default, printed by the installed package (one path a line).
WRITTEN_DEFAULTS = ("import bench.common, kgi.commands.models, kgi.shipped; "
                    "print(kgi.shipped.LOCAL_MODELS_DIR, kgi.commands.models.DEFAULT_REGISTRY, "
                    "bench.common.RESULTS_DIR, bench.common.cache_dir(), sep='\\n')")


def test_defaults_write_into_the_checkout_or_the_users_folders():
    def installed(repo_path: str, user_path: str, **environ: str) -> Path:
        return output_dir(repo_path, user_path, checkout_dir=None, environ={"HOME": "/home/u", **environ})

    assert output_dir("models", "data/models", checkout_dir=REPO, environ={}) == REPO / "models"
    assert installed("models", "data/models") == Path("/home/u/.local/share/kgi/models")
    assert installed("bench/.cache", "cache/bench") == Path("/home/u/.cache/kgi/bench")
    assert installed("models", "data/models", XDG_DATA_HOME="/data") == Path("/data/kgi/models")
    assert installed("models", "data/models", XDG_DATA_HOME="data") == Path("/home/u/.local/share/kgi/models")
    with pytest.raises(ValueError, match="data/ or cache/"):
        installed("models", "models")
    # This checkout's commands use them (the installed package's: test_wheel_runs_tryon_outside_the_checkout).
    export = argparse.ArgumentParser()
    export_arguments(export)
    assert export.parse_args(["run", "--version", "v"]).models == LOCAL_MODELS_DIR == REPO / "models"
    assert DEFAULT_REGISTRY == LOCAL_MODELS_DIR and RESULTS_DIR == REPO / "bench" / "results"
    assert cache_dir() == Path(os.environ.get("KGI_BENCH_CACHE") or REPO / "bench" / ".cache")


def test_infer_finds_an_exported_version_before_the_shipped_one(tmp_path, monkeypatch):
    monkeypatch.setattr(infer_command, "LOCAL_MODELS_DIR", tmp_path / "exported")  # as installed: not MODELS_DIR
    assert infer_command.resolve_version("default") == MODELS_DIR / "default"
    (tmp_path / "exported" / "default").mkdir(parents=True)
    assert infer_command.resolve_version("default") == tmp_path / "exported" / "default"
    assert infer_command.resolve_version(str(tmp_path)) == tmp_path


def run(command: list, cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``command`` run to completion without the checkout on its path (and with ``env`` added to the environment);
    fails the test with its output if it fails."""
    environment = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "KGI_POSE_PYTHON")}
    environment.update(env or {})
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def build_wheel(out: Path) -> Path:
    """The wheel built as ``python -m build`` does: a source distribution first, then the wheel from it."""
    run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})"], REPO)
    (sdist,) = out.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(out, filter="data")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", out, out / sdist.name.removesuffix(".tar.gz")], out)
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.mark.slow  # builds a wheel and runs a full-resolution try-on on the CPU
def test_wheel_runs_tryon_outside_the_checkout(vitonhd_sample: Path, tmp_path: Path):
    wheel = build_wheel(tmp_path / "dist")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = [name for name in names if name.startswith("kgi/_shipped/")]
    assert "kgi/_shipped/models/default/version.yaml" in shipped
    assert "kgi/_shipped/models/parser/synth_parser.safetensors" in shipped
    assert "kgi/_shipped/examples/person.jpg" in shipped
    assert all(name.removeprefix("kgi/_shipped/").startswith(SHIPPED_PATHS) for name in shipped), shipped
    assert not [name for name in names if PERSON in name or GARMENT in name], "genuine VITON-HD data in the wheel"

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    new_python = venv / "bin" / "python"
    new_site = run([new_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path)
    Path(new_site.stdout.strip(), "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([new_python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", wheel], tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run([new_python, "-c", "import kgi, kgi.shipped; print(kgi.__file__); print(kgi.shipped.CHECKOUT_DIR)"],
                elsewhere).stdout.split()
    assert Path(where[0]).is_relative_to(venv) and where[1] == "None", where

    # What the commands write by default goes to the user's folders; pushing the shipped version to the default
    # registry leaves the installed package as it was.
    home = {"HOME": str(tmp_path / "home"), "XDG_DATA_HOME": "", "XDG_CACHE_HOME": "", "KGI_REGISTRY": "",
            "KGI_BENCH_CACHE": ""}
    defaults = run([new_python, "-c", WRITTEN_DEFAULTS], elsewhere, env=home).stdout.split()
    assert defaults == [str(tmp_path / "home" / ".local/share/kgi/models")] * 2 + [
        str(tmp_path / "home" / ".local/share/kgi/bench/results"), str(tmp_path / "home" / ".cache/kgi/bench")]
    shipped_dir = Path(where[0]).parent / "_shipped"
    installed = sorted(shipped_dir.rglob("*"))
    run([venv / "bin" / "kgi", "models", "push", shipped_dir / "models" / "default", "--name", "copy"], elsewhere,
        env=home)
    assert (tmp_path / "home" / ".local/share/kgi/models/copy/manifest.json").is_file()
    assert sorted(shipped_dir.rglob("*")) == installed

    test = vitonhd_sample / "test"
    person = test / "image" / f"{PERSON}.jpg"
    run([venv / "bin" / "kgi", "tryon", person, test / "cloth" / f"{GARMENT}.jpg", "-o", "out.png",
         "--pose", test / "openpose_json" / f"{PERSON}_keypoints.json",
         "--parse", test / "image-parse-v3" / f"{PERSON}.png"], elsewhere, timeout=900)
    result = decode_rgb((elsewhere / "out.png").read_bytes(), source="result")
    photo = decode_rgb(person.read_bytes(), source="person")
    assert result.shape == photo.shape
    # The garment region is repainted, the rest of the photo kept.
    changed = np.abs(result.astype(int) - photo).max(axis=2) > 40
    assert 0.05 < changed.mean() < 0.6, changed.mean()
