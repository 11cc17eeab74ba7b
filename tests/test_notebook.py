"""docs/notebooks/quickstart.ipynb runs top to bottom in a Jupyter kernel (nbclient), and what
a notebook shows inline (figures, the run, the comparison, the report) is in its outputs."""

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel is a process of its own
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    resources = {"metadata": {"path": str(tmp_path)}}
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources=resources
    ).execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output["output_type"] == "error"]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) >= 3  # curves, confusion matrix, the predicted digit
    pages = [
        output["data"]["text/html"] for output in outputs if "text/html" in output.get("data", {})
    ]
    assert any("<iframe" in page and "comparison" in page for page in pages)
    assert any("<iframe" in page and "report.html" in page for page in pages)
    assert len(list((tmp_path / "runs").glob("*-alexnet_bn_cifar-digits"))) == 2
