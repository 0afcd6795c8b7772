"""Streams of consecutive windows with the LSTM state carried between batches (train.carry_state)."""

import numpy as np
import pytest
import torch

from melody_utils.data import windows as data, streams
from melody_utils.model import lstm as MD
from melody_utils.train import loop as T
from melody_utils.config import get_config
from melody_utils.data.corpus import TokenCache
from melody_utils.music.tokens import seed_vocab

torch.set_num_threads(1)

WINDOW, BATCH = 8, 3
LENGTHS = (50, 9, 33, 5, 71, 17, 40)  # training pieces: 9 and 17 give exactly 1 and 2 windows, 5 none


def make_cache(lengths=LENGTHS, seed: int = 0) -> TokenCache:
    """Training pieces of the given lengths (random tokens, pitches away from the range's ends) and
    one validation piece; composers A, B, A, ... so composer ids differ between pieces."""
    vocab = seed_vocab()
    rng = np.random.default_rng(seed)
    pieces = [np.stack([rng.integers(20, 60, n)] + [rng.integers(0, s, n) for s in vocab.sizes[1:]], 1)
              for n in (*lengths, 40)]
    composers = ["A" if i % 2 else "B" for i in range(len(lengths))] + ["A"]
    return TokenCache.from_pieces(pieces, vocab, splits=["train"] * len(lengths) + ["validation"], composers=composers)


@pytest.fixture
def cache():
    return make_cache()


def piece_of(cache, note: int) -> int:
    return int(np.searchsorted(cache.offsets, note, side="right") - 1)


def test_streams_read_consecutive_windows_and_flag_every_new_piece(cache):
    ds = streams.StreamDataset(cache, "train", WINDOW, BATCH, seed=3)
    starts, reset = ds.starts.numpy(), ds.reset.numpy()  # (B, K)
    assert reset[:, 0].all()  # every stream starts from a zero state
    for b in range(BATCH):
        for k in range(ds.n_batches):
            p = piece_of(cache, starts[b, k])
            assert starts[b, k] + WINDOW + 1 <= cache.offsets[p + 1]  # the window and its target inside the piece
            assert reset[b, k] == ((starts[b, k] - cache.offsets[p]) == 0 or k == 0)
            if k and not reset[b, k]:  # no reset: the next window of the same piece
                assert starts[b, k] == starts[b, k - 1] + WINDOW and piece_of(cache, starts[b, k - 1]) == p


def test_every_target_once_per_epoch_but_tails_and_the_last_partial_batch(cache):
    ds = streams.StreamDataset(cache, "train", WINDOW, BATCH, seed=0)
    n_windows = streams.piece_windows(np.array(LENGTHS), WINDOW)
    assert list(n_windows) == [(n - 1) // WINDOW for n in LENGTHS] and n_windows[3] == 0
    total = int(n_windows.sum())
    assert ds.n_batches == total // BATCH
    covered = (ds.starts.numpy()[..., None] + 1 + np.arange(WINDOW)).ravel()  # notes predicted this epoch
    assert len(np.unique(covered)) == len(covered) == (total - total % BATCH) * WINDOW  # each at most once
    # The targets that can be covered: notes 1 .. n_windows * WINDOW of each piece (not its tail).
    coverable = np.concatenate([cache.offsets[i] + 1 + np.arange(n * WINDOW) for i, n in enumerate(n_windows)])
    assert set(covered) <= set(coverable) and len(coverable) - len(covered) == (total % BATCH) * WINDOW


def test_batches_gather_the_tokens_and_follow_seed_and_epoch(cache):
    a = streams.StreamDataset(cache, "train", WINDOW, BATCH, seed=1)
    b = streams.StreamDataset(cache, "train", WINDOW, BATCH, seed=1)
    batch = a[2]
    seq = torch.from_numpy(cache.tokens.astype(np.int64))[a.starts[:, 2, None] + torch.arange(WINDOW + 1)]
    assert torch.equal(batch["inputs"], seq[:, :-1]) and torch.equal(batch["targets"], seq[:, 1:])
    assert torch.equal(batch["next"], seq[:, -1])
    for k in range(len(a)):
        assert all(torch.equal(a[k][key], b[k][key]) for key in batch)  # same (seed, epoch): same batches
    a.set_epoch(1)
    b.set_epoch(5)
    b.set_epoch(1)  # drawn from (seed, epoch) alone, whatever came before
    assert torch.equal(a.starts, b.starts)
    a.set_epoch(0)
    assert not torch.equal(a.starts, b.starts)  # another epoch, another piece order


def test_one_transposition_and_one_composer_per_piece_per_epoch(cache):
    ds = streams.StreamDataset(cache, "train", WINDOW, BATCH, transpose=6, seed=0, composer_dropout=0.5)
    raw = torch.from_numpy(cache.tokens.astype(np.int64))
    seen_shifts, seen_drop = set(), set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        per_piece = {}
        for k in range(len(ds)):
            batch = ds[k]
            shift = batch["inputs"][..., 0] - raw[ds.starts[:, k, None] + torch.arange(WINDOW), 0]  # (B, T)
            assert (shift == shift[:, :1]).all()  # the whole window alike
            for b in range(BATCH):
                p = piece_of(cache, int(ds.starts[b, k]))
                got = (int(shift[b, 0]), int(batch["composer"][b]))
                assert per_piece.setdefault(p, got) == got  # the whole piece alike
        seen_shifts |= {s for s, _ in per_piece.values()}
        seen_drop |= {(c == 0) for _, c in per_piece.values()}
    assert len(seen_shifts) > 3 and seen_drop == {True, False}  # shifts and dropouts do vary between pieces


def test_ranks_share_one_layout_of_streams(cache):
    both = streams.StreamDataset(cache, "train", WINDOW, 2, seed=2)  # one process, 2 streams
    ranks = [streams.StreamDataset(cache, "train", WINDOW, 1, seed=2, rank=r, world=2) for r in range(2)]
    assert torch.equal(torch.cat([r.starts for r in ranks]), both.starts)
    assert torch.equal(torch.cat([r.reset for r in ranks]), both.reset)


def test_bad_stream_settings_name_the_parameter(cache):
    with pytest.raises(ValueError, match="train.batch_size"):
        streams.StreamDataset(cache, "train", WINDOW, 100)  # more streams than windows
    with pytest.raises(ValueError, match="train.epoch_windows"):
        streams.make_stream_loader(cache, "train", WINDOW, BATCH, epoch_windows=10)


def stream_model(cache, interval_emb=6):
    torch.manual_seed(0)
    return MD.CausalLSTM(cache.vocab, (8, 4, 4), hidden=16, layers=2, dropout=0.0, window=WINDOW,
                         interval_emb=interval_emb).eval()


@pytest.mark.parametrize("interval_emb", [0, 6])
def test_the_state_is_carried_and_reset_per_row(cache, interval_emb):
    model = stream_model(cache, interval_emb)
    ds = streams.StreamDataset(cache, "train", WINDOW, BATCH, seed=0)
    first, second = ds[0], dict(ds[1])
    with torch.no_grad():
        _, _, state = model.stream_loss(first)
        assert all(not s.requires_grad for s in state)  # detached: back-propagation stops at the batch
        fresh = model.stream_loss(second)[0]
        assert torch.equal(model.stream_loss(second)[0], model.loss(second)[0])
        second["reset"] = torch.zeros(BATCH, dtype=torch.bool)
        carried = model.stream_loss(second, state)[0]
        assert abs(float(carried - fresh)) > 1e-4  # the loss depends on the batch before, through the state
        second["reset"] = torch.ones(BATCH, dtype=torch.bool)
        assert torch.allclose(model.stream_loss(second, state)[0], fresh, atol=1e-6)  # reset: as from zero
        second["reset"] = torch.tensor([True, False, False])  # only row 0 starts a piece
        (h, c, *_), (h0, c0, *_) = model.stream_loss(second, state)[2], model.stream_loss(second)[2]  # (L, B, H)
        assert torch.allclose(h[:, 0], h0[:, 0], atol=1e-6) and torch.allclose(c[:, 0], c0[:, 0], atol=1e-6)
        assert not torch.allclose(h[:, 1:], h0[:, 1:], atol=1e-4)


def carry_cfg(**overrides):
    base = {"model.hidden": 16, "model.emb_pitch": 8, "model.emb_step": 4, "model.emb_dur": 4,
            "model.interval_emb": 4, "model.dropout": 0.0, "data.window": WINDOW, "data.stride": WINDOW,
            "data.bins": "seed", "train.carry_state": True, "train.batch_size": BATCH, "train.epochs": 2,
            "train.max_steps": 0, "train.warmup_steps": 2, "train.device": "cpu", "train.seed": 0}
    return get_config("tiny", **{**base, **overrides})


def record_steps(monkeypatch):
    """Patch the training step to record (inputs, reset, whether a state came in) of every step."""
    seen, real_step = [], T.train_step

    def step(run, batch, lr, i):
        seen.append((batch["inputs"].clone(), batch["reset"].clone(), run.carried is not None))
        return real_step(run, batch, lr, i)

    monkeypatch.setattr(T, "train_step", step)
    return seen


def test_training_carries_the_state_and_resumes_the_epochs_remaining_batches(cache, tmp_path, monkeypatch):
    n_batches = len(streams.StreamDataset(cache, "train", WINDOW, BATCH))
    seen = record_steps(monkeypatch)
    straight = T.train(carry_cfg(), cache, tmp_path / "straight", progress=False)
    assert straight["step"] == [n_batches, 2 * n_batches]
    assert [came for _, _, came in seen] == [False] + [True] * (2 * n_batches - 1)  # carried, across epochs too
    assert seen[n_batches][1].all()  # a new epoch starts every stream afresh
    reference = list(seen)
    seen.clear()
    stop = n_batches + 2  # inside epoch 2
    T.train(carry_cfg(**{"train.max_steps": stop}), cache, tmp_path / "resumed", progress=False)
    T.train(carry_cfg(), cache, tmp_path / "resumed", progress=False)
    assert len(seen) == len(reference)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(seen, reference))
    assert not seen[stop][2]  # the resumed run starts from a zero state (the state is not checkpointed)


def test_window_models_ignore_carry_state_and_validation_keeps_windows(cache, tmp_path):
    for arch, loader_type in (("baseline", data.MusicDataset), ("causal", streams.StreamDataset)):
        run = T._setup(carry_cfg(**{"model.arch": arch, "data.seed_window": WINDOW}), cache, tmp_path, False, lambda: 0.0)
        assert run.carry == (arch == "causal") and isinstance(run.train_loader.dataset, loader_type)
        assert isinstance(run.val_loader.dataset, data.MusicDataset)
