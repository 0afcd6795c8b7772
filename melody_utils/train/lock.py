"""One training run per output folder: a lock file naming the run that writes there.

Two runs training into one folder (two Colab tabs on one Drive folder, a second terminal) would
overwrite each other's checkpoints and remove each other's temp files. :func:`acquire` creates
``OUT_DIR/train.lock`` (exclusively) holding the owner's pid, host, start time and a token; a
second run gets :class:`FolderInUse`, one line naming the folder and the running process.

A lock whose owner is gone is taken over, with a note: on this host when its pid no longer runs
(or is this very process: a notebook's kernel that was interrupted), on another host (another
Colab runtime) when it was not refreshed for :data:`STALE_AFTER_S`. The owner refreshes it
before every checkpoint (:meth:`OutDirLock.refresh`); a run that finds its lock taken by another
stops before writing, so the other run's checkpoints are never overwritten.

:func:`claim` readies a folder for a run: writable, locked, the temp files of writes killed
midway removed (only once the lock is held: no live run owns them then), and room on its disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..files import check_free_space

LOCK_FILE = "train.lock"
STALE_AFTER_S = 1800.0  # a lock of another host not refreshed for this long was left by a runtime that is gone
UNWRITTEN_AFTER_S = 60.0  # a lock file still empty or unreadable after this long was left by a killed start


class FolderInUse(OSError):
    """Another live training run holds the output folder's lock; the message names it and the fix."""


def _owner() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "token": uuid.uuid4().hex,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)[:200]}


def _read(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    valid = isinstance(holder, dict) and {"pid", "host", "token"} <= set(holder) and isinstance(holder["pid"], int) \
        and holder["pid"] > 0
    return holder if valid else None


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _pid_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # alive under another user (or not a pid we can ask about): assume it runs
    return True


def stale_reason(holder: dict | None, path: Path) -> str | None:
    """Why the lock at ``path`` (content ``holder``) was left by a run that is gone; None when its owner may run."""
    age = _age_s(path)
    if holder is None:
        return f"it was left unfinished {age:.0f} s ago" if age > UNWRITTEN_AFTER_S else None
    if holder["host"] == socket.gethostname():
        if holder["pid"] == os.getpid():
            return f"it was left by this process (pid {holder['pid']}), whose run ended without releasing it"
        if not _pid_runs(int(holder["pid"])):
            return f"its run (pid {holder['pid']} on this host) is gone"
        return None
    if age > STALE_AFTER_S:
        return f"its run on host {holder['host']} has not written for {age / 60:.0f} minutes"
    return None


def describe_holder(holder: dict | None) -> str:
    if holder is None:
        return "a run that is starting"
    return f"pid {holder['pid']} on host {holder['host']}, started {holder.get('started', '?')}"


@dataclass
class OutDirLock:
    """A held lock; :meth:`release` it when the run ends."""

    path: Path
    owner: dict

    def refresh(self) -> None:
        """Before a checkpoint: the lock is still ours (else :class:`FolderInUse`); its time is renewed."""
        holder = _read(self.path)
        if holder is None and not self.path.exists():  # deleted by hand: hold it again
            if _create(self.path, self.owner):
                return
            holder = _read(self.path)
        if holder is not None and holder["token"] != self.owner["token"]:
            raise FolderInUse(f"{self.path.parent} was taken over by another training run ({describe_holder(holder)}); "
                              f"this run stops so as not to overwrite its checkpoints; resume it later or train "
                              f"in another folder (--out-dir)")
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path)

    def release(self) -> None:
        holder = _read(self.path)
        if holder is not None and holder["token"] == self.owner["token"]:
            self.path.unlink(missing_ok=True)


def _create(path: Path, owner: dict) -> bool:
    """Create the lock file exclusively with ``owner``; False when it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(owner) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return True


def acquire(out_dir: str | os.PathLike, note=None) -> OutDirLock:
    """Hold ``OUT_DIR/train.lock`` for this process, or raise :class:`FolderInUse`.

    A stale lock (module docstring) is taken over and ``note(line)`` says so (default: stderr).
    """
    path = Path(out_dir) / LOCK_FILE
    owner = _owner()
    for _ in range(3):
        if _create(path, owner):
            return OutDirLock(path, owner)
        holder = _read(path)
        reason = stale_reason(holder, path)
        if reason is None:
            raise FolderInUse(f"{path.parent} is in use by another training run ({describe_holder(holder)}); wait for "
                              f"it to end or stop it, or train in another folder (--out-dir, or RUN = \"new\" in "
                              f"notebook 03); if no such run exists, delete {path}")
        (note or (lambda line: print(line, file=sys.stderr)))(
            f"note: taking over {path}: {reason}")
        path.unlink(missing_ok=True)
    raise FolderInUse(f"could not take {path}: other runs keep creating it; train in another folder (--out-dir)")


def claim(out_dir: Path, writes: dict[str, int]) -> OutDirLock:
    """Ready ``out_dir`` for a run that writes the files ``writes`` names (file name -> about how
    many bytes; the first is named in errors): fail now, not after the first epoch, when it cannot
    be written or they would not fit; hold its lock (:func:`acquire`); then drop the temp files of
    those files' writes killed midway, which no live run owns any more."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out_dir).close()
    except OSError as exc:
        raise PermissionError(f"cannot write checkpoints to {out_dir} ({exc.strerror}); "
                              f"set train.out_dir (--out-dir) to a writable folder") from None
    lock = acquire(out_dir)
    for name in writes:
        for stale in out_dir.glob(f".{name}.*.tmp"):  # left by a run killed inside an atomic write; never read
            stale.unlink(missing_ok=True)
    to_come = sum(size for name, size in writes.items() if not (out_dir / name).is_file())
    try:  # the files still to come, and one temp file beside them
        check_free_space(out_dir / next(iter(writes)), to_come + max(writes.values()),
                         "set train.out_dir (--out-dir) to another folder")
    except OSError:
        lock.release()
        raise
    return lock
