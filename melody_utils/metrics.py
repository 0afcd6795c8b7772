"""Evaluation: held-out likelihood, count-based baselines and musical statistics.

Three questions, three groups of functions:

1. How well does a model predict held-out notes? :func:`model_nll` gives the negative
   log-likelihood per note (nats and bits, per head and total). Two baselines on the same
   tokens put the number in context: :func:`uniform_nll` (every id equally likely) and
   :func:`ngram_nll` (count-based n-grams of order 1-3, see :class:`NGramModel`).
2. Do generated pieces look like the corpus? :func:`piece_stats` computes per-piece features
   after Yang & Lerch, "On the evaluation of generative models in music" (2018), and
   :func:`compare_sets` measures, per feature, how much a generated set overlaps a reference set.
3. Which sampling settings work? :func:`sampling_sweep` generates pieces per (temperature,
   top_p) and reports their overlap with the reference and how often they degenerate into loops
   (:func:`degeneracy`); :func:`sweep_generate_fn` wraps a trained model as its generator and
   :func:`best_setting` picks the setting to suggest.

:func:`evaluate` ties these together for a checkpoint, :func:`format_report` prints the result as
markdown tables and :func:`write_report` writes them with the JSON and figures beside them.

All NLL results share one layout::

    {"nats": {"pitch": .., "step": .., "duration": .., "total": ..},
     "bits": {... the same in bits ...},
     "n_notes": number of predicted notes}
"""

from __future__ import annotations

import math
from itertools import product

import numpy as np

from .midi import Notes
from .quantize import CHORD_THRESHOLD_S
from .tokens import FIELDS

LN2 = math.log(2.0)
PIECE_CHUNK = 2048  # notes per forward pass when a causal model reads a whole piece
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 names it trapz

# ---------------------------------------------------------------------------------------------
# Negative log-likelihood of a model and of baselines
# ---------------------------------------------------------------------------------------------


def nll_result(nats: dict, n_notes: int) -> dict:
    """Per-field nats per note -> the shared NLL layout (adds the total and bits)."""
    nats = {k: float(v) for k, v in nats.items() if k != "total"}
    nats["total"] = float(sum(nats.values()))
    return {"nats": nats, "bits": {k: v / LN2 for k, v in nats.items()}, "n_notes": int(n_notes)}


def model_nll(model, loader, device="cpu", progress: bool = False) -> dict:
    """Held-out NLL per supervised note, with ``model.loss(batch)`` semantics.

    Causal models are scored on every position of each window (inputs -> targets), window
    models on the note after each window ("next"). Each batch's mean is weighted by its number
    of supervised notes (:func:`melody_utils.train.evaluate`, the validation pass of training),
    so the result is the mean over all notes, whatever the batch sizes.
    """
    import torch
    from tqdm.auto import tqdm

    from .train import evaluate_counted

    batches = tqdm(loader, desc="held-out NLL", disable=not progress, leave=False)
    _, heads, n = evaluate_counted(model, batches, torch.device(device))
    if n == 0:
        raise ValueError("the loader yielded no batches: the split holds no window; use a shorter window or another split")
    return nll_result(heads, n)


def piece_nll(model, pieces, device="cpu", context: int = 1, progress: bool = False) -> dict:
    """Held-out NLL of a causal model that reads each piece from its start, carrying its state.

    Scores every note with at least ``context`` notes before it (``context=1``: every note but
    each piece's first, the notes :func:`ngram_nll` scores too), each predicted from the whole
    piece before it: the context a model has when it generates. Pieces are read in chunks of
    :data:`PIECE_CHUNK` notes, the LSTM state carried across chunks, so memory stays bounded.
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    if not model.causal:
        raise ValueError("piece_nll needs a causal model; score window models with model_nll")
    if context < 1:
        raise ValueError(f"context must be >= 1, got {context}")
    was_training = model.training
    model.eval()
    fields = model.fields
    sums = dict.fromkeys(fields, 0.0)
    n = 0
    try:
        with torch.no_grad():
            for toks in tqdm(pieces, desc="held-out NLL", disable=not progress, leave=False):
                t = torch.as_tensor(np.asarray(toks, dtype=np.int64), device=device)
                state = None
                for a in range(0, len(t) - 1, PIECE_CHUNK):
                    x, y = t[None, a: a + PIECE_CHUNK], t[None, a + 1: a + 1 + PIECE_CHUNK]  # (1, T, F)
                    x = x[:, : y.shape[1]]
                    h, state = model.encode(x, state)
                    logits = model.heads(h, next_pitch=y[..., 0])
                    first = max(context - 1 - a, 0)  # position i predicts note a + i + 1
                    if first >= y.shape[1]:
                        continue
                    for k, f in enumerate(fields):
                        sums[f] += float(F.cross_entropy(logits[k][0, first:], y[0, first:, k], reduction="sum"))
                    n += y.shape[1] - first
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError(f"no held-out piece has more than {context} notes to score")
    return nll_result({f: v / n for f, v in sums.items()}, n)


def _sizes_fields(vocab) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """A ``Vocab`` (or a plain sequence of field sizes) -> (sizes, field names)."""
    if hasattr(vocab, "sizes"):
        return tuple(int(s) for s in vocab.sizes), tuple(vocab.fields)
    sizes = tuple(int(s) for s in vocab)
    if not sizes or min(sizes) < 1:
        raise ValueError(f"vocab must be a Vocab or a sequence of positive field sizes, got {vocab!r}")
    names = FIELDS[: len(sizes)] if len(sizes) <= len(FIELDS) else tuple(f"field{i}" for i in range(len(sizes)))
    return sizes, tuple(names)


def uniform_nll(vocab) -> dict:
    """NLL of the uniform model: log(size) nats per field, the total is the sum of log sizes."""
    sizes, fields = _sizes_fields(vocab)
    return nll_result({f: math.log(s) for f, s in zip(fields, sizes)}, 0)


# ---- n-gram baseline ------------------------------------------------------------------------

ALPHA_GRID = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # additive smoothing of the 1-gram
BETA_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)  # prior strength of each lower order
DEFAULT_ALPHA = 0.1  # used when no validation pieces are given
DEFAULT_BETA = 3.0


def _check_pieces(pieces, sizes, name: str) -> list[np.ndarray]:
    out = []
    for i, p in enumerate(pieces):
        t = np.asarray(p)
        if t.ndim != 2 or t.shape[1] < len(sizes):
            raise ValueError(f"{name}[{i}] must be an (N, {len(sizes)}) token array, got shape {t.shape}")
        t = t[:, : len(sizes)].astype(np.int64)
        if len(t) and ((t.min(axis=0) < 0).any() or (t.max(axis=0) >= np.asarray(sizes)).any()):
            raise ValueError(f"{name}[{i}] holds ids outside the vocabulary sizes {sizes}; was it encoded with another vocab?")
        out.append(t)
    return out


def _lookup(keys: np.ndarray, query: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Index of each query in the sorted ``keys``, -1 where absent or not ``valid``."""
    if len(keys) == 0:
        return np.full(len(query), -1, dtype=np.int64)
    idx = np.searchsorted(keys, query)
    idx_c = np.minimum(idx, len(keys) - 1)
    found = valid & (idx < len(keys)) & (keys[idx_c] == query)
    return np.where(found, idx_c, -1)


class NGramModel:
    """Count-based n-gram model of note tokens, factorised per field.

    Each field of the next note is predicted on its own (like independent heads) from the
    previous ``order - 1`` notes. Full notes (all fields) make sparse contexts, so each field
    backs off through a chain of ever finer contexts, each one refining the one before::

        level 0: nothing                    (the 1-gram)
        level 1: this field of note t-1
        level 2: all fields of note t-1
        level 3: all of t-1, this field of t-2
        level 4: all of t-1 and t-2          (order 3 stops here)

    Positions before the start of a piece are a begin marker. Probabilities are interpolated
    recursively down the chain, a Dirichlet-prior ("hierarchical additive") smoothing::

        P_0(x)     = (c(x) + alpha) / (N + alpha * V)
        P_k(x | h) = (c(h, x) + beta_k * P_{k-1}(x | h')) / (c(h) + beta_k)

    An unseen context (c(h) = 0) falls back to the coarser one, and the 1-gram gives every id
    a non-zero probability, so the NLL is always finite. ``alpha`` and the ``beta_k`` are
    fitted per field on validation pieces by a greedy grid search, coarsest level first (see
    :meth:`tune`).

    Every note of a piece except its first is predicted (the models never predict a piece's
    first note either). Contexts are exact (ids remapped to dense ids level by level with
    ``np.unique``, no hash collisions) and all counting is vectorised.
    """

    def __init__(self, vocab, order: int):
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
            raise ValueError(f"order must be an integer >= 1, got {order!r}")
        self.sizes, self.fields = _sizes_fields(vocab)
        self.order = int(order)
        self.n_joint = int(np.prod(self.sizes, dtype=np.int64))  # joint ids 0..n_joint-1, n_joint = begin marker
        n_levels = 2 * (self.order - 1)
        self.alpha = {f: DEFAULT_ALPHA for f in self.fields}
        self.betas = {f: [DEFAULT_BETA] * n_levels for f in self.fields}
        self.ctx_keys: dict = {}  # field -> per level >= 1: sorted context keys seen in training
        self.tables: dict = {}  # field -> per level: (sorted (context, id) keys, their counts, context totals)

    def _events(self, pieces, name):
        """Pieces -> (targets (M, F), per field: the (values, radix) that refine its context, level by level)."""
        pieces = [p for p in _check_pieces(pieces, self.sizes, name) if len(p) >= 2]
        if not pieces:
            raise ValueError(f"{name} holds no piece with at least 2 notes: nothing to predict")
        tokens = np.concatenate(pieces)  # (N, F)
        lengths = np.array([len(p) for p in pieces])
        pos = np.arange(len(tokens)) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # index within the piece
        joint = tokens @ np.cumprod((1,) + self.sizes[:-1], dtype=np.int64)  # (N,) one id per note
        idx = np.flatnonzero(pos >= 1)  # predicted positions
        parts = {f: [] for f in self.fields}
        for k in range(1, self.order):
            there = pos[idx] >= k  # note t-k lies in the piece (else: begin marker)
            full = (np.where(there, joint[idx - k], self.n_joint), self.n_joint + 1)
            for col, (f, size) in enumerate(zip(self.fields, self.sizes)):
                parts[f] += [(np.where(there, tokens[idx - k, col], size), size + 1), full]
        return tokens[idx], parts

    def _contexts(self, parts, m: int, field: str, fit: bool) -> list[np.ndarray]:
        """Dense context ids per level of one field; -1 = context unseen in training."""
        ctx = [np.zeros(m, dtype=np.int64)]
        if fit:
            self.ctx_keys[field] = []
        for level, (values, radix) in enumerate(parts, start=1):
            key = ctx[-1] * radix + values  # (coarser context, what this level adds)
            if fit:
                uniq, inv = np.unique(key, return_inverse=True)
                self.ctx_keys[field].append(uniq)
                ctx.append(inv.reshape(-1).astype(np.int64))
            else:
                ctx.append(_lookup(self.ctx_keys[field][level - 1], key, ctx[-1] >= 0))
        return ctx

    def fit(self, pieces) -> "NGramModel":
        """Count (context, id) pairs of every field and level in the training pieces."""
        targets, parts = self._events(pieces, "train_pieces")
        self.tables = {}
        for col, (f, size) in enumerate(zip(self.fields, self.sizes)):
            y = targets[:, col]
            levels = []
            for c in self._contexts(parts[f], len(y), f, fit=True):
                keys, counts = np.unique(c * size + y, return_counts=True)
                levels.append((keys, counts, np.bincount(c)))  # np.bincount(c): c(h) per context id
            self.tables[f] = levels
        return self

    def _counts(self, pieces, name) -> dict:
        """For each field: (c(h, x), c(h)) per level at every predicted position of ``pieces``."""
        if not self.tables:
            raise ValueError("the n-gram model is not fitted; call fit(train_pieces) first")
        targets, parts = self._events(pieces, name)
        out = {}
        for col, (f, size) in enumerate(zip(self.fields, self.sizes)):
            y = targets[:, col]
            c_hx, c_h = [], []
            for c, (keys, counts, totals) in zip(self._contexts(parts[f], len(y), f, fit=False), self.tables[f]):
                i = _lookup(keys, c * size + y, c >= 0)
                c_hx.append(np.where(i >= 0, counts[np.maximum(i, 0)], 0).astype(np.float64))
                c_h.append(np.where(c >= 0, totals[np.clip(c, 0, len(totals) - 1)], 0).astype(np.float64))
            out[f] = (c_hx, c_h)
        return out

    @staticmethod
    def _prob(c_hx, c_h, size, alpha, betas) -> np.ndarray:
        p = (c_hx[0] + alpha) / (c_h[0] + alpha * size)
        for k, beta in enumerate(betas, start=1):
            p = (c_hx[k] + beta * p) / (c_h[k] + beta)
        return p

    def tune(self, val_pieces, alphas=ALPHA_GRID, betas=BETA_GRID) -> "NGramModel":
        """Pick ``alpha``, then each ``beta_k`` (coarsest level first) minimising validation NLL."""
        counts = self._counts(val_pieces, "val_pieces")
        for f, size in zip(self.fields, self.sizes):
            c_hx, c_h = counts[f]
            nll = lambda a, bs: -np.log(self._prob(c_hx, c_h, size, a, bs)).mean()  # noqa: E731
            self.alpha[f] = min(alphas, key=lambda a: nll(a, []))
            chosen: list[float] = []
            for _ in range(len(c_hx) - 1):
                chosen.append(min(betas, key=lambda b: nll(self.alpha[f], chosen + [b])))
            self.betas[f] = chosen
        return self

    def nll(self, pieces) -> dict:
        """Mean NLL per predicted note of ``pieces`` (shared layout)."""
        counts = self._counts(pieces, "test_pieces")
        nats, n = {}, 0
        for f, size in zip(self.fields, self.sizes):
            c_hx, c_h = counts[f]
            p = self._prob(c_hx, c_h, size, self.alpha[f], self.betas[f])
            nats[f] = float(-np.log(p).mean())
            n = len(p)
        return nll_result(nats, n)

    def params(self) -> dict:
        return {f: {"alpha": self.alpha[f], "betas": list(self.betas[f])} for f in self.fields}


def ngram_nll(train_pieces, test_pieces, vocab, order: int, val_pieces=None) -> dict:
    """NLL of an order-``order`` :class:`NGramModel` fitted on ``train_pieces``.

    Pieces are lists of ``(N, F)`` token arrays (e.g. ``[cache.piece_tokens(i) for i in
    cache.piece_indices("train")]``). Smoothing is tuned on ``val_pieces`` when given, else
    the defaults ``DEFAULT_ALPHA`` / ``DEFAULT_BETA`` are used. Returns the shared NLL layout
    plus ``"params"`` (the smoothing chosen per field).
    """
    model = NGramModel(vocab, order).fit(train_pieces)
    if val_pieces is not None and any(len(p) >= 2 for p in val_pieces):
        model.tune(val_pieces)
    result = model.nll(test_pieces)
    result["params"] = model.params()
    return result


# ---------------------------------------------------------------------------------------------
# Musical statistics (after Yang & Lerch 2018)
# ---------------------------------------------------------------------------------------------

# Fixed time bins (seconds) for the step and duration histograms, so that pieces quantized with
# different vocabularies stay comparable: a "chord" bin below CHORD_THRESHOLD_S, log-spaced bins
# up to 4 s, and one bin for everything longer.
STAT_TIME_EDGES = np.concatenate([[0.0, CHORD_THRESHOLD_S], np.geomspace(0.03, 4.0, 15)])
MAX_INTERVAL = 12  # melodic intervals are clipped to +-12 semitones in the interval histogram
NGRAM_REPEAT = 8  # n of the repeated n-gram measure
LOOP_MAX_PERIOD = 32  # longest loop period (notes) that loop_mask looks for
LOOP_MIN_NOTES = 8  # a loop must span at least this many notes ...
LOOP_MIN_REPEATS = 2  # ... and repeat its period at least this many times
DEGENERATE_TAIL = 64  # degeneracy looks at the last notes of a piece
DEGENERATE_SHARE = 0.5  # degenerate: more than this share of the tail in loops, or on one pitch

SCALAR_FEATURES = (
    "pitch_count",  # distinct pitches used
    "pitch_range",  # highest - lowest pitch (semitones)
    "mean_pitch",
    "mean_interval",  # mean |interval| of the top-note line (semitones)
    "mean_ioi",  # mean time between successive onsets (chords count once), seconds
    "polyphony",  # mean number of notes sounding at an onset
    "note_density",  # notes per second
    "loop_share",  # share of notes inside exact loops (see loop_mask)
    "repeat_ngram",  # share of NGRAM_REPEAT-grams of notes already heard earlier in the piece
    "top_pitch_share",  # share of the most frequent pitch
)
HIST_FEATURES = (
    "pitch_class_hist",  # (12,) C, C#, ..., B
    "interval_hist",  # (2 * MAX_INTERVAL + 1,) intervals of the top-note line, -12..12
    "step_hist",  # (len(STAT_TIME_EDGES),) steps between note onsets, STAT_TIME_EDGES bins
    "duration_hist",  # (len(STAT_TIME_EDGES),) durations, same bins
)
CIRCULAR_FEATURES = ("pitch_class_hist",)


def _hist(idx, n_bins: int) -> np.ndarray:
    """Normalised histogram of bin ids ``idx`` in 0..n_bins-1 (all zeros when empty)."""
    h = np.bincount(np.asarray(idx, dtype=np.int64), minlength=n_bins).astype(np.float64)
    return h / h.sum() if h.sum() > 0 else h


def _time_hist(seconds) -> np.ndarray:
    idx = np.searchsorted(STAT_TIME_EDGES, np.asarray(seconds, dtype=np.float64), side="right") - 1
    return _hist(np.clip(idx, 0, len(STAT_TIME_EDGES) - 1), len(STAT_TIME_EDGES))


def event_ids(notes: Notes) -> np.ndarray:
    """One int per note for exact-repetition tests: same pitch, step and duration (to 1 ms)."""
    if len(notes) == 0:
        return np.zeros(0, dtype=np.int64)
    rows = np.stack([notes.pitch.astype(np.int64), np.round(notes.step * 1000), np.round(notes.duration * 1000)], axis=1)
    _, inv = np.unique(rows.astype(np.int64), axis=0, return_inverse=True)
    return inv.reshape(-1).astype(np.int64)


def loop_mask(ids, max_period: int = LOOP_MAX_PERIOD, min_notes: int = LOOP_MIN_NOTES, min_repeats: int = LOOP_MIN_REPEATS) -> np.ndarray:
    """Boolean mask of the elements that lie inside an exact loop.

    A loop is a stretch of at least ``min_notes`` elements that is periodic with some period
    ``p <= max_period`` (``ids[t] == ids[t - p]`` throughout) and spans at least
    ``min_repeats`` full periods. Random sequences over a large alphabet have (almost) no
    loops; a model stuck repeating the same few notes is inside one all the time.
    """
    ids = np.asarray(ids)
    n = len(ids)
    mark = np.zeros(n + 1, dtype=np.int64)  # +1 where a loop starts, -1 one past its end
    for p in range(1, min(max_period, n // max(min_repeats, 1)) + 1):
        same = ids[p:] == ids[:-p]  # same[i]: ids[i + p] == ids[i]
        d = np.diff(np.concatenate([[0], same.astype(np.int8), [0]]))
        a, b = np.flatnonzero(d == 1), np.flatnonzero(d == -1)  # runs same[a:b]: ids[a : b + p] is p-periodic
        run = b - a
        ok = (run >= (min_repeats - 1) * p) & (run + p >= min_notes)
        np.add.at(mark, a[ok], 1)
        np.add.at(mark, b[ok] + p, -1)
    return np.cumsum(mark[:n]) > 0


def repeated_ngram_share(ids, n: int = NGRAM_REPEAT) -> float:
    """Share of the n-grams of ``ids`` that already occurred earlier in the sequence."""
    ids = np.asarray(ids)
    if len(ids) < n + 1:
        return 0.0
    grams = np.lib.stride_tricks.sliding_window_view(ids, n)
    _, first, inv = np.unique(grams, axis=0, return_index=True, return_inverse=True)
    return float(np.mean(first[inv.reshape(-1)] < np.arange(len(grams))))


def _onset_groups(notes: Notes) -> np.ndarray:
    """Index of the first note of each onset group (notes within CHORD_THRESHOLD_S form a chord)."""
    new = np.ones(len(notes), dtype=bool)
    new[1:] = np.diff(notes.start) > CHORD_THRESHOLD_S
    return np.flatnonzero(new)


def piece_stats(notes: Notes) -> dict:
    """Per-piece features (scalars: :data:`SCALAR_FEATURES`, arrays: :data:`HIST_FEATURES`).

    Pitch intervals are taken along the top-note line (the highest pitch of each onset group),
    the usual melody of piano music, so chord spreads do not count as melodic leaps.
    """
    if not isinstance(notes, Notes):
        raise ValueError(f"piece_stats expects a Notes object, got {type(notes).__name__}")
    if len(notes) < 2:
        raise ValueError(f"piece_stats needs at least 2 notes, got {len(notes)}")
    notes = notes.sorted()
    pitch = notes.pitch.astype(np.int64)
    n = len(notes)

    g = _onset_groups(notes)
    group_of = np.repeat(np.arange(len(g)), np.diff(np.append(g, n)))
    top = np.full(len(g), -1, dtype=np.int64)
    np.maximum.at(top, group_of, pitch)
    intervals = np.diff(top)
    onsets = notes.start[g]
    # Notes sounding at each onset group: the group itself plus earlier notes not yet released.
    # A zero-length note still counts at its own onset.
    ends = np.sort(np.maximum(notes.end, notes.start + 1e-9))
    released = np.searchsorted(ends, onsets, side="right")
    group_size = np.diff(np.append(g, n))
    sounding = group_size + np.maximum(g - released, 0)

    ids = event_ids(notes)
    counts = np.bincount(pitch)
    span = max(float(notes.end.max() - notes.start.min()), 1e-3)
    return {
        "n_notes": n,
        "pitch_count": int(np.count_nonzero(counts)),
        "pitch_range": int(pitch.max() - pitch.min()),
        "mean_pitch": float(pitch.mean()),
        "mean_interval": float(np.abs(intervals).mean()) if len(intervals) else 0.0,
        "mean_ioi": float(np.diff(onsets).mean()) if len(onsets) > 1 else 0.0,
        "polyphony": float(sounding.mean()),
        "note_density": n / span,
        "loop_share": float(loop_mask(ids).mean()),
        "repeat_ngram": repeated_ngram_share(ids),
        "top_pitch_share": float(counts.max() / n),
        "pitch_class_hist": _hist(pitch % 12, 12),
        "interval_hist": _hist(np.clip(intervals, -MAX_INTERVAL, MAX_INTERVAL) + MAX_INTERVAL, 2 * MAX_INTERVAL + 1),
        "step_hist": _time_hist(notes.step[1:]),
        "duration_hist": _time_hist(notes.duration),
    }


def degeneracy(notes: Notes, tail: int = DEGENERATE_TAIL, share: float = DEGENERATE_SHARE) -> dict:
    """Is the end of a generated piece degenerate?

    Degenerate means: of the last ``tail`` notes, more than ``share`` lie inside an exact loop
    (:func:`loop_mask` on pitch + step + duration), or more than ``share`` have the same pitch.
    An empty piece is degenerate. Returns the two shares and the verdict.
    """
    if len(notes) == 0:
        return {"loop_share": 0.0, "top_pitch_share": 0.0, "degenerate": True}
    notes = notes.sorted()
    ids = event_ids(notes)  # on the whole piece, so the tail's first step is the real one
    loop = float(loop_mask(ids)[-tail:].mean())
    top = float(np.bincount(notes.pitch[-tail:].astype(np.int64)).max() / min(tail, len(notes)))
    return {"loop_share": loop, "top_pitch_share": top, "degenerate": bool(loop > share or top > share)}


def stack_stats(stats: list[dict]) -> dict[str, np.ndarray]:
    """List of :func:`piece_stats` dicts -> {feature: array with one row per piece}."""
    if not stats:
        raise ValueError("no piece statistics to stack (empty list)")
    return {k: np.asarray([s[k] for s in stats], dtype=np.float64) for k in SCALAR_FEATURES + HIST_FEATURES}


def excerpts(pieces: list[Notes], n_notes: int, seed: int = 0) -> list[Notes]:
    """One random ``n_notes``-long excerpt of each piece (shorter pieces whole, < 2 notes dropped).

    Features such as pitch range grow with length, so generated pieces must be compared with
    reference excerpts of the same length.
    """
    if n_notes < 2:
        raise ValueError(f"n_notes must be >= 2, got {n_notes}")
    rng = np.random.default_rng(seed)
    out = []
    for p in pieces:
        p = p.sorted()
        if len(p) < 2:
            continue
        s = int(rng.integers(0, len(p) - n_notes + 1)) if len(p) > n_notes else 0
        out.append(p[s : s + n_notes])
    return out


# ---- comparing two sets -------------------------------------------------------------------

MAX_DISTANCES = 4000  # intra/inter-set distance samples kept per feature (random subset beyond)


def _bandwidth(x: np.ndarray, floor: float) -> float:
    """Silverman's rule of thumb, never below ``floor``."""
    if len(x) < 2:
        return floor
    iqr = np.subtract(*np.percentile(x, [75, 25]))
    spread = min(x.std(ddof=1), iqr / 1.34) if iqr > 0 else x.std(ddof=1)
    return max(0.9 * spread * len(x) ** -0.2, floor)


def _kde_pair(a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian kernel densities of samples ``a`` and ``b`` on one common grid.

    Each sample is linearly binned onto the grid and convolved with the kernel (by FFT), so
    the cost is O(grid log grid) however many values there are.
    """
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if len(a) == 0 or len(b) == 0 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("overlap needs two non-empty sets of finite values")
    both = np.concatenate([a, b])
    scale = both.std() if both.std() > 0 else max(abs(both.mean()), 1.0)
    floor = 0.02 * scale  # keeps a constant set from collapsing to a spike
    bw_a, bw_b = _bandwidth(a, floor), _bandwidth(b, floor)
    lo, hi = both.min() - 4 * max(bw_a, bw_b), both.max() + 4 * max(bw_a, bw_b)
    n_grid = int(np.clip((hi - lo) / (min(bw_a, bw_b) / 4), 512, 16384))  # >= 4 grid points per bandwidth
    grid, dx = np.linspace(lo, hi, n_grid, retstep=True)

    def density(x, bw):
        pos = (x - lo) / dx
        i = np.clip(np.floor(pos).astype(np.int64), 0, n_grid - 2)
        w = pos - i
        counts = np.bincount(i, 1 - w, n_grid) + np.bincount(i + 1, w, n_grid)
        half = int(np.ceil(4 * bw / dx))
        kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * dx / bw) ** 2)
        n_fft = n_grid + len(kernel) - 1
        f = np.fft.irfft(np.fft.rfft(counts, n_fft) * np.fft.rfft(kernel, n_fft), n_fft)[half : half + n_grid]
        f = np.maximum(f, 0.0)
        return f / _trapezoid(f, grid)

    return grid, density(a, bw_a), density(b, bw_b)


def _oa_kl(p_samples, q_samples) -> tuple[float, float]:
    grid, fp, fq = _kde_pair(p_samples, q_samples)
    oa = float(np.clip(_trapezoid(np.minimum(fp, fq), grid), 0.0, 1.0))
    eps = 1e-10 * max(fp.max(), fq.max())
    kl = float(max(_trapezoid(fp * np.log((fp + eps) / (fq + eps)), grid), 0.0))
    return oa, kl


def overlap_area(a, b) -> float:
    """Overlap area (0..1) of the kernel density estimates of two samples: 1 = same distribution."""
    return _oa_kl(a, b)[0]


def kl_divergence(p_samples, q_samples) -> float:
    """KL(P || Q) in nats between the kernel density estimates of two samples."""
    return _oa_kl(p_samples, q_samples)[1]


def emd_1d(a, b) -> float:
    """Earth mover's (Wasserstein-1) distance between two 1-D samples, in their units."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    u = (np.arange(512) + 0.5) / 512
    return float(np.abs(np.quantile(a, u) - np.quantile(b, u)).mean())


def _hist_distances(p: np.ndarray, q: np.ndarray, circular: bool) -> tuple[float, float, float]:
    """(overlap, KL(p || q), earth mover's distance in bins) of two histograms."""
    p, q = p / p.sum(), q / q.sum()
    oa = float(np.minimum(p, q).sum())
    eps = 1e-6
    ps, qs = (p + eps) / (1 + eps * len(p)), (q + eps) / (1 + eps * len(q))
    kl = float(np.sum(ps * np.log(ps / qs)))
    d = np.cumsum(p - q)
    emd = float(np.abs(d - np.median(d)).sum() if circular else np.abs(d[:-1]).sum())
    return oa, kl, emd


def _pairwise(x: np.ndarray, y: np.ndarray | None, rng) -> np.ndarray:
    """Euclidean distances between rows: all pairs i < j of ``x`` (y None) or all of x * y."""
    x = x.reshape(len(x), -1)
    if y is None:
        i, j = np.triu_indices(len(x), k=1)
    else:
        y = y.reshape(len(y), -1)
        i, j = np.divmod(np.arange(len(x) * len(y)), len(y))
    if len(i) > MAX_DISTANCES:
        keep = rng.choice(len(i), MAX_DISTANCES, replace=False)
        i, j = i[keep], j[keep]
    other = x if y is None else y
    return np.linalg.norm(x[i] - other[j], axis=1)


def _as_stats(pieces, name: str) -> list[dict]:
    out = [p if isinstance(p, dict) else piece_stats(p) for p in pieces]
    if len(out) < 2:
        raise ValueError(f"{name} needs at least 2 pieces to estimate a distribution, got {len(out)}")
    return out


def compare_sets(generated, reference, seed: int = 0) -> dict:
    """Compare two sets of pieces (``Notes`` or precomputed :func:`piece_stats` dicts) per feature.

    For each feature, ``"features"[name]`` holds:

    - ``oa``: overlap area of the two sets' distributions of the feature (1 = same, 0 =
      disjoint). Scalars: overlap of kernel density estimates over pieces; histograms: overlap
      (intersection) of the sets' pooled histograms.
    - ``kl``: KL(reference || generated) of the same distributions (nats, 0 = same; densities
      are floored at 1e-10 of their peak, so about 23 nats means disjoint).
    - ``emd``: earth mover's distance (scalars: feature units; histograms: bins, circular for
      pitch classes).
    - ``intra_oa``, ``intra_kl``: Yang & Lerch's measure: overlap and KL between the
      reference's intra-set distances (piece to piece within the reference) and the inter-set
      distances (generated piece to reference piece). Near 1 / 0 when the generated pieces are
      as close to the reference as reference pieces are to each other.
    - ``gen_intra``, ``ref_intra``: mean intra-set distance of each set (diversity; a model that
      plays the same thing every time has a small ``gen_intra``).
    - ``gen_mean``, ``ref_mean``: the feature's mean in each set (a list for histograms).

    ``"mean_oa"`` is the mean ``oa`` over features, a one-number summary.
    """
    gen, ref = stack_stats(_as_stats(generated, "generated")), stack_stats(_as_stats(reference, "reference"))
    rng = np.random.default_rng(seed)
    features = {}
    for name in SCALAR_FEATURES + HIST_FEATURES:
        g, r = gen[name], ref[name]
        if name in SCALAR_FEATURES:
            oa, kl = _oa_kl(r, g)
            emd = emd_1d(g, r)
        else:
            oa, kl, emd = _hist_distances(g.mean(axis=0) + 1e-12, r.mean(axis=0) + 1e-12, name in CIRCULAR_FEATURES)
        intra_ref, intra_gen = _pairwise(r, None, rng), _pairwise(g, None, rng)
        inter = _pairwise(g, r, rng)
        intra_oa, intra_kl = _oa_kl(intra_ref, inter)
        features[name] = {
            "oa": oa,
            "kl": kl,
            "emd": emd,
            "intra_oa": intra_oa,
            "intra_kl": intra_kl,
            "gen_intra": float(intra_gen.mean()),
            "ref_intra": float(intra_ref.mean()),
            "gen_mean": float(g.mean()) if g.ndim == 1 else g.mean(axis=0).tolist(),
            "ref_mean": float(r.mean()) if r.ndim == 1 else r.mean(axis=0).tolist(),
        }
    return {
        "features": features,
        "mean_oa": float(np.mean([f["oa"] for f in features.values()])),
        "n_generated": len(g),
        "n_reference": len(r),
    }


# ---------------------------------------------------------------------------------------------
# Sampling sweep
# ---------------------------------------------------------------------------------------------


def sampling_sweep(generate_fn, temperatures, top_ps, reference, n_pieces: int = 8, n_notes: int = 200, seed: int = 0, progress: bool = True) -> list[dict]:
    """Generate pieces for every (temperature, top_p) and score them against ``reference``.

    ``generate_fn(temperature, top_p, n_notes, seed) -> Notes`` is called ``n_pieces`` times per
    setting (seeds ``seed``, ``seed + 1``, ...; arguments in that order). ``reference`` is a list
    of ``Notes``; it is cut to ``n_notes``-long excerpts so lengths match. Returns one dict per
    setting: ``temperature``, ``top_p``, ``n_pieces``, ``degenerate_rate`` (share of pieces
    :func:`degeneracy` flags), ``loop_share`` and ``top_pitch_share`` (means over pieces),
    ``mean_oa`` and ``oa`` (per feature, from :func:`compare_sets`; NaN when fewer than 2
    pieces had 2 notes or more).
    """
    from tqdm.auto import tqdm

    if n_pieces < 1:
        raise ValueError(f"n_pieces must be >= 1, got {n_pieces}")
    ref_stats = _as_stats(excerpts(reference, n_notes, seed), "reference")
    settings = list(product(temperatures, top_ps))
    if not settings:
        raise ValueError("temperatures and top_ps must each hold at least one value")
    results = []
    bar = tqdm(total=len(settings) * n_pieces, desc="sampling sweep", disable=not progress)
    for temperature, top_p in settings:
        pieces = []
        for i in range(n_pieces):
            pieces.append(generate_fn(temperature, top_p, n_notes, seed + i))
            bar.update(1)
        deg = [degeneracy(p) for p in pieces]
        usable = [p for p in pieces if len(p) >= 2]
        row = {
            "temperature": float(temperature),
            "top_p": float(top_p),
            "n_pieces": n_pieces,
            "degenerate_rate": float(np.mean([d["degenerate"] for d in deg])),
            "loop_share": float(np.mean([d["loop_share"] for d in deg])),
            "top_pitch_share": float(np.mean([d["top_pitch_share"] for d in deg])),
        }
        if len(usable) >= 2:
            cmp = compare_sets(usable, ref_stats, seed=seed)
            row["mean_oa"] = cmp["mean_oa"]
            row["oa"] = {k: v["oa"] for k, v in cmp["features"].items()}
        else:
            row["mean_oa"] = float("nan")
            row["oa"] = {k: float("nan") for k in SCALAR_FEATURES + HIST_FEATURES}
        results.append(row)
    bar.close()
    return results


def sweep_generate_fn(model, vocab, primers, top_k: int = 0, device: str = "cpu"):
    """A ``generate_fn`` for :func:`sampling_sweep` that samples ``model``.

    ``primers``: a list of primers (token arrays or Notes); piece ``seed`` continues
    ``primers[seed % len(primers)]``, so every setting sees the same primers.
    """
    from .sample import generate_notes

    if len(primers) == 0:
        raise ValueError("primers is empty; pass e.g. the first notes of a few held-out pieces")

    def generate_fn(temperature, top_p, n_notes, seed):
        return generate_notes(model, vocab, n_notes, primer=primers[seed % len(primers)], temperature=temperature,
                              top_k=top_k, top_p=top_p, seed=seed, device=device)

    return generate_fn


# ---- choosing a setting -------------------------------------------------------------------

SWEEP_TEMPERATURES = (0.7, 0.85, 1.0, 1.15)  # evaluate's default sweep grid ...
SWEEP_TOP_PS = (0.8, 0.9, 0.95, 1.0)  # ... 16 settings
DEGENERATE_MARGIN = 0.1  # a suggested setting may degenerate this much more often than held-out music


def _as_float(x) -> float:
    """A number, or None (NaN written to JSON as null) -> float (NaN)."""
    return float("nan") if x is None else float(x)


def best_setting(rows, reference_degenerate_rate: float, margin: float = DEGENERATE_MARGIN) -> dict | None:
    """The sweep setting to suggest: the highest mean OA among those that do not degenerate too often.

    ``rows``: :func:`sampling_sweep`'s result. A setting is eligible when its ``degenerate_rate``
    is at most ``reference_degenerate_rate + margin``: held-out music is sometimes flagged too (an
    arpeggiated accompaniment repeats exactly), so the ceiling starts from its own rate. The
    eligible setting with the highest ``mean_oa`` wins (the first listed on a tie). When no
    setting is eligible, the least degenerate one is returned (the highest mean OA among equals)
    with ``"eligible": False``. Rows without a mean OA (NaN or None) are never chosen; None when
    no row has one.

    Returns ``{"temperature", "top_p", "mean_oa", "degenerate_rate", "eligible"}``.
    """
    scored = [r for r in rows if math.isfinite(_as_float(r.get("mean_oa")))]
    if not scored:
        return None
    ceiling = reference_degenerate_rate + margin + 1e-9  # rates are counts / n_pieces: exact ties count as within
    eligible = [r for r in scored if r["degenerate_rate"] <= ceiling]
    if eligible:
        best = max(eligible, key=lambda r: r["mean_oa"])  # max keeps the first of equals
    else:
        best = min(scored, key=lambda r: (r["degenerate_rate"], -r["mean_oa"]))
    return {"temperature": best["temperature"], "top_p": best["top_p"], "mean_oa": float(best["mean_oa"]),
            "degenerate_rate": float(best["degenerate_rate"]), "eligible": bool(eligible)}


def describe_best(sweep: dict) -> str:
    """One sentence naming the suggested setting of an :func:`evaluate` result's ``"sweep"``."""
    best = sweep.get("best")
    if best is None:
        return "No setting produced pieces long enough to score; nothing to suggest."
    setting = (f"temperature {best['temperature']:g}, top_p {best['top_p']:g} (mean OA {best['mean_oa']:.2f}, "
               f"{best['degenerate_rate']:.0%} degenerate)")
    if best["eligible"]:
        return f"Suggested setting: {setting}."
    return (f"No setting stays at or below {sweep['max_degenerate_rate']:.0%} degenerate pieces; the least degenerate "
            f"one: {setting}. Try lower temperatures and top_p values, or train the model longer.")


def _sweep_options(sweep, n_pieces: int, n_notes: int) -> dict:
    """``evaluate``'s ``sweep`` argument (True or a dict) -> the full, checked sweep options."""
    opts = {"temperatures": SWEEP_TEMPERATURES, "top_ps": SWEEP_TOP_PS, "n_pieces": n_pieces, "n_notes": n_notes,
            "margin": DEGENERATE_MARGIN}
    if sweep is True:
        sweep = {}
    if not isinstance(sweep, dict):
        raise ValueError(f"sweep must be None, True or a dict such as {{'temperatures': [0.9, 1.0], 'top_ps': [0.95]}}, got {sweep!r}")
    unknown = sorted(set(sweep) - set(opts))
    if unknown:
        raise ValueError(f"unknown sweep option(s) {unknown}; known: {sorted(opts)}")
    opts.update({k: v for k, v in sweep.items() if v is not None})
    for key, ok, want in (("temperatures", lambda v: v > 0, "> 0"), ("top_ps", lambda v: 0 < v <= 1, "in (0, 1]")):
        given = opts[key]
        try:
            values = [float(v) for v in ([given] if np.isscalar(given) else given)]
        except (TypeError, ValueError):
            values = []
        if not values or not all(math.isfinite(v) and ok(v) for v in values):
            raise ValueError(f"sweep {key} must be a non-empty list of numbers {want}, got {given!r}")
        opts[key] = values
    for key in ("n_pieces", "n_notes"):
        v = opts[key]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 2:
            raise ValueError(f"sweep {key} must be an integer >= 2, got {v!r}")
        opts[key] = int(v)
    m = opts["margin"]
    if isinstance(m, bool) or not isinstance(m, (int, float, np.integer, np.floating)) or not 0 <= m <= 1:
        raise ValueError(f"sweep margin must be in [0, 1] (a share of pieces), got {opts['margin']!r}")
    opts["margin"] = float(opts["margin"])
    return opts


def _json_safe(x):
    """Non-finite floats -> None (strict JSON has no NaN), through dicts and lists."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _stats_to_json(stats: dict) -> dict:
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in stats.items()}


# ---------------------------------------------------------------------------------------------
# Evaluating a checkpoint
# ---------------------------------------------------------------------------------------------

NGRAM_ORDERS = (1, 2, 3)


def _held_out_nll(model, vocab, cfg, cache, split: str, batch_size: int, device, progress: bool) -> dict:
    """:func:`evaluate`'s ``"nll"``: the model, the uniform model and the n-grams on ``split``."""
    from . import data, train
    from tqdm.auto import tqdm

    n_fields = len(model.sizes)
    sizes = dict(zip(vocab.fields[:n_fields], vocab.sizes[:n_fields]))
    if model.causal:  # whole pieces with carried state: the same notes the n-grams score
        scored = piece_nll(model, cache.split_tokens(split), device, progress=progress)
    else:  # every window at stride 1: the notes with a full window before them
        window, stride = train.window_and_stride(cfg, model.causal)
        scored = model_nll(model, data.make_loader(cache, split, window, stride, batch_size, shuffle=False), device,
                           progress=progress)
    nll = {"model": scored, "uniform": uniform_nll(list(sizes.values()))}
    train_pieces, val_pieces = cache.split_tokens("train"), cache.split_tokens("validation")
    test_pieces = cache.split_tokens(split)
    for order in tqdm(NGRAM_ORDERS, desc="n-gram baselines", disable=not progress, leave=False):
        nll[f"{order}-gram"] = ngram_nll(train_pieces, test_pieces, list(sizes.values()), order,
                                         val_pieces=val_pieces if split != "validation" else None)
    return nll


def evaluate(checkpoint_path, cache=None, n_samples: int = 8, n_notes: int | None = None, split: str = "test",
             temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
             device: str = "cpu", batch_size: int = 64, seed: int = 0, cache_dir=None, progress: bool = True,
             sweep=None, likelihood: bool = True) -> dict:
    """Evaluate a checkpoint on held-out pieces; returns a JSON-ready dict (see :func:`format_report`).

    - ``"nll"``: held-out NLL per note of the model (:func:`model_nll`, causal models on
      non-overlapping windows of ``data.window`` notes, window models on every window of
      ``data.seed_window`` notes), of the uniform model and of n-grams of orders 1-3 fitted on the
      train split and tuned on the validation split, all on the fields the model predicts.
      Empty when ``likelihood`` is False (it takes the longest on a large corpus; a notebook
      that only wants the sampling statistics skips it).
    - ``"stats"``: :func:`compare_sets` of ``n_samples`` generated pieces (``n_notes`` new notes
      each, default ``sample.n_notes``; primers: the first ``sample.primer_notes`` notes, or a
      window model's full window, of the held-out pieces in turn) against excerpts of the held-out pieces of the same length.
    - ``"degenerate_rate"``: share of generated pieces that :func:`degeneracy` flags, and
      ``"reference_degenerate_rate"``, the same for the held-out excerpts (a calibration: a
      repetitive piece such as an arpeggiated prelude can be flagged too).
    - ``"piece_stats"``: the :func:`piece_stats` of every generated piece and held-out excerpt
      (``{"generated": [...], "reference": [...]}``, arrays as lists), what
      :func:`melody_utils.plots.compare_distributions` draws.
    - ``"sweep"`` (only when ``sweep`` is given): a :func:`sampling_sweep` over a grid of
      temperatures and top_p values with the same primers and held-out excerpts, and the setting
      :func:`best_setting` suggests. ``sweep``: True (the default grid, :data:`SWEEP_TEMPERATURES`
      x :data:`SWEEP_TOP_PS`) or a dict of any of ``temperatures``, ``top_ps``, ``n_pieces``
      (default ``n_samples``), ``n_notes`` (default ``n_notes``) and ``margin`` (default
      :data:`DEGENERATE_MARGIN`). The result holds these options, ``top_k``, ``rows`` (one per
      setting; a mean OA that could not be computed is None), ``reference_degenerate_rate`` (of
      the held-out excerpts of the sweep's length), ``max_degenerate_rate`` (that + margin) and
      ``best``.

    ``cache``: a :class:`~melody_utils.corpus.TokenCache`; default: the one the checkpoint's data
    settings describe (``corpus.prepare``, under ``cache_dir`` when given). Sampling settings default to the checkpoint's
    ``sample`` section. ``split``: "test" (falls back to "validation" when the corpus has no test
    piece).
    """
    from . import corpus, sample, train
    from tqdm.auto import tqdm

    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 2:
        raise ValueError(f"n_samples must be an integer >= 2 (a distribution needs 2 pieces), got {n_samples!r}")
    model, vocab, cfg, state = train.load_checkpoint(checkpoint_path, device)
    if cache is None:
        cache = corpus.prepare(cfg.data, cache_dir=cache_dir, progress=progress)
    if cache.vocab != vocab:
        raise ValueError(
            f"checkpoint {checkpoint_path} was trained with another vocabulary (sizes {vocab.sizes}, {vocab.name} bins) "
            f"than the token cache's ({cache.vocab.sizes}, {cache.vocab.name} bins); evaluate on the cache prepared "
            "with the checkpoint's data settings (pass cache=None)"
        )
    if split == "test" and len(cache.piece_indices("test")) == 0:
        split = "validation"
    held_out = cache.piece_indices(split)
    if len(held_out) == 0:
        raise ValueError(f"the token cache has no {split!r} piece to evaluate on; prepare it with data.test_fraction > 0")
    sc = cfg.sample
    temperature = sc.temperature if temperature is None else temperature
    top_k = sc.top_k if top_k is None else top_k
    top_p = sc.top_p if top_p is None else top_p
    n_notes = sc.n_notes if n_notes is None else n_notes
    sweep_opts = None if sweep is None or sweep is False else _sweep_options(sweep, n_samples, n_notes)

    # 1. likelihood: the model and the baselines, on the fields the model predicts
    nll = _held_out_nll(model, vocab, cfg, cache, split, batch_size, device, progress) if likelihood else {}

    # 2. generated pieces against held-out excerpts of the same length
    generated = []
    n_primer = sc.primer_notes if model.causal else max(sc.primer_notes, model.window)  # window models read a full window
    for i in tqdm(range(n_samples), desc="generating", disable=not progress, leave=False):
        primer = cache.piece_tokens(held_out[i % len(held_out)])[:n_primer]
        generated.append(sample.generate_notes(model, vocab, n_notes, primer=primer, temperature=temperature,
                                               top_k=top_k, top_p=top_p, seed=seed + i, device=device))
    held_notes = [cache.notes(i) for i in held_out]
    reference = excerpts(held_notes, n_notes, seed=seed)
    if len(reference) < 2:
        raise ValueError(f"the {split!r} split has {len(reference)} usable piece(s); the statistics need at least 2")
    gen_stats, ref_stats = [piece_stats(g) for g in generated], [piece_stats(r) for r in reference]
    result = {
        "checkpoint": str(checkpoint_path),
        "arch": cfg.model.arch,
        "epoch": state.get("epoch"),
        "split": split,
        "nll": nll,
        "stats": compare_sets(gen_stats, ref_stats, seed=seed),
        "degenerate_rate": float(np.mean([degeneracy(g)["degenerate"] for g in generated])),
        "reference_degenerate_rate": float(np.mean([degeneracy(r)["degenerate"] for r in reference])),
        "sampling": {"n_samples": n_samples, "n_notes": n_notes, "temperature": temperature, "top_k": top_k,
                     "top_p": top_p, "primer_notes": n_primer, "seed": seed},
        "piece_stats": {"generated": [_stats_to_json(s) for s in gen_stats], "reference": [_stats_to_json(s) for s in ref_stats]},
    }

    # 3. optionally: which sampling settings come closest to the held-out pieces
    if sweep_opts is not None:
        o = sweep_opts
        primers = [cache.piece_tokens(i)[:n_primer] for i in held_out]  # the same primers as the pieces above
        rows = sampling_sweep(sweep_generate_fn(model, vocab, primers, top_k=top_k, device=device), o["temperatures"],
                              o["top_ps"], held_notes, n_pieces=o["n_pieces"], n_notes=o["n_notes"], seed=seed, progress=progress)
        ref_rate = float(np.mean([degeneracy(r)["degenerate"] for r in excerpts(held_notes, o["n_notes"], seed=seed)]))
        result["sweep"] = {**o, "top_k": top_k, "rows": _json_safe(rows), "reference_degenerate_rate": ref_rate,
                           "max_degenerate_rate": ref_rate + o["margin"], "best": best_setting(rows, ref_rate, o["margin"])}
    return result


def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def format_report(result: dict, figures: dict | None = None) -> str:
    """Markdown tables of an :func:`evaluate` result: NLL (bits per note), statistics overlap, sweep.

    ``figures``: image links to put under their sections, ``{"distributions": "report_distributions.png",
    "sweep": ...}`` (paths relative to the report; :func:`write_report` draws and names them).
    """
    figures = figures or {}
    lines = [f"# Evaluation of {result.get('checkpoint', 'a model')}", ""]
    nll = result.get("nll", {})
    if nll:
        fields = [f for f in next(iter(nll.values()))["bits"] if f != "total"]
        lines += [
            f"## Held-out negative log-likelihood ({result.get('split', 'test')} split, bits per note; lower is better)",
            "",
            "| model | " + " | ".join(fields) + " | total (bits) | total (nats) | notes scored |",
            "|---|" + "---:|" * (len(fields) + 3),
        ]
        for name, r in nll.items():
            label = f"model ({result['arch']})" if name == "model" and "arch" in result else name
            cells = [_fmt(r["bits"].get(f)) for f in fields] + [_fmt(r["bits"]["total"]), _fmt(r["nats"]["total"]), str(r["n_notes"] or "-")]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines += ["", "Uniform: every id equally likely. n-grams: counts on the train split, one field at a time "
                  "given the previous n-1 notes, smoothing tuned on the validation split.", ""]
    stats = result.get("stats")
    if stats:
        s = result.get("sampling", {})
        lines += [
            f"## Generated vs held-out pieces ({stats['n_generated']} generated, {stats['n_reference']} held-out excerpts"
            + (f" of {s['n_notes']} notes; temperature {s['temperature']}, top_k {s['top_k']}, top_p {s['top_p']}" if s else "") + ")",
            "",
            "OA: overlap of the two sets' distributions (1 = same). Intra-set OA: overlap of held-out piece-to-piece "
            "distances with generated-to-held-out distances (Yang & Lerch 2018).",
            "",
            "| feature | OA | KL | intra-set OA | generated mean | held-out mean |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, f in stats["features"].items():
            means = [_fmt(f["gen_mean"]), _fmt(f["ref_mean"])] if name in SCALAR_FEATURES else ["-", "-"]
            lines.append(f"| {name} | {_fmt(f['oa'], 2)} | {_fmt(f['kl'], 2)} | {_fmt(f['intra_oa'], 2)} | " + " | ".join(means) + " |")
        lines += ["", f"Mean OA: {_fmt(stats['mean_oa'], 2)}."]
    if "degenerate_rate" in result:
        ref = result.get("reference_degenerate_rate")
        lines.append(f"Degenerate samples (loops or one pitch in more than half of the last {DEGENERATE_TAIL} notes): "
                     f"{result['degenerate_rate']:.0%}" + (f" (held-out excerpts: {ref:.0%})." if ref is not None else "."))
    if figures.get("distributions"):
        lines += ["", f"![Generated vs held-out pieces, feature by feature]({figures['distributions']})"]
    if result.get("sweep"):
        lines += [""] + _format_sweep(result["sweep"])
        if figures.get("sweep"):
            lines += ["", f"![Mean OA and degenerate rate per sampling setting]({figures['sweep']})"]
    return "\n".join(lines).rstrip() + "\n"


def _format_sweep(sweep: dict) -> list[str]:
    """The report's sweep section: the rule, one table row per setting, the suggested setting."""
    best, ceiling = sweep.get("best"), sweep["max_degenerate_rate"]
    lines = [
        f"## Sampling sweep ({sweep['n_pieces']} pieces of {sweep['n_notes']} notes per setting after held-out primers, "
        f"top_k {sweep['top_k']})",
        "",
        "Mean OA: mean overlap of the generated pieces' feature distributions with the held-out excerpts' (1 = same). "
        "Degenerate: share of pieces caught in loops or on one pitch, as above. The suggested setting is the one with the "
        "highest mean OA among the settings whose degenerate rate is not above the held-out excerpts' own rate "
        f"({sweep['reference_degenerate_rate']:.0%}) plus a margin of {sweep['margin']:.0%}, i.e. at most {ceiling:.0%}; "
        "when no setting qualifies, the least degenerate one.",
        "",
        "| temperature | top_p | mean OA | degenerate | loop share | |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for r in sweep["rows"]:
        if best is not None and (r["temperature"], r["top_p"]) == (best["temperature"], best["top_p"]):
            note = "**suggested**"
        else:
            note = "too degenerate" if r["degenerate_rate"] > ceiling + 1e-9 else ""
        lines.append(f"| {r['temperature']:g} | {r['top_p']:g} | {_fmt(_as_float(r.get('mean_oa')), 2)} | "
                     f"{r['degenerate_rate']:.0%} | {r['loop_share']:.0%} | {note} |")
    return lines + ["", describe_best(sweep)]


def write_report(result: dict, report_path) -> tuple[str, dict]:
    """Write an :func:`evaluate` result as a markdown report, its JSON and PNG figures beside it.

    ``report_path``: the markdown file (``.md`` is added when it has no suffix). Beside it go
    ``<stem>.json`` (the result), ``<stem>_distributions.png`` (generated vs held-out pieces,
    :func:`melody_utils.plots.compare_distributions`) and, when the result holds a sweep,
    ``<stem>_sweep.png`` (:func:`melody_utils.plots.plot_sweep`); the report links the PNGs.
    Every file is written atomically. Returns (the report text, {"markdown", "json", and each
    figure's name: its path}).
    """
    import json
    from pathlib import Path
    from urllib.parse import quote

    from . import plots
    from .midi import atomic_write_bytes

    report_path = Path(report_path).expanduser()
    report_path = report_path if report_path.suffix else report_path.with_suffix(".md")
    if report_path.is_dir():
        raise ValueError(f"report path {report_path} is a folder; give a file name, e.g. {report_path / 'evaluation.md'}")
    paths = {}
    figures = {}
    if result.get("piece_stats"):
        ps = result["piece_stats"]
        figures["distributions"] = plots.compare_distributions(ps["generated"], ps["reference"], title="generated vs held-out pieces")
    if result.get("sweep"):
        figures["sweep"] = plots.plot_sweep(result["sweep"])
    for name, fig in figures.items():
        png = report_path.with_name(f"{report_path.stem}_{name}.png")
        paths[name] = atomic_write_bytes(png, lambda tmp, fig=fig: fig.savefig(tmp, format="png"))
    report = format_report(result, {name: quote(path.name) for name, path in paths.items()})
    text = json.dumps(result, indent=1)
    paths["markdown"] = atomic_write_bytes(report_path, lambda tmp: Path(tmp).write_text(report))
    paths["json"] = atomic_write_bytes(report_path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(text))
    return report, paths


def add_evaluate_arguments(parser) -> None:
    """Flags of the CLI's ``evaluate`` subcommand (the CLI adds --checkpoint and the common ones)."""
    import argparse

    from .cli import POSITIVE_FLOAT, NON_NEGATIVE_INT, POSITIVE_INT, PROBABILITY

    def at_least_two(text):
        value = POSITIVE_INT(text)
        if value < 2:
            raise argparse.ArgumentTypeError(f"must be >= 2 (a distribution needs 2 pieces), got {text}")
        return value

    def number_list(parse_one, example):
        def parse(text):
            items = [t.strip() for t in text.split(",")]
            if not all(items):
                raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as {example}, got {text!r}")
            try:
                return [parse_one(t) for t in items]
            except argparse.ArgumentTypeError as exc:
                raise argparse.ArgumentTypeError(f"{exc} (in the list {text!r})") from None

        return parse

    g = parser.add_argument_group("evaluation")
    g.add_argument("--samples", type=at_least_two, default=8, help="pieces to generate for the statistics (default 8)")
    g.add_argument("--n-notes", type=POSITIVE_INT, help="notes per generated piece (default: the checkpoint's sample.n_notes)")
    g.add_argument("--split", choices=("test", "validation"), default="test", help="held-out pieces to score (default test)")
    g.add_argument("--temperature", type=POSITIVE_FLOAT, help="sampling temperature (default: the checkpoint's)")
    g.add_argument("--top-k", type=NON_NEGATIVE_INT, help="top-k filter (0 = off; default: the checkpoint's)")
    g.add_argument("--top-p", type=PROBABILITY, help="nucleus mass in (0, 1] (default: the checkpoint's)")
    g.add_argument("--report", metavar="PATH", help="also write the report as markdown to PATH, the JSON and PNG figures beside it")
    g = parser.add_argument_group("sampling sweep")
    g.add_argument("--sweep", action="store_true",
                   help="also generate --samples pieces per temperature x top_p setting, score each setting against the "
                        "held-out pieces and suggest the best one")
    g.add_argument("--sweep-temperatures", type=number_list(POSITIVE_FLOAT, "0.8,1.0"), metavar="T1,T2,...",
                   help=f"temperatures of the sweep (implies --sweep; default {','.join(map(str, SWEEP_TEMPERATURES))})")
    g.add_argument("--sweep-top-ps", type=number_list(PROBABILITY, "0.9,1.0"), metavar="P1,P2,...",
                   help=f"top_p values of the sweep (implies --sweep; default {','.join(map(str, SWEEP_TOP_PS))})")


def evaluate_cli(args) -> int:
    """The CLI's ``evaluate`` subcommand: print the report; write it (JSON and figures too) with --report.

    The checkpoint is ``--checkpoint``, else OUT_DIR/ckpt_best.pt; the device ``--device`` (default
    auto: CUDA when available); the cache is the checkpoint's, under ``--cache-dir`` when given.
    ``--sweep`` (or a sweep grid flag) adds the sampling sweep.
    """
    from pathlib import Path

    from .cli import config_from_args, default_checkpoint
    from .train import resolve_device

    cfg = config_from_args(args)
    checkpoint = Path(args.checkpoint).expanduser() if getattr(args, "checkpoint", None) else default_checkpoint(cfg.train.out_dir)
    report_path = getattr(args, "report", None)
    if report_path:  # checked before the evaluation, which may take minutes
        report_path = Path(report_path).expanduser()
        report_path = report_path if report_path.suffix else report_path.with_suffix(".md")
        if report_path.is_dir():
            raise ValueError(f"--report {report_path} is a folder; give a file name, e.g. {report_path / 'evaluation.md'}")
    temperatures, top_ps = getattr(args, "sweep_temperatures", None), getattr(args, "sweep_top_ps", None)
    sweep = None
    if getattr(args, "sweep", False) or temperatures or top_ps:
        sweep = {"temperatures": temperatures, "top_ps": top_ps}  # None: the default grid
    result = evaluate(
        checkpoint,
        n_samples=getattr(args, "samples", 8),
        n_notes=getattr(args, "n_notes", None),
        split=getattr(args, "split", "test"),
        temperature=getattr(args, "temperature", None),
        top_k=getattr(args, "top_k", None),
        top_p=getattr(args, "top_p", None),
        device=str(resolve_device(cfg.train.device)),
        seed=args.seed if getattr(args, "seed", None) is not None else 0,
        cache_dir=getattr(args, "cache_dir", None),
        progress=not getattr(args, "quiet", False),
        sweep=sweep,
    )
    if not report_path:
        print(format_report(result))
        return 0
    report, paths = write_report(result, report_path)
    print(report)
    print("\n".join(f"{name}: {path}" for name, path in paths.items()))
    return 0
