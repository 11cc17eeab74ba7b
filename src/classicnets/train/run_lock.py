"""One writer per run folder: an advisory lock file, and the checks that keep a run's files.

`<run>/.lock` holds the writer's pid, host and start time, and the writer keeps an exclusive
`flock` on it while it trains. The kernel drops that flock when the process dies (even by
SIGKILL), so a lock file that can be flocked is stale: its process is gone. A second writer
stops with one line naming the holder.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from classicnets.errors import UserError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class RunLock:
    """Hold `<run_dir>/.lock` for the life of a `with` block; UserError if another process
    holds it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self._fd = acquire(self.path)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            release(self.path, self._fd)
            self._fd = None


def acquire(path: Path) -> int:
    """Take the lock at `path` and write our pid and host into it; return its descriptor."""
    for _ in range(10):  # another process may unlink the file between our open and flock
        try:
            # read-only: a file held open for writing would keep the disk from remounting
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        except FileNotFoundError:
            raise UserError(f"{path.parent} does not exist (the run folder vanished)") from None
        except OSError as error:
            raise UserError(f"cannot lock {path}: {error.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(path)
            os.close(fd)
            raise UserError(
                f"{path.parent} is in use by {describe(holder)}; wait for it to end"
            ) from None
        if _is_same_file(path, fd):
            _take_over(path, fd)
            return fd
        os.close(fd)
    raise UserError(f"cannot lock {path}: it keeps being replaced")


def _take_over(path: Path, fd: int) -> None:
    """Write our pid and host into the lock we now hold, after naming a stale holder."""
    previous = read_holder(path)
    if previous and previous.get("pid") != os.getpid():
        log.warning(
            "%s: taking over the stale lock of %s (no longer running)",
            path.parent,
            describe(previous),
        )
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now().isoformat(timespec="seconds"),
    }
    try:
        path.write_text(json.dumps(record) + "\n")  # the flock is on `fd`, not on this handle
    except OSError as error:
        os.close(fd)
        raise UserError(f"cannot write {path}: {error.strerror}") from None


def release(path: Path, fd: int) -> None:
    """Remove the lock file (while still holding it, so no one takes a file we delete)."""
    try:
        if _is_same_file(path, fd):
            path.unlink()
    except OSError:  # the folder vanished or turned read-only: the flock still goes below
        pass
    finally:
        os.close(fd)


def _is_same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def read_holder(path: Path) -> dict[str, Any]:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process (its lock file names none)"
    return (
        f"pid {holder.get('pid')} on {holder.get('host')} (since {holder.get('started')}; "
        f"lock file {LOCK_NAME})"
    )


def is_locked(run_dir: Path) -> dict[str, Any] | None:
    """The holder if a live process holds the run's lock, else None (free or stale)."""
    path = run_dir / LOCK_NAME
    if not path.exists():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(path) or {"pid": None}
    finally:
        os.close(fd)  # closing drops a flock we got
    return None


def clear_unstarted_run(run_dir: Path) -> None:
    """Delete a train.run_name folder that provably holds no run: no process holds its lock,
    it has no checkpoint, and the process that made it is known to have ended (its summary
    says failed or interrupted, or it left a stale lock). Anything else is refused."""
    holder = is_locked(run_dir)
    if holder is not None:
        raise UserError(f"{run_dir} is in use by {describe(holder)}; wait for it to end")
    checkpoints = run_dir / "checkpoints"
    if any(checkpoints.glob("*.pt")):
        raise UserError(f"{run_dir} holds checkpoints; resume it with --resume {run_dir}")
    ended = (run_dir / LOCK_NAME).exists() or _summary_status(run_dir) in ("failed", "interrupted")
    if not ended:
        raise UserError(
            f"{run_dir} holds a run without a checkpoint that may still be starting; "
            "choose another train.run_name, or delete the folder if no process uses it"
        )
    log.info("%s: clearing a run that ended before its first checkpoint", run_dir)
    shutil.rmtree(run_dir)


def _summary_status(run_dir: Path) -> str | None:
    try:
        status = json.loads((run_dir / "summary.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None
    return str(status) if status is not None else None


def check_run_folder(run_dir: Path) -> None:
    """Stop a run whose folder vanished or lost its config.yaml while it trained, instead of
    recreating half of it."""
    if not (run_dir / "config.yaml").is_file():
        what = "vanished" if not run_dir.exists() else "lost its config.yaml"
        raise UserError(
            f"the run folder {run_dir} {what} during training; stopped without writing "
            "(nothing is recreated)"
        )
