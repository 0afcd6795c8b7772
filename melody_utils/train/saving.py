"""When the training loop writes its checkpoints, and the best model it keeps until then.

A checkpoint holds the model, the optimizer's state (twice the weights again for Adam) and the
training state; serializing and writing it costs more than many optimizer steps on a GPU, and a
short epoch (a small corpus, a large batch) made the old write-two-checkpoints-per-epoch rule
spend most of a run outside training. So (:class:`Cadence`):

- ``ckpt_last.pt`` is written every ``every_s`` seconds (at an epoch's end or in the middle of one)
  and at the run's end; with a ``share`` (the training loop's default: :data:`WRITE_SHARE`), never
  more often than that share of the time allows (after a write of ``w`` seconds the next waits at
  least ``w / share``: a slow disk or Google Drive cannot eat the run). ``every_s`` 0: at every
  epoch's end, as soon as an epoch is done (the tests of interrupted runs use it).
- At a new best validation loss the model, optimizer and state are copied to memory
  (:func:`snapshot`: tensors on the CPU, milliseconds) and written as ``ckpt_best.pt`` just before
  the next ``ckpt_last.pt``: the best checkpoint on disk is never behind the last one, so a run
  killed at any moment and resumed still ends with its best model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch

WRITE_SHARE = 0.05  # checkpoint writes take at most about this share of a run's time


class Cadence:
    """Whether ``ckpt_last.pt`` is due (see the module docstring); ``clock()`` gives seconds now."""

    def __init__(self, every_s: float, clock: Callable[[], float], share: float = 0.0):
        if every_s < 0:
            raise ValueError(f"checkpoint_every_s must be >= 0 seconds (0 = at every epoch's end), got {every_s}")
        self.every_s, self.clock, self.share = float(every_s), clock, share
        self.last, self.wait = clock(), float(every_s)

    def due(self, epoch_end: bool) -> bool:
        """True when a checkpoint should be written now (``epoch_end``: an epoch just ended)."""
        if not self.every_s:
            return epoch_end
        return self.clock() - self.last >= self.wait

    def wrote(self, seconds: float) -> None:
        """A write that took ``seconds`` just ended: the next one waits for the cadence and the share."""
        self.last = self.clock()
        self.wait = max(self.every_s, seconds / self.share) if self.share else self.every_s


def to_cpu(obj):
    """A deep copy of ``obj`` (nested dicts, lists, tuples) with every tensor copied to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return copy.deepcopy(obj)


class _SavedState:
    """An optimizer's ``state_dict`` copied at one moment, standing in for the optimizer when it is saved."""

    def __init__(self, state: dict):
        self._state = state

    def state_dict(self) -> dict:
        return self._state


@dataclass
class Snapshot:
    """What a checkpoint of one moment holds, copied: the model (on the CPU), the optimizer's state, the
    extra entries (scaler, training state, random generators, seconds trained)."""

    model: torch.nn.Module
    optimizer: _SavedState
    entries: dict


def snapshot(model: torch.nn.Module, optimizer, entries: dict) -> Snapshot:
    """Copy ``model`` (unwrapped), ``optimizer``'s state and the checkpoint ``entries`` now (CPU tensors)."""
    frozen = copy.deepcopy(model).to("cpu")
    return Snapshot(frozen, _SavedState(to_cpu(optimizer.state_dict())), to_cpu(entries))
