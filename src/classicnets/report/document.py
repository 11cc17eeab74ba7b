"""A report as a flat list of blocks (headings, text, notes, tables, figures, code), rendered
twice: a self-contained HTML file (figures as base64 data URIs, inline CSS, no scripts, opens
offline) and a Markdown file whose figures are PNG files in a `<stem>_files/` folder beside it.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from classicnets.atomic import atomic_write, atomic_write_text


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Notes:
    """A highlighted list of warnings (incomplete run, skipped lines, missing files)."""

    title: str
    items: list[str]


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]
    table_id: str = ""  # HTML id, so tests and readers can find e.g. the metrics table
    collapsed_summary: str = ""  # when set, HTML folds the table under this summary line


@dataclass(frozen=True)
class Image:
    name: str  # file stem in the Markdown files folder, e.g. "confusion_matrix"
    caption: str
    png: bytes


@dataclass(frozen=True)
class Code:
    text: str
    collapsed_summary: str = ""


Block = Heading | Paragraph | Notes | Table | Image | Code


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ccc; padding-bottom: .2em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
td { white-space: nowrap; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9em; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: .85em; }
.notes { background: #fff6e0; border-left: 4px solid #e0a000; padding: .4em 1em; }
"""

# A numeric cell: "1,234", "-0.50", "91.20 ± 0.35 (n=2)", "56.00 M", "40.0 s".
_NUMBER = re.compile(r"^[-+]?[\d.,]+( ± [\d.,]+)?( [KMG]| s)?( \(n=\d+\))?$")


def render_html(document: Document) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(document.title)}</title>",
        f"<style>{CSS}</style>",
        "</head><body>",
        f"<h1>{html.escape(document.title)}</h1>",
    ]
    parts.extend(_html_block(block) for block in document.blocks)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, Notes):
        items = "".join(f"<li>{html.escape(item)}</li>" for item in block.items)
        return (
            f'<div class="notes"><strong>{html.escape(block.title)}</strong><ul>{items}</ul></div>'
        )
    if isinstance(block, Table):
        return _folded(_html_table(block), block.collapsed_summary)
    if isinstance(block, Image):
        data = base64.b64encode(block.png).decode("ascii")
        caption = html.escape(block.caption)
        return (
            f'<figure id="figure-{html.escape(block.name)}">'
            f'<img src="data:image/png;base64,{data}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return _folded(f"<pre>{html.escape(block.text)}</pre>", block.collapsed_summary)


def _folded(inner: str, summary: str) -> str:
    if not summary:
        return inner
    return f"<details><summary>{html.escape(summary)}</summary>{inner}</details>"


def _html_table(table: Table) -> str:
    table_id = f' id="{html.escape(table.table_id)}"' if table.table_id else ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = []
    for row in table.rows:
        cells = "".join(
            f'<td class="number">{html.escape(c)}</td>'
            if _NUMBER.match(c)
            else f"<td>{html.escape(c)}</td>"
            for c in row
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table{table_id}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_markdown(document: Document, files_dir: str) -> tuple[str, dict[str, bytes]]:
    """Markdown text plus the PNG files it links to ({file name: bytes} under `files_dir`)."""
    lines = [f"# {_md(document.title)}", ""]
    files: dict[str, bytes] = {}
    for block in document.blocks:
        if isinstance(block, Heading):
            lines += [f"{'#' * block.level} {_md(block.text)}", ""]
        elif isinstance(block, Paragraph):
            lines += [_md(block.text), ""]
        elif isinstance(block, Notes):
            items = [f"> - {_md(item)}" for item in block.items]
            lines += [f"> **{_md(block.title)}**", ">", *items, ""]
        elif isinstance(block, Table):
            lines += [*_markdown_table(block), ""]
        elif isinstance(block, Image):
            file_name = f"{block.name}.png"
            files[file_name] = block.png
            caption = _md(block.caption)
            lines += [f"![{caption}]({files_dir}/{file_name})", "", f"*{caption}*", ""]
        else:
            lines += ["```", block.text.rstrip("\n"), "```", ""]
    return "\n".join(lines), files


def _markdown_table(table: Table) -> list[str]:
    def cell(text: str) -> str:
        return _md(text).replace("|", "\\|").replace("\n", "<br>")

    lines = ["| " + " | ".join(cell(h) for h in table.headers) + " |"]
    lines.append(
        "|"
        + "|".join(
            "---:" if _is_numeric_column(table, i) else "---" for i in range(len(table.headers))
        )
        + "|"
    )
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    return lines


def _md(text: str) -> str:
    """Markdown passes raw HTML through: names from data (classes, runs, paths) must not
    become tags, so <, > and & are written as entities (code blocks show text as it is)."""
    return html.escape(text, quote=False)


def _is_numeric_column(table: Table, index: int) -> bool:
    cells = [row[index] for row in table.rows if index < len(row) and row[index] not in ("", "—")]
    return bool(cells) and all(_NUMBER.match(c) for c in cells)


def write_document(document: Document, out_dir: Path, stem: str) -> Path:
    """Write `<stem>.html`, `<stem>.md` and `<stem>_files/*.png` into out_dir; return the HTML
    path. PNGs left in `<stem>_files/` by an earlier version of the same report are removed."""
    files_dir = out_dir / f"{stem}_files"
    markdown, files = render_markdown(document, files_dir.name)
    for name, data in files.items():
        _write_bytes(files_dir / name, data)
    if files_dir.is_dir():
        for stale in files_dir.glob("*.png"):
            if stale.name not in files:
                stale.unlink()
    atomic_write_text(out_dir / f"{stem}.md", markdown)
    html_path = out_dir / f"{stem}.html"
    atomic_write_text(html_path, render_html(document))
    return html_path


def _write_bytes(path: Path, data: bytes) -> None:
    def write(file: IO[bytes]) -> None:
        file.write(data)

    atomic_write(path, write)
