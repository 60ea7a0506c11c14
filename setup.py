"""The wheel's one build step beyond pyproject.toml: copy the shipped files into the package.

``kgi.shipped.SHIPPED_PATHS`` (the default model version, the synthetic parser, the examples, the local Serve
config) live at the repository root, where the docs, scripts and tests name them; the wheel carries them under
``kgi/_shipped/`` so that an installed ``kgi`` finds them anywhere (``kgi.shipped``). Everything else is in
pyproject.toml.
"""

import runpy
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED_PATHS = runpy.run_path(str(ROOT / "kgi" / "shipped.py"))["SHIPPED_PATHS"]


class BuildPyWithShippedFiles(build_py):
    """``build_py``, then the shipped files copied into ``<build>/kgi/_shipped/``."""

    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads them from the checkout
            return
        target = Path(self.build_lib) / "kgi" / "_shipped"
        for relative in SHIPPED_PATHS:
            source, destination = ROOT / relative, target / relative
            if not source.exists():
                raise FileNotFoundError(f"{source} is missing: the wheel ships it (kgi.shipped.SHIPPED_PATHS)")
            destination.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, destination, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, destination)


setup(cmdclass={"build_py": BuildPyWithShippedFiles})
