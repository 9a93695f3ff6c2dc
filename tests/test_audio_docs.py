"""The worked example of docs/audio-attacks.md runs as written: its shell block, then its
Python block, in one empty directory."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "audio-attacks.md"


def _block(language: str) -> str:
    match = re.search(rf"```{language}\n(.*?)\n```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert match is not None, f"no {language} block in {DOC.name}"
    return match.group(1)


def _commands(shell: str) -> list[list[str]]:
    """The block's commands (comments dropped, continuation lines joined), as argv lists."""
    joined = shell.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            commands.append(shlex.split(line))
    return commands


@pytest.mark.slow
def test_worked_example_runs(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "ROBUSTMER_PROGRESS": "0"}
    for argv in _commands(_block("bash")):
        if argv[0] == "robustmer":
            argv = [sys.executable, "-m", "robustmer", *argv[1:]]
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{argv}:\n{done.stderr[-3000:]}"
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert len(predictions) == 1 and "dissonance" in predictions.columns
    assert predictions[["valence", "sad"]].notna().all().all()
    sidecars = sorted((tmp_path / "listen").glob("*.json"))
    assert sidecars and all(p.with_name(f"{p.stem}_adv.flac").is_file() for p in sidecars)
    script = tmp_path / "read_table.py"
    script.write_text(_block("python") + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "concept_change_std" in done.stdout and "dissonance" in done.stdout
    assert (tmp_path / "concepts.png").stat().st_size > 5000
