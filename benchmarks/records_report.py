"""Redraw the records table and curves from benchmarks/records.csv alone.

    .venv/bin/python benchmarks/records_report.py [--records benchmarks/records.csv]

Writes, between the `<!-- records:begin -->` and `<!-- records:end -->` lines of
benchmarks/RESULTS.md, one line per recipe, epochs and precision (seeds, mean ± sample std of
test top-1 and top-5, training PFLOP, mean wall seconds) followed by every recorded run; and
one PNG per recipe, benchmarks/records/curves-<recipe>.png, with every recorded seed's
training top-1 per epoch (and val top-1, dashed, where the run had a val split). Test accuracy
is never drawn per epoch: the test split is scored once, at the end of a run.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from classicnets.errors import UserError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record_run import COLUMNS as COLUMNS_SHOWN
from record_run import RECORDS, curve_path, read_records

BEGIN, END = "<!-- records:begin -->", "<!-- records:end -->"


def mean_std(values: Sequence[float]) -> str:
    """`mean ± std` (sample std, n - 1), or the single value with "(n=1)"."""
    if len(values) == 1:
        return f"{values[0]:.2f} (n=1)"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def records_table(rows: Sequence[dict[str, str]]) -> str:
    """The Markdown summary per recipe, epochs and precision (runs that differ in those are
    different measurements), then every row."""
    groups = sorted({(row["recipe"], int(row["epochs"]), row["precision"]) for row in rows})
    lines = [
        "| recipe | epochs | precision | seeds | test top-1 % | test top-5 % | PFLOP | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for recipe, epochs, precision in groups:
        mine = [
            row
            for row in rows
            if (row["recipe"], int(row["epochs"]), row["precision"]) == (recipe, epochs, precision)
        ]
        seeds = ", ".join(row["seed"] for row in mine)
        top1 = mean_std([float(row["test_top1"]) for row in mine])
        top5 = mean_std([float(row["test_top5"]) for row in mine])
        pflop = statistics.mean(float(row["pflop"]) for row in mine)
        wall = statistics.mean(float(row["wall_seconds"]) for row in mine)
        lines.append(
            f"| `{_cell(recipe)}` | {epochs} | {_cell(precision)} | {seeds} | {top1} | {top5} | "
            f"{pflop:.3f} | {wall:,.0f} |"
        )
    lines += ["", "| " + " | ".join(COLUMNS_SHOWN) + " |", "|" + "---|" * len(COLUMNS_SHOWN)]
    for row in rows:
        cells = [_cell(row[key]) for key in COLUMNS_SHOWN]
        cells[-1] = f"`{cells[-1]}`"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replace_section(document: str, body: str) -> str:
    if BEGIN not in document or END not in document:
        raise UserError(f"RESULTS.md has no {BEGIN} ... {END} section to rewrite")
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{body}\n{END}{tail}"


def _read_curve(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def draw_curves(rows: Sequence[dict[str, str]], records: Path) -> list[Path]:
    """One PNG per recipe: training (and val) top-1 per epoch of every recorded seed."""
    written = []
    for recipe in sorted({row["recipe"] for row in rows}):
        figure, axes = plt.subplots(figsize=(6, 4))
        for row in (r for r in rows if r["recipe"] == recipe):
            curve = _read_curve(curve_path(row, records))
            epochs = [int(point["epoch"]) for point in curve]
            label = f"seed {row['seed']} ({row['date'][:10]})"
            lines = axes.plot(epochs, [float(p["train_top1"]) for p in curve], label=label)
            val = [
                (e, float(p["val_top1"]))
                for e, p in zip(epochs, curve, strict=True)
                if p["val_top1"]
            ]
            if val:
                axes.plot(*zip(*val, strict=True), linestyle="--", color=lines[0].get_color())
        # Names come from a CSV: keep matplotlib from reading $...$ in them as mathtext.
        axes.set_title(f"{recipe}: train top-1 (dashed: val)".replace("$", r"\$"))
        axes.set_xlabel("epoch")
        axes.set_ylabel("top-1 %")
        axes.legend(fontsize="small")
        figure.tight_layout()
        path = records.parent / "records" / f"curves-{recipe}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=Path, default=RECORDS)
    parser.add_argument("--results", type=Path, default=RECORDS.parent / "RESULTS.md")
    args = parser.parse_args(argv)
    try:
        rows = read_records(args.records)
        if not rows:
            raise UserError(f"{args.records} holds no records yet")
        document = args.results.read_text()
        args.results.write_text(replace_section(document, records_table(rows)))
        figures = draw_curves(rows, args.records)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"rewrote the records section of {args.results}; curves: {len(figures)} PNG(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
