"""Likelihood: how well a model, or a baseline, predicts held-out notes.

:func:`model_nll` gives a model's negative log-likelihood per note over a loader (the training
loop's validation pass), :func:`piece_nll` a causal model's over whole pieces read from their
start. Two baselines on the same tokens put the numbers in context: :func:`uniform_nll` (every id
equally likely) and :func:`ngram_nll` (count-based n-grams of order 1-3, see :class:`NGramModel`).

All results share one layout::

    {"nats": {"pitch": .., "step": .., "duration": .., "total": ..},
     "bits": {... the same in bits ...},
     "n_notes": number of predicted notes}
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checks import check_number
from ..generate.memory import MEMORY, MemorySettings, memory_nll
from ..music.tokens import FIELDS
from ..train.validation import evaluate_counted

LN2 = math.log(2.0)
PIECE_CHUNK = 2048  # notes per forward pass when a causal model reads a whole piece

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
    of supervised notes (:func:`melody_utils.train.validation.validation_loss`, the validation pass of training),
    so the result is the mean over all notes, whatever the batch sizes.
    """
    batches = tqdm(loader, desc="held-out NLL", disable=not progress, leave=False)
    _, heads, n = evaluate_counted(model, batches, torch.device(device))
    if n == 0:
        raise ValueError("the loader yielded no batches: the split holds no window; use a shorter window or another split")
    return nll_result(heads, n)


def _piece_outputs(model, pieces, device, progress: bool, composers):
    """For each piece read from its start (state carried across chunks of :data:`PIECE_CHUNK` notes):
    (piece index, chunk start a, logits [(T, V_f)] of notes a+1.., their targets (T, F))."""
    if not model.causal:
        raise ValueError("piece_nll needs a causal model; score window models with model_nll")
    return _piece_chunks(model, pieces, device, progress, composers)


def _piece_chunks(model, pieces, device, progress: bool, composers):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ids = np.zeros(len(pieces), np.int64) if composers is None else np.asarray(composers, np.int64)
            for p, (toks, c) in enumerate(zip(tqdm(pieces, desc="held-out NLL", disable=not progress, leave=False), ids)):
                t = torch.as_tensor(np.asarray(toks, dtype=np.int64), device=device)
                comp = torch.full((1,), int(c), dtype=torch.long, device=device)
                state = None
                for a in range(0, len(t) - 1, PIECE_CHUNK):
                    x, y = t[None, a: a + PIECE_CHUNK], t[None, a + 1: a + 1 + PIECE_CHUNK]  # (1, T, F)
                    x = x[:, : y.shape[1]]
                    h, state = model.encode(x, state, comp)
                    logits = model.heads(h, next_pitch=y[..., 0], next_fields=y[..., 1:])
                    yield p, a, [lg[0] for lg in logits], y[0]
    finally:
        model.train(was_training)


def piece_nll(model, pieces, device="cpu", context: int = 1, progress: bool = False, composers=None) -> dict:
    """Held-out NLL of a causal model that reads each piece from its start, carrying its state.

    Scores every note with at least ``context`` notes before it (``context=1``: every note but
    each piece's first, the notes :func:`ngram_nll` scores too), each predicted from the whole
    piece before it: the context a model has when it generates. Pieces are read in chunks of
    :data:`PIECE_CHUNK` notes, the LSTM state carried across chunks, so memory stays bounded.
    ``composers``: each piece's composer id (``cache.composer_ids``; None = 0, "any") for models
    trained with composers.
    """
    if context < 1:
        raise ValueError(f"context must be >= 1, got {context}")
    chunks = _piece_outputs(model, pieces, device, progress, composers)
    sums = dict.fromkeys(model.fields, 0.0)
    n = 0
    for _, a, logits, y in chunks:
        first = max(context - 1 - a, 0)  # position i predicts note a + i + 1
        if first >= len(y):
            continue
        for k, f in enumerate(model.fields):
            sums[f] += float(F.cross_entropy(logits[k][first:], y[first:, k], reduction="sum"))
        n += len(y) - first
    if n == 0:
        raise ValueError(f"no held-out piece has more than {context} notes to score")
    return nll_result({f: v / n for f, v in sums.items()}, n)


def piece_logprobs(model, pieces, device="cpu", progress: bool = False, composers=None) -> list[np.ndarray]:
    """Per piece, the log-probability the causal model gives each field of each note but the first:
    (N - 1, F) float64 arrays, row i for note i + 1 (read as in :func:`piece_nll`; what a piece
    memory is mixed with, :func:`melody_utils.generate.memory.memory_nll`)."""
    out = [np.zeros((max(len(t) - 1, 0), len(model.fields))) for t in pieces]
    for p, a, logits, y in _piece_outputs(model, pieces, device, progress, composers):
        for k, lg in enumerate(logits):
            lp = torch.log_softmax(lg.float(), dim=-1).gather(-1, y[:, k: k + 1])[:, 0]  # (T,)
            out[p][a: a + len(y), k] = lp.double().cpu().numpy()
    return out


def piece_memory_nll(model, pieces, strength: float = 1.0, device="cpu", context: int = 1, progress: bool = False,
                     composers=None, settings: MemorySettings = MEMORY, logprobs=None) -> dict:
    """:func:`piece_nll` of the model mixed with the piece memory at ``strength`` with ``settings``
    (:func:`melody_utils.generate.memory.memory_nll`): the same notes, the shared layout. ``logprobs``: the
    model's :func:`piece_logprobs` on ``pieces`` when already computed."""
    if context < 1:
        raise ValueError(f"context must be >= 1, got {context}")
    logprobs = piece_logprobs(model, pieces, device, progress, composers) if logprobs is None else logprobs
    result = memory_nll(logprobs, pieces, strength, context, settings)
    return nll_result({f: result["nats"][k] for k, f in enumerate(model.fields)}, result["n_notes"])


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
        self.order = check_number("order", order, "an integer >= 1", lo=1, integer=True)
        self.sizes, self.fields = _sizes_fields(vocab)
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
