"""`classicnets compare` image by image: correct/wrong counts per run and a per-image CSV of
both runs' predictions, as the published Imagenette BatchNorm comparison tabulates them."""

import csv
import json
from pathlib import Path

from test_report_fixtures import make_run_folder

from classicnets.report import write_comparison


def test_comparison_counts_correct_and_wrong_and_writes_a_per_image_csv(tmp_path: Path) -> None:
    plain = make_run_folder(
        tmp_path, "plain", with_checkpoint=False, confusion=[[8, 2, 0], [1, 9, 0], [3, 3, 4]]
    )
    bn = make_run_folder(
        tmp_path, "bn", with_checkpoint=False, confusion=[[9, 1, 0], [0, 10, 0], [2, 2, 6]]
    )
    path = bn / "eval/test/predictions.csv"
    with path.open() as file:
        lines = list(csv.reader(file))
    with path.open("w", newline="") as file:  # the BN run gets every image right
        csv.writer(file).writerows([lines[0], *([r[0], r[1], r[1], *r[3:]] for r in lines[1:])])
    out = tmp_path / "cmp"
    write_comparison([("no BN", [plain]), ("BN", [bn])], out)
    markdown = (out / "comparison.md").read_text()
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
        for line in markdown.splitlines()
        if line.startswith("| ") and "test images" not in line
    }
    expected = {}
    for name, run in (("no BN", plain), ("BN", bn)):
        with (run / "eval/test/predictions.csv").open() as file:
            truth = [(r["target"], r["predicted"]) for r in csv.DictReader(file)]
        right = sum(target == predicted for target, predicted in truth)
        expected[name] = right
        assert rows[name][1:5] == [
            str(len(truth)), str(right), str(len(truth) - right), f"{100 * right / len(truth):.2f}"
        ]  # fmt: skip
    assert expected["no BN"] != expected["BN"]  # the two runs differ image by image
    assert "comparison_per_image.csv" in markdown
    with (out / "comparison_per_image.csv").open() as file:
        per_image = list(csv.DictReader(file))
    assert len(per_image) == len(truth)
    assert list(per_image[0]) == ["sample", "target", "predicted no BN", "predicted BN"]
    for name in ("no BN", "BN"):
        assert sum(row["target"] == row[f"predicted {name}"] for row in per_image) == expected[name]


def test_comparison_without_predictions_says_so(tmp_path: Path) -> None:
    runs = [make_run_folder(tmp_path, name, with_eval=False) for name in ("a", "b")]
    out = tmp_path / "cmp"
    write_comparison([("a", [runs[0]]), ("b", [runs[1]])], out)
    assert "no per-image counts" in (out / "comparison.md").read_text()
    assert not (out / "comparison_per_image.csv").exists()


def test_comparison_reads_epochs_to_x_from_test_monitoring_marked_as_such(tmp_path: Path) -> None:
    runs = []
    for name, curve in (("plain", (13.0, 60.0, 79.0, 85.0)), ("bn", (51.0, 82.0, 88.0, 90.0))):
        run = make_run_folder(tmp_path, name, with_checkpoint=False)
        path = run / "metrics.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for row, value in zip(rows, curve, strict=True):
            row["monitor_test_top1"] = value
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        runs.append(run)
    out = tmp_path / "cmp"
    write_comparison([("no BN", [runs[0]]), ("BN", [runs[1]])], out, at=[80])
    markdown = (out / "comparison.md").read_text()
    assert "epochs to 80% test top-1 (monitoring)" in markdown
    gap = markdown[markdown.index("| label | Δ test top-1") :].splitlines()
    cells = {
        line.strip("|").split("|")[0].strip(): [c.strip() for c in line.strip("|").split("|")]
        for line in gap[2:4]
    }
    # val (the fixture's 50, 70, 80, 85) reaches 80% in epoch 3; test monitoring separately
    assert cells["BN"][-2:] == ["3", "2"]
    assert cells["no BN"][-2:] == ["3", "4"]
    html = (out / "comparison.html").read_text()
    assert "test-set monitoring" in html
