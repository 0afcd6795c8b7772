"""Files that are never half-written: every output goes to a temp file beside its path, then is renamed.

A write that fails (a full disk, a folder that went away, a read-only file system) ends in one
``OSError`` whose message names the file and the fix, and leaves the earlier file as it was.
:func:`check_free_space` says before a large write whether it can fit; :func:`refuse_foreign_file`
keeps an output flag from replacing a file of another kind.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

MB = 1e6
FULL_DISK_ERRNOS = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
NEARLY_FULL_BYTES = 1 << 20  # a write that fails with this little space left failed for want of it


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Free bytes on the disk holding ``folder`` (its nearest existing parent); None when unknown."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def check_free_space(path: str | os.PathLike, needed: int, fix: str = "choose another folder") -> None:
    """``OSError`` naming ``path`` when its disk has fewer than ``needed`` bytes free."""
    path = Path(path)
    free = free_bytes(path.parent)
    if free is not None and free < needed:
        raise OSError(f"not enough space to write {path}: it needs about {needed / MB:.1f} MB and its disk has "
                      f"{free / MB:.1f} MB free; free some space or {fix}{_kept(path)}")


def _kept(path: Path) -> str:
    return f" (the earlier {path.name} is intact)" if path.is_file() else ""


def write_error(path: Path, exc: BaseException) -> OSError:
    """One ``OSError`` for a failed write of ``path``: what went wrong, where, and the earlier file kept.

    ``torch.save`` reports a full disk as a ``RuntimeError`` without an errno
    ("[enforce fail at inline_container.cc:...]"): it counts as a full disk when almost no space is left.
    """
    free = free_bytes(path.parent)
    full = getattr(exc, "errno", None) in FULL_DISK_ERRNOS or (isinstance(exc, RuntimeError) and free is not None
                                                               and free < NEARLY_FULL_BYTES)
    if full:
        left = f" ({free / MB:.1f} MB free)" if free is not None else ""
        return OSError(f"no space left on the disk to write {path}{left}; free some space or choose another "
                       f"folder{_kept(path)}")
    reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return OSError(f"could not write {path} ({reason}); check the folder or choose another one{_kept(path)}")


def atomic_write_bytes(path: str | os.PathLike, write) -> Path:
    """Write a file through ``write(tmp_path)`` into a temp file beside ``path``, then rename.

    A crash midway leaves the old file (or none), never a half-written one. Raises a clear
    ``PermissionError``/``FileNotFoundError`` naming the folder when it cannot be written, and an
    ``OSError`` naming the file (:func:`write_error`) when the write itself fails.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if exc.errno in FULL_DISK_ERRNOS:
            raise write_error(path, exc) from None
        raise PermissionError(f"cannot write to folder {path.parent} ({exc.strerror}); choose a writable output path") from None
    os.close(fd)
    try:
        try:
            write(tmp)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file ordinary permissions
            os.replace(tmp, path)
        except (OSError, RuntimeError) as exc:
            raise write_error(path, exc) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def starts_with(path: str | os.PathLike, prefixes: tuple[bytes, ...]) -> bool:
    """True when the file at ``path`` begins with one of ``prefixes`` (its first bytes only are read)."""
    with open(path, "rb") as f:
        head = f.read(max(len(p) for p in prefixes))
    return head.startswith(prefixes)


def refuse_foreign_file(path: str | os.PathLike, prefixes: tuple[bytes, ...], kind: str, flag: str,
                        force: bool = False) -> None:
    """``FileExistsError`` when ``path`` is a file that does not begin like a ``kind`` file, unless ``force``.

    An output flag (``flag``) may replace a file of its own kind (an earlier output), never
    anything else without ``--force``.
    """
    path = Path(path)
    if force or not path.is_file() or path.stat().st_size == 0 or starts_with(path, prefixes):
        return
    raise FileExistsError(f"{flag} {path} exists and is not a {kind}; choose another path, or pass --force to replace it")
