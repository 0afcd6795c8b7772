"""The validation pass: a model's mean loss (nats per note, summed over heads) and per-head nats over a loader.

The training loop runs it after every epoch (:func:`melody_utils.train.loop.record`); the held-out
likelihood (:mod:`melody_utils.evaluate.likelihood`) counts the notes it averaged over.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from . import distributed


def notes_in(batch: dict, causal: bool) -> int:
    """Supervised notes in a batch: every position for causal models, one per window otherwise."""
    b, t = batch["targets"].shape[:2]
    return b * t if causal else b


def validation_loss(model: torch.nn.Module, loader, device: torch.device, ctx=None) -> tuple[float, dict]:
    """Mean loss (nats per note, summed over heads) and per-head nats over a loader."""
    loss, heads, _ = evaluate_counted(model, loader, device, ctx)
    return loss, heads


@torch.no_grad()
def evaluate_counted(model: torch.nn.Module, loader, device: torch.device, ctx=None) -> tuple[float, dict, int]:
    """:func:`validation_loss`, plus the number of supervised notes it averaged over."""
    ctx = ctx or nullcontext()
    inner = distributed.unwrap(model)
    was_training = model.training
    model.eval()
    total, parts, n = 0.0, {}, 0
    for batch in loader:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with ctx:
            loss, heads = inner.loss(batch)
        w = notes_in(batch, inner.causal)
        total += float(loss) * w
        for f, v in heads.items():
            parts[f] = parts.get(f, 0.0) + float(v) * w
        n += w
    model.train(was_training)
    if n == 0:
        return float("nan"), {}, 0
    return total / n, {f: v / n for f, v in parts.items()}, n
