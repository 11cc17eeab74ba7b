"""Imports flow one way (STYLE §1, docs/architecture.md): every module's imports, read from its
source, point at its own package or at a layer below it."""

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "classicnets"

# Higher imports lower: cli -> api -> experiments | zoo -> train -> evaluate | report
# -> run_record | models | data -> kernels | device | precision -> config -> registry.
LAYERS: dict[str, int] = {
    "cli": 13,
    "api": 12,
    "export": 11,
    "trained": 10,
    "experiments": 9,
    "zoo": 9,
    "train": 8,
    "evaluate": 7,
    "report": 7,
    "run_record": 6,
    "models": 6,
    "data": 6,
    "kernels": 5,
    "device": 5,
    "precision": 5,
    "allocator": 5,
    "config": 3,
    "registry": 2,
    "atomic": 1,
    "errors": 0,
}
# Modules that belong to another part's layer.
PART_OF = {"__main__": "cli", "config_ranges": "config"}


def _part(module: str) -> str:
    """The layer part of a dotted module under classicnets ("" for the package itself)."""
    parts = module.split(".")
    part = parts[1] if len(parts) > 1 else "__init__"
    return PART_OF.get(part, part)


def _imports(path: Path, text: str | None = None) -> list[tuple[int, str]]:
    """(line, module) of every classicnets import in `path` (or `text` as if it were there),
    top-level or inside functions."""
    package = ".".join(("classicnets", *path.relative_to(SOURCE).parent.parts))
    found = []
    tree = ast.parse(path.read_text() if text is None else text, str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            if module == "classicnets":  # from classicnets import train, ...
                found += [(node.lineno, f"classicnets.{alias.name}") for alias in node.names]
    # A bare `import classicnets` (the root, for __version__) names no layer.
    return [(line, name) for line, name in found if name.startswith("classicnets.")]


MODULES = sorted(SOURCE.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    parts = {_part(".".join(("classicnets", *p.relative_to(SOURCE).with_suffix("").parts)))
             for p in MODULES}  # fmt: skip
    assert parts - {"__init__"} <= set(LAYERS), sorted(parts - set(LAYERS))


def _upward(path: Path, text: str | None = None) -> list[str]:
    own = _part(".".join(("classicnets", *path.relative_to(SOURCE).with_suffix("").parts)))
    return [
        f"line {line}: {name}"
        for line, name in _imports(path, text)
        if own != "__init__"  # the package root re-exports the API
        and (target := _part(name)) != own
        and LAYERS[target] >= LAYERS[own]
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SOURCE)))
def test_imports_point_down_the_layers(path: Path) -> None:
    upward = _upward(path)
    assert not upward, f"{path.relative_to(SOURCE)} imports up or across: {upward}"


def test_the_checker_sees_imports_that_run_up_or_across() -> None:
    probe = SOURCE / "evaluate" / "probe.py"
    inside = "def f():\n    from classicnets.train.loop import fit\n"
    assert _upward(probe, inside) == ["line 2: classicnets.train.loop"]
    assert _upward(probe, "from classicnets import report\n") == ["line 1: classicnets.report"]
    assert _upward(probe, "from . import metrics\nfrom ..data import build_loader\n") == []
    data = SOURCE / "data" / "probe.py"
    assert _upward(data, "import classicnets.models.vgg\n") == ["line 1: classicnets.models.vgg"]
