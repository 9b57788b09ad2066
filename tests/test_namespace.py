"""One import namespace: installing vmbspec adds only ``vmbspec`` to the environment.

Before issue 14 the wheel installed three top-level packages, ``spec``, ``conformance`` and
``adapters``, each the name of another distribution on the package index; pip installed both
without complaint and one overwrote the other's files. Here the wheel is built from a copy of the
repository (the symbolic links under vmbspec/ included), installed into a fresh virtual
environment beside a small distribution of our own that provides top-level ``spec`` and
``adapters``, and both are imported there.

The fresh environment gets vmbspec's dependencies from this environment's site-packages, minus
this environment's (editable) vmbspec, so the test needs no network.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: What a fresh clone does not have: build output, environments, caches, reports.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "target", "*.egg-info", "__pycache__", ".hypothesis",
    ".pytest_cache", ".mypy_cache", ".ruff_cache", ".vmbspec", "*.so", "vmbspec-report*",
)
OTHER = "other-spec-adapters"


def _run(command: list[str], cwd: Path) -> str:
    """``command``'s output; ``cwd`` matters, since ``python -c`` puts it first on sys.path and
    the repository's own folders are named spec/, conformance/ and adapters/."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _other_distribution(folder: Path) -> Path:
    """A distribution with top-level ``spec`` and ``adapters`` packages, as others publish."""
    for name in ("spec", "adapters"):
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(f'OWNER = "{OTHER}"\n')
    (folder / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{OTHER}"
        version = "1.0"

        [tool.setuptools]
        packages = ["spec", "adapters"]
        """))
    return folder


def _wheel(source: Path, into: Path) -> Path:
    before = set(into.glob("*.whl"))
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
          "--wheel-dir", str(into), str(source)], cwd=into)
    (built,) = set(into.glob("*.whl")) - before
    return built


def _fresh_environment(folder: Path) -> Path:
    """A virtual environment whose only view of this one is a folder of links to the
    dependencies: everything in site-packages except vmbspec's own editable install."""
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / "bin" / "python"
    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    fresh_site = Path(_run([str(python), "-c", where], cwd=folder).strip())
    ours = Path(sysconfig.get_path("purelib"))
    deps = folder / "deps"
    deps.mkdir()
    for entry in ours.iterdir():
        if entry.name.lower().startswith(("vmbspec", "__editable__")) or entry.suffix == ".pth":
            continue
        (deps / entry.name).symlink_to(entry)
    (fresh_site / "deps.pth").write_text(f"{deps}\n")
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("namespace")
    source = work / "vmbspec-source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCE)
    # What running the tests leaves in a working tree: it must not reach the wheel.
    (source / "adapters" / "__pycache__").mkdir()
    (source / "adapters" / "__pycache__" / "stale.cpython-311.pyc").write_bytes(b"\0")
    wheels = work / "wheels"
    wheels.mkdir()
    ours = _wheel(source, wheels)
    other = _wheel(_other_distribution(work / "other"), wheels)
    python = _fresh_environment(work / "venv")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
          "--no-index", str(ours), str(other)], cwd=work)
    return python


def test_the_wheel_holds_only_the_vmbspec_package(installed: Path) -> None:
    (wheel,) = (installed.parents[2] / "wheels").glob("vmbspec-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        files = archive.namelist()
    tops = {file.split("/")[0] for file in files}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"vmbspec"}, sorted(tops)
    assert not [file for file in files if "__pycache__" in file or file.endswith(".pyc")]
    for package in ("spec", "conformance", "adapters"):
        assert f"vmbspec/{package}/__init__.py" in files


def test_a_checkout_without_symbolic_links_builds_the_same_wheel(
        installed: Path, tmp_path: Path) -> None:
    """git on Windows with core.symlinks off writes each link as a small text file naming its
    target; setup.py then maps the packages onto the folders. Same files, same contents (the
    compiled Rust core aside, which is built afresh)."""
    (linked,) = (installed.parents[2] / "wheels").glob("vmbspec-*.whl")
    source = tmp_path / "no-links"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCE)
    for folder in ("spec", "conformance", "adapters"):
        link = source / "vmbspec" / folder
        target = link.readlink()
        link.unlink()
        link.write_text(target.as_posix())
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    unlinked = _wheel(source, wheels)

    def contents(wheel: Path) -> dict[str, bytes]:
        with zipfile.ZipFile(wheel) as archive:
            return {name: b"" if name.endswith((".so", "RECORD")) else archive.read(name)
                    for name in archive.namelist()}

    assert contents(unlinked) == contents(linked)


def test_the_sdist_builds_the_same_wheel(installed: Path, tmp_path: Path) -> None:
    """What pip does with the sdist where no wheel fits: the same files, the Rust core
    included (its crate travels at adapters/rust, where pyproject builds it from)."""
    (direct,) = (installed.parents[2] / "wheels").glob("vmbspec-*.whl")
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCE)
    _run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir",
          str(tmp_path / "sdist"), str(source)], cwd=tmp_path)
    (sdist,) = (tmp_path / "sdist").glob("vmbspec-*.tar.gz")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    from_sdist = _wheel(sdist, wheels)
    with zipfile.ZipFile(direct) as one, zipfile.ZipFile(from_sdist) as other:
        assert sorted(one.namelist()) == sorted(other.namelist())


def test_vmbspec_and_a_distribution_with_top_level_spec_and_adapters_import_together(
        installed: Path) -> None:
    script = textwrap.dedent("""\
        import json
        import adapters, spec
        import vmbspec.adapters.sim, vmbspec.conformance.cli, vmbspec.spec.rules
        from vmbspec.spec.catalog import load_catalog
        print(json.dumps({
            "spec": spec.OWNER, "adapters": adapters.OWNER,
            "vmbspec": vmbspec.spec.rules.__file__,
            "requirements": len(load_catalog().requirements),
        }))
        """)
    seen = json.loads(_run([str(installed), "-c", script], cwd=installed.parent))
    assert seen["spec"] == OTHER and seen["adapters"] == OTHER
    assert "site-packages" in seen["vmbspec"] and str(ROOT) not in seen["vmbspec"]
    assert seen["requirements"] > 0


def test_an_isolated_native_target_starts_its_worker_from_the_installed_package(
        installed: Path, tmp_path: Path) -> None:
    """The worker process of ``--isolate`` is started with ``python -c`` and imports this
    package by its own name from the directory above it (adapters/native/boot.py), which in
    an installed wheel is site-packages. The wheel carries the Rust core when cargo built it."""
    (wheel,) = (installed.parents[2] / "wheels").glob("vmbspec-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        if not any(name.startswith("vmbspec/adapters/rust/vmbcore") for name in archive.namelist()):
            pytest.skip("the wheel has no Rust core (cargo was not found when it was built)")
    report = tmp_path / "report.json"
    _run([str(installed.parent / "vmbspec"), "check", "--target", "rust", "--isolate",
          "--examples", "20", "--db", "none", "--quiet", "--json", str(report)], cwd=tmp_path)
    assert json.loads(report.read_text())["verdict"] == "PASS"


def test_the_installed_wheel_runs_a_check_and_offers_its_pytest_plugin(
        installed: Path, tmp_path: Path) -> None:
    check = ["check", "--examples", "20", "--seed", "5", "--db", "none", "--quiet", "--json"]
    report = tmp_path / "report.json"
    _run([str(installed.parent / "vmbspec"), *check, str(report)], cwd=tmp_path)
    installed_run = json.loads(report.read_text())
    assert installed_run["verdict"] == "PASS"
    # Reproducible: the same command and seed test the same steps from the wheel as from
    # this (editable) install.
    here = tmp_path / "here.json"
    _run([sys.executable, "-m", "vmbspec.conformance.cli", *check, str(here)], cwd=tmp_path)
    here_run = json.loads(here.read_text())
    assert installed_run["steps_digest"] == here_run["steps_digest"]
    assert installed_run["steps"] == here_run["steps"] > 0
    script = textwrap.dedent("""\
        from importlib import metadata
        (plugin,) = [e for e in metadata.entry_points(group="pytest11") if e.name == "vmbspec"]
        print(plugin.value, plugin.load().__name__)
        """)
    assert _run([str(installed), "-c", script], cwd=tmp_path).split() == [
        "vmbspec.conformance.pytest_plugin", "vmbspec.conformance.pytest_plugin"]


#: A module of the project named by its folder's top-level name: in an import statement, after
#: ``-m``, or as a dotted path in a string (``monkeypatch.setattr("conformance.x.Y", ...)``).
#: In the repository these still import (the folders sit at the top, and ``python -m`` puts the
#: working directory first on sys.path), as a second copy of the module; installed, they fail.
TOP_LEVEL_NAME = re.compile(
    r"""(?:^|[^\w.])(?:from|import)\s+(?:spec|conformance|adapters)(?:[.\s]|$)"""
    r"""|-m\s+(?:spec|conformance|adapters)\."""
    r"""|["'](?:spec|conformance|adapters)\.\w""",
    re.MULTILINE,
)


def test_no_python_file_names_a_module_by_its_folders_top_level_name() -> None:
    found = []
    for folder in ("spec", "conformance", "adapters", "tests", "bench", "harness"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == Path(__file__).resolve() or "target" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            for match in TOP_LEVEL_NAME.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {match.group().strip()}")
    assert not found, "use vmbspec.<folder>:\n" + "\n".join(found)
