"""Build the Rust core and find its shared library.

The crate in this directory (``vmbcore``, standard library only) builds offline::

    python adapters/rust/build.py            # release build, prints the library's path
    python adapters/rust/build.py --debug

which runs ``cargo build --offline --release --manifest-path adapters/rust/Cargo.toml`` with
the target directory ``adapters/rust/target``. :func:`library_path` finds the result (or the
library an install with setuptools-rust put next to this file, or the file named by the
environment variable ``VMBCORE_LIB``) without building anything.

Only the standard library is imported here, and nothing from ``spec`` or ``conformance``.
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path

CRATE_DIR = Path(__file__).resolve().parent
MANIFEST = CRATE_DIR / "Cargo.toml"
TARGET_DIR = CRATE_DIR / "target"
#: Set this to use a library built elsewhere (for example by CI or setuptools-rust).
ENV_VAR = "VMBCORE_LIB"

if sys.platform == "darwin":
    LIBRARY_NAME = "libvmbcore.dylib"
elif sys.platform == "win32":
    LIBRARY_NAME = "vmbcore.dll"
else:
    LIBRARY_NAME = "libvmbcore.so"


class RustBuildError(RuntimeError):
    """cargo is missing, or the build failed; the message says which and how to fix it."""


def _built(release: bool) -> Path:
    return TARGET_DIR / ("release" if release else "debug") / LIBRARY_NAME


def build_library(release: bool = True) -> Path:
    """Build the crate with cargo (offline; incremental, so cheap when up to date) and return
    the path of the shared library."""
    cargo = shutil.which("cargo")
    if cargo is None:
        raise RustBuildError(
            "cargo was not found on PATH; install a Rust toolchain (rustup.rs) to build the "
            "Rust core"
        )
    command = [
        cargo,
        "build",
        "--offline",
        "--manifest-path",
        str(MANIFEST),
        "--target-dir",
        str(TARGET_DIR),
    ]
    if release:
        command.append("--release")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RustBuildError(
            f"{' '.join(command)} failed with exit status {result.returncode}:\n{result.stderr}"
        )
    path = _built(release)
    if not path.is_file():
        raise RustBuildError(f"cargo succeeded but {path} does not exist")
    return path


def _packaged() -> list[Path]:
    """The library as an installed package carries it: setuptools-rust with
    ``binding = "NoBinding"`` and target ``adapters.rust.vmbcore`` puts the cdylib next to this
    file as ``vmbcore<EXTENSION_SUFFIX>`` (for example ``vmbcore.cpython-311-x86_64-linux-gnu.so``).
    """
    return [CRATE_DIR / f"vmbcore{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]


def library_path() -> Path:
    """The built library: ``$VMBCORE_LIB`` if set, else the most recently built of the
    packaged library (setuptools-rust), the release build and the debug build. Raises
    :class:`FileNotFoundError` saying how to build it."""
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override)
        if not path.is_file():
            raise FileNotFoundError(f"{ENV_VAR}={override} does not name a file")
        return path
    candidates = [p for p in (*_packaged(), _built(True), _built(False)) if p.is_file()]
    if candidates:
        return max(candidates, key=lambda p: p.stat().st_mtime)
    raise FileNotFoundError(
        f"the Rust core is not built ({_built(True)} is missing). Build it with "
        f"`python {CRATE_DIR / 'build.py'}` (or `cargo build --offline --release "
        f"--manifest-path {MANIFEST}`), or set {ENV_VAR} to a built libvmbcore."
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        print(build_library(release="--debug" not in args))
    except RustBuildError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
