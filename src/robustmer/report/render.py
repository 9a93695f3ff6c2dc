"""Render a report, given as a list of blocks, to Markdown and to self-contained HTML.

The HTML has inline CSS and figures embedded as base64 PNG ``data:`` URIs: no external
resources, no JavaScript, so it can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import html
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from robustmer.errors import RobustmerError

__all__ = [
    "AudioBlock",
    "Block",
    "Bullets",
    "Column",
    "FigureBlock",
    "Heading",
    "Paragraph",
    "TableBlock",
    "TableSpec",
    "fmt",
    "fmt_p",
    "fmt_pm",
    "render_html",
    "render_markdown",
    "spec_json",
    "table_block",
]


@dataclass(frozen=True)
class Heading:
    """A section heading (``level`` 1-3)."""

    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of plain text (``**bold**`` is the only markup understood)."""

    text: str


@dataclass(frozen=True)
class Bullets:
    """A bulleted list of plain-text items."""

    items: Sequence[str]


@dataclass(frozen=True)
class TableBlock:
    """A table of already formatted cells, with an optional caption."""

    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    caption: str = ""
    numeric: Sequence[bool] = field(default_factory=tuple)
    """Per column: right-align (numbers). Empty: every column but the first."""


@dataclass(frozen=True)
class FigureBlock:
    """A figure: a PNG file (embedded in HTML) and the relative links for Markdown."""

    png: Path
    caption: str
    links: Sequence[tuple[str, str]] = ()
    """``(label, relative path)`` of the figure files, e.g. ``("SVG", "figures/x.svg")``."""


@dataclass(frozen=True)
class AudioBlock:
    """Audio players side by side (FLAC files, embedded in HTML) with a caption."""

    players: Sequence[tuple[str, Path]]
    """``(label, FLAC file)`` per player."""
    caption: str
    links: Sequence[tuple[str, str]] = ()
    """``(label, relative path)`` of the audio files, for Markdown."""


Block = Heading | Paragraph | Bullets | TableBlock | FigureBlock | AudioBlock


def fmt(x: float | int | None, digits: int = 3) -> str:
    """A number with ``digits`` decimals; an en dash for NaN/None."""
    if x is None or (isinstance(x, numbers.Real) and math.isnan(x)):
        return "–"
    if isinstance(x, numbers.Integral):
        return str(int(x))
    text = f"{float(x):.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.000"


def fmt_pm(mean: float, std: float, digits: int = 3) -> str:
    """``mean ± std``; just the mean when the std is NaN."""
    if std is None or math.isnan(std):
        return fmt(mean, digits)
    return f"{fmt(mean, digits)} ± {fmt(std, digits)}"


def fmt_p(p: float) -> str:
    """A p-value: three decimals, or two significant digits below 1e-3 (``3.2e-21``)."""
    if p is None or math.isnan(p):
        return "–"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


# ----------------------------------------------------------------------------- table specs


@dataclass(frozen=True)
class Column:
    """One column of a report table, written as data.

    Attributes
    ----------
    key : str
        Column of the DataFrame shown (the tidy tables, summary.json and Parquet use it).
    header : str
        Header in Markdown and HTML.
    format : str
        Key of ``FORMATS``: ``text``, ``int``, ``num`` (``digits`` decimals), ``p``
        (p-value), ``pm`` (``key ± std_key``), ``ci`` (``[key, std_key]`` as an interval).
    digits : int
        Decimals of ``num``, ``pm`` and ``ci``.
    align : str
        ``left`` or ``right``.
    other : str
        The second column of ``pm`` (the std) and ``ci`` (the upper bound).
    """

    key: str
    header: str
    format: str = "num"
    digits: int = 3
    align: str = "right"
    other: str = ""


@dataclass(frozen=True)
class TableSpec:
    """A report table as data: its name (file stem and summary.json key), columns, caption."""

    name: str
    columns: tuple[Column, ...]
    caption: str = ""


def _interval(low: float, high: float, digits: int) -> str:
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return "–"
    return f"[{fmt(low, digits)}, {fmt(high, digits)}]"


def _as_int(x: object) -> str:
    if x is None or (isinstance(x, numbers.Real) and math.isnan(x)):
        return "–"
    return str(int(x))  # type: ignore[call-overload]


FORMATS: dict[str, Callable[[dict, Column], str]] = {
    "text": lambda row, c: str(row[c.key]),
    "int": lambda row, c: _as_int(row[c.key]),
    "num": lambda row, c: fmt(row[c.key], c.digits),
    "p": lambda row, c: fmt_p(row[c.key]),
    "pm": lambda row, c: fmt_pm(row[c.key], row[c.other], c.digits),
    "ci": lambda row, c: _interval(row[c.key], row[c.other], c.digits),
}
"""Cell formatters by ``Column.format``: (row as a dict, column) -> text."""


def table_block(spec: TableSpec, df: object, *, caption: str | None = None) -> TableBlock:
    """The rows of ``df`` (a pandas DataFrame) formatted by ``spec`` for Markdown and HTML.

    ``caption`` replaces the spec's caption (for captions that depend on settings).
    """
    rows = [
        [FORMATS[c.format](row, c) for c in spec.columns]
        for row in df.to_dict(orient="records")  # type: ignore[attr-defined]
    ]
    return TableBlock(
        headers=[c.header for c in spec.columns],
        rows=rows,
        caption=spec.caption if caption is None else caption,
        numeric=[c.align == "right" for c in spec.columns],
    )


def spec_json(spec: TableSpec) -> dict[str, object]:
    """The spec as JSON for summary.json: caption and ``{key, header, format, digits, align}``."""
    return {
        "caption": spec.caption,
        "columns": [
            {"key": c.key, "header": c.header, "format": c.format, "digits": c.digits,
             "align": c.align, **({"other": c.other} if c.other else {})}
            for c in spec.columns
        ],
    }  # fmt: skip


# ----------------------------------------------------------------------------- Markdown


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_heading(b: Heading) -> str:
    return f"{'#' * b.level} {b.text}"


def _md_paragraph(b: Paragraph) -> str:
    return b.text


def _md_bullets(b: Bullets) -> str:
    return "\n".join(f"- {item}" for item in b.items)


def _alignments(b: TableBlock) -> list[bool]:
    if b.numeric:
        if len(b.numeric) != len(b.headers):
            raise RobustmerError(
                f"table {b.headers}: {len(b.numeric)} alignments; expected one per column"
            )
        return list(b.numeric)
    return [i > 0 for i in range(len(b.headers))]


def _md_table(b: TableBlock) -> str:
    right = _alignments(b)
    lines = []
    if b.caption:
        lines += [f"*{b.caption}*", ""]
    lines.append("| " + " | ".join(_md_cell(h) for h in b.headers) + " |")
    lines.append("|" + "|".join("---:" if r else ":---" for r in right) + "|")
    for row in b.rows:
        if len(row) != len(b.headers):
            raise RobustmerError(f"table {b.headers}: row {row}; expected one cell per column")
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    return "\n".join(lines)


def _md_figure(b: FigureBlock) -> str:
    first = b.links[0][1] if b.links else b.png.name
    links = " · ".join(f"[{label}]({rel})" for label, rel in b.links)
    return f"![{b.caption}]({first})\n\n*{b.caption}* {links}".rstrip()


def _md_audio(b: AudioBlock) -> str:
    links = " · ".join(f"[{label}]({rel})" for label, rel in b.links)
    return f"*{b.caption}* {links}".rstrip()


_MD_RENDERERS: dict[type, Callable] = {
    AudioBlock: _md_audio,
    Heading: _md_heading,
    Paragraph: _md_paragraph,
    Bullets: _md_bullets,
    TableBlock: _md_table,
    FigureBlock: _md_figure,
}


def render_markdown(blocks: Sequence[Block]) -> str:
    """The report as GitHub-flavoured Markdown (tables, relative figure links)."""
    return "\n\n".join(_MD_RENDERERS[type(b)](b) for b in blocks) + "\n"


# ----------------------------------------------------------------------------- HTML


def _inline(text: str) -> str:
    """Escape text; turn ``**x**`` into ``<strong>x</strong>``."""
    parts = html.escape(str(text)).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def _html_heading(b: Heading) -> str:
    return f"<h{b.level}>{_inline(b.text)}</h{b.level}>"


def _html_paragraph(b: Paragraph) -> str:
    return f"<p>{_inline(b.text)}</p>"


def _html_bullets(b: Bullets) -> str:
    return "<ul>\n" + "\n".join(f"<li>{_inline(i)}</li>" for i in b.items) + "\n</ul>"


def _html_table(b: TableBlock) -> str:
    right = _alignments(b)
    out = ["<table>"]
    if b.caption:
        out.append(f"<caption>{_inline(b.caption)}</caption>")
    out.append(
        "<thead><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in b.headers) + "</tr></thead>"
    )
    out.append("<tbody>")
    for row in b.rows:
        cells = "".join(
            f'<td class="num">{_inline(c)}</td>' if r else f"<td>{_inline(c)}</td>"
            for c, r in zip(row, right, strict=True)
        )
        out.append(f"<tr>{cells}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _html_figure(b: FigureBlock) -> str:
    data = base64.b64encode(b.png.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(b.caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_inline(b.caption)}</figcaption></figure>"
    )


def _html_audio(b: AudioBlock) -> str:
    players = []
    for label, path in b.players:
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        players.append(
            f'<div class="player"><div>{_inline(label)}</div><audio controls preload="metadata" '
            f'src="data:audio/flac;base64,{data}"></audio></div>'
        )
    return (
        f'<figure class="audio">{"".join(players)}'
        f"<figcaption>{_inline(b.caption)}</figcaption></figure>"
    )


_HTML_RENDERERS: dict[type, Callable] = {
    AudioBlock: _html_audio,
    Heading: _html_heading,
    Paragraph: _html_paragraph,
    Bullets: _html_bullets,
    TableBlock: _html_table,
    FigureBlock: _html_figure,
}

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1.5em; line-height: 1.45; }
h1 { border-bottom: 2px solid #3cb371; padding-bottom: .2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: .15em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: .4em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; }
th { background: #f0f4f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-style: italic; font-size: 0.92em; }
figure.audio .player { display: inline-block; margin-right: 1.5em; vertical-align: top; }
ul { padding-left: 1.4em; }
"""


def render_html(blocks: Sequence[Block], title: str) -> str:
    """The report as one self-contained HTML5 page (inline CSS, embedded PNG figures)."""
    body = "\n".join(_HTML_RENDERERS[type(b)](b) for b in blocks)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
