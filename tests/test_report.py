"""Report figures on hand-made numbers, run-folder reading of partial runs, the run report and
the `classicnets report` command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from test_report_fixtures import CLASSES, make_run_folder

from classicnets.cli import main
from classicnets.errors import UserError
from classicnets.report import plots, write_run_report
from classicnets.run_record import load_run


def test_normalize_confusion_divides_each_row_by_its_true_class_count() -> None:
    matrix = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    rates = plots.normalize_confusion(matrix)
    np.testing.assert_allclose(rates, [[0.8, 0.2, 0.0], [0.25, 0.75, 0.0], [0.0, 0.0, 0.0]])
    assert plots.confusion_accuracy(matrix) == pytest.approx(11 / 14)


def test_confusion_figure_labels_classes_and_states_accuracy() -> None:
    matrix = np.array([[8, 2, 0], [1, 3, 0], [0, 1, 5]])
    figure = plots.figure_confusion_matrix(matrix, CLASSES, show_counts=True)
    assert isinstance(figure, Figure)
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == list(CLASSES)
    assert [t.get_text() for t in axes.get_yticklabels()] == list(CLASSES)
    assert "accuracy 80.00%" in axes.get_xlabel()  # 16 of 20 on the diagonal
    assert "misclassified 20.00%" in axes.get_xlabel()
    cell_texts = {t.get_text() for t in axes.texts}
    assert "0.80\n(8)" in cell_texts and "0.25\n(1)" in cell_texts
    with pytest.raises(ValueError, match="does not match"):
        plots.figure_confusion_matrix(matrix, CLASSES[:2])


def test_learning_curves_have_one_point_per_epoch_and_skip_null_values() -> None:
    epochs = [
        {
            "epoch": e,
            "lr": 0.1 / e,
            "train_loss": 3.0 - e,
            "train_top1": 10.0 * e,
            "val_loss": None,
            "val_top1": 5.0 * e if e != 2 else None,
        }
        for e in (1, 2, 3, 4)
    ]
    figure = plots.figure_learning_curves(epochs)
    lines = {str(line.get_label()): line for axes in figure.axes for line in axes.get_lines()}
    assert set(lines) == {"train", "train top-1", "val top-1", "lr"}  # no all-null val loss
    assert list(lines["train"].get_xdata()) == [1, 2, 3, 4]
    assert list(lines["train"].get_ydata()) == [2.0, 1.0, 0.0, -1.0]
    assert list(lines["val top-1"].get_xdata()) == [1, 3, 4]
    np.testing.assert_allclose(lines["lr"].get_ydata(), [0.1, 0.05, 0.1 / 3, 0.025])


def test_filter_mosaic_scales_each_kernel_to_full_range() -> None:
    weight = np.stack([np.full((3, 2, 2), 5.0), np.arange(12.0).reshape(3, 2, 2) * -3])
    weight[0, 0, 0, 0] = -1.0
    mosaic = plots.filter_mosaic(weight, columns=2)
    assert mosaic.shape == (1 * 3 + 1, 2 * 3 + 1, 3)  # 2x2 kernels with 1-pixel borders
    first, second = mosaic[1:3, 1:3], mosaic[1:3, 4:6]
    assert first.min() == 0.0 and first.max() == 1.0 and first[0, 0, 0] == 0.0
    assert second.min() == 0.0 and second.max() == 1.0
    assert second[0, 0, 0] == 1.0  # the largest value of kernel 2 is its first element
    np.testing.assert_allclose(plots.filter_mosaic(np.ones((1, 3, 2, 2)))[1:3, 1:3], 0.5)
    with pytest.raises(ValueError, match="out, 3, k, k"):
        plots.filter_mosaic(np.zeros((4, 1, 3, 3)))


def test_per_class_bars_are_sorted_worst_first() -> None:
    figure = plots.figure_per_class_accuracy(
        ["a", "b", "c", "d"], [90.0, 40.0, 75.0, 10.0], max_classes=3
    )
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["d", "b", "c"]
    assert [bar.get_width() for bar in axes.patches] == [10.0, 40.0, 75.0]
    assert "1 best not shown" in axes.get_title()


def test_truncated_last_metrics_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    run = load_run(make_run_folder(tmp_path, "r", truncated_last_line=True))
    assert [r.epoch for r in run.epochs] == [1, 2, 3, 4]
    assert any("skipped the last line" in w for w in run.warnings)


def test_repeated_epoch_keeps_the_later_line_and_says_so(tmp_path: Path) -> None:
    folder = make_run_folder(tmp_path, "r")
    with (folder / "metrics.jsonl").open("a") as file:
        file.write(json.dumps({"epoch": 2, "val_top1": 99.0}) + "\n")
    run = load_run(folder)
    assert run.best_val_top1() == (99.0, 2)
    assert any("epoch 2 appears twice" in w for w in run.warnings)


def test_not_a_run_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a run folder"):
        load_run(tmp_path)
    with pytest.raises(UserError, match="no such directory"):
        write_run_report(tmp_path / "missing")


@pytest.fixture(scope="module")
def complete_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run_report(make_run_folder(tmp_path_factory.mktemp("runs"), "complete"))


def test_run_report_html_is_self_contained(complete_report: Path) -> None:
    html = complete_report.read_text()
    assert not re.search(r"<script|<link|src=\"(?!data:)|url\(", html)
    images = re.findall(r'<img src="data:image/png;base64,', html)
    names = {
        "step_curves",
        "learning_curves",
        "confusion_matrix",
        "per_class_accuracy",
        "samples",
        "first_layer_filters",
    }  # no top-5 figure: 3 classes
    assert len(images) == len(names)
    assert '<table id="metrics">' in html and "24 / 6" in html  # test correct / incorrect


def test_run_report_markdown_links_existing_pngs(complete_report: Path) -> None:
    markdown = (complete_report.parent / "report.md").read_text()
    links = re.findall(r"\]\((report_files/[^)]+\.png)\)", markdown)
    assert len(links) == 6
    for link in links:
        assert (complete_report.parent / link).read_bytes().startswith(b"\x89PNG")
    assert "| test top-1 (%) | 80.00 |" in markdown  # 24 of 30 on the diagonal
    assert "Per-layer" in markdown  # the table, or a polite note why it is not there


def test_report_of_a_running_run_marks_it_incomplete(tmp_path: Path) -> None:
    folder = make_run_folder(
        tmp_path,
        "partial",
        status="running",
        with_eval=False,
        with_checkpoint=False,
        truncated_last_line=True,
        val_top1=(20.0, None),
    )
    (folder / "env.json").unlink()
    markdown = write_run_report(folder).with_suffix(".md").read_text()
    assert "incomplete run: status is 'running'" in markdown
    assert "skipped the last line" in markdown
    assert "no evaluation yet" in markdown
    assert "| test top-1 (%) | — |" in markdown  # not 0, not a stale number
    names = sorted(p.name for p in (folder / "report_files").iterdir())
    assert names == ["learning_curves.png", "step_curves.png"]


def test_report_command_prints_the_path_and_rejects_other_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_run_folder(tmp_path, "run", with_eval=False, with_checkpoint=False)
    assert main(["report", str(folder)]) == 0
    assert capsys.readouterr().out.strip() == str(folder / "report.html")
    assert main(["report", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "not a run folder" in error and len(error.strip().splitlines()) == 1


def test_per_layer_table_comes_from_model_json_without_building_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(name: str, num_classes: int, **options: object) -> torch.nn.Module:
        raise AssertionError("the report rebuilt the model")

    monkeypatch.setattr("classicnets.models.build_model", fail)
    folder = make_run_folder(tmp_path, "r", with_eval=False, with_checkpoint=False)
    markdown = write_run_report(folder).with_suffix(".md").read_text()
    assert "features.0" in markdown and "55,000,000" in markdown
    assert "params: 1,234 (1,234 trainable)" in markdown

    older = make_run_folder(tmp_path, "old", with_eval=False, with_model_table=False)
    markdown = write_run_report(older).with_suffix(".md").read_text()
    assert "Per-layer table skipped: the run's model.json is missing" in markdown


def test_report_opens_with_resolved_hyperparameters(complete_report: Path) -> None:
    html = complete_report.read_text()
    assert html.index('id="hyperparameters"') < html.index('id="metrics"')
    start = html.index('id="hyperparameters"')
    table = html[start : html.index("</table>", start)]
    # alexnet_cifar leaves norm to its builder (LRN, the paper's); the image size comes from
    # summary.json; both are marked as resolved rather than shown as null and 0.
    cells = dict(re.findall(r"<tr><td>([^<]+)</td><td[^>]*>([^<]+)</td></tr>", table))
    assert cells["model.norm"] == "lrn (resolved)"
    assert cells["data.image_size"] == "8 (resolved)"
    assert cells["optim.lr"] == "0.1" and cells["train.epochs"] == "4"


def test_top5_and_small_filters_are_left_out_where_they_say_nothing(tmp_path: Path) -> None:
    few = write_run_report(make_run_folder(tmp_path, "few", kernel=3)).read_text()
    assert "top-5" not in few.lower()  # 3 classes: top-5 is always 100%
    assert "First-layer filters" not in few  # 3x3 kernels show nothing
    classes = tuple(f"class{i}" for i in range(6))
    many = write_run_report(make_run_folder(tmp_path, "many", classes=classes)).read_text()
    assert "test top-5 (%)" in many and "Top-5 predictions" in many
    assert "First-layer filters" in many


def test_per_class_table_has_precision_recall_and_f1(tmp_path: Path) -> None:
    confusion = [[8, 2, 0], [0, 10, 0], [4, 0, 6]]  # rows: true cat, dog, ship
    html = write_run_report(make_run_folder(tmp_path, "run", confusion=confusion)).read_text()
    table = html[html.index('id="per-class"') :]
    table = table[: table.index("</table>")]
    # cat: precision 8/12, recall 8/10, F1 = 2pr/(p+r) = 72.73; ship: recall 60, precision 100
    rows = {
        cells[0]: cells[1:]
        for cells in (re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in table.split("<tr>"))
        if cells
    }
    assert rows["cat"][:4] == ["10", "66.67", "80.00", "72.73"]
    assert rows["ship"][:4] == ["10", "100.00", "60.00", "75.00"]
    assert table.index(">cat<") < table.index(">ship<") < table.index(">dog<")  # worst F1 first


def test_sample_grid_order_is_misclassified_first_then_spread_over_classes() -> None:
    from classicnets.report.plots import spread_over_classes

    targets = np.asarray([0, 0, 0, 0, 1, 1, 2, 2, 0])
    is_wrong = np.asarray([False, False, True, False, False, True, False, False, True])
    order = spread_over_classes(targets, is_wrong)
    assert order[:3] == [2, 5, 8]  # the wrong ones: class 0, class 1, class 0 again
    assert order[3:6] == [0, 4, 6]  # then one correct image of each class in turn
    assert sorted(order) == list(range(len(targets)))
