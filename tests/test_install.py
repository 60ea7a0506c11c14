"""The package works outside the checkout: the wheel, installed into a fresh virtual environment, runs ``kgi tryon``
on the genuine VITON-HD pair from a folder that is not the repository, with no flags beyond the two photos, their
pose and parse (and the output).

A fresh environment with torch and Ray would take minutes and gigabytes to build, so the new one borrows this
environment's dependencies: a ``.pth`` file holding this environment's site-packages folder. A plain path line in
a ``.pth`` only appends that folder to ``sys.path``; the ``.pth`` files inside it, the editable install's finder
that maps ``kgi`` to the checkout among them, are not run, so ``kgi`` can only come from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kgi.data.images import decode_rgb
from kgi.shipped import SHIPPED_PATHS

REPO = Path(__file__).resolve().parents[1]
PERSON, GARMENT = "00006_00", "06396_00"
pytestmark = pytest.mark.slow  # builds a wheel and runs a full-resolution try-on on the CPU


def run(command: list, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``command`` run to completion without the checkout on its path; fails the test with its output if it fails."""
    environment = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "KGI_POSE_PYTHON")}
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
