"""Checkpoints: atomic saves that keep the previous good copy, and loads that run no code.

`last.pt` is written to a temporary file and renamed into place; the copy it replaces is kept
as `previous.pt`, so a truncated or corrupt `last.pt` falls back to the one before it.

Every load is `torch.load(weights_only=True)`: a checkpoint holds only tensors and plain values
(dicts, lists, tuples, str, numbers, None). The one non-plain state a run carries, NumPy's RNG
state, is saved as a tensor and turned back into an array here, so the loop never sees the
encoding. Checkpoints written before that held NumPy arrays; the safe loader reads them too,
with NumPy's array constructor allowed and nothing else.
"""

import contextlib
import logging
import os
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classicnets.atomic import atomic_write
from classicnets.errors import UserError
from classicnets.train.best_weights import BEST_WEIGHTS_FILE, load_best_weights

log = logging.getLogger(__name__)

# What a pre-encoding checkpoint's NumPy RNG state pickles to: an array (uint32 keys) and its
# dtype. Allowing these builds arrays of numbers; any other global is still refused.
_OLD_FORMAT_GLOBALS: list[Any] = [
    np._core.multiarray._reconstruct,  # type: ignore[attr-defined]
    np.ndarray,
    np.dtype,
    type(np.dtype(np.uint32)),
]
_ARRAY_TAG = "numpy_array"  # {_ARRAY_TAG: tensor, "dtype": name}: an encoded NumPy array


class UnsafeCheckpointError(UserError):
    """The file asks the unpickler for code (a global a checkpoint never needs): refused."""


class NonFiniteWeightsError(UserError):
    """Weights holding NaN or infinity: never saved, and refused when loaded."""


def non_finite_tensors(state: dict[str, Any]) -> list[str]:
    """The names of the floating-point tensors in `state` holding a NaN or an infinity."""
    names = [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    if not names:
        return []
    finite = torch.stack([state[name].isfinite().all().cpu() for name in names]).tolist()
    return [name for name, ok in zip(names, finite, strict=True) if not ok]


def refuse_non_finite(model_state: dict[str, Any], step: int, last_good_step: int | None) -> None:
    """Before a save: stop a run whose weights went non-finite, keeping the last good copy."""
    bad = non_finite_tensors(model_state)
    if bad:
        kept = (
            f"checkpoints/last.pt still holds step {last_good_step}"
            if last_good_step is not None
            else "no checkpoint had been saved yet"
        )
        raise NonFiniteWeightsError(
            f"the weights became non-finite by step {step} ({bad[0]} and {len(bad) - 1} more "
            f"tensors); stopped without saving them: {kept}. Try a lower optim.lr or "
            "train.grad_clip"
        )


def save_checkpoint(state: dict[str, Any], path: Path, keep_previous: bool = False) -> None:
    """Save `state` at `path` atomically; with keep_previous, the old file becomes previous.pt."""
    if keep_previous and path.exists():
        previous = path.with_name("previous.pt")
        temp = previous.with_suffix(".tmp")
        try:
            temp.unlink(missing_ok=True)
            try:  # a hard link copies nothing: the save below gives last.pt a new file
                os.link(path, temp)
            except OSError:
                shutil.copyfile(path, temp)
            temp.replace(previous)
        except OSError as error:
            with contextlib.suppress(OSError):  # a read-only folder refuses this too
                temp.unlink(missing_ok=True)
            raise UserError(
                f"cannot write {previous}: {error.strerror}; {path} is intact"
            ) from None
    encoded = _encode(state)
    atomic_write(path, lambda file: torch.save(encoded, file))


def _encode(value: Any) -> Any:
    """`value` with every NumPy array a tagged tensor and every NumPy scalar a Python one."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"cannot store a NumPy array of {value.dtype} in a checkpoint")
        # int64 holds every uint32 (MT19937 keys) exactly; torch's uint32 supports few ops.
        wide = value.astype(np.int64) if value.dtype.kind in "biu" else value
        return {_ARRAY_TAG: torch.from_numpy(np.ascontiguousarray(wide)), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return type(value)((key, _encode(item)) for key, item in value.items())
    if isinstance(value, list | tuple):
        return type(value)(_encode(item) for item in value)
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if _ARRAY_TAG in value and isinstance(value[_ARRAY_TAG], torch.Tensor):
            return value[_ARRAY_TAG].numpy().astype(np.dtype(str(value["dtype"])))
        return type(value)((key, _decode(item)) for key, item in value.items())
    if isinstance(value, list | tuple):
        return type(value)(_decode(item) for item in value)
    return value


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint dict on the CPU without running code from it; a missing, truncated,
    foreign or code-carrying file is a UserError."""
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}")
    if path.suffix == ".safetensors":
        return load_best_weights(path)
    _check_zip_records(path)
    try:
        with torch.serialization.safe_globals(_OLD_FORMAT_GLOBALS):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        _refuse_code(path)
        raise UserError(f"{path} is truncated or not a checkpoint ({_first_line(error)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise UserError(f"{path} is truncated or not a checkpoint ({_first_line(error)})") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise UserError(f"{path} is not a classicnets checkpoint (no 'model' entry)")
    bad = non_finite_tensors(state["model"])
    if bad:
        raise NonFiniteWeightsError(
            f"{path} holds non-finite weights ({bad[0]} and {len(bad) - 1} more tensors): "
            "saved by a diverged run; refusing to use it"
        )
    return dict(_decode(state))


def _refuse_code(path: Path) -> None:
    """Raise UnsafeCheckpointError if the file's pickle names globals the safe loader refused
    (read with pickletools, nothing executed); return if it is merely unreadable."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a readable torch zip: the caller reports it as corrupt
        return
    allowed = {f"{g.__module__}.{g.__qualname__}" for g in _OLD_FORMAT_GLOBALS}
    allowed |= {"numpy.core.multiarray._reconstruct"}  # the same, as NumPy 1.x wrote it
    refused = sorted(set(names) - allowed)
    if refused:
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it asks to run {', '.join(refused[:3])}, which no "
            "classicnets checkpoint needs (a crafted or foreign file; only tensors and plain "
            "values are loaded)"
        )


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    # torch's weights-only errors start with a paragraph of advice; its last cause is the fact
    detail = next((line for line in lines if "WeightsUnpickler error" in line), None)
    return lines[-2] if detail is not None and len(lines) > 1 else lines[0]


def _check_zip_records(path: Path) -> None:
    """torch.load does not verify the CRCs of a checkpoint's zip records, so a flipped byte
    inside a tensor would load silently; testzip reads every record and checks its CRC."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError):
        return  # not a readable zip: torch.load below names the problem
    if damaged is not None:
        raise UserError(f"{path} is corrupt (checksum mismatch in {damaged})")


def load_resume_checkpoint(run_dir: Path) -> tuple[dict[str, Any], Path]:
    """The newest loadable checkpoint of a run: last.pt, else previous.pt (with a warning).
    A last.pt that asks to run code is refused outright: the folder has been tampered with."""
    folder = run_dir / "checkpoints"
    last, previous = folder / "last.pt", folder / "previous.pt"
    if not last.exists() and not previous.exists():
        raise UserError(f"{run_dir} has no checkpoint to resume from (looked for {last})")
    try:
        return load_checkpoint(last), last
    except UnsafeCheckpointError:
        raise
    except UserError as error:
        if not previous.exists():
            raise
        log.warning("%s; falling back to %s", error, previous)
        return load_checkpoint(previous), previous


def find_checkpoint(path: Path) -> Path:
    """A checkpoint file, or a run folder's best weights (best.pt while it trains,
    best.safetensors once complete), else its last.pt."""
    if path.is_dir():
        for name in ("best.pt", BEST_WEIGHTS_FILE, "last.pt"):
            candidate = path / "checkpoints" / name
            if candidate.is_file():
                return candidate
        raise UserError(f"{path} has no checkpoints/best.pt or checkpoints/last.pt")
    if not path.exists():
        raise UserError(f"{path} does not exist (give a checkpoint .pt file or a run folder)")
    return path
