"""The report's listening section: listening files found, audio embedded as data URIs, and the
audio elements load in headless Chromium (skipped without Chromium)."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from robustmer.evaluation.audio import ListeningRecord, save_audio
from robustmer.names import EMOTIONS
from robustmer.report.audio import find_listening, listening_blocks
from robustmer.report.render import AudioBlock, FigureBlock, render_html, render_markdown

SR, SECONDS = 22050, 1.5


def _record(system: str, clip: int, snr: float) -> ListeningRecord:
    return ListeningRecord(
        clip=clip,
        system=system,
        seed=1,
        run=f"runs/{system}-seed1",
        attack={"attack": "pgd", "domain": "waveform", "snr_db": snr},
        label=f"pgd domain=waveform snr_db={snr}",
        snr_db=snr,
        sample_rate=SR,
        clean_file=f"{clip:03d}_clean.flac",
        adv_file=f"{clip:03d}_adv.flac",
        emotions={k: [5.0 + 0.1 * i for i in range(8)] for k in ("true", "clean", "adv")},
        midlevel=None,
    )


def make_listening_study(root: Path) -> Path:
    """Two systems x three clips of tones with a known-SNR noise perturbation."""
    rng = np.random.default_rng(0)
    t = np.arange(int(SECONDS * SR)) / SR
    for system in ("A2E", "A2M2E"):
        out = root / "runs" / f"{system}-seed1" / "attacks" / "pgd-0123456789" / "audio"
        clean = np.stack([0.5 * np.sin(2 * np.pi * (220 + 110 * k) * t) for k in range(3)])
        noise = rng.standard_normal(clean.shape)
        noise *= np.linalg.norm(clean, axis=1, keepdims=True) / np.linalg.norm(noise, axis=1)[
            :, None
        ] * 10 ** (-30 / 20)
        records = [_record(system, 11 + k, 30.0) for k in range(3)]
        save_audio(out, clean, clean + noise, SR, records)
    return root


def test_listening_files_round_trip(tmp_path: Path) -> None:
    study = make_listening_study(tmp_path / "study")
    found = find_listening(study)
    assert len(found) == 6 and found[0][1] == _record("A2E", 11, 30.0)
    data, rate = sf.read(found[0][0].with_name("011_adv.flac"))
    clean, _ = sf.read(found[0][0].with_name("011_clean.flac"))
    assert rate == SR and sf.info(found[0][0].with_name("011_adv.flac")).subtype == "PCM_24"
    snr = 10 * np.log10((clean**2).sum() / ((data - clean) ** 2).sum())
    assert snr == pytest.approx(30.0, abs=0.01)  # 24-bit FLAC keeps the perturbation


def test_listening_blocks_embed_players(tmp_path: Path) -> None:
    study = make_listening_study(tmp_path / "study")
    report = tmp_path / "report"
    blocks = listening_blocks(study, report, per_system=2)
    audio = [b for b in blocks if isinstance(b, AudioBlock)]
    figures = [b for b in blocks if isinstance(b, FigureBlock)]
    assert [b.caption.split(",")[0] for b in audio] == ["A2E seed 1"] * 2 + ["A2M2E seed 1"] * 2
    assert len(figures) == 4 and all(f.png.stat().st_size > 5000 for f in figures)
    text = render_html(blocks, title="listening")
    player = r'<audio controls preload="metadata" src="data:audio/flac;base64,([^"]+)"'
    sources = re.findall(player, text)
    assert len(sources) == 8
    decoded, rate = sf.read(io.BytesIO(base64.b64decode(sources[0])))
    assert rate == SR and len(decoded) == int(SECONDS * SR)
    assert "audio/A2E-seed1-011_clean.flac" in render_markdown(blocks)
    assert listening_blocks(tmp_path / "empty", report) == []
    # the emotion table: true / clean / adversarial rows, 1-9 scale
    assert all(e in text for e in EMOTIONS) and "5.70" in text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium not installed")
def test_audio_elements_load_in_chromium(tmp_path: Path) -> None:
    study = make_listening_study(tmp_path / "study")
    page = render_html(listening_blocks(study, tmp_path / "report"), title="listening")
    assert "<script" not in page
    # test harness only: a script that records each player's loaded duration
    probe = (
        '<div id="probe">pending</div><script>'
        "const els = document.querySelectorAll('audio'); const got = [];"
        "els.forEach(el => { el.addEventListener('loadedmetadata', () => {"
        " got.push(el.duration.toFixed(3));"
        " document.getElementById('probe').textContent = 'loaded ' + got.join(' '); });"
        " el.addEventListener('error', () => {"
        " document.getElementById('probe').textContent = 'error ' + el.error.code; });"
        " el.load(); });</script>"
    )
    html = tmp_path / "listening.html"
    html.write_text(page.replace("</body>", probe + "</body>"), encoding="utf-8")
    cmd = [
        shutil.which("chromium") or "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        html.as_uri(),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    probe_text = re.search(r'<div id="probe">([^<]*)</div>', out.stdout).group(1)
    assert probe_text.startswith("loaded "), probe_text
    durations = [float(v) for v in probe_text.split()[1:]]
    assert len(durations) == 8 and durations == pytest.approx([SECONDS] * 8, abs=1e-3)
