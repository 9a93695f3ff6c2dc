"""The Python examples in docs/ run as they are, saved as scripts (issue 11, case 11).

A block preceded by a line ``<!-- doc-test: skip REASON -->`` is not run (e.g. one that
needs the real data sets); every other ```` ```python ```` block is run on its own, as a
script in an empty working directory, and must exit with code 0.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.DOTALL)
SKIP = "<!-- doc-test: skip"


def _blocks() -> list[tuple[str, str]]:
    found = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for n, m in enumerate(BLOCK.finditer(doc.read_text(encoding="utf-8")), start=1):
            if not m.group("before").strip().startswith(SKIP):
                found.append((f"{doc.name}-{n}", m.group("code")))
    return found


BLOCKS = _blocks()


def test_docs_have_runnable_examples():
    assert any(name.startswith("study.md") for name, _ in BLOCKS)


@pytest.mark.parametrize(("name", "code"), BLOCKS, ids=[name for name, _ in BLOCKS])
def test_docs_example_runs_as_a_script(name, code, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(code + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "ROBUSTMER_PROGRESS": "0"}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"{name}:\n{result.stderr[-3000:]}"
