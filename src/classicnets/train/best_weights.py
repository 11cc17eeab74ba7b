"""What a finished run keeps on disk: its best weights as safetensors, and last.pt.

While a run trains, checkpoints/best.pt (weights of the best epoch), last.pt (everything a
resume needs) and previous.pt (the last.pt before, for a save that was cut short) all exist.
A complete run then has no use for previous.pt, and best.pt's weights need no pickle:
checkpoints/best.safetensors holds them, with what describes them (config, classes,
normalisation, image size, epoch) as JSON in the file's metadata. train.keep_optimizer_state
keeps every file as it was. docs/run-folder.md lists the sizes.
"""

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from classicnets.errors import UserError

BEST_WEIGHTS_FILE = "best.safetensors"
_METADATA_KEY = "classicnets"  # safetensors metadata is str -> str: one JSON document


def save_best_weights(checkpoint: dict[str, Any], path: Path) -> None:
    """Write a weights-only checkpoint dict (its "model" plus plain values) as safetensors."""
    state = {key: tensor.detach().contiguous() for key, tensor in checkpoint["model"].items()}
    described = {key: value for key, value in checkpoint.items() if key != "model"}
    temp = path.with_suffix(".tmp")
    save_file(state, str(temp), metadata={_METADATA_KEY: json.dumps(described)})
    temp.replace(path)


def load_best_weights(path: Path) -> dict[str, Any]:
    """The checkpoint dict of a best.safetensors file: {"model": state_dict, ...}."""
    try:
        state: dict[str, torch.Tensor] = load_file(str(path), device="cpu")
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
        described = json.loads(metadata.get(_METADATA_KEY, "{}"))
    except (SafetensorError, OSError, ValueError) as error:
        raise UserError(f"{path} is truncated or not a weights file ({error})") from None
    if not isinstance(described, dict):
        raise UserError(f"{path} has no classicnets description in its metadata")
    return {"model": state, **described}


def keep_final_files(run_dir: Path, keep_optimizer_state: bool) -> None:
    """After a complete run: best.pt -> best.safetensors, previous.pt removed (unless kept)."""
    if keep_optimizer_state:
        return
    from classicnets.train.checkpoint import load_checkpoint

    folder = run_dir / "checkpoints"
    best = folder / "best.pt"
    if best.is_file():
        save_best_weights(load_checkpoint(best), folder / BEST_WEIGHTS_FILE)
        best.unlink()
    (folder / "previous.pt").unlink(missing_ok=True)
