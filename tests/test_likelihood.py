"""Tests of melody_utils.evaluate.likelihood: a model's NLL per note, the uniform and n-gram
baselines, and whole pieces read with carried state."""

import math

import numpy as np
import pytest
import torch

from melody_utils.evaluate import likelihood as L
from melody_utils.music.tokens import seed_vocab

torch.set_num_threads(1)


def entropy(p):
    p = np.asarray(p, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


# ---- NLL of a model ----------------------------------------------------------------------


class FakeModel:
    """Stands in for a model: loss = a constant per batch, given by the batch's "value"."""

    def __init__(self, causal):
        import torch

        self.causal = causal
        self.training = True
        self._torch = torch

    def eval(self):
        self.training = False
        return self

    def train(self, mode=True):
        self.training = mode
        return self

    def loss(self, batch):
        assert not self.training, "model_nll must score in eval mode"
        v = float(batch["value"][0])
        parts = {"pitch": v, "step": 2 * v, "duration": 0.5}
        return self._torch.tensor(sum(parts.values())), parts


def fake_batch(batch_size, window, value):
    import torch

    return {
        "inputs": torch.zeros(batch_size, window, 3, dtype=torch.long),
        "targets": torch.zeros(batch_size, window, 3, dtype=torch.long),
        "next": torch.zeros(batch_size, 3, dtype=torch.long),
        "value": torch.full((batch_size,), value),
    }


@pytest.mark.parametrize("causal", [True, False])
def test_model_nll_weights_batches_by_supervised_notes(causal):
    model = FakeModel(causal)
    # A short last batch: its mean must count for 1 window, not for a whole batch.
    loader = [fake_batch(3, 4, 1.0), fake_batch(1, 4, 3.0)]
    result = L.model_nll(model, loader, "cpu")
    mean = (3 * 1.0 + 1 * 3.0) / 4  # the weights are the same per window for both kinds
    assert result["nats"]["pitch"] == pytest.approx(mean)
    assert result["nats"]["step"] == pytest.approx(2 * mean)
    assert result["nats"]["total"] == pytest.approx(3 * mean + 0.5)
    assert result["bits"]["total"] == pytest.approx((3 * mean + 0.5) / math.log(2))
    assert result["n_notes"] == (16 if causal else 4)
    assert model.training, "the model's training mode must be restored"


def test_model_nll_rejects_an_empty_loader():
    with pytest.raises(ValueError, match="no window"):
        L.model_nll(FakeModel(True), [], "cpu")


# ---- baselines ---------------------------------------------------------------------------


def test_uniform_nll_is_sum_of_log_sizes():
    vocab = seed_vocab()
    r = L.uniform_nll(vocab)
    assert r["nats"]["total"] == pytest.approx(sum(math.log(s) for s in vocab.sizes))
    assert r["nats"]["pitch"] == pytest.approx(math.log(88))
    assert r["bits"]["step"] == pytest.approx(math.log2(21))
    assert set(r["nats"]) == {"pitch", "step", "duration", "total"}


def draw_pieces(rng, probs, n_pieces, length):
    """Pieces whose fields are drawn independently from ``probs`` (one distribution per field)."""
    return [np.stack([rng.choice(len(p), length, p=p) for p in probs], axis=1) for _ in range(n_pieces)]


def test_unigram_beats_uniform_and_approaches_the_entropy():
    rng = np.random.default_rng(0)
    probs = [np.array([0.6, 0.2, 0.1, 0.05, 0.05]), np.array([0.9, 0.1]), np.array([0.25, 0.25, 0.25, 0.25])]
    sizes = [len(p) for p in probs]
    train, val, test = (draw_pieces(rng, probs, 20, 1000) for _ in range(3))
    r = L.ngram_nll(train, test, sizes, order=1, val_pieces=val)
    for name, p in zip(("pitch", "step", "duration"), probs):
        assert r["nats"][name] == pytest.approx(entropy(p), abs=0.02)
    assert r["nats"]["total"] < L.uniform_nll(sizes)["nats"]["total"] - 0.5


def cycle_pieces(rng, n_pieces, length, size=12, noise=0.1):
    """Pitch walks a deterministic cycle (+1 mod size), except a random id with prob. ``noise``."""
    pieces = []
    for _ in range(n_pieces):
        flip = rng.random(length) < noise
        pitch = np.empty(length, dtype=np.int64)
        pitch[0] = rng.integers(size)
        for t in range(1, length):
            pitch[t] = rng.integers(size) if flip[t] else (pitch[t - 1] + 1) % size
        pieces.append(np.stack([pitch, rng.integers(0, 3, length), rng.integers(0, 3, length)], axis=1))
    return pieces


def second_order_pieces(rng, n_pieces, length, size=7):
    """x_t = (x_{t-1} + x_{t-2}) mod size: the previous note alone says nothing."""
    pieces = []
    for _ in range(n_pieces):
        x = np.empty(length, dtype=np.int64)
        x[:2] = rng.integers(0, size, 2)
        for t in range(2, length):
            x[t] = (x[t - 1] + x[t - 2]) % size if rng.random() > 0.05 else rng.integers(size)
        pieces.append(np.stack([x, np.zeros(length, np.int64), np.zeros(length, np.int64)], axis=1))
    return pieces


def test_higher_orders_beat_lower_orders_on_structured_sequences():
    rng = np.random.default_rng(1)
    train, val, test = cycle_pieces(rng, 20, 500), cycle_pieces(rng, 5, 500), cycle_pieces(rng, 5, 500)
    nll = {o: L.ngram_nll(train, test, (12, 3, 3), o, val_pieces=val)["nats"]["pitch"] for o in (1, 2, 3)}
    # 1-gram: ~log 12 = 2.48; 2-gram: about the noise entropy, ~0.5 nats
    assert nll[2] < nll[1] - 1.5
    assert nll[3] <= nll[2] + 0.02, "an extra order must not hurt once its smoothing is tuned"

    train, val, test = (second_order_pieces(rng, 10, 500) for _ in range(3))
    nll = {o: L.ngram_nll(train, test, (7, 1, 1), o, val_pieces=val)["nats"]["pitch"] for o in (1, 2, 3)}
    assert nll[3] < nll[2] - 1.0
    assert nll[2] <= nll[1] + 0.02


@pytest.mark.parametrize("order", [1, 2, 3])
def test_smoothing_keeps_nll_finite_on_unseen_contexts_and_ids(order):
    sizes = (10, 4, 4)
    train = [np.zeros((50, 3), dtype=np.int64), np.ones((50, 3), dtype=np.int64)]  # ids 0 and 1 only
    test = [np.stack([np.arange(10), np.full(10, 3), np.arange(10) % 4], axis=1)]  # ids never seen
    r = L.ngram_nll(train, test, sizes, order)  # no validation: default smoothing
    assert all(np.isfinite(v) for v in r["nats"].values())
    # unseen ids are worse than uniform, but not absurdly (bounded by the additive 1-gram)
    assert r["nats"]["pitch"] > math.log(10)
    assert r["n_notes"] == 9  # every note but the first


def test_ngram_rejects_bad_arguments():
    with pytest.raises(ValueError, match="order"):
        L.NGramModel((4, 4, 4), 0)
    with pytest.raises(ValueError, match=r"train_pieces\[0\].*vocabulary sizes"):
        L.ngram_nll([np.full((5, 3), 9)], [np.zeros((5, 3), int)], (4, 4, 4), 2)
    with pytest.raises(ValueError, match="test_pieces.*2 notes"):
        L.ngram_nll([np.zeros((5, 3), int)], [np.zeros((1, 3), int)], (4, 4, 4), 2)


def test_ngram_counts_context_across_full_tokens_not_only_its_own_field():
    # Step is a copy of the previous note's pitch: only a model conditioning on full tokens sees it.
    rng = np.random.default_rng(2)

    def pieces(n):
        out = []
        for _ in range(n):
            pitch = rng.integers(0, 6, 300)
            step = np.concatenate([[0], pitch[:-1]])
            out.append(np.stack([pitch, step, np.zeros(300, np.int64)], axis=1))
        return out

    r = L.ngram_nll(pieces(10), pieces(3), (6, 6, 1), 2, val_pieces=pieces(3))
    assert r["nats"]["step"] < 0.05
    assert r["nats"]["pitch"] == pytest.approx(math.log(6), abs=0.05)


# ---- whole pieces ------------------------------------------------------------------------


def test_piece_nll_reads_whole_pieces_with_carried_state():
    import torch

    from melody_utils.evaluate import likelihood
    from melody_utils.config import ModelConfig
    from melody_utils.data.corpus import TokenCache
    from melody_utils.data.windows import make_loader
    from melody_utils.model.lstm import build_model
    from melody_utils.music.tokens import seed_vocab

    torch.manual_seed(0)
    vocab = seed_vocab()
    rng = np.random.default_rng(0)
    pieces = [np.stack([rng.integers(0, n, 33) for n in vocab.sizes], 1) for _ in range(3)]
    model = build_model(ModelConfig(hidden=16, layers=2, emb_pitch=8, emb_step=4, emb_dur=4, dropout=0.0), vocab, 32)
    whole = likelihood.piece_nll(model, pieces)
    assert whole["n_notes"] == 3 * 32  # every note but each piece's first, like the n-grams
    # a piece of window + 1 notes is exactly one window: the same notes as model_nll's
    loader = make_loader(TokenCache.from_pieces(pieces, vocab), "train", 32, 32, 8, shuffle=False)
    windows = likelihood.model_nll(model, loader)
    assert whole["nats"]["total"] == pytest.approx(windows["nats"]["total"], rel=1e-5)
    # chunking with carried state changes nothing
    old = likelihood.PIECE_CHUNK
    try:
        likelihood.PIECE_CHUNK = 5
        chunked = likelihood.piece_nll(model, pieces)
    finally:
        likelihood.PIECE_CHUNK = old
    assert chunked["nats"]["total"] == pytest.approx(whole["nats"]["total"], rel=1e-5)
    later = likelihood.piece_nll(model, pieces, context=10)
    assert later["n_notes"] == 3 * 23
