"""The learning-rate schedule: linear warm-up, then a cosine down to a floor, by steps or by the clock.

With a time budget (``train.time_budget_s``) the cosine follows whichever of steps and seconds is
further along, so a run stopped by its budget has annealed rather than stopping at the peak rate;
the progress bar counts to whichever ends the run first as well (:func:`projected_steps`).
"""

from __future__ import annotations

import math

from ..config import TrainConfig

MIN_LR_FRACTION = 0.1  # the cosine schedule ends at lr * MIN_LR_FRACTION
MAX_WARMUP_FRACTION = 0.2  # warm-up takes at most this share of the run, so short runs still decay


def lr_factor(step: int, warmup_steps: int, total_steps: int, time_fraction: float = 0.0) -> float:
    """Multiplier of the peak lr at ``step``: linear warm-up, then cosine down to MIN_LR_FRACTION.

    ``time_fraction``: share of the time budget spent; after warm-up the cosine follows whichever
    of steps and time is further along, so it reaches its floor when the budget ends.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps <= warmup_steps and not time_fraction:
        return 1.0
    by_steps = (step - warmup_steps) / (total_steps - warmup_steps) if total_steps > warmup_steps else 0.0
    progress = min(1.0, max(by_steps, time_fraction))
    return MIN_LR_FRACTION + (1 - MIN_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress))


def make_schedule(tc: TrainConfig, n_batches: int) -> dict:
    """The lr schedule of a run of ``n_batches`` per epoch (saved with checkpoints as ``scheduler``)."""
    total_steps = tc.epochs * n_batches if not tc.max_steps else min(tc.epochs * n_batches, tc.max_steps)
    warmup_steps = min(tc.warmup_steps, int(MAX_WARMUP_FRACTION * total_steps))
    return {"kind": "warmup_cosine", "warmup_steps": warmup_steps, "total_steps": total_steps,
            "min_lr_fraction": MIN_LR_FRACTION}


def get_lr(peak_lr: float, step: int, schedule: dict, time_fraction: float = 0.0) -> float:
    """The learning rate at optimizer step ``step`` of ``schedule`` (:func:`make_schedule`), with
    ``time_fraction`` of the time budget spent (see :func:`lr_factor`)."""
    return peak_lr * lr_factor(step, schedule["warmup_steps"], schedule["total_steps"], time_fraction)


def projected_steps(total_steps: int, step: int, elapsed_s: float, budget_s: float = 0.0) -> int:
    """Optimizer steps the run will have made when it ends: ``total_steps`` (epochs or ``max_steps``),
    or fewer when the time budget ends it first, at the pace so far (``step`` steps in ``elapsed_s``
    seconds, earlier sessions included); never fewer than ``step``. What the progress bar counts to."""
    if not budget_s or step <= 0 or elapsed_s <= 0:
        return total_steps
    return max(step, min(total_steps, round(step * budget_s / elapsed_s)))
