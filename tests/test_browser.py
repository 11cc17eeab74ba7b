"""Open a run report and a comparison in headless Chromium: every image decodes, the metric
tables are there, and a screenshot renders. Skipped when Chromium is not installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_report_fixtures import make_run_folder

from classicnets.report import write_comparison, write_run_report

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which("chromium") is None,
        reason="chromium is not installed (apt-get install chromium; .ci/run does)",
    ),
]

# Appended to a copy of the page: after `load` (which waits for every image), write the result
# of the checks into <body> attributes, where --dump-dom can read them.
CHECK_SCRIPT = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const decoded = images.filter((image) => image.complete && image.naturalWidth > 0);
  document.body.dataset.imageCount = String(images.length);
  document.body.dataset.imagesDecoded = String(decoded.length);
  document.body.dataset.tableRows = String(
    document.querySelectorAll("table#TABLE_ID tbody tr").length);
  document.body.dataset.hyperparameterRows = String(
    document.querySelectorAll("table#hyperparameters tbody tr").length);
  const steps = document.querySelector("figure#figure-step_curves img");
  document.body.dataset.stepCurveWidth = String(steps ? steps.naturalWidth : 0);
});
</script>
"""


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def _check_in_browser(page: Path, table_id: str, tmp_path: Path) -> tuple[dict[str, int], Path]:
    """(the counts the check script wrote, a screenshot of the unmodified page)."""
    checked = tmp_path / f"checked-{page.name}"
    html = page.read_text()
    checked.write_text(
        html.replace("</body>", CHECK_SCRIPT.replace("TABLE_ID", table_id) + "</body>")
    )
    dom = _chromium(
        tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom", checked.as_uri()
    ).stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:500]
    counts = {
        key: int(value)
        for key, value in re.findall(
            r'data-(image-count|images-decoded|table-rows|hyperparameter-rows|step-curve-width)="(\d+)"',
            body.group(1),
        )
    }
    screenshot = tmp_path / f"{page.stem}.png"
    _chromium(
        tmp_path / "profile",
        f"--screenshot={screenshot}",
        "--window-size=1200,2400",
        "--hide-scrollbars",
        page.as_uri(),
    )
    return counts, screenshot


def _assert_screenshot_has_content(path: Path) -> None:
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    assert pixels.shape == (2400, 1200)
    assert pixels.std() > 10  # not a blank page


def test_run_report_and_comparison_render_in_chromium(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = make_run_folder(runs, "first")
    second = make_run_folder(
        runs,
        "second",
        val_top1=(55.0, 75.0, 86.0, 91.0),
        confusion=[[9, 1, 0], [0, 10, 0], [2, 2, 6]],
    )
    report = write_run_report(first)
    comparison = write_comparison(
        [("first", [first]), ("second", [second])], runs / "compare", at=[80.0]
    )

    counts, screenshot = _check_in_browser(report, "metrics", tmp_path)
    assert counts["image-count"] == 6
    assert counts["images-decoded"] == counts["image-count"]
    assert counts["table-rows"] >= 10
    # the per-step lr and loss curve decoded, and the resolved hyperparameters are listed
    assert counts["step-curve-width"] > 500
    assert counts["hyperparameter-rows"] >= 10
    _assert_screenshot_has_content(screenshot)

    counts, screenshot = _check_in_browser(comparison, "comparison", tmp_path)
    assert counts["image-count"] == 2
    assert counts["images-decoded"] == counts["image-count"]
    assert counts["table-rows"] == 2
    _assert_screenshot_has_content(screenshot)
