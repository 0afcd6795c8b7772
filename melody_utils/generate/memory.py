"""A piece memory: a short-term model of the piece so far, mixed with the network note by note.

Composed music repeats itself (themes, sequences, recapitulations); an LSTM carrying its state
forgets a theme a few hundred notes later. As in music-prediction research (IDyOM's long-term
model + short-term model of the current piece) and cache / pointer models of language, the
network's prediction is mixed with a model of the piece itself (settings: :data:`MEMORY`):

- **Match.** Before note t, find the earlier positions j whose preceding notes equal the most
  recent ones on the match key (``key_fields``: pitch only; performances vary timing and velocity
  between repeats, pitch repeats exactly; pitch, step and duration predicted held-out notes
  slightly worse), the longest such match ``L`` up to ``order`` notes (among the positions more
  than ``min_distance`` notes back). The notes that followed those matches (note j for every j with
  match length ``L``) are the memory's candidates; its prediction is their distribution.
- **Mix field by field in the model's order** (pitch, then step given the pitch, ...): the
  memory's conditional for a field counts only the candidates whose earlier fields agree with the ones
  already chosen (see Timing), and ``p(x_f) = (1 - lam) p_net(x_f) + lam p_mem(x_f)``. The weight starts at
  ``lam = weights[L - 1]`` and after each chosen field is updated by Bayes,
  ``lam' = lam p_mem(x) / p(x)``, so the product over fields is exactly the mixture of the two joint
  distributions of the note. No match (``L = 0``, or no candidate agreeing with a chosen field):
  the network's distribution, unchanged.
- **No loops.** Copying from a few notes back makes an exact loop, and a loop feeds the memory
  more matches of itself: without a check, generated pieces got stuck. While the recent pitches
  already go round a loop (:func:`melody_utils.music.stats.is_loop_run`, the definition the degeneracy
  statistics use), the memory stays silent: it may repeat a passage once, never keep a loop
  going. On held-out pieces this costs 0.08 nats/note of its gain (docs/eval/shipped_memory.md).
- **Strength.** The user's knob ``memory`` (0 = off, 1 = the fitted weights, up to
  :data:`MAX_MEMORY`) multiplies the odds ``lam / (1 - lam)`` of every weight, and so does the
  model's own fitted ``strength``.
- **Timing.** A repeat in a performance varies its timing: with ``timing_spread`` > 0 each candidate's
  step and duration spread over the ``timing_width`` bins either side (:func:`timing_kernel`), and a
  candidate counts by how well it agrees with the fields chosen (exactly for the pitch).

Each model has its own settings: fitted on its corpus's validation pieces at the end of training
(weights, timing kernel, and a strength that is 0 where the memory does not help that model;
:mod:`melody_utils.evaluate.memory_fit`), kept in its checkpoint and read back by
:func:`model_memory`. :data:`MEMORY` holds the weights fitted by maximum likelihood on the validation
split of the embedded piano corpus with the shipped model (``python scripts/fit_memory.py --keys 1
--orders 32``; :func:`fit_weights`): the shipped model's memory, and that of any checkpoint without
one. Generation (:mod:`melody_utils.generate.sample`) and scoring (:func:`memory_nll`, ``evaluate``)
read the same settings. Numpy only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from ..config import MEMORY as MEMORY_LIMIT
from ..music.stats import LOOP_MAX_PERIOD, is_loop_run


@dataclass(frozen=True)
class MemorySettings:
    """What the memory matches, how far back it copies from, and how much it is trusted."""

    order: int = 32  # longest match considered, in notes
    key_fields: int = 1  # fields a match compares: 1 = pitch only; 3 = pitch, step and duration
    min_distance: int = 0  # candidates lie more than this many notes back
    # silent while the recent pitches already go round a loop (stats.is_loop_run, periods up to
    # min(order, stats.LOOP_MAX_PERIOD)): the memory may repeat a passage, never keep a loop going
    no_loops: bool = True
    # fields the memory predicts, in the model's order: 3 = pitch, step and duration; the velocity of a
    # repeated note stays the network's (copied velocities narrowed the dynamics of generated pieces:
    # velocity-spread overlap 0.47-0.61 against 0.69-0.74 over three seeds, docs/eval/shipped_memory.md)
    fields: int = 3
    # lam per match length 1..order (see the module docstring and scripts/fit_memory.py)
    weights: tuple = (0.04, 0.07, 0.19, 0.31, 0.46, 0.54, 0.62, 0.67, 0.68, 0.7, 0.73, 0.74, 0.79, 0.81, 0.79, 0.81, 0.8, 0.82,
                      0.83, 0.85, 0.82, 0.8, 0.83, 0.83, 0.83, 0.84, 0.83, 0.86, 0.84, 0.84, 0.85, 0.95)
    # share of a candidate's step and duration (TIMING_FIELDS) spread over the timing_width bins on either
    # side (a repeat in a performance varies its timing); 0 = exact copies (the piano corpus's fit)
    timing_spread: float = 0.0
    timing_width: int = 1
    # this model's strength, fitted with the weights (melody_utils.evaluate.memory_fit): multiplies the knob's
    # odds; 0 = the memory did not lower held-out nats/note for this model, so it is off
    strength: float = 1.0

    def to_dict(self) -> dict:
        """Plain numbers and lists (what a checkpoint stores under ``"memory"``)."""
        return {**asdict(self), "weights": [float(w) for w in self.weights]}

    @classmethod
    def from_dict(cls, d: dict | None) -> "MemorySettings":
        """What :meth:`to_dict` wrote (missing entries: the defaults); None -> :data:`MEMORY`."""
        if d is None:
            return MEMORY
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        if "weights" in values:
            values["weights"] = tuple(float(w) for w in values["weights"])
        return cls(**values)


MEMORY = MemorySettings()  # the piano corpus's fit: the shipped model's memory, and any checkpoint's that stores none
TIMING_FIELDS = (1, 2)  # step and duration: the fields timing_spread applies to


def model_memory(model) -> MemorySettings:
    """The memory settings of a model loaded from a checkpoint (its ``piece_memory``; :data:`MEMORY` without one)."""
    return MemorySettings.from_dict(getattr(model, "piece_memory", None))


WEIGHT_GRID = np.round(np.linspace(0.0, 0.99, 100), 2)  # lam values fit_weights tries


def validate_memory(memory) -> float:
    """The knob as a float, or ValueError naming it and its range."""
    return MEMORY_LIMIT.check("memory", memory)


def scaled_weights(strength: float, settings: MemorySettings = MEMORY) -> np.ndarray:
    """(order + 1,) lam per match length 0..order at knob ``strength``: odds multiplied by it and by the
    settings' own (fitted) ``strength`` (lam[0] = 0)."""
    w = np.asarray(settings.weights, np.float64)
    strength = strength * settings.strength
    lam = strength * w / np.maximum(strength * w + 1.0 - w, 1e-12)
    return np.concatenate([[0.0], lam])


# ---------------------------------------------------------------------------------------------
# Matching
# ---------------------------------------------------------------------------------------------
class Matcher:
    """Match lengths of one growing sequence: after :meth:`push` of notes 0..t-1, ``lengths[j]``
    (j < t) is how many notes before j equal the notes before t on the key (at most ``order``)."""

    def __init__(self, capacity: int, order: int = MEMORY.order, min_distance: int = 0, no_loops: bool = False):
        self.order, self.min_distance, self.no_loops = order, min_distance, no_loops
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

    def in_loop(self) -> bool:
        """Whether the last notes go round a loop: for some period p, the match p notes back is a loop
        run (at least p long: the last p notes repeat the p before them; see stats.is_loop_run)."""
        p = np.arange(1, min(self.n, LOOP_MAX_PERIOD) + 1)  # periods = distances back
        return bool(is_loop_run(self.lengths[self.n - p], p).any())

    def candidates(self) -> tuple[int, np.ndarray]:
        """(longest match L, the positions j whose match has length L, n - j > min_distance);
        (0, empty) without a match."""
        if self.no_loops and self.in_loop():
            return 0, np.zeros(0, np.int64)
        m = self.lengths[: max(self.n - self.min_distance, 0)]
        L = int(m.max()) if len(m) else 0
        return L, (np.flatnonzero(m == L) if L else np.zeros(0, np.int64))


def note_keys(tokens: np.ndarray, key_fields: int = MEMORY.key_fields) -> np.ndarray:
    """(..., F) tokens -> (...) one int per note from its first ``key_fields`` ids (each < 2**12)."""
    t = np.asarray(tokens, np.int64)[..., :key_fields]
    return t @ (1 << (12 * np.arange(key_fields, dtype=np.int64)))


def timing_kernel(values, target, spread, width) -> np.ndarray:
    """How much of a candidate's probability lands on id ``target`` when it predicted ``values``: 1 - spread
    on its own bin, spread / (2 width) on each of the ``width`` bins either side; the share that would fall
    below bin 0 stays on the candidate's own bin, the share above the last bin is lost (that id never occurs).
    ``spread``/``width`` may be (S, 1) arrays: S kernels at once, (S, C) for C values."""
    values = np.asarray(values)
    d = np.abs(values - target)
    side = np.divide(spread, 2 * np.asarray(width))
    return np.where(d == 0, 1.0 - spread + side * np.maximum(width - values, 0), np.where(d <= width, side, 0.0))


def spread_histogram(h: np.ndarray, spread: float, width: int) -> np.ndarray:
    """(V,) candidates per id -> the same spread by :func:`timing_kernel` (over ids 0..V-1)."""
    if not spread:
        return h
    side = spread / (2 * width)
    out = (1.0 - spread) * h + side * h * np.maximum(width - np.arange(len(h)), 0)
    for d in range(1, min(width, len(h) - 1) + 1):
        out[d:] += side * h[:-d]
        out[:-d] += side * h[d:]
    return out


def kernel_counts(tokens, settings: MemorySettings = MEMORY, kernels=((0.0, 1),)) -> tuple[np.ndarray, np.ndarray]:
    """:func:`piece_counts` under several timing kernels at once (one matching pass): ``kernels`` is a list of
    (timing_spread, timing_width); returns ``(lengths (N,), counts (S, N, F + 1))``."""
    tokens = np.asarray(tokens, np.int64)
    keys = note_keys(tokens, settings.key_fields)
    n, n_fields = tokens.shape
    spread, width = (np.array([k[i] for k in kernels], np.float64)[:, None] for i in (0, 1))  # (S, 1)
    timing = [f for f in TIMING_FIELDS if f < n_fields]
    lengths, counts = np.zeros(n, np.int64), np.zeros((len(kernels), n, n_fields + 1))
    matcher = Matcher(n, settings.order, settings.min_distance, settings.no_loops)
    for t in range(1, n):
        matcher.push(keys[t - 1])
        L, cand = matcher.candidates()
        if L:
            c = tokens[cand]  # (C, F)
            agree = np.repeat((c == tokens[t])[None].astype(np.float64), len(kernels), axis=0)  # (S, C, F)
            for f in timing:
                agree[:, :, f] = timing_kernel(c[:, f], tokens[t, f], spread, width)
            agree = np.cumprod(agree, axis=2)  # fields 0..f all agree (exactly, or by the kernel)
            lengths[t], counts[:, t, 0], counts[:, t, 1:] = L, len(cand), agree.sum(axis=1)
    return lengths, counts


def piece_counts(tokens, settings: MemorySettings = MEMORY) -> tuple[np.ndarray, np.ndarray]:
    """What the memory says about each note of one piece, from the notes before it.

    Returns ``(lengths (N,), counts (N, F + 1))``: the longest match before note t, and
    ``counts[t, 0]`` candidates, of which ``counts[t, f + 1]`` agree with note t on fields 0..f
    (on the step and duration weighted by :func:`timing_kernel` when ``settings.timing_spread`` > 0).
    """
    lengths, counts = kernel_counts(tokens, settings, [(settings.timing_spread, settings.timing_width)])
    return lengths, counts[0]


# ---------------------------------------------------------------------------------------------
# Scoring and fitting
# ---------------------------------------------------------------------------------------------
def mixed_logprobs(logprobs: np.ndarray, lengths: np.ndarray, counts: np.ndarray, lam: np.ndarray,
                   fields: int = MEMORY.fields) -> np.ndarray:
    """(M, F) log-probabilities of the network -> those of the mixture, field by field (Bayes-updated weight).

    ``lengths``/``counts`` as :func:`piece_counts` for the same M notes; ``lam`` per match length
    (:func:`scaled_weights`); fields from ``fields`` on keep the network's log-probabilities."""
    w = lam[lengths]  # (M,)
    out = np.array(logprobs, dtype=np.float64)
    for f in range(min(fields, logprobs.shape[1])):
        p_mem = np.divide(counts[:, f + 1], counts[:, f], out=np.zeros(len(w)), where=counts[:, f] > 0)
        p = (1.0 - w) * np.exp(logprobs[:, f]) + w * p_mem
        out[:, f] = np.log(p)
        w = np.divide(w * p_mem, p, out=np.zeros(len(w)), where=p > 0)
    return out


def memory_nll(logprobs, pieces, strength: float = 1.0, context: int = 1, settings: MemorySettings = MEMORY) -> dict:
    """Per-field nats per note of the network mixed with the memory, on every note with at least
    ``context`` notes before it: ``{"nats": {field index: ..}, "n_notes": ..}`` (the caller names the fields).

    ``logprobs``: per piece, the network's (N - 1, F) log-probabilities of notes 1.. (:func:`melody_utils.evaluate.likelihood.piece_logprobs`)."""
    lam = scaled_weights(validate_memory(strength), settings)
    sums, n = 0.0, 0
    for lp, toks in zip(logprobs, pieces):
        lengths, counts = piece_counts(toks, settings)
        first = max(context, 1)
        mixed = mixed_logprobs(np.asarray(lp)[first - 1:], lengths[first:], counts[first:], lam, settings.fields)
        sums = sums - mixed.sum(axis=0)
        n += len(mixed)
    if n == 0:
        raise ValueError(f"no piece has more than {context} notes to score")
    return {"nats": dict(enumerate(np.atleast_1d(sums / n).tolist())), "n_notes": n}


def joint_probabilities(lp, counts, fields: int) -> tuple[np.ndarray, np.ndarray]:
    """(p_net, p_mem) of each note's first ``fields`` fields (the fields after them are the network's in both
    terms of the mixture): ``lp`` a piece's (N - 1, F) network log-probabilities, ``counts`` its (N, F + 1)."""
    lp = np.asarray(lp)
    f = min(fields, lp.shape[1])
    c = counts[1:]
    return np.exp(lp[:, :f].sum(axis=1)), np.divide(c[:, f], c[:, 0], out=np.zeros(len(c)), where=c[:, 0] > 0)


def best_weights(p_net, p_mem, lengths, order: int, grid=WEIGHT_GRID) -> tuple[np.ndarray, dict]:
    """(lam per match length 1..order maximising the likelihood of the mixture, each from ``grid``;
    {length: notes with it}). The lengths are independent: a note's likelihood depends on its own length's weight."""
    grid = np.asarray(grid, np.float64)
    weights, support = np.zeros(order), {}
    for L in range(1, order + 1):
        sel = lengths == L
        support[L] = int(sel.sum())
        if sel.any():
            ll = np.log((1 - grid[:, None]) * p_net[sel] + grid[:, None] * p_mem[sel]).sum(axis=1)  # (G,)
            weights[L - 1] = grid[int(np.argmax(ll))]
    return weights, support


def fit_weights(logprobs, pieces, settings: MemorySettings = MEMORY, grid=WEIGHT_GRID) -> tuple[MemorySettings, dict]:
    """``settings`` with the lam per match length 1..order that maximises the likelihood of ``pieces``
    (validation) under the mixture (:func:`best_weights`). Returns (settings, {length: notes with it}).
    The timing kernel and strength are fitted too by :mod:`melody_utils.evaluate.memory_fit`."""
    p_net, p_mem, lengths = [], [], []
    for lp, toks in zip(logprobs, pieces):
        L, c = piece_counts(toks, settings)
        net, mem = joint_probabilities(lp, c, settings.fields)
        p_net.append(net)
        p_mem.append(mem)
        lengths.append(L[1:])
    weights, support = best_weights(np.concatenate(p_net), np.concatenate(p_mem), np.concatenate(lengths), settings.order, grid)
    return replace(settings, weights=tuple(float(w) for w in weights)), support


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

    def __init__(self, batch: int, capacity: int, strength: float, settings: MemorySettings = MEMORY):
        self.lam = scaled_weights(validate_memory(strength), settings)
        self.key_fields, self.fields = settings.key_fields, settings.fields
        self.spread, self.width = settings.timing_spread, settings.timing_width
        self.rows = [Matcher(capacity, settings.order, settings.min_distance, settings.no_loops) for _ in range(batch)]
        self.notes = None  # (B, capacity, F) once the first note is seen
        self.cand = [np.zeros(0, np.int64)] * batch
        self.cand_w = [np.zeros(0)] * batch  # each candidate's weight: how well it agrees with the fields chosen
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
                self.cand_w[b] = np.ones(len(self.cand[b]))
                self.w[b] = self.lam[L]
        z = np.array(logits, np.float64)
        self.p_mem = np.zeros_like(z)
        self.p_mix = None
        if field >= self.fields:  # the network's alone
            return z
        live = [b for b in range(len(z)) if self.w[b] > 0 and len(self.cand[b])]
        if not live:
            return z
        for b in live:
            h = np.bincount(self.notes[b, self.cand[b], field], self.cand_w[b], minlength=z.shape[1])[: z.shape[1]]
            self.p_mem[b] = (spread_histogram(h, self.spread, self.width) if field in TIMING_FIELDS else h) / self.cand_w[b].sum()
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        self.p_mix = (1.0 - self.w[:, None]) * p + self.w[:, None] * self.p_mem
        with np.errstate(divide="ignore"):
            z[live] = np.log(self.p_mix[live])
        return z

    def chose(self, field: int, ids: np.ndarray) -> None:
        """The ids sampled for ``field`` (B,): weigh the candidates by how well they agree (exactly, or by
        :func:`timing_kernel` on the step and duration), update the weights."""
        if self.p_mix is None:
            return
        rows = np.arange(len(ids))
        self.w = np.where(self.w > 0, self.w * self.p_mem[rows, ids] / np.maximum(self.p_mix[rows, ids], 1e-300), 0.0)
        for b in rows:
            if len(self.cand[b]):
                values = self.notes[b, self.cand[b], field]
                k = timing_kernel(values, ids[b], self.spread, self.width) if field in TIMING_FIELDS else values == ids[b]
                keep = k > 0
                self.cand[b], self.cand_w[b] = self.cand[b][keep], self.cand_w[b][keep] * k[keep]
