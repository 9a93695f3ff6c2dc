"""Data flows one way: no stage imports a later stage (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "robustmer"
STAGES = ("audio", "data", "models", "attacks", "training", "evaluation", "report", "study", "cli")


def imported_stages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "robustmer" and len(parts) > 1 and parts[1] in STAGES:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("stage", STAGES)
def test_stage_imports_only_earlier_stages(stage):
    allowed = set(STAGES[: STAGES.index(stage) + 1])
    for path in sorted((SRC / stage).glob("*.py")):
        later = imported_stages(path) - allowed
        assert not later, f"{path.relative_to(SRC)} imports later stage(s) {sorted(later)}"


def test_foundation_modules_import_no_stage():
    for path in sorted(SRC.glob("*.py")):
        if path.name == "__main__.py":  # `python -m robustmer` is the CLI
            continue
        assert not imported_stages(path), f"{path.name} imports a stage"


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "from robustmer.cli import app\n"
        "heavy = [m for m in ('torch', 'pandas', 'matplotlib', 'scipy') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing the CLI loads {out.stdout.strip()}"
