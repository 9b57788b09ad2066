"""The Rust core's C ABI: cargo's own checks, a C program against the checked-in header, and
the headers against the library's exported symbols (rustls-ffi: the header is compared in CI):
``vmbcore.h`` declares exactly the ``Vmb...``/``vmbcore_...`` exports of ``src/ffi.rs``,
``vmbsweep.h`` exactly the ``vmbsweep_...`` exports of ``src/sweep.rs``."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from vmbspec.adapters.rust.build import CRATE_DIR, MANIFEST, build_library

HEADER = CRATE_DIR / "include" / "vmbcore.h"
SMOKE = CRATE_DIR / "tests" / "c" / "smoke.c"
FFI = CRATE_DIR / "src" / "ffi.rs"
SWEEP_HEADER = CRATE_DIR / "include" / "vmbsweep.h"
SWEEP = CRATE_DIR / "src" / "sweep.rs"
#: The modules allowed ``unsafe`` (each unsafe block with a SAFETY comment).
UNSAFE_MODULES = (FFI, SWEEP)

needs_cargo = pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
needs_nm = pytest.mark.skipif(shutil.which("nm") is None, reason="nm (binutils) is not installed")


@pytest.fixture(scope="module")
def library() -> Path:
    if shutil.which("cargo") is None:
        pytest.skip("cargo is not installed")
    return build_library(release=True)


def _cargo(command: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``cargo COMMAND --offline --manifest-path ... ARGS`` (ARGS may hold ``-- ...``)."""
    return subprocess.run(
        ["cargo", command, "--offline", "--manifest-path", str(MANIFEST), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=CRATE_DIR,
    )


def _header_functions(header: Path = HEADER) -> dict[str, int]:
    """Function name -> parameter count, for every prototype in the header."""
    text = re.sub(r"/\*.*?\*/", "", header.read_text(), flags=re.S)
    found: dict[str, int] = {}
    for match in re.finditer(
        r"^(?:NTSTATUS|VMBPACKET|VMBCHANNEL|void|int32_t)\s+(\w+)\s*\(([^)]*)\)\s*;",
        text,
        flags=re.M,
    ):
        params = match.group(2).strip()
        found[match.group(1)] = 0 if params in ("", "void") else params.count(",") + 1
    return found


def _rust_functions(source: Path = FFI) -> dict[str, int]:
    """Function name -> parameter count, for every ``#[unsafe(no_mangle)]`` function."""
    text = source.read_text()
    found: dict[str, int] = {}
    for match in re.finditer(
        r"#\[unsafe\(no_mangle\)\]\s*(?:#\[[^\]]*\]\s*)*"
        r"pub (?:unsafe )?extern \"C\" fn (\w+)\s*\(([^)]*)\)",
        text,
    ):
        params = [p for p in match.group(2).split(",") if p.strip()]
        found[match.group(1)] = len(params)
    return found


@needs_cargo
def test_cargo_test_passes() -> None:
    result = _cargo("test", "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_cargo
def test_cargo_fmt_and_clippy_are_clean() -> None:
    if subprocess.run(["cargo", "fmt", "--version"], capture_output=True).returncode != 0:
        pytest.skip("rustfmt is not installed")
    fmt = subprocess.run(
        ["cargo", "fmt", "--check", "--manifest-path", str(MANIFEST)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    if subprocess.run(["cargo", "clippy", "--version"], capture_output=True).returncode != 0:
        pytest.skip("clippy is not installed")
    clippy = _cargo("clippy", "--all-targets", "--quiet", "--", "-D", "warnings")
    assert clippy.returncode == 0, clippy.stdout + clippy.stderr


def test_no_dependencies_in_cargo_toml() -> None:
    text = MANIFEST.read_text()
    section = text.split("[dependencies]", 1)[1].split("\n[", 1)[0]
    assert [
        line for line in section.splitlines() if line.strip() and not line.startswith("#")
    ] == []


def test_unsafe_is_confined_to_the_ffi_module() -> None:
    for source in sorted((CRATE_DIR / "src").glob("*.rs")):
        text = source.read_text()
        if source.name == "lib.rs" or source in UNSAFE_MODULES:
            continue
        assert "#![forbid(unsafe_code)]" in text, source.name
    for module in UNSAFE_MODULES:
        code = module.read_text()
        blocks = code.count("unsafe {")
        assert blocks > 0
        # Every unsafe block is preceded by a SAFETY comment.
        for match in re.finditer(r"unsafe \{", code):
            before = code[: match.start()].rsplit("\n", 4)
            assert "SAFETY:" in "\n".join(before[-4:]), code[match.start() - 200 : match.start()]
    # The sweep runner's shape and record code is a module of its own without unsafe.
    assert "mod plan {\n    #![forbid(unsafe_code)]" in SWEEP.read_text()


@needs_gcc
def test_c_smoke_program_runs_against_the_header(library: Path, tmp_path: Path) -> None:
    binary = tmp_path / "smoke"
    compile_ = subprocess.run(
        [
            "gcc",
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            f"-I{HEADER.parent}",
            str(SMOKE),
            f"-L{library.parent}",
            "-lvmbcore",
            f"-Wl,-rpath,{library.parent}",
            "-o",
            str(binary),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert compile_.returncode == 0, compile_.stderr
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "smoke: ok"


@needs_gcc
def test_header_compiles_as_cplusplus_too(tmp_path: Path) -> None:
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    source = tmp_path / "h.cpp"
    source.write_text('#include "vmbcore.h"\nint main() { return sizeof(MDL) == 0x30 ? 0 : 1; }\n')
    result = subprocess.run(
        ["g++", "-Wall", "-Werror", f"-I{HEADER.parent}", str(source), "-o", str(tmp_path / "h")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@needs_nm
def test_header_declares_exactly_the_exported_functions(library: Path) -> None:
    nm = subprocess.run(
        ["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True, check=True
    )
    exported = {
        parts[-1]
        for parts in (line.split() for line in nm.stdout.splitlines())
        if len(parts) == 3 and parts[1] == "T"
    }
    ours = {name for name in exported if name.startswith(("Vmb", "vmbcore_"))}
    declared = _header_functions()
    assert set(declared) == ours
    sweep = {name for name in exported if name.startswith("vmbsweep_")}
    assert set(_header_functions(SWEEP_HEADER)) == sweep
    # Nothing else leaks out of the cdylib.
    assert exported == ours | sweep


def test_header_and_rust_agree_on_parameter_counts() -> None:
    header = _header_functions()
    rust = _rust_functions()
    assert header == rust
    assert header["VmbPacketSendWithExternalMdl"] == 7
    sweep = _header_functions(SWEEP_HEADER)
    assert sweep == _rust_functions(SWEEP)
    assert sweep["vmbsweep_run"] == 8


@needs_gcc
@pytest.mark.parametrize("compiler", ["gcc", "g++"])
def test_sweep_header_compiles_as_c_and_cplusplus(compiler: str, tmp_path: Path) -> None:
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed")
    source = tmp_path / ("h.c" if compiler == "gcc" else "h.cpp")
    source.write_text(
        '#include "vmbsweep.h"\n'
        "int main(void) { return sizeof(VMBSWEEP_PROGRESS) == 40 ? VMBSWEEP_OK : 1; }\n"
    )
    flags = ["-std=c11", "-pedantic"] if compiler == "gcc" else []
    result = subprocess.run(
        [compiler, *flags, "-Wall", "-Wextra", "-Werror", f"-I{SWEEP_HEADER.parent}",
         str(source), "-o", str(tmp_path / "h")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
