"""Training windows sliced straight from the token cache.

A window starting at note ``s`` of a piece gives

- ``inputs``  (T, F): notes s .. s+T-1
- ``targets`` (T, F): notes s+1 .. s+T, the next note after every position (causal models)
- ``next``    (F,):   note s+T, the single next note after the window (the seed's window->next
  models); equal to ``targets[-1]``.
- ``composer`` ():    the piece's composer id (``cache.composer_ids``; 0 = "any"), replaced by 0
  in a share ``composer_dropout`` of the windows, drawn per epoch (classifier-free style: the
  model also learns the unconditional distribution).

With ``perform`` > 0 a share of the windows, drawn per epoch, is read from one of the cache's
performed copies of its piece (``cache.variants``: the same notes played like a performer,
:mod:`melody_utils.music.perform`) at the same position: the augmentation costs an index, not MIDI work.

Windows never cross a piece boundary, and splits are by piece (see corpus.split_by_piece),
never by window. Nothing is materialised per window: a window is a start index into the
concatenated token array, and a whole batch is gathered with one fancy-indexing call
(``__getitems__``), so the loader costs microseconds per batch instead of a Python loop over
samples. Tensors stay on the CPU; the training loop moves whole batches to the device.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .corpus import TokenCache


def window_starts(offsets: np.ndarray, pieces: np.ndarray, window: int, stride: int) -> np.ndarray:
    """Global start indices of all windows of ``window + 1`` notes inside the given pieces.

    Each piece of length L >= window + 1 gives starts 0, stride, ... and, when the stride
    leaves a tail, one last window ending exactly at the piece's end (so no note is unused).
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got window={window}, stride={stride}")
    out = []
    for i in pieces:
        a, b = int(offsets[i]), int(offsets[i + 1])
        last = b - a - (window + 1)
        if last < 0:
            continue
        s = np.arange(0, last + 1, stride)
        if s[-1] != last:
            s = np.append(s, last)
        out.append(a + s)
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


def check_augmentation(transpose: int, composer_dropout: float, unit: str, perform: float = 0.0) -> None:
    """ValueError naming the setting when ``data.transpose``, ``data.composer_dropout`` (a share of
    ``unit``: windows, or pieces for streams) or ``data.perform`` is out of range."""
    if transpose < 0:
        raise ValueError(f"data.transpose must be >= 0 semitones, got {transpose}")
    if not 0.0 <= composer_dropout <= 1.0:
        raise ValueError(f"data.composer_dropout must be in [0, 1] (a share of {unit}), got {composer_dropout}")
    if not 0.0 <= perform <= 1.0:
        raise ValueError(f"data.perform must be in [0, 1] (a share of {unit}), got {perform}")


class MusicDataset(Dataset):
    """Windows of ``window`` notes (+ the next one) from one split of a :class:`TokenCache`.

    ``transpose`` > 0 shifts every window by a random number of semitones in
    [-transpose, transpose] (the whole window alike, clipped so every pitch stays in range): the
    music stays the music in another key, which multiplies a small corpus's variety. The shifts
    are drawn per epoch from (seed, epoch) (see :meth:`set_epoch`), so runs and resumes are exact.
    ``composer_dropout`` in [0, 1]: the share of windows whose composer id is replaced by 0 ("any"),
    drawn alike per epoch (0 for validation and evaluation: the true composer). ``perform`` in [0, 1]:
    the share of windows read from a performed copy (module docstring), drawn alike per epoch.
    """

    def __init__(self, cache: TokenCache, split: str = "train", window: int = 64, stride: int = 1,
                 transpose: int = 0, seed: int = 0, composer_dropout: float = 0.0, perform: float = 0.0):
        self.cache, self.split, self.window, self.stride = cache, split, window, stride
        self.starts = window_starts(cache.offsets, cache.piece_indices(split), window, stride)
        check_augmentation(transpose, composer_dropout, "windows", perform)
        if perform and cache.variants is None:
            raise ValueError("data.perform > 0 reads performed copies of the pieces, and this token cache holds none; "
                             "prepare it with the same data.perform (corpus.prepare makes them)")
        self.perform = float(perform)
        versions = [cache.tokens] + (list(cache.variants) if perform else [])  # the piece, then its performed copies
        self._tokens = torch.from_numpy(np.concatenate(versions).astype(np.int64))  # (V * N, F), converted once
        self._span = torch.arange(window + 1)  # (T+1,)
        self.transpose, self.seed = int(transpose), seed
        self.shifts = None  # (n_windows,) semitones for the current epoch, or None
        self.version = None  # (n_windows,) offset of each window's version in _tokens for the current epoch, or None
        self.composer_dropout = float(composer_dropout)
        piece = np.searchsorted(cache.offsets, self.starts, side="right") - 1  # (n_windows,) piece of each window
        self.true_composer = torch.from_numpy(cache.composer_ids[piece] if len(cache) else np.zeros(0, np.int64))
        self.composer = self.true_composer  # (n_windows,) ids for the current epoch
        if self.transpose and len(self.starts):
            idx = self.starts[:, None] + np.arange(window + 1)  # (n_windows, T+1)
            lows, highs = zip(*((p.min(1), p.max(1)) for p in (v[:, 0].astype(np.int64)[idx] for v in versions)))
            self._room_down = np.min(lows, axis=0)  # semitones each window (in every version) can move down ...
            self._room_up = cache.vocab.n_pitch - 1 - np.max(highs, axis=0)  # ... and up
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        if self.composer_dropout:
            keep = np.random.default_rng([self.seed, epoch, 11]).random(len(self.starts)) >= self.composer_dropout
            self.composer = self.true_composer * torch.from_numpy(keep)
        if self.transpose and len(self.starts):
            rng = np.random.default_rng([self.seed, epoch, 7])
            shifts = rng.integers(-self.transpose, self.transpose + 1, len(self.starts))
            self.shifts = torch.from_numpy(np.clip(shifts, -self._room_down, self._room_up))
        if self.perform and len(self.starts):
            rng = np.random.default_rng([self.seed, epoch, 13])
            copies = len(self.cache.variants)
            version = np.where(rng.random(len(self.starts)) < self.perform, rng.integers(1, copies + 1, len(self.starts)), 0)
            self.version = torch.from_numpy(version * len(self.cache.tokens))

    def __len__(self) -> int:
        return len(self.starts)

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        starts = torch.from_numpy(self.starts[np.asarray(indices, dtype=np.int64)])  # (B,)
        if self.version is not None:
            starts = starts + self.version[np.asarray(indices, dtype=np.int64)]  # in the window's version
        seq = self._tokens[starts[:, None] + self._span]  # (B, T+1, F)
        if self.shifts is not None:
            seq[..., 0] += self.shifts[np.asarray(indices, dtype=np.int64)][:, None]
        composer = self.composer[np.asarray(indices, dtype=np.int64)]  # (B,)
        return {"inputs": seq[:, :-1], "targets": seq[:, 1:], "next": seq[:, -1], "composer": composer}

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([idx]).items()}


def _identity(batch):
    return batch


class EpochShuffle(Sampler):
    """Seeded shuffling whose order depends only on (seed, epoch): resumable and reproducible.

    ``sample`` > 0 makes an epoch a random sample of that many windows (a fresh sample each
    epoch): with stride-1 windows (the seed's window->next models) a full pass over MAESTRO is
    millions of windows, and an epoch of a sample gives regular validation and checkpoints.
    ``set_epoch`` also tells the dataset (its transpositions are drawn per epoch)."""

    def __init__(self, n: int, seed: int, dataset: MusicDataset | None = None, sample: int = 0):
        if sample < 0:
            raise ValueError(f"train.epoch_windows must be >= 0 (0 = every window), got {sample}")
        self.n, self.seed, self.epoch, self.dataset = n, seed, 0, dataset
        self.sample = min(sample, n) if sample else 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.dataset is not None:
            self.dataset.set_epoch(epoch)

    def __iter__(self):
        g = np.random.default_rng([self.seed, self.epoch])
        return iter(g.permutation(self.n)[: len(self)].tolist())

    def __len__(self) -> int:
        return self.sample or self.n


def make_loader(cache: TokenCache, split: str, window: int, stride: int, batch_size: int, shuffle: bool,
                seed: int = 0, drop_last: bool = False, num_workers: int = 0, sampler: Sampler | None = None,
                transpose: int = 0, epoch_windows: int = 0, composer_dropout: float = 0.0,
                perform: float = 0.0) -> DataLoader:
    """A DataLoader of batch dicts (see module docstring). ``loader.sampler.set_epoch(e)`` reshuffles
    (and redraws the transpositions, when ``transpose`` > 0); ``epoch_windows`` > 0 makes each
    shuffled epoch a random sample of that many windows; ``composer_dropout`` and ``perform`` see :class:`MusicDataset`."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ds = MusicDataset(cache, split, window, stride, transpose=transpose, seed=seed, composer_dropout=composer_dropout,
                      perform=perform)
    if len(ds) == 0:
        raise ValueError(
            f"the {split!r} split has no piece with more than {window} notes; use a smaller data.window "
            f"(now {window}) or a larger corpus"
        )
    if sampler is None:
        sampler = EpochShuffle(len(ds), seed, ds, sample=epoch_windows) if shuffle else None
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, shuffle=False, drop_last=drop_last,
                      num_workers=num_workers, collate_fn=_identity)
