"""Takes: several pieces from one primer in one batched call, and the numbered files they go to.

:func:`generate_takes` asks :func:`melody_utils.generate.sample.generate` for a batch of ``n``
rows: every row continues the same primer with its own random draws, so the takes differ, and the
model runs once per note for all of them (a batch of n costs little more than one piece on a
CPU). One take is exactly :func:`~melody_utils.generate.sample.generate_notes`' piece.
:func:`take_paths` numbers the output files (``piece.midi`` -> ``piece_1.midi``, ``piece_2.midi``,
...); :func:`next_take_path` finds the next free number in a folder (notebook 04's takes).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..checks import check_number
from ..music.midi import Notes
from ..music.tokens import Vocab
from .controls import trim_to_seconds
from .sample import generate
from .settings import SamplingSettings

MAX_TAKES = 32  # takes one call may ask for


def validate_takes(n) -> int:
    """``n`` as an int in [1, :data:`MAX_TAKES`], else ValueError naming --num-outputs."""
    return check_number("--num-outputs", n, f"an integer between 1 and {MAX_TAKES}", 1, MAX_TAKES, integer=True)


def generate_takes(model, vocab: Vocab, n_takes: int, primer=None, settings: SamplingSettings | None = None,
                   **kwargs) -> list[Notes]:
    """``n_takes`` pieces after ``primer`` from one batched :func:`~melody_utils.generate.sample.generate`
    call with ``settings`` (``kwargs``: its run keywords, ``device``, ``fast``, ``progress``, ``info``, and
    setting changes). With ``settings.keep_primer`` each take starts with the primer (as quantized
    tokens), its new notes after it; with ``settings.seconds`` each is cut there."""
    n_takes = validate_takes(n_takes)
    run = {k: kwargs.pop(k) for k in ("device", "fast", "progress", "info") if k in kwargs}
    settings = (settings or SamplingSettings()).replace(**kwargs)
    rows = generate(model, vocab, primer=primer, settings=settings, batch=n_takes, **run)  # (n_takes, n, F)
    head = None
    if settings.keep_primer and primer is not None:
        head = vocab.encode(primer) if isinstance(primer, Notes) else vocab.check(np.asarray(primer))
    takes = []
    for row in rows:
        new = trim_to_seconds(row, vocab, settings.seconds)  # (n, F)
        takes.append(vocab.decode(new if head is None else np.concatenate([head, new]), seed=settings.seed))
    return takes


def take_paths(path, n: int) -> list[Path]:
    """Where ``n`` takes go: ``path`` itself for one, else ``stem_1.suffix`` ... ``stem_n.suffix``."""
    path = Path(path)
    return [path] if n == 1 else [path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(1, n + 1)]


def next_take_path(path) -> Path:
    """``stem_takeN.suffix`` beside ``path`` with N one above the highest take already there (1 in an
    empty folder), so a new take never overwrites an earlier one."""
    path = Path(path)
    pattern = re.compile(rf"{re.escape(path.stem)}_take(\d+){re.escape(path.suffix)}$")
    taken = [int(m.group(1)) for p in path.parent.glob(f"{path.stem}_take*{path.suffix}") if (m := pattern.match(p.name))]
    return path.with_name(f"{path.stem}_take{max(taken, default=0) + 1}{path.suffix}")
