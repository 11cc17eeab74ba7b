"""Every Python example in docs/api.md runs, in order, as written."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)


def test_api_md_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the examples write under ./runs
    blocks = python_blocks(DOCS / "api.md")
    assert len(blocks) >= 8
    namespace: dict[str, object] = {}
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"docs/api.md block {number}", "exec"), namespace)
    run, report = namespace["run"], namespace["report"]
    assert run.summary["status"] == "complete" and run.summary["epochs"] == 1  # type: ignore[attr-defined]
    assert run.config.data.name == "digits" and run.config.train.epochs == 1  # type: ignore[attr-defined]
    assert "<iframe" in report._repr_html_()  # type: ignore[attr-defined]
    assert "<table>" in run._repr_html_()  # type: ignore[attr-defined]
    assert (tmp_path / "runs").is_dir() and Path(namespace["path"]).is_file()  # type: ignore[arg-type]
