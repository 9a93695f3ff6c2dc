"""Report sections for attacks a listener can hear, and for concepts under attack.

:func:`listening_blocks` finds the listening files of a study's waveform attacks
(``<clip>.json`` beside ``<clip>_adv.flac`` anywhere under the study's ``runs/``, written
by ``robustmer attack --save-audio``) and returns, for a few clips per system, clean and
adversarial players side by side (embedded in the HTML as ``data:`` URIs, so the report stays
one file), the true / clean / adversarial emotion ratings and a spectrogram of the
perturbation next to the clean clip's.

:func:`concept_blocks` turns a concept analysis (:mod:`robustmer.evaluation.concepts`) into a
table and a figure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from robustmer.evaluation.audio import ListeningRecord
from robustmer.names import EMOTIONS, SYSTEM_NAMES
from robustmer.report.render import (
    AudioBlock,
    Block,
    FigureBlock,
    Heading,
    Paragraph,
    TableBlock,
    fmt,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "REPORT_AUDIO_SUBTYPE",
    "concept_blocks",
    "find_listening",
    "listening_blocks",
    "perturbation_figure",
]

REPORT_AUDIO_SUBTYPE = "PCM_16"
"""Sample format of the audio embedded in the report (16-bit FLAC, noise ~ -96 dBFS)."""

_FLOOR_DB = 80.0
"""Dynamic range shown in the perturbation spectrograms [dB below the clean clip's peak]."""


def find_listening(study_dir: str | os.PathLike[str]) -> list[tuple[Path, ListeningRecord]]:
    """All listening side-cars under a study's ``runs/``, sorted by path.

    A side-car is a ``NNN.json`` beside its ``NNN_adv.flac`` (``robustmer attack
    --save-audio``).
    """
    paths = sorted(Path(study_dir).glob("runs/**/*.json"))
    paired = [p for p in paths if p.with_name(f"{p.stem}_adv.flac").is_file()]
    return [(p, ListeningRecord.read(p)) for p in paired]


def _transcode(src: Path, dst: Path) -> Path:
    import soundfile as sf

    data, rate = sf.read(src, dtype="float64")
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dst, data, rate, format="FLAC", subtype=REPORT_AUDIO_SUBTYPE)
    return dst


def _filterbank_db(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Filterbank magnitudes in dB, ``[frames, bands]`` (the models' front end, unlogged)."""
    import torch

    from robustmer.audio import FrontEndConfig, LogFilteredSpectrogram

    frontend = LogFilteredSpectrogram(FrontEndConfig(sample_rate=sample_rate))
    with torch.no_grad():
        log_spec = frontend(torch.from_numpy(np.asarray(wave, np.float64))).numpy()
    magnitude = np.expm1(np.log(10.0) * log_spec)  # undo log10(1 + X)
    return 20.0 * np.log10(np.maximum(magnitude, 1e-12))


def perturbation_figure(
    clean: np.ndarray, adversarial: np.ndarray, sample_rate: int, png: Path, title: str
) -> Path:
    """Filterbank spectrograms of the clean clip and of the perturbation, same dB scale.

    Parameters
    ----------
    clean, adversarial : np.ndarray, shape [T]
        Waveforms in [-1, 1].
    sample_rate : int
    png : Path
        Output file.
    title : str
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clean_db = _filterbank_db(clean, sample_rate)  # [F, bands]
    noise_db = _filterbank_db(np.asarray(adversarial) - np.asarray(clean), sample_rate)
    top = float(clean_db.max())
    seconds = len(clean) / sample_rate
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.8), sharey=True, layout="constrained")
    for ax, spec, name in ((axes[0], clean_db, "clean"), (axes[1], noise_db, "perturbation")):
        image = ax.imshow(
            spec.T,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=top - _FLOOR_DB,
            vmax=top,
            extent=(0.0, seconds, 0, spec.shape[1]),
        )
        ax.set_title(name)
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("filterbank band")
    fig.colorbar(image, ax=axes, label="dB")
    fig.suptitle(title)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def _chosen(
    records: list[tuple[Path, ListeningRecord]], per_system: int
) -> list[tuple[Path, ListeningRecord]]:
    """Up to ``per_system`` side-cars per system, systems in the paper's order."""
    order = {name: i for i, name in enumerate(SYSTEM_NAMES)}
    ranked = sorted(
        records, key=lambda pr: (order.get(pr[1].system, len(order)), pr[1].seed, pr[1].clip)
    )
    taken: dict[str, int] = {}
    chosen = []
    for path, record in ranked:
        if taken.get(record.system, 0) < per_system:
            taken[record.system] = taken.get(record.system, 0) + 1
            chosen.append((path, record))
    return chosen


def _clip_blocks(path: Path, record: ListeningRecord, report_dir: Path) -> list[Block]:
    import soundfile as sf

    stem = f"{record.system}-seed{record.seed}-{record.clip:03d}"
    files = {}
    for name, file in (("clean", record.clean_file), ("adversarial", record.adv_file)):
        files[name] = _transcode(path.parent / file, report_dir / "audio" / f"{stem}_{name}.flac")
    clean, rate = sf.read(files["clean"], dtype="float64")
    adv, _ = sf.read(files["adversarial"], dtype="float64")
    caption = f"{record.system} seed {record.seed}, clip {record.clip}: {record.label}"
    png = perturbation_figure(
        clean, adv, rate, report_dir / "figures" / f"perturbation_{stem}.png", caption
    )
    rows = [
        [name, *(fmt(v, 2) for v in record.emotions[key])]
        for name, key in (("true", "true"), ("clean", "clean"), ("adversarial", "adv"))
    ]
    return [
        AudioBlock(
            players=[("clean", files["clean"]), ("adversarial", files["adversarial"])],
            caption=f"{caption}; SNR {record.snr_db:.1f} dB",
            links=[(name, f"audio/{f.name}") for name, f in files.items()],
        ),
        TableBlock(["ratings (1-9)", *EMOTIONS], rows, caption="predicted emotions"),
        FigureBlock(png, f"Perturbation of {caption}", links=[("PNG", f"figures/{png.name}")]),
    ]


def listening_blocks(
    study_dir: str | os.PathLike[str], report_dir: Path, *, per_system: int = 2
) -> list[Block]:
    """The listening section of a study's report; empty without waveform-attack audio.

    Parameters
    ----------
    study_dir : str or PathLike
        The study (its ``runs/`` are searched, :func:`find_listening`).
    report_dir : Path
        The report directory being written: the embedded audio (16-bit FLAC) goes to
        ``audio/``, the perturbation spectrograms to ``figures/``.
    per_system : int
        Clips shown per system.
    """
    chosen = _chosen(find_listening(study_dir), per_system)
    if not chosen:
        return []
    blocks: list[Block] = [
        Heading("Listening: waveform attacks"),
        Paragraph(
            "Clean and adversarial audio of a few clips per system (waveform-domain attacks; "
            "the SNR is that of the adversarial waveform against the clean one). Each "
            "spectrogram pair shows the clean clip and the perturbation on the same dB scale."
        ),
    ]
    for path, record in chosen:
        blocks += _clip_blocks(path, record, report_dir)
    return blocks


def concept_blocks(summary: pd.DataFrame, png: Path, title: str) -> list[Block]:
    """A concept analysis as report blocks: per concept its change and strongest effect.

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`robustmer.evaluation.concepts.concept_summary` of one attack.
    png : Path
        Its figure (:func:`robustmer.evaluation.concepts.concept_figure`), in the report's
        ``figures/`` directory or its root.
    title : str
        Section title, e.g. ``"Concepts under attack: A2M2E seed 1, pgd"``.
    """
    rows = []
    for concept, part in summary.groupby("concept", sort=False):
        strongest = part.loc[part["contribution"].abs().idxmax()]
        rows.append(
            [
                str(concept),
                fmt(float(part["concept_change_std"].iloc[0]), 2),
                str(strongest["emotion"]),
                fmt(float(strongest["contribution"]), 3),
                fmt(float(strongest["share"]), 2),
            ]
        )
    table = TableBlock(
        ["concept", "change (sd)", "most affected emotion", "contribution", "share"],
        rows,
        caption="Mean over clips: concept change in training-set standard deviations; the "
        "emotion it moved most, its contribution (rating points) and share of that change.",
    )
    link = f"figures/{png.name}" if png.parent.name == "figures" else png.name
    return [Heading(title, 3), table, FigureBlock(png, title, links=[("PNG", link)])]
