"""The README cannot lie: its commands and options exist, its Python example runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from vmbspec.conformance.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _block_after(heading: str, language: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(heading):]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"no {language} block after {heading!r}"
    return match.group(1)


def _subparser(words: list[str]):  # type: ignore[no-untyped-def]
    parser = build_parser()
    for word in words:
        actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        assert actions, f"{word!r} has no subcommands"
        parser = actions[0].choices[word]  # type: ignore[attr-defined]
    return parser


def test_every_command_and_option_in_the_readme_exists() -> None:
    block = _block_after("## Commands", "sh")
    lines = [line for line in block.splitlines() if line.startswith("vmbspec ")]
    assert len(lines) >= 7
    for line in lines:
        words = shlex.split(line)[1:]
        if words[0].startswith("-"):  # an option of vmbspec itself (--version)
            parser = build_parser()
        else:
            parser = _subparser(words[:2] if words[0] == "trace" else words[:1])
        known = {opt for action in parser._actions for opt in action.option_strings}
        for option in re.findall(r"--[a-z-]+", line):
            assert option in known, f"README: {line!r}: {option} does not exist"


def test_the_main_set_up_command_runs_vmbspec_check_on_the_simulator() -> None:
    text = README.read_text(encoding="utf-8")
    assert "vmbspec check --report vmbspec-report.md --json vmbspec-report.json" in text
    args = build_parser().parse_args(
        ["check", "--report", "vmbspec-report.md", "--json", "vmbspec-report.json"]
    )
    assert args.target == "sim"


def test_the_python_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from vmbspec.adapters.sim import SimTarget
    from vmbspec.conformance import runner

    real = runner.run_conformance
    monkeypatch.setattr(
        runner, "run_conformance", lambda target, **kw: real(target, examples=20, **kw)
    )
    code = _block_after("## Testing your implementation", "python")
    code = code.replace("from vmbspec.conformance import run_conformance",
                        "from vmbspec.conformance.runner import run_conformance")
    exec(code, {"MyTarget": SimTarget})  # the README's own example, as written
