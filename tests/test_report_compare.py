"""Comparisons of hand-made run folders: the table, the gap to the first run, epochs to reach
a val accuracy, mean ± std over seeds, class-set checks and never overwriting."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_report_fixtures import make_run_folder

from classicnets.cli import main
from classicnets.errors import UserError
from classicnets.report import write_comparison


def _row(markdown: str, first_cell: str, table_header: str) -> list[str]:
    """The cells of the row starting with `first_cell` in the table whose header starts so."""
    section = markdown[markdown.index(table_header) :]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r}")


def test_compare_command_reports_gap_and_epochs_to_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = make_run_folder(tmp_path, "base", with_checkpoint=False)
    better = make_run_folder(
        tmp_path,
        "better",
        with_checkpoint=False,
        val_top1=(60.0, 82.0, 88.0, 90.0),
        confusion=[[9, 1, 0], [0, 10, 0], [2, 2, 6]],
    )
    out = tmp_path / "cmp"
    code = main(
        ["compare", str(base), str(better), "--labels", "a,b", "--at", "80,89", "--out", str(out)]
    )
    assert code == 0
    assert capsys.readouterr().out.strip() == str(out / "comparison.html")
    markdown = (out / "comparison.md").read_text()
    header = "| label | n | model"
    assert _row(markdown, "b", header)[5:11] == ["90.00", "90.00", "83.33", "100.00", "25", "5"]
    gap = "| label | Δ test top-1"
    assert _row(markdown, "a", gap)[1:] == ["reference", "reference", "3", "never"]
    assert _row(markdown, "b", gap)[1:] == ["+3.33", "+5.00", "2", "4"]
    deltas = "| class |"
    assert _row(markdown, "ship", deltas)[1:] == ["80.00", "-20.00"]
    assert _row(markdown, "dog", deltas)[1:] == ["80.00", "+20.00"]
    html = (out / "comparison.html").read_text()
    assert '<table id="comparison">' in html and html.count("data:image/png;base64,") == 2


def test_groups_over_seeds_report_mean_and_std(tmp_path: Path) -> None:
    two = ("cat", "dog")
    seeds = [
        make_run_folder(
            tmp_path,
            f"s{i}",
            seed=i,
            with_checkpoint=False,
            classes=two,
            val_top1=(50.0, top),
            confusion=confusion,
        )
        for i, (top, confusion) in enumerate(
            [
                (70.0, [[8, 2], [2, 8]]),  # 80% test top-1
                (74.0, [[9, 1], [1, 9]]),  # 90%
            ]
        )
    ]
    partial = make_run_folder(
        tmp_path,
        "p",
        seed=2,
        with_eval=False,
        with_checkpoint=False,
        classes=two,
        status="interrupted",
        val_top1=(40.0, 60.0),
    )
    path = write_comparison(
        [("ref", seeds), ("cell", [seeds[0], partial])], tmp_path / "out", at=[65.0]
    )
    markdown = path.with_suffix(".md").read_text()
    row = _row(markdown, "ref", "| label | n | model")
    assert row[1] == "2" and row[5] == "72.00 ± 2.83" and row[7] == "85.00 ± 7.07"
    cell = _row(markdown, "cell", "| label | n | model")
    assert cell[7] == "80.00 (n=1)"  # the interrupted seed has no test result
    assert _row(markdown, "cell", "| label | Δ test top-1")[-1] == "2 (1/2 reached)"
    assert "interrupted" in markdown


def test_different_class_sets_skip_per_class_deltas_but_compare_overall(tmp_path: Path) -> None:
    three = make_run_folder(tmp_path, "three", with_checkpoint=False)
    other = make_run_folder(
        tmp_path, "other", with_checkpoint=False, classes=("cat", "dog", "plane")
    )
    markdown = (
        write_comparison([("a", [three]), ("b", [other])], tmp_path / "o", at=[])
        .with_suffix(".md")
        .read_text()
    )
    assert "per-class deltas skipped" in markdown.lower()
    assert "only in three: ship" in markdown and "only in other: plane" in markdown
    assert _row(markdown, "b", "| label | n | model")[7] == "80.00"
    with pytest.raises(UserError, match="different classes"):
        write_comparison([("cell", [three, other])], tmp_path / "o2", at=[])


def test_an_existing_comparison_is_never_overwritten(tmp_path: Path) -> None:
    run = make_run_folder(tmp_path, "run", with_checkpoint=False, with_eval=False)
    out = tmp_path / "out"
    first = write_comparison([("a", [run])], out, at=[])
    before = first.read_bytes()
    second = write_comparison([("a", [run])], out, at=[])
    assert second.name == "comparison-2.html" and first.read_bytes() == before
    assert (out / "comparison-2_files" / "learning_curves.png").is_file()


def test_compare_rejects_bad_arguments_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run_folder(tmp_path, "run", with_checkpoint=False, with_eval=False)
    assert main(["compare", str(run), str(run), "--labels", "only-one"]) == 2
    assert "one per run" in capsys.readouterr().err
    assert main(["compare", str(run), str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(run), "--at", "80,abc"])
    assert exit_info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_comparison_opens_with_the_config_differences(tmp_path: Path) -> None:
    first = make_run_folder(tmp_path, "first", seed=0)
    second = make_run_folder(tmp_path, "second", seed=1)
    html = write_comparison([("a", [first]), ("b", [second])], tmp_path / "out").read_text()
    start = html.index('id="config-differences"')
    assert start < html.index('id="runs"')
    table = html[start : html.index("</table>", start)]
    assert "train.seed" in table and table.count("<tr>") == 2  # the header and that one field
    same = write_comparison([("a", [first]), ("b", [first])], tmp_path / "same").read_text()
    assert "The runs share every config field." in same
