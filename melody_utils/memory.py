"""A piece memory: a short-term model of the piece so far, mixed with the network note by note.

Composed music repeats itself (themes, sequences, recapitulations); an LSTM carrying its state
forgets a theme a few hundred notes later. As in music-prediction research (IDyOM's long-term
model + short-term model of the current piece) and cache / pointer models of language, the
network's prediction is mixed with a model of the piece itself:

- **Match.** Before note t, find the earlier positions j whose preceding notes equal the most
  recent ones on the match key (:data:`MEMORY_KEY` fields: pitch; performances vary timing and
  velocity between repeats, pitch repeats exactly), the longest such match ``L`` up to
  :data:`MEMORY_ORDER` notes. The notes that followed those matches (note j for every j with
  match length ``L``) are the memory's candidates; its prediction is their distribution.
- **Mix field by field in the model's order** (pitch, then step given the pitch, ...): the
  memory's conditional for a field counts only the candidates whose earlier fields equal the ones
  already chosen, and ``p(x_f) = (1 - lam) p_net(x_f) + lam p_mem(x_f)``. The weight starts at
  ``lam = MEMORY_WEIGHTS[L - 1]`` and after each chosen field is updated by Bayes,
  ``lam' = lam p_mem(x) / p(x)``, so the product over fields is exactly the mixture of the two joint
  distributions of the note. No match (``L = 0``, or no candidate agreeing with a chosen field):
  the network's distribution, unchanged.
- **Strength.** The user's knob ``memory`` (0 = off, 1 = the fitted weights, up to
  :data:`MAX_MEMORY`) multiplies the odds ``lam / (1 - lam)`` of every weight.

The weights were fitted by maximum likelihood on the validation split of the embedded piano
corpus with the shipped model (``python scripts/fit_memory.py``; :func:`fit_weights`); generation
(:mod:`melody_utils.sample`) and scoring (:func:`memory_nll`, ``evaluate``) read the same constants.
Numpy only.
"""

from __future__ import annotations

import numbers

import numpy as np

MEMORY_ORDER = 16  # longest match considered, in notes
MEMORY_KEY = 1  # fields a match compares: 1 = pitch only; 3 = pitch, step and duration
# lam per match length 1..MEMORY_ORDER (see the module docstring and scripts/fit_memory.py)
MEMORY_WEIGHTS = (0.03, 0.06, 0.15, 0.24, 0.35, 0.39, 0.46, 0.47, 0.52, 0.51, 0.54, 0.53, 0.63, 0.64, 0.65, 0.88)
MAX_MEMORY = 2.0  # strongest knob setting: odds of the fitted weights doubled
WEIGHT_GRID = np.round(np.linspace(0.0, 0.99, 100), 2)  # lam values fit_weights tries


def validate_memory(memory) -> float:
    """The knob as a float, or ValueError naming it and its range."""
    if isinstance(memory, bool) or not isinstance(memory, numbers.Real) or not np.isfinite(memory) \
            or not 0 <= memory <= MAX_MEMORY:
        raise ValueError(f"memory must be a number in [0, {MAX_MEMORY:g}] (0 = off, 1 = the fitted piece memory), "
                         f"got {memory!r}")
    return float(memory)


def scaled_weights(strength: float, weights=MEMORY_WEIGHTS) -> np.ndarray:
    """(order + 1,) lam per match length 0..order at knob ``strength``: odds multiplied by it (lam[0] = 0)."""
    w = np.asarray(weights, np.float64)
    lam = strength * w / np.maximum(strength * w + 1.0 - w, 1e-12)
    return np.concatenate([[0.0], lam])


# ---------------------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------------------
class Matcher:
    """Match lengths of one growing sequence: after :meth:`push` of notes 0..t-1, ``lengths[j]``
    (j < t) is how many notes before j equal the notes before t on the key (at most ``order``)."""

    def __init__(self, capacity: int, order: int = MEMORY_ORDER):
        self.order = order
        self.keys = np.zeros(capacity, np.int64)
        self.lengths = np.zeros(capacity, np.int64)
        self.n = 0

    def push(self, key: int) -> None:
        t = self.n  # the new note's position; the lengths become those of candidates for note t + 1
        same = self.keys[:t] == key  # note j - 1 == note t, for j = 1..t
        self.lengths[1: t + 1] = np.where(same, np.minimum(self.lengths[:t] + 1, self.order), 0)
        self.lengths[0] = 0
        self.keys[t] = key
        self.n = t + 1

    def candidates(self) -> tuple[int, np.ndarray]:
        """(longest match L, the positions j < n whose match has length L); (0, empty) without a match."""
        m = self.lengths[: self.n]
        L = int(m.max()) if self.n else 0
        return L, (np.flatnonzero(m == L) if L else np.zeros(0, np.int64))


def note_keys(tokens: np.ndarray, key_fields: int = MEMORY_KEY) -> np.ndarray:
    """(..., F) tokens -> (...) one int per note from its first ``key_fields`` ids (each < 2**12)."""
    t = np.asarray(tokens, np.int64)[..., :key_fields]
    return t @ (1 << (12 * np.arange(key_fields, dtype=np.int64)))


def piece_counts(tokens, order: int = MEMORY_ORDER, key_fields: int = MEMORY_KEY) -> tuple[np.ndarray, np.ndarray]:
    """What the memory says about each note of one piece, from the notes before it.

    Returns ``(lengths (N,), counts (N, F + 1))``: the longest match before note t, and
    ``counts[t, 0]`` candidates, of which ``counts[t, f + 1]`` agree with note t on fields 0..f.
    """
    tokens = np.asarray(tokens, np.int64)
    keys = note_keys(tokens, key_fields)
    n, n_fields = tokens.shape
    lengths, counts = np.zeros(n, np.int64), np.zeros((n, n_fields + 1), np.int64)
    matcher = Matcher(n, order)
    for t in range(1, n):
        matcher.push(keys[t - 1])
        L, cand = matcher.candidates()
        if L:
            agree = np.cumprod(tokens[cand] == tokens[t], axis=1)  # (C, F): fields 0..f all equal
            lengths[t], counts[t, 0], counts[t, 1:] = L, len(cand), agree.sum(axis=0)
    return lengths, counts


# ---------------------------------------------------------------------------------------------
# Scoring and fitting
# ---------------------------------------------------------------------------------------------
def mixed_logprobs(logprobs: np.ndarray, lengths: np.ndarray, counts: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """(M, F) log-probabilities of the network -> those of the mixture, field by field (Bayes-updated weight).

    ``lengths``/``counts`` as :func:`piece_counts` for the same M notes; ``lam`` per match length
    (:func:`scaled_weights`)."""
    w = lam[lengths]  # (M,)
    out = np.empty_like(logprobs)
    for f in range(logprobs.shape[1]):
        p_mem = np.divide(counts[:, f + 1], counts[:, f], out=np.zeros(len(w)), where=counts[:, f] > 0)
        p = (1.0 - w) * np.exp(logprobs[:, f]) + w * p_mem
        out[:, f] = np.log(p)
        w = np.divide(w * p_mem, p, out=np.zeros(len(w)), where=p > 0)
    return out


def memory_nll(logprobs, pieces, strength: float = 1.0, context: int = 1, weights=MEMORY_WEIGHTS,
               order: int = MEMORY_ORDER, key_fields: int = MEMORY_KEY) -> dict:
    """Per-field nats per note of the network mixed with the memory, on every note with at least
    ``context`` notes before it: ``{"nats": {field index: ..}, "n_notes": ..}`` (the caller names the fields).

    ``logprobs``: per piece, the network's (N - 1, F) log-probabilities of notes 1.. (:func:`melody_utils.likelihood.piece_logprobs`)."""
    lam = scaled_weights(validate_memory(strength), weights)
    sums, n = 0.0, 0
    for lp, toks in zip(logprobs, pieces):
        lengths, counts = piece_counts(toks, order, key_fields)
        first = max(context, 1)
        mixed = mixed_logprobs(np.asarray(lp)[first - 1:], lengths[first:], counts[first:], lam)
        sums = sums - mixed.sum(axis=0)
        n += len(mixed)
    if n == 0:
        raise ValueError(f"no piece has more than {context} notes to score")
    return {"nats": dict(enumerate(np.atleast_1d(sums / n).tolist())), "n_notes": n}


def fit_weights(logprobs, pieces, order: int = MEMORY_ORDER, key_fields: int = MEMORY_KEY,
                grid=WEIGHT_GRID) -> tuple[np.ndarray, dict]:
    """The lam per match length 1..order that maximises the likelihood of ``pieces`` (validation)
    under the mixture, each chosen from ``grid`` (the lengths are independent: a note's likelihood
    depends on its own length's weight only). Returns (weights (order,), {length: notes with it})."""
    p_net, p_mem, lengths = [], [], []
    for lp, toks in zip(logprobs, pieces):
        L, c = piece_counts(toks, order, key_fields)
        p_net.append(np.exp(np.asarray(lp).sum(axis=1)))  # joint probability of the note
        p_mem.append(np.divide(c[1:, -1], c[1:, 0], out=np.zeros(len(c) - 1), where=c[1:, 0] > 0))
        lengths.append(L[1:])
    p_net, p_mem, lengths = np.concatenate(p_net), np.concatenate(p_mem), np.concatenate(lengths)
    grid = np.asarray(grid, np.float64)
    weights, support = np.zeros(order), {}
    for L in range(1, order + 1):
        sel = lengths == L
        support[L] = int(sel.sum())
        if sel.any():
            ll = np.log((1 - grid[:, None]) * p_net[sel] + grid[:, None] * p_mem[sel]).sum(axis=1)  # (G,)
            weights[L - 1] = grid[int(np.argmax(ll))]
    return weights, support


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------
class PieceMemory:
    """The memory of a batch of pieces being generated, one row each.

    Per note: :meth:`observe` each note of the primer and every generated note; before sampling
    field f, :meth:`mix` turns the network's (B, V) logits into the mixture's log-probabilities;
    after it, :meth:`chose` narrows the candidates and updates the weight (Bayes). The first
    :meth:`mix` of a note (field 0) looks up the matches.
    """

    def __init__(self, batch: int, capacity: int, strength: float, weights=MEMORY_WEIGHTS,
                 order: int = MEMORY_ORDER, key_fields: int = MEMORY_KEY):
        self.lam = scaled_weights(validate_memory(strength), weights)
        self.key_fields = key_fields
        self.rows = [Matcher(capacity, order) for _ in range(batch)]
        self.notes = None  # (B, capacity, F) once the first note is seen
        self.cand = [np.zeros(0, np.int64)] * batch
        self.w = np.zeros(batch)
        self.p_mem = self.p_mix = None

    def observe(self, notes: np.ndarray) -> None:
        """One note per row (B, F)."""
        notes = np.asarray(notes, np.int64)
        if self.notes is None:
            self.notes = np.zeros((len(notes), len(self.rows[0].keys), notes.shape[1]), np.int64)
        keys = note_keys(notes, self.key_fields)
        for b, m in enumerate(self.rows):
            self.notes[b, m.n] = notes[b]
            m.push(int(keys[b]))

    def mix(self, field: int, logits: np.ndarray) -> np.ndarray:
        """(B, V) network logits of ``field`` -> (B, V) float64 log-probabilities of the mixture
        (rows without a candidate: the logits unchanged)."""
        if field == 0:
            for b, m in enumerate(self.rows):
                L, self.cand[b] = m.candidates()
                self.w[b] = self.lam[L]
        z = np.array(logits, np.float64)
        self.p_mem = np.zeros_like(z)
        self.p_mix = None
        live = [b for b in range(len(z)) if self.w[b] > 0 and len(self.cand[b])]
        if not live:
            return z
        for b in live:
            self.p_mem[b] = np.bincount(self.notes[b, self.cand[b], field], minlength=z.shape[1])[: z.shape[1]]
            self.p_mem[b] /= len(self.cand[b])
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        self.p_mix = (1.0 - self.w[:, None]) * p + self.w[:, None] * self.p_mem
        with np.errstate(divide="ignore"):
            z[live] = np.log(self.p_mix[live])
        return z

    def chose(self, field: int, ids: np.ndarray) -> None:
        """The ids sampled for ``field`` (B,): keep the candidates that agree, update the weights."""
        if self.p_mix is None:
            return
        rows = np.arange(len(ids))
        self.w = np.where(self.w > 0, self.w * self.p_mem[rows, ids] / np.maximum(self.p_mix[rows, ids], 1e-300), 0.0)
        for b in rows:
            if len(self.cand[b]):
                self.cand[b] = self.cand[b][self.notes[b, self.cand[b], field] == ids[b]]
