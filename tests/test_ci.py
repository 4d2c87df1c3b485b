"""CI runs the README's test command itself, verbatim, in parallel (pytest-xdist), so what a new user runs is
what CI checks and what the ≤ 10 minute target is measured on."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    """The README's set-up commands: the lines of its ```bash blocks under "## Set up"."""
    setup = (ROOT / "README.md").read_text(encoding="utf-8").split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for block in re.findall(r"```bash\n(.*?)```", setup, re.S) for line in block.splitlines()
            if line.strip()]


def test_the_readme_has_two_commands_and_ci_runs_its_test_command_verbatim():
    commands = readme_commands()
    assert len(commands) == 2, commands
    run_app, run_tests = commands
    assert "streamlit run streamlit_app.py" in run_app
    assert "pytest" in run_tests and "-n auto" in run_tests  # one worker per core
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert run_tests in ci_lines
    assert "pytest-xdist" in (ROOT / "requirements.txt").read_text().split()  # what -n needs, installed by it

