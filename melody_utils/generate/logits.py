"""One field's logits: the processor interface, the grammar mask, and top-k / top-p and the draw.

A :class:`LogitsProcessor` turns the logits of one field of a batch of notes into new logits,
``processor(field, logits, context) -> logits`` (as Hugging Face's ``LogitsProcessor``, with the
field added: a note is drawn field by field, pitch first). It says which fields it acts on
(``fields``), and a stateful one hears what was drawn (:meth:`LogitsProcessor.chose`) and which
notes joined the piece (:meth:`LogitsProcessor.observe`). :mod:`melody_utils.generate.pipeline`
runs them in their one order.

Drawing from what is left (:func:`sample_logits`): keep the ``top_k`` most likely ids (0 = off;
1 = greedy), then the smallest set of those whose probability reaches ``top_p`` (nucleus; 1 = off,
renormalised after top-k), then draw by inverse CDF with one uniform number per row, so the same
seed gives the same notes on every path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import TEMPERATURE, TOP_K, TOP_P
from ..music.tokens import Vocab

PITCH, STEP, DURATION, VELOCITY = range(4)  # token fields, in the order a note is drawn
ALL_FIELDS = (PITCH, STEP, DURATION, VELOCITY)


@dataclass
class NoteContext:
    """What a processor may read about the note being drawn (B rows at once)."""

    history: np.ndarray  # (B, T, F) ids of the notes generated so far (T may be 0)
    pitch: np.ndarray | None = None  # (B,) pitch ids chosen for this note (fields after the pitch)
    prev_pitch: np.ndarray | None = None  # (B,) the previous note's pitch (the grammar mask, step field)


class LogitsProcessor:
    """One step of the sampling pipeline: ``(field, logits (B, V) float64, context) -> logits``.

    It may change ``logits`` in place and return them. ``fields``: the fields it acts on (the
    pipeline calls it for those alone). Stateful processors override :meth:`chose` and
    :meth:`observe`; a processor that overrides :meth:`chose` makes the pipeline draw one field
    after the other.
    """

    fields: tuple = ALL_FIELDS

    def __call__(self, field: int, logits: np.ndarray, context: NoteContext) -> np.ndarray:
        raise NotImplementedError

    def chose(self, field: int, ids: np.ndarray) -> None:
        """The ids (B,) just drawn for ``field``."""

    def observe(self, notes: np.ndarray) -> None:
        """A note per row (B, F) joined the piece (the primer's notes, then each generated one)."""


def as_rows(logits) -> np.ndarray:
    """(..., V) numpy array or tensor -> (N, V) float64 copy."""
    if isinstance(logits, torch.Tensor):
        logits = logits.detach().cpu().numpy()
    x = np.asarray(logits)
    return x.reshape(-1, x.shape[-1]).astype(np.float64)


def _cut(z: np.ndarray, top_k: int, top_p: float):
    """Top-k and top-p on (N, V) float64 logits (already at their temperature).

    Returns ``(order, cdf, n_keep)``: ``order`` (N, K) the ids sorted by falling probability
    (None when nothing is cut: ids in their own order), ``cdf`` (N, K) the running sum of
    unnormalized probabilities in that order, ``n_keep`` (N,) how many of them survive (None = all).
    """
    order = n_keep = None
    if top_k or top_p < 1.0:
        order = np.argsort(-z, axis=-1)  # (N, V)
        if 0 < top_k < z.shape[-1]:
            order = order[:, :top_k]  # (N, K)
        z = z[np.arange(len(z))[:, None], order]  # (N, K), falling
        p = np.exp(z - z[:, :1])  # the largest is 1
    else:
        p = np.exp(z - z.max(axis=-1, keepdims=True))  # (N, V)
    cdf = np.cumsum(p, axis=-1)
    if top_p < 1.0:
        # keep an id while the mass before it is still short of top_p: the smallest set reaching it
        n_keep = ((cdf - p) < top_p * cdf[:, -1:]).sum(axis=-1)  # (N,), >= 1
    return order, cdf, n_keep


def filter_logits(logits, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
    """Temperature, then top-k, then top-p: the scaled logits with cut ids set to -inf.

    ``logits`` (..., V) is a numpy array or a torch tensor; the result has the same type and shape.
    """
    temperature = TEMPERATURE.check("temperature", temperature)
    top_k, top_p = TOP_K.check("top_k", top_k), TOP_P.check("top_p", top_p)
    z = as_rows(logits)  # (N, V)
    z *= 1.0 / temperature
    order, cdf, n_keep = _cut(z.copy(), top_k, top_p)
    if order is not None:
        k = order.shape[-1] if n_keep is None else n_keep[:, None]
        kept = np.arange(order.shape[-1]) < k  # (N, K)
        out = np.full_like(z, -np.inf)
        rows = np.arange(len(z))[:, None]
        out[rows, order] = np.where(kept, z[rows, order], -np.inf)
        z = out
    z = z.reshape(np.shape(logits))
    return torch.from_numpy(z).to(logits.dtype) if isinstance(logits, torch.Tensor) else z


def sample_logits(logits, u, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """Draw ids from (..., V) logits with uniforms ``u`` (...) in [0, 1): (...) int64.

    No validation (the settings were checked when made); -inf logits (cut or masked) are never
    drawn; ``top_k=1`` is exactly argmax.
    """
    z = as_rows(logits)  # (N, V)
    lead = np.shape(logits)[:-1]
    if top_k == 1:
        return z.argmax(axis=-1).reshape(lead)
    if temperature != 1.0:
        z *= 1.0 / temperature
    order, cdf, n_keep = _cut(z, top_k, top_p)
    rows = np.arange(len(z))
    total = cdf[:, -1] if n_keep is None else cdf[rows, n_keep - 1]  # (N,) kept mass
    u = np.maximum(np.reshape(u, -1), np.finfo(np.float64).tiny)  # u > 0: a masked (zero-probability) id is never drawn
    j = (cdf < (u * total)[:, None]).sum(axis=-1)  # (N,) first position whose cdf reaches u * total
    return (j if order is None else order[rows, j]).reshape(lead)


# ---------------------------------------------------------------------------------------------
# Grammar-aware decoding
# ---------------------------------------------------------------------------------------------
def zero_step_id(vocab: Vocab) -> int | None:
    """The step id meaning "same onset as the previous note" (a 0 s bin), or None when the grid has none."""
    return 0 if vocab.step_bins.centers[0] == 0.0 else None


class GrammarMask:
    """Forbids a 0 step after a pitch at or below the previous note's, and totals the mass it removes.

    Notes are stored onset first, then rising pitch, so a note at the previous note's onset must be
    higher than it: a key struck twice at one onset cannot be generated. :meth:`measure` adds up the
    probability the model gave those notes (softmax of the logits it is given, before any sampling
    choice): what the model has not learnt yet, ``mean_mass`` per note. :meth:`apply` returns the
    (B, V) step logits with the 0-step id set to -inf in the rows where ``pitch <= prev_pitch``.
    """

    def __init__(self, zero_id: int | None):
        self.zero = zero_id
        self.mass, self.notes = 0.0, 0

    def _bad(self, pitch, prev_pitch) -> np.ndarray:
        return np.asarray(pitch) <= np.asarray(prev_pitch)  # (B,)

    def measure(self, step_logits: np.ndarray, pitch: np.ndarray, prev_pitch: np.ndarray) -> None:
        self.notes += len(pitch)
        bad = self._bad(pitch, prev_pitch)
        if self.zero is None or not bad.any():
            return
        z = np.asarray(step_logits, dtype=np.float64)[bad]  # (b, V)
        p = np.exp(z - z.max(axis=-1, keepdims=True))
        self.mass += float((p[:, self.zero] / p.sum(axis=-1)).sum())

    def apply(self, step_logits: np.ndarray, pitch: np.ndarray, prev_pitch: np.ndarray) -> np.ndarray:
        bad = self._bad(pitch, prev_pitch)
        if self.zero is None or not bad.any():
            return step_logits
        out = np.array(step_logits, copy=True)
        out[bad, self.zero] = -np.inf
        return out

    @property
    def mean_mass(self) -> float:
        return self.mass / max(self.notes, 1)
