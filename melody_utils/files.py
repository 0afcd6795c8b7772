"""Files that are never half-written: every output goes to a temp file beside its path, then is renamed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, write) -> Path:
    """Write a file through ``write(tmp_path)`` into a temp file beside ``path``, then rename.

    A crash midway leaves the old file (or none), never a half-written one. Raises a clear
    ``PermissionError``/``FileNotFoundError`` naming the folder when it cannot be written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise PermissionError(f"cannot write to folder {path.parent} ({exc.strerror}); choose a writable output path") from None
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file ordinary permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
