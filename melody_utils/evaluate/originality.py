"""Is a generated piece copied from the training corpus? An index of the corpus's 8-note sequences.

:class:`OriginalityIndex` hashes every run of :data:`NGRAM` consecutive notes of the training
split of a :class:`~melody_utils.data.corpus.TokenCache` (never across two pieces). A sequence is
its notes' (pitch, step, duration) ids, with two choices that make a copy easy to recognise:

- **transposition-aware**: pitches are taken relative to the sequence's first note, so a
  passage copied a few semitones up or down still matches (the report gives the shift);
- the first note's step (time since the note before the sequence) is left out.

Each sequence becomes one 64-bit hash (a weighted sum of per-note codes, then a mixing step);
the index is the sorted hashes with the corpus position of each one's first occurrence, so a
lookup is a binary search (``np.searchsorted``) and a million notes index in well under a
second. A build that takes longer than :data:`CACHE_AFTER_S` is saved beside the token cache
(temp file + rename) and reloaded next time; where that folder cannot be written (read-only,
full), the index is used without being saved.

:meth:`OriginalityIndex.check` reports, for a generated piece: the longest stretch of
consecutive notes all of whose 8-note sequences occur in the corpus (``longest_copy``, in notes;
the corpus piece, note and transposition where its first sequence occurs), and the share of
the piece's 8-note sequences found there (``copied_share``). Music that does not copy scores
~0 on both; a passage lifted from a training piece shows as a run at least as long as it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import atomic_write_bytes

NGRAM = 8  # notes per hashed sequence
CACHE_AFTER_S = 1.0  # builds slower than this are saved beside the token cache
INDEX_FORMAT = 1  # bump when the hashing changes
_PITCH_OFFSET = 128  # relative pitches -87..87 become non-negative codes
_MULTIPLIERS = np.random.default_rng(20240611).integers(1, 2**63, size=64, dtype=np.uint64) | np.uint64(1)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over the whole 64-bit hash (wrapping uint64)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def ngram_hashes(tokens, sizes, n: int = NGRAM) -> np.ndarray:
    """(N, F) ids -> (N - n + 1,) uint64 hash of each run of ``n`` notes (empty when N < n)."""
    t = np.asarray(tokens, dtype=np.int64)
    m = len(t) - n + 1
    if m <= 0:
        return np.zeros(0, np.uint64)
    _, n_step, n_dur = (int(s) for s in sizes[:3])
    h = np.zeros(m, np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            rel = t[k: k + m, 0] - t[:m, 0] + _PITCH_OFFSET
            step = t[k: k + m, 1] if k else np.zeros(m, np.int64)  # the first note's step is left out
            code = ((rel * n_step + step) * n_dur + t[k: k + m, 2]).astype(np.uint64)
            h += _mix(code + np.uint64(k)) * _MULTIPLIERS[k]
        return _mix(h)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of the runs of True in a bool array."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    start, end = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return start, end - start


@dataclass
class OriginalityIndex:
    hashes: np.ndarray  # (M,) uint64, sorted, unique
    first: np.ndarray  # (M,) int64: position in the cache's tokens of each hash's first occurrence
    offsets: np.ndarray  # (P + 1,) the cache's piece offsets (positions -> pieces)
    names: list  # P piece names
    sizes: tuple  # the vocabulary's field sizes
    n: int = NGRAM
    tokens: np.ndarray | None = None  # the cache's pitch ids (for the transposition), not saved

    @classmethod
    def build(cls, cache, n: int = NGRAM, split: str = "train") -> "OriginalityIndex":
        """Hash every ``n``-note run of the ``split`` pieces of a TokenCache."""
        tokens, offsets = np.asarray(cache.tokens), np.asarray(cache.offsets)
        piece_of = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))  # (N,)
        in_split = np.zeros(len(offsets) - 1, bool)
        in_split[cache.piece_indices(split)] = True
        h = ngram_hashes(tokens, cache.vocab.sizes, n)
        pos = np.arange(len(h))
        keep = (piece_of[pos] == piece_of[pos + n - 1]) & in_split[piece_of[pos]] if len(h) else pos.astype(bool)
        hashes, idx = np.unique(h[keep], return_index=True)  # first index of each, in position order
        return cls(hashes, pos[keep][idx].astype(np.int64), offsets, [p["name"] for p in cache.pieces],
                   tuple(cache.vocab.sizes), n, tokens[:, 0])

    @classmethod
    def for_cache(cls, cache, n: int = NGRAM) -> "OriginalityIndex":
        """The index of ``cache``: loaded from beside it when saved, else built (and saved when slow)."""
        path = None if cache.path is None else Path(cache.path).with_suffix(f".originality{n}.npz")
        key = None
        if path is not None:
            digest = hashlib.sha1(np.ascontiguousarray(cache.tokens).tobytes()).hexdigest()[:16]
            key = {"format": INDEX_FORMAT, "n": n, "tokens": digest, "pieces": [p["split"] for p in cache.pieces]}
            index = cls._load(path, key, cache)
            if index is not None:
                return index
        t0 = time.perf_counter()
        index = cls.build(cache, n)
        if key is not None and time.perf_counter() - t0 > CACHE_AFTER_S:
            with contextlib.suppress(OSError):  # a speed-up only: never worth failing the caller for
                index._save(path, key)
        return index

    def _save(self, path: Path, key: dict) -> None:
        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, hashes=self.hashes, first=self.first, key=np.array(json.dumps(key)))

        atomic_write_bytes(path, write)

    @classmethod
    def _load(cls, path: Path, key: dict, cache) -> "OriginalityIndex | None":
        try:
            with np.load(path, allow_pickle=False) as z:
                if json.loads(str(z["key"])) != key:
                    return None
                hashes, first = z["hashes"], z["first"]
        except (OSError, ValueError, KeyError):
            return None  # absent, stale or unreadable: rebuild
        return cls(hashes, first, np.asarray(cache.offsets), [p["name"] for p in cache.pieces],
                   tuple(cache.vocab.sizes), key["n"], np.asarray(cache.tokens)[:, 0])

    def lookup(self, tokens) -> np.ndarray:
        """(N, F) ids -> (N - n + 1,) corpus position of each n-note run's first occurrence, -1 if absent."""
        h = ngram_hashes(tokens, self.sizes, self.n)
        i = np.minimum(np.searchsorted(self.hashes, h), max(len(self.hashes) - 1, 0))
        found = (self.hashes[i] == h) if len(self.hashes) else np.zeros(len(h), bool)
        return np.where(found, self.first[i] if len(self.hashes) else -1, -1)

    def check(self, tokens) -> dict:
        """Originality of one piece, (N, F) ids of the index's vocabulary (module docstring).

        ``{"n_notes", "copied_share", "longest_copy", "source", "source_note", "transposition"}``;
        ``source`` is None when nothing is copied.
        """
        t = np.asarray(tokens)
        if t.ndim != 2 or t.shape[1] < 3:
            raise ValueError(f"tokens must have shape (N, {len(self.sizes)}), got {t.shape}")
        where = self.lookup(t)
        result = {"n_notes": len(t), "copied_share": float((where >= 0).mean()) if len(where) else 0.0,
                  "longest_copy": 0, "source": None, "source_note": None, "transposition": None}
        starts, lengths = _runs(where >= 0)
        if len(lengths):
            j = int(np.argmax(lengths))
            pos = int(where[starts[j]])
            piece = int(np.searchsorted(self.offsets, pos, side="right") - 1)
            result.update(longest_copy=int(lengths[j]) + self.n - 1, source=self.names[piece],
                          source_note=pos - int(self.offsets[piece]))
            if self.tokens is not None:
                result["transposition"] = int(t[starts[j], 0]) - int(self.tokens[pos])
        return result


def describe(result: dict) -> str:
    """One line for the command line and notebooks."""
    share = f"{100 * result['copied_share']:.1f}% of its {NGRAM}-note sequences occur in the training corpus"
    if not result["longest_copy"]:
        return f"originality: no {NGRAM}-note sequence copied from the training corpus ({share})"
    shift = result["transposition"]
    moved = f", transposed {shift:+d}" if shift else ""
    return (f"originality: longest run copied from the training corpus {result['longest_copy']} notes "
            f"(from {result['source']}, note {result['source_note']}{moved}); {share}")


def notes_report(index: OriginalityIndex, vocab):
    """``report(notes) -> str``: :func:`describe` of a generated piece (Notes, encoded with ``vocab``,
    the vocabulary of the model and of the index's cache); notebook 04 prints it after each piece."""
    return lambda notes: describe(index.check(vocab.encode(notes)))
