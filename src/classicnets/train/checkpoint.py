"""Checkpoints: atomic saves that keep the previous good copy, and loads that say what is wrong.

`last.pt` is written to a temporary file and renamed into place; the copy it replaces is kept
as `previous.pt`, so a truncated or corrupt `last.pt` falls back to the one before it.
"""

import logging
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch

from classicnets.atomic import atomic_write
from classicnets.errors import UserError

log = logging.getLogger(__name__)


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
            temp.unlink(missing_ok=True)
            raise UserError(
                f"cannot write {previous}: {error.strerror}; {path} is intact"
            ) from None
    atomic_write(path, lambda file: torch.save(state, file))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint dict on the CPU; a missing, truncated or foreign file is a UserError."""
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}")
    _check_zip_records(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        first_line = (
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        raise UserError(f"{path} is truncated or not a checkpoint ({first_line})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise UserError(f"{path} is not a classicnets checkpoint (no 'model' entry)")
    return state


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
    """The newest loadable checkpoint of a run: last.pt, else previous.pt (with a warning)."""
    folder = run_dir / "checkpoints"
    last, previous = folder / "last.pt", folder / "previous.pt"
    if not last.exists() and not previous.exists():
        raise UserError(f"{run_dir} has no checkpoint to resume from (looked for {last})")
    try:
        return load_checkpoint(last), last
    except UserError as error:
        if not previous.exists():
            raise
        log.warning("%s; falling back to %s", error, previous)
        return load_checkpoint(previous), previous


def find_checkpoint(path: Path) -> Path:
    """A checkpoint file, or a run folder (its best.pt, else last.pt)."""
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            candidate = path / "checkpoints" / name
            if candidate.is_file():
                return candidate
        raise UserError(f"{path} has no checkpoints/best.pt or checkpoints/last.pt")
    if not path.exists():
        raise UserError(f"{path} does not exist (give a checkpoint .pt file or a run folder)")
    return path
