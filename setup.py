"""Which packages the distribution holds: the one thing pyproject.toml cannot say here.

The import packages are ``vmbspec.spec``, ``vmbspec.conformance`` and ``vmbspec.adapters``; the
repository keeps them in the top-level folders spec/, conformance/ and adapters/ (see
vmbspec/__init__.py). In a checkout with symbolic links, vmbspec/spec and the others are links
to those folders and the packages are found through them. A checkout without (git on Windows
with ``core.symlinks`` off) has small text files there instead, naming the folders, and the
same packages are mapped onto the folders. Either way the wheel holds the same files, under
vmbspec/ and nowhere else (tests/test_namespace.py builds both).
"""

from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).resolve().parent
FOLDERS = ("spec", "conformance", "adapters")
#: Folders that are not part of any package: caches and the Rust core's build output.
NOT_PACKAGES = ["*__pycache__", "rust.target", "rust.target.*"]

linked = all((HERE / "vmbspec" / folder).is_dir() for folder in FOLDERS)
base = HERE / "vmbspec" if linked else HERE
setup(
    packages=["vmbspec"] + [
        f"vmbspec.{folder}" + (f".{sub}" if sub else "")
        for folder in FOLDERS
        for sub in ["", *find_namespace_packages(where=str(base / folder), exclude=NOT_PACKAGES)]
    ],
    package_dir={} if linked else {f"vmbspec.{folder}": folder for folder in FOLDERS},
)
