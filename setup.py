"""Packaging hook (the project is described in pyproject.toml).

A wheel (``pip install .``, ``python -m build``) carries copies of the top-level ``problems/``,
``solvers/`` and ``sweeps/`` folders as ``opsrl/_bundled/``, whatever subfolders they hold, so that an
installed opsrl finds its bundled names without the source tree. An editable install copies nothing:
:func:`opsrl.registry.roots` reads the source tree itself.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = ("problems", "solvers", "sweeps")


class BuildWithBundled(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "opsrl" / "_bundled"
        for name in BUNDLED:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(
                    src, target / name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
                )


setup(cmdclass={"build_py": BuildWithBundled})
