"""Atomic file writes (temp file in the same folder, fsync, rename), so a crash or a full disk
never leaves a half-written config, metrics file or checkpoint in place of a good one."""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from classicnets.errors import UserError


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write(file)` on a temporary file, then rename it over `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as error:
        raise UserError(f"cannot write to {path.parent}: {error.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp_name, 0o666 & ~umask)
        os.replace(temp_name, path)
    except (OSError, RuntimeError) as error:  # torch's zip writer raises RuntimeError
        reason = _write_fault(error, path.parent)
        _remove(Path(temp_name))
        if reason is None:
            raise
        raise UserError(f"cannot write {path}: {reason}; the previous copy is intact") from None
    except BaseException:
        _remove(Path(temp_name))
        raise


def _remove(temp: Path) -> None:
    """Remove a half-written temp file; a folder that turned read-only refuses this too, and
    that must not hide the error that stopped the write."""
    with contextlib.suppress(OSError):
        temp.unlink(missing_ok=True)


# What torch's zip writer (caffe2 inline_container.cc) says when a write comes up short.
_TORCH_WRITE_FAILURES = ("unexpected pos", "file write failed", "PytorchStreamWriter")


def _write_fault(error: OSError | RuntimeError, folder: Path) -> str | None:
    """The reason a write failed, in a few words; None for a RuntimeError that is no write
    fault (a bug, to be raised as it is)."""
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    try:
        is_full = shutil.disk_usage(folder).free < 1 << 20  # before the temp file is removed
    except OSError:
        is_full = False
    if is_full:
        return "No space left on device"
    message = str(error)
    if any(marker in message for marker in _TORCH_WRITE_FAILURES):
        return f"the write failed ({message.strip().splitlines()[0]})"
    return None


def atomic_write_text(path: Path, text: str) -> None:
    def write(file: IO[bytes]) -> None:
        file.write(text.encode())

    atomic_write(path, write)
