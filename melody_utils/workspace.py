"""Where the project's files live: the repository, or one project folder on Google Drive in Colab.

Two folders hold everything a run makes: the **data folder** (MAESTRO, token caches) and the
**outputs folder** (checkpoints, generated MIDI and audio). They default to ``data/`` and
``outputs/`` of the checkout; the environment variables :data:`DATA_DIR_ENV_VAR` and
:data:`OUTPUTS_DIR_ENV_VAR` move them (the test suite does), and :mod:`melody_utils.config`
reads them through :func:`data_dir` and :func:`outputs_dir`. What ships with the repository
(the embedded corpus) stays in :data:`SHIPPED_DATA_DIR` wherever the data folder is.

In Colab each notebook gets its own runtime, and ``/content`` is neither shared between them nor
kept when a runtime disconnects. :func:`setup`, called first in every notebook, therefore mounts
Google Drive and points both folders at one project folder there
(``MyDrive/melody-forge/data`` and ``.../outputs``), so each notebook finds what the previous one
wrote. Outside Colab it changes nothing. This module imports nothing else from the package: it
runs before :mod:`melody_utils.config` is imported, which reads the variables once.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parent.parent  # melody_utils/ lives directly below it
SHIPPED_DATA_DIR = REPO_ROOT / "data"  # files that come with the repository (embedded corpus)
DATA_DIR_ENV_VAR = "MELODY_DATA_DIR"  # downloads and caches go here instead of data/
OUTPUTS_DIR_ENV_VAR = "MELODY_OUTPUTS_DIR"  # checkpoints and generated music go here instead of outputs/
COLAB_ENV_VAR = "MELODY_COLAB"  # "1" / "0" overrides the Colab detection (tests fake Colab with it)
DRIVE_MOUNT_POINT = Path("/content/drive")  # where Colab mounts Google Drive
DRIVE_PROJECT = Path("MyDrive") / "melody-forge"  # the project folder, relative to the mount point


def data_dir() -> Path:
    """The data folder: ``$MELODY_DATA_DIR``, else the checkout's ``data/``."""
    return Path(os.environ.get(DATA_DIR_ENV_VAR) or SHIPPED_DATA_DIR)


def outputs_dir() -> Path:
    """The outputs folder: ``$MELODY_OUTPUTS_DIR``, else the checkout's ``outputs/``."""
    return Path(os.environ.get(OUTPUTS_DIR_ENV_VAR) or REPO_ROOT / "outputs")


def in_colab() -> bool:
    """True in a Google Colab runtime (``google.colab`` importable); ``$MELODY_COLAB`` ("1"/"0") overrides."""
    forced = os.environ.get(COLAB_ENV_VAR, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    try:
        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):  # no "google" package at all
        return False


def _mount_drive(mount_point: Path) -> None:
    """Colab's own Drive mount (it asks the user for access once per runtime)."""
    from google.colab import drive  # only importable in Colab

    drive.mount(str(mount_point))


@dataclass
class Workspace:
    """Where this session's files go; ``str()`` of it is the line a notebook prints."""

    data_dir: Path
    outputs_dir: Path
    colab: bool  # running in Colab
    drive: bool  # the folders are on Google Drive

    def __str__(self) -> str:
        where = f"data: {self.data_dir}\noutputs: {self.outputs_dir}"
        if self.drive:
            return f"{where}\n(on Google Drive: every notebook finds them, and a disconnected runtime loses nothing)"
        if self.colab:
            return (f"{where}\n(in this runtime only: they are lost when it disconnects, and the other notebooks, each "
                    f"in its own runtime, do not see them; set USE_DRIVE = True to keep them on Google Drive)")
        return where


def setup(use_drive: bool = True, *, mount: Callable[[Path], None] | None = None,
          mount_point: str | os.PathLike = DRIVE_MOUNT_POINT) -> Workspace:
    """Point the data and outputs folders at the Drive project folder in Colab; elsewhere change nothing.

    In Colab with ``use_drive``: mount Drive at ``mount_point`` (``mount(mount_point)``, default
    Colab's ``drive.mount``; skipped when it is already mounted), create
    ``MyDrive/melody-forge/{data,outputs}`` and set :data:`DATA_DIR_ENV_VAR` and
    :data:`OUTPUTS_DIR_ENV_VAR` to them, unless those variables are already set (an explicit
    choice wins). Call it before anything imports :mod:`melody_utils.config`; if something did,
    with other folders, ``RuntimeError`` says to restart the runtime.
    """
    colab = in_colab()
    drive = False
    if colab and use_drive:
        mount_point = Path(mount_point)
        if not (mount_point / "MyDrive").is_dir():
            (mount or _mount_drive)(mount_point)
        project = mount_point / DRIVE_PROJECT
        if not project.parent.is_dir():
            raise FileNotFoundError(f"Google Drive is not mounted at {mount_point} ({project.parent} is missing); "
                                    f"run this cell again and allow access, or set USE_DRIVE = False")
        for var, sub in ((DATA_DIR_ENV_VAR, "data"), (OUTPUTS_DIR_ENV_VAR, "outputs")):
            os.environ.setdefault(var, str(project / sub))
        drive = True
    ws = Workspace(data_dir(), outputs_dir(), colab=colab, drive=drive)
    if drive:
        for path in (ws.data_dir, ws.outputs_dir):
            path.mkdir(parents=True, exist_ok=True)
    config = sys.modules.get("melody_utils.config")
    if config is not None and (Path(config.DATA_DIR), Path(config.OUTPUTS_DIR)) != (ws.data_dir, ws.outputs_dir):
        raise RuntimeError(f"melody_utils.config was imported before the folders were set ({config.DATA_DIR}, "
                           f"{config.OUTPUTS_DIR}); restart the runtime (Runtime > Restart session) and run from the top")
    return ws
