"""Every data file the packages read at run time ships in the wheel (pyproject's package-data).

An editable install reads the source tree, so a data file missing from package-data works in
development and in CI, and fails only for a user who installed the wheel.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_SUFFIXES = (".json", ".toml")


def test_every_data_file_of_spec_and_conformance_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = config["tool"]["setuptools"]["package-data"]
    missing = []
    for package in ("spec", "conformance"):
        patterns = package_data.get(f"vmbspec.{package}", [])
        for path in sorted((ROOT / package).rglob("*")):
            if path.suffix not in DATA_SUFFIXES or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(ROOT / package).as_posix()
            if not any(fnmatch.fnmatch(relative, pattern) for pattern in patterns):
                missing.append(f"{package}/{relative}")
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
