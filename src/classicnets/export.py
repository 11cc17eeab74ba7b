"""Export a trained model for inference elsewhere: ONNX, or a torch.export program (.pt2).

Both take the model in eval mode with the input shape it was trained at, (N, 3, S, S),
normalised as the run's evaluation normalises (mean and std are in the run's checkpoint).
The batch dimension is exported as dynamic where the model allows it (Dim.AUTO); a layer
whose code depends on the batch size pins it to the example's `batch_size`.
"""

from pathlib import Path
from typing import Literal

import torch

from classicnets.errors import UserError
from classicnets.trained import TrainedModel

ExportFormat = Literal["onnx", "torch.export"]
SUFFIXES: dict[str, str] = {"onnx": ".onnx", "torch.export": ".pt2"}


def example_input(trained: TrainedModel, batch_size: int = 2) -> torch.Tensor:
    """A fixed random batch at the model's input size (seeded, so parity checks repeat)."""
    side = trained.info.image_size
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch_size, 3, side, side, generator=generator)


def export_model(
    trained: TrainedModel,
    export_format: ExportFormat,
    path: Path | None = None,
    batch_size: int = 2,
) -> Path:
    """Write the exported model (default: <run>/export/model.onnx or model.pt2); return it."""
    if export_format not in SUFFIXES:
        raise UserError(f"export format must be one of {', '.join(SUFFIXES)}; got {export_format}")
    if path is None:
        folder = trained.run_dir or trained.checkpoint_path.parent
        path = folder / "export" / f"model{SUFFIXES[export_format]}"
    if path.exists():
        raise UserError(f"{path} exists; refusing to overwrite it (give another --out)")
    path.parent.mkdir(parents=True, exist_ok=True)
    model = trained.model.eval()
    x = example_input(trained, batch_size)
    dynamic = ({0: torch.export.Dim.AUTO},)
    with torch.no_grad():
        if export_format == "torch.export":
            program = torch.export.export(model, (x,), dynamic_shapes=dynamic)
            torch.export.save(program, path)
        else:
            _export_onnx(model, x, dynamic, path)
    return path


def _export_onnx(
    model: torch.nn.Module, x: torch.Tensor, dynamic: tuple[dict[int, object]], path: Path
) -> None:
    try:
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError:
        raise UserError(
            "ONNX export needs the onnx and onnxscript packages: pip install onnx onnxscript"
        ) from None
    program = torch.onnx.export(
        model, (x,), dynamo=True, dynamic_shapes=dynamic, input_names=["images"], verbose=False
    )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(path))


def load_exported(path: Path) -> torch.nn.Module:
    """A .pt2 program written by export_model, as a callable module."""
    return torch.export.load(path).module()
