"""Tests of melody_utils.data.windows: training windows that never cross pieces, the dataset and its
loader, transposition, an epoch's sample of windows, and windows read from performed copies."""

import numpy as np
import pytest
import torch

from melody_utils.data import windows as data
from melody_utils.data.corpus import TokenCache
from melody_utils.data.windows import MusicDataset, make_loader, window_starts
from melody_utils.music.tokens import seed_vocab


def _cache():
    rng = np.random.default_rng(0)
    v = seed_vocab()
    lengths = [10, 3, 25, 7]
    pieces = [np.stack([rng.integers(0, s, n) for s in v.sizes], 1) for n in lengths]
    return TokenCache.from_pieces(pieces, v, splits=["train", "train", "train", "test"]), pieces


def test_windows_never_cross_pieces_and_cover_every_note():
    cache, pieces = _cache()
    starts = window_starts(cache.offsets, cache.piece_indices("train"), window=4, stride=3)
    for s in starts:
        piece = np.searchsorted(cache.offsets, s, side="right") - 1
        assert s + 5 <= cache.offsets[piece + 1]
    covered = set()
    for s in starts:
        covered.update(range(s, s + 5))
    want = set(range(0, 10)) | set(range(13, 38))  # the 3-note piece is too short
    assert covered == want


def test_dataset_targets_are_shifted_inputs_and_next_is_last_target():
    cache, pieces = _cache()
    ds = MusicDataset(cache, "train", window=4, stride=1)
    b = ds.__getitems__(list(range(len(ds))))
    assert b["inputs"].shape == (len(ds), 4, 3) and b["inputs"].dtype == torch.int64
    torch.testing.assert_close(b["inputs"][:, 1:], b["targets"][:, :-1])
    torch.testing.assert_close(b["next"], b["targets"][:, -1])
    first = torch.from_numpy(pieces[0][:5].astype(np.int64))
    torch.testing.assert_close(ds[0]["inputs"], first[:4])
    torch.testing.assert_close(ds[0]["next"], first[4])


def test_loader_batches_and_reproducible_shuffle():
    cache, _ = _cache()
    a = make_loader(cache, "train", window=4, stride=1, batch_size=5, shuffle=True, seed=1)
    b = make_loader(cache, "train", window=4, stride=1, batch_size=5, shuffle=True, seed=1)
    ba, bb = next(iter(a)), next(iter(b))
    assert ba["inputs"].shape == (5, 4, 3)
    torch.testing.assert_close(ba["inputs"], bb["inputs"])
    a.sampler.set_epoch(1)
    assert not torch.equal(next(iter(a))["inputs"], ba["inputs"])
    assert sum(len(x["next"]) for x in a) == len(a.dataset)


def test_loader_on_split_without_long_pieces_names_the_window():
    cache, _ = _cache()
    with pytest.raises(ValueError, match="data.window"):
        make_loader(cache, "test", window=30, stride=1, batch_size=4, shuffle=False)


def test_transposition_shifts_whole_windows_in_range_and_is_reproducible():
    cache, _ = _cache()
    plain = MusicDataset(cache, "train", window=4, stride=1)
    moved = MusicDataset(cache, "train", window=4, stride=1, transpose=5, seed=1)
    idx = list(range(len(plain)))
    a, b = plain.__getitems__(idx), moved.__getitems__(idx)
    diff = b["inputs"][..., 0] - a["inputs"][..., 0]  # (B, T)
    assert torch.all(diff == diff[:, :1]) and torch.all(b["next"][:, 0] - a["next"][:, 0] == diff[:, 0])
    assert diff.abs().max() <= 5 and (diff != 0).any()
    assert b["inputs"][..., 0].min() >= 0 and b["inputs"][..., 0].max() < cache.vocab.n_pitch
    torch.testing.assert_close(b["inputs"][..., 1:], a["inputs"][..., 1:])  # timing untouched
    again = MusicDataset(cache, "train", window=4, stride=1, transpose=5, seed=1)
    torch.testing.assert_close(again.__getitems__(idx)["inputs"], b["inputs"])
    moved.set_epoch(1)
    assert not torch.equal(moved.__getitems__(idx)["inputs"], b["inputs"])


def test_epoch_of_a_sample_draws_a_fresh_reproducible_subset_each_epoch():
    order = data.EpochShuffle(1000, seed=1, sample=100)
    assert len(order) == 100
    e0 = list(order)
    assert len(set(e0)) == 100 and all(0 <= i < 1000 for i in e0)
    order.set_epoch(1)
    e1 = list(order)
    assert set(e1) != set(e0)  # another sample
    order.set_epoch(0)
    assert list(order) == e0  # the same (seed, epoch), the same windows: resumable
    assert len(data.EpochShuffle(50, seed=1, sample=100)) == 50  # a sample larger than the set is the set
    with pytest.raises(ValueError, match="train.epoch_windows"):
        data.EpochShuffle(10, seed=1, sample=-1)


def test_windows_are_read_from_performed_copies_in_their_share_reproducibly(performed_cache):
    cache, _ = performed_cache
    plain = MusicDataset(cache, "train", window=32, stride=16)
    mixed = MusicDataset(cache, "train", window=32, stride=16, perform=0.5, transpose=6, seed=3)
    idx = list(range(len(plain)))
    a, b = plain.__getitems__(idx), mixed.__getitems__(idx)
    version = mixed.version.numpy() // len(cache.tokens)
    assert 0.4 < np.mean(version > 0) < 0.6 and set(np.unique(version)) == {0, 1, 2}
    i = int(np.flatnonzero(version == 2)[0])
    s = mixed.starts[i]
    expected = cache.variants[1][s:s + 33].astype(np.int64)
    expected[:, 0] += int(mixed.shifts[i])
    np.testing.assert_array_equal(b["inputs"][i].numpy(), expected[:-1])  # the copy's notes at the same place
    j = int(np.flatnonzero(version == 0)[0])
    torch.testing.assert_close(b["inputs"][j, :, 1:], a["inputs"][j, :, 1:])  # the piece itself
    pitch = b["inputs"][..., 0]
    assert pitch.min() >= 0 and pitch.max() < cache.vocab.n_pitch  # transposed in range in every version
    again = MusicDataset(cache, "train", window=32, stride=16, perform=0.5, transpose=6, seed=3)
    torch.testing.assert_close(again.__getitems__(idx)["inputs"], b["inputs"])
    mixed.set_epoch(1)
    assert not torch.equal(mixed.version, again.version)  # redrawn every epoch
    with pytest.raises(ValueError, match="data.perform must be in"):
        MusicDataset(cache, "train", window=32, stride=16, perform=1.5)
    no_copies = TokenCache(cache.tokens, cache.offsets, cache.pieces, cache.vocab)
    with pytest.raises(ValueError, match="holds none; prepare it with the same data.perform"):
        MusicDataset(no_copies, "train", window=32, stride=16, perform=0.5)
