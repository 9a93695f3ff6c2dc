"""The self-contained report.html renders in headless Chromium without errors.

Needs Chromium (Debian: ``apt-get install -y chromium``); skipped when it is absent.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from robustmer.report import build_report


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "/usr/bin/chromium"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium not installed (apt-get install -y chromium)"
)


def _make_study(root: Path) -> Path:
    """The hand-made study of test_report.py (loaded by path, not as a package)."""
    spec = importlib.util.spec_from_file_location(
        "_report_fixture", Path(__file__).with_name("test_report.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_study(root)


def _chromium_run(html: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *extra,
        html.as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _console_errors(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if "Uncaught" in line or "ERROR:CONSOLE" in line or ("CONSOLE" in line and "rror" in line)
    ]


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    study = _make_study(tmp_path_factory.mktemp("html"))
    return build_report(study) / "report.html"


def test_html_is_self_contained(report_html: Path) -> None:
    import matplotlib.image

    text = report_html.read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "<link" not in text.lower()
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:|//|file:)""", text)
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 2  # Figures 3 and 4
    for data in images:
        pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 200
        assert float(np.std(pixels)) > 0.01  # not a blank image


def test_chromium_renders_report(report_html: Path, tmp_path: Path) -> None:
    dom = _chromium_run(report_html, tmp_path / "profile-dom", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console_errors(dom.stderr) == []
    # the parsed DOM holds the tables' text
    assert "Table 1: performance and robustness per system" in dom.stdout
    assert '<td class="num">0.730 ± 0.030</td>' in dom.stdout
    assert "aA2E / A2E" in dom.stdout and "A2M2E-seed42: not finished" in dom.stdout
    assert dom.stdout.count("<table>") == 6  # with the paper's own tests

    shot = tmp_path / "report.png"
    run = _chromium_run(
        report_html,
        tmp_path / "profile-shot",
        "--window-size=1200,3000",
        "--hide-scrollbars",
        f"--screenshot={shot}",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert _console_errors(run.stderr) == []
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)  # [3000, 1200, channels], floats in [0, 1]
    assert pixels.shape[:2] == (3000, 1200)
    # the page is not blank: the figures' coloured boxes and the text make it vary
    assert float(np.std(pixels[..., :3])) > 0.05
