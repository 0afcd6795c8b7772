"""Training batches of parallel streams of consecutive windows (``train.carry_state``).

A causal model generates and is scored reading a piece from its start with its LSTM state
carried; trained on independent windows (:mod:`melody_utils.data.windows`) it only ever sees
``data.window`` notes of context, and the first notes of every window are predicted from a zero
state. With ``train.carry_state`` the training batch is instead ``B`` parallel *streams*: every
epoch the training pieces are put in an order drawn from (seed, epoch), each piece is cut into
consecutive, non-overlapping windows of ``data.window`` notes (+ 1 target; window ``k`` of a
piece starts at note ``k * window``), and the epoch's sequence of windows is split into ``B``
contiguous runs of ``K`` windows, one per stream: batch ``k`` holds window ``k`` of every stream.
The model's final state after batch ``k`` (LSTM h/c and the last pitch) is detached and carried
into batch ``k + 1`` (truncated back-propagation through time), so the model learns to use
context much longer than a window.

- ``reset`` (B,) bool marks the rows whose window begins a piece, or begins the stream (the
  first batch of an epoch, where a stream may start inside a piece): those rows start from a
  zero state (``CausalLSTM.stream_loss``). A stream never crosses a piece without that flag.
- Left out: pieces shorter than ``window + 1`` notes, the last ``(length - 1) % window`` notes
  of each piece (a tail shorter than a window; the state has read everything before it), and
  the last ``W mod B`` windows of the epoch's order (fewer than one batch; which ones changes
  with the order). Every other note of the split is a target exactly once per epoch.
- Transposition: one shift per piece per epoch (the whole piece alike, so the carried state
  never sees a key jump), clipped so the piece stays in range; composer id per piece, replaced
  by 0 ("any") for a share ``composer_dropout`` of the pieces, drawn per epoch.
- Distributed: ``world`` processes share ``world * B`` streams; rank ``r`` trains on streams
  ``r*B .. r*B+B-1`` of that layout (one layout for all ranks: nothing is read twice).
- A batch is gathered with one fancy-indexing call, as in :mod:`melody_utils.data.windows`.
- Resume: batches depend only on (seed, epoch, batch index), so a resumed run trains on the
  interrupted epoch's remaining batches; the carried state itself is not saved, so the first
  batch after a resume starts from a zero state in every row.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .corpus import TokenCache
from .windows import check_augmentation


def piece_windows(lengths: np.ndarray, window: int) -> np.ndarray:
    """Consecutive windows of ``window + 1`` notes (overlapping by one note) in pieces of ``lengths`` notes."""
    return np.maximum(np.asarray(lengths, np.int64) - 1, 0) // window


class StreamDataset(Dataset):
    """Item ``k``: batch ``k`` of the epoch, a dict of ``inputs``/``targets`` (B, T, F), ``next`` (B, F),
    ``composer`` (B,) and ``reset`` (B,) bool. ``set_epoch`` draws the piece order, shifts and dropouts."""

    def __init__(self, cache: TokenCache, split: str, window: int, batch_size: int, transpose: int = 0,
                 seed: int = 0, composer_dropout: float = 0.0, rank: int = 0, world: int = 1):
        if window < 1 or batch_size < 1:
            raise ValueError(f"data.window ({window}) and train.batch_size ({batch_size}) must be >= 1")
        check_augmentation(transpose, composer_dropout, "pieces")
        pieces = cache.piece_indices(split)
        n_win = piece_windows(np.diff(cache.offsets)[pieces], window)
        self.pieces, self.n_windows = pieces[n_win > 0], n_win[n_win > 0]  # (P,) pieces that give a window
        self.window, self.batch_size, self.seed = window, batch_size, seed
        self.transpose, self.composer_dropout = int(transpose), float(composer_dropout)
        self.streams, self.rows = batch_size * world, slice(rank * batch_size, (rank + 1) * batch_size)
        self.n_batches = int(self.n_windows.sum()) // self.streams  # K windows per stream
        if self.n_batches == 0:
            raise ValueError(
                f"the {split!r} split gives {int(self.n_windows.sum())} windows of {window} notes, fewer than "
                f"{self.streams} streams (train.batch_size x processes); lower train.batch_size or data.window, "
                f"or set train.carry_state=false")
        self.starts_of_piece = cache.offsets[self.pieces]  # (P,) global index of each piece's first note
        self._tokens = torch.from_numpy(cache.tokens.astype(np.int64))  # (N, F), converted once
        self._span = torch.arange(window + 1)  # (T+1,)
        self.true_composer = cache.composer_ids[self.pieces]  # (P,)
        if self.transpose:
            pitch = cache.tokens[:, 0].astype(np.int64)
            ends = self.starts_of_piece + self.n_windows * window + 1  # the notes the windows read
            self._room_down = np.array([pitch[a:b].min() for a, b in zip(self.starts_of_piece, ends)])
            self._room_up = cache.vocab.n_pitch - 1 - np.array([pitch[a:b].max() for a, b in zip(self.starts_of_piece, ends)])
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Lay out epoch ``epoch``: piece order, streams, shifts and composer dropouts (from (seed, epoch))."""
        order = np.random.default_rng([self.seed, epoch, 13]).permutation(len(self.pieces))  # (P,)
        n = self.n_windows[order]
        piece = np.repeat(order, n)  # (W,) piece (index into self.pieces) of each window of the epoch
        k_in_piece = np.arange(len(piece)) - np.repeat(np.cumsum(n) - n, n)  # (W,) window number inside its piece
        grid = np.arange(self.streams * self.n_batches).reshape(self.streams, self.n_batches)[self.rows]  # (B, K)
        self.piece = piece[grid]  # (B, K)
        self.starts = torch.from_numpy(self.starts_of_piece[self.piece] + k_in_piece[grid] * self.window)  # (B, K)
        reset = k_in_piece[grid] == 0
        reset[:, 0] = True  # a stream starts from a zero state, even inside a piece
        self.reset = torch.from_numpy(reset)  # (B, K)
        composer = self.true_composer
        if self.composer_dropout:
            keep = np.random.default_rng([self.seed, epoch, 11]).random(len(self.pieces)) >= self.composer_dropout
            composer = composer * keep
        self.composer = torch.from_numpy(np.asarray(composer, np.int64)[self.piece])  # (B, K)
        self.shift = None
        if self.transpose:
            shifts = np.random.default_rng([self.seed, epoch, 7]).integers(-self.transpose, self.transpose + 1, len(self.pieces))
            self.shift = torch.from_numpy(np.clip(shifts, -self._room_down, self._room_up)[self.piece])  # (B, K)

    def __len__(self) -> int:
        return self.n_batches

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        if not 0 <= k < self.n_batches:
            raise IndexError(f"batch {k} of an epoch of {self.n_batches}")
        seq = self._tokens[self.starts[:, k, None] + self._span]  # (B, T+1, F)
        if self.shift is not None:
            seq[..., 0] += self.shift[:, k, None]
        return {"inputs": seq[:, :-1], "targets": seq[:, 1:], "next": seq[:, -1],
                "composer": self.composer[:, k], "reset": self.reset[:, k]}


class InOrder(Sampler):
    """Batches 0..K-1 in order (the streams must be read in order); ``set_epoch`` lays out the epoch."""

    def __init__(self, dataset: StreamDataset):
        self.dataset = dataset

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __iter__(self):
        return iter(range(len(self.dataset)))

    def __len__(self) -> int:
        return len(self.dataset)


def make_stream_loader(cache: TokenCache, split: str, window: int, batch_size: int, seed: int = 0,
                       transpose: int = 0, composer_dropout: float = 0.0, epoch_windows: int = 0, rank: int = 0,
                       world: int = 1, num_workers: int = 0) -> DataLoader:
    """A DataLoader of stream batches (see the module docstring); ``loader.sampler.set_epoch(e)`` lays out epoch ``e``.
    ``epoch_windows`` must be 0: an epoch of streams reads every piece."""
    if epoch_windows:
        raise ValueError(f"train.epoch_windows={epoch_windows} samples independent windows, but train.carry_state reads "
                         f"every piece in streams; set train.epoch_windows=0 or train.carry_state=false")
    ds = StreamDataset(cache, split, window, batch_size, transpose, seed, composer_dropout, rank, world)
    return DataLoader(ds, batch_size=None, sampler=InOrder(ds), num_workers=num_workers)
