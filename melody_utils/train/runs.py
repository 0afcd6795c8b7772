"""Training runs in the outputs folder: which folder a run trains in, which checkpoint to generate from.

A run is a folder holding ``ckpt_last.pt``, ``ckpt_best.pt`` and ``history.json``: the outputs
folder itself (the command line's default) or a sub-folder ``run-YYYYmmdd-HHMM`` that notebook 03
makes when asked for a new run, so a new run never overwrites an earlier one.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from ..model.checkpoint import CHECKPOINT_BEST, CHECKPOINT_LAST, config_differences, read_checkpoint, shipped_model
from ..config import Config
from ..music.tokens import Vocab

RUN_PREFIX = "run-"  # new runs go to OUTPUTS/run-YYYYmmdd-HHMM
RUN_MODES = ("continue", "new")
MAX_DIFFERENCES_SHOWN = 4  # a mismatch message lists this many differing settings, then counts the rest


def run_folders(outputs: str | os.PathLike) -> list[Path]:
    """The outputs folder and its ``run-*`` sub-folders that hold a checkpoint, newest checkpoint first."""
    root = Path(outputs)
    folders = [root, *sorted(p for p in root.glob(f"{RUN_PREFIX}*") if p.is_dir())]

    def newest(folder: Path) -> float:
        times = [f.stat().st_mtime for f in (folder / CHECKPOINT_LAST, folder / CHECKPOINT_BEST) if f.is_file()]
        return max(times, default=-1.0)

    stamped = [(newest(f), f) for f in folders]
    return [f for t, f in sorted(stamped, key=lambda tf: -tf[0]) if t >= 0]


def new_run_folder(outputs: str | os.PathLike, now: datetime.datetime | None = None) -> Path:
    """``OUTPUTS/run-YYYYmmdd-HHMM`` (with ``-2``, ``-3``, ... when that exists already); not created."""
    base = Path(outputs) / f"{RUN_PREFIX}{(now or datetime.datetime.now()):%Y%m%d-%H%M}"
    path, n = base, 2
    while path.exists():
        path, n = base.with_name(f"{base.name}-{n}"), n + 1
    return path


def mismatch_message(path: Path, ckpt: dict, cfg: Config, vocab: Vocab) -> str | None:
    """One line saying how the run of checkpoint ``path`` differs from ``cfg``/``vocab`` and what to set; None if it does not."""
    diffs = config_differences(ckpt, cfg, vocab)
    if not diffs:
        return None
    shown = "; ".join(diffs[:MAX_DIFFERENCES_SHOWN]) + (f"; and {len(diffs) - MAX_DIFFERENCES_SHOWN} more"
                                                        if len(diffs) > MAX_DIFFERENCES_SHOWN else "")
    old_preset = ckpt["config"].get("preset")
    fix = f'set PRESET = "{old_preset}" to continue it, or ' if old_preset and old_preset != cfg.preset else ""
    trained = f"preset {old_preset}" if old_preset != cfg.preset else "other settings"
    return (f"the run in {path.parent} was trained with {trained} (differences: {shown}), so it cannot "
            f"continue with preset {cfg.preset}: {fix}set RUN = \"new\" to start a new run in a new folder")


def choose_run(cfg: Config, vocab: Vocab, mode: str = "continue", now: datetime.datetime | None = None) -> tuple[Config, str]:
    """The config to train with (``train.out_dir`` set to the run's folder) and a sentence saying which run.

    ``mode``: ``"continue"`` the run with the newest checkpoint under ``cfg.train.out_dir`` (the
    outputs folder itself when there is none), or ``"new"``: a new ``run-YYYYmmdd-HHMM`` folder.
    A run to continue whose checkpoint was trained with other settings raises ``ValueError``
    with one line saying what differs and what to set; nothing is ever overwritten.
    """
    if mode not in RUN_MODES:
        raise ValueError(f"RUN must be one of {', '.join(repr(m) for m in RUN_MODES)}, got {mode!r}")
    outputs = Path(cfg.train.out_dir)
    if mode == "new":
        folder = new_run_folder(outputs, now)
        about = f"a new run in {folder}"
    else:
        runs = [f for f in run_folders(outputs) if (f / CHECKPOINT_LAST).is_file()]
        if not runs:
            folder, about = outputs, f"a new run in {outputs} (no earlier run there)"
        else:
            folder = runs[0]
            ckpt = read_checkpoint(folder / CHECKPOINT_LAST)
            problem = mismatch_message(folder / CHECKPOINT_LAST, ckpt, cfg, vocab)
            if problem:
                raise ValueError(problem)
            about = f"continuing the run in {folder}" + (f" (the newest of {len(runs)})" if len(runs) > 1 else "")
            if ckpt.get("epoch", 0) >= cfg.train.epochs:
                about += (f"; it has finished its {cfg.train.epochs} epochs: raise train.epochs to train on, "
                          f"or set RUN = \"new\" to train again in a new folder")
    return cfg.override(**{"train.out_dir": str(folder)}), about


def newest_checkpoint(outputs: str | os.PathLike) -> Path | None:
    """The newest run's ``ckpt_best.pt`` (``ckpt_last.pt`` when it has none) in the outputs folder or its
    ``run-*`` folders; None when there is no run."""
    for folder in run_folders(outputs):
        best = folder / CHECKPOINT_BEST
        return best if best.is_file() else folder / CHECKPOINT_LAST
    return None


def find_checkpoint(outputs: str | os.PathLike) -> tuple[Path, str]:
    """The checkpoint to generate from and a sentence naming it: the newest run's ``ckpt_best.pt``.

    Looks in the outputs folder and its ``run-*`` folders (``ckpt_last.pt`` when a run has no
    ``ckpt_best.pt``); without any, the shipped model (:data:`checkpoint.SHIPPED_CHECKPOINT`).
    Raises ``FileNotFoundError`` saying what to run when there is none of these.
    """
    path = newest_checkpoint(outputs)
    if path is not None:
        stamp = datetime.datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        return path, f"the newest trained model in {outputs}: {path} (saved {stamp})"
    shipped = shipped_model()
    if shipped is not None:
        return shipped[0], f"{shipped[1]} (no model trained in {outputs} yet: run notebook 03 to train your own)"
    raise FileNotFoundError(f"no trained model in {outputs}: run notebook 03 (or `python -m melody_utils train`) "
                            f"first; in Colab with USE_DRIVE = True in both notebooks, so that this one sees it")
