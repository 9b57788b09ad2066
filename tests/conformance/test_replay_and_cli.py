"""``vmbspec check`` / ``vmbspec replay`` from the command line, and the replay files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmbspec.conformance.cli import main


def test_check_passes_on_the_simulator_and_writes_every_report(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    status = main([
        "check", "--examples", "20", "--quiet", "--no-proofs",
        "--json", str(out), "--junit", str(tmp_path / "r.xml"),
        "--report", str(tmp_path / "r.md"),
    ])
    assert status == 0
    document = json.loads(out.read_text())
    assert {"target", "requirements", "steps", "seconds", "failures"} <= document.keys()
    assert document["target"] == "sim" and document["failures"] == []
    statuses = {r["status"] for r in document["requirements"].values()}
    assert statuses <= {"pass", "uncovered"}
    for requirement in document["requirements"].values():
        if requirement["status"] == "uncovered":
            assert requirement["reason"], "an uncovered requirement must say why"
    assert "<testsuite" in (tmp_path / "r.xml").read_text()
    assert "| SEED-FORCE-BOUND |" in (tmp_path / "r.md").read_text()


def test_check_fails_on_a_broken_target_and_its_replay_reproduces_anywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main([
        "check", "--target", "sim:wrap32", "--examples", "50", "--quiet", "--no-proofs",
        "--replay-dir", str(tmp_path),
    ])
    assert status == 1
    replay = tmp_path / "vmbspec-failure-1.json"
    document = json.loads(replay.read_text())
    assert document["vmbspec_replay"] == 1 and document["steps"]
    capsys.readouterr()
    assert main(["replay", str(replay), "--target", "sim:wrap32"]) == 1
    assert "FAIL at step" in capsys.readouterr().out
    assert main(["replay", str(replay), "--target", "sim"]) == 0
    assert "PASS" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "--target", "nosuch"], "unknown target"),
        (["check", "--target", "sim:nosuchbug"], "unknown simulator bug"),
        (["check", "--json", "/nonexistent-folder/x.json"], "does not exist"),
        (["replay", "/nonexistent-file.json"], "no such file"),
    ],
)
def test_user_mistakes_give_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_bad_profile_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--profile", "default+A4=z"]) == 2
    assert "reading A4 has no option 'z'" in capsys.readouterr().err


def test_replay_of_a_file_that_is_not_a_replay_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"steps": []}')
    assert main(["replay", str(bad)]) == 2
    assert "not a vmbspec replay file" in capsys.readouterr().err
    bad.write_text(json.dumps({"vmbspec_replay": 1, "steps": [{"op": "explode"}]}))
    assert main(["replay", str(bad)]) == 2
    assert "unknown step op" in capsys.readouterr().err


def test_requirements_json_lists_every_seed_rule_and_all_14_readings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["requirements", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    readings = [r["id"] for r in document["requirements"] if r["kind"] == "reading"]
    assert readings == [f"READ-A{n}" for n in range(1, 15)]
    ids = {r["id"] for r in document["requirements"]}
    for sentence in document["seed"]:
        assert sentence["covered_by"] or sentence["informational"]
        assert set(sentence["covered_by"]) <= ids


def test_version_names_vmbspec_and_what_decides_a_seeded_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"vmbspec {version('vmbspec')} (")
    assert f"hypothesis {version('hypothesis')}" in text and "z3-solver " in text
