"""Tests of melody_utils.generate.logits: top-k, top-p and the temperature on fixed logits, drawing from
them, and the grammar mask."""

import numpy as np
import pytest
import torch

from melody_utils.generate.logits import GrammarMask, filter_logits, sample_logits, zero_step_id
from melody_utils.music.tokens import seed_vocab


PROBS = np.array([0.15, 0.5, 0.1, 0.25])  # sorted: 0.5 (id 1), 0.25 (id 3), 0.15 (id 0), 0.1 (id 2)


def kept(logits):
    return set(np.flatnonzero(np.isfinite(logits)).tolist())


def test_top_k_keeps_the_k_most_likely():
    lg = np.log(PROBS)
    assert kept(filter_logits(lg, top_k=1)) == {1}
    assert kept(filter_logits(lg, top_k=2)) == {1, 3}
    assert kept(filter_logits(lg, top_k=0)) == {0, 1, 2, 3}
    assert kept(filter_logits(lg, top_k=10)) == {0, 1, 2, 3}


@pytest.mark.parametrize("top_p,expected", [(0.4, {1}), (0.7, {1, 3}), (0.8, {1, 3, 0}), (0.95, {0, 1, 2, 3}),
                                            (1.0, {0, 1, 2, 3})])
def test_top_p_keeps_the_smallest_set_reaching_p(top_p, expected):
    assert kept(filter_logits(np.log(PROBS), top_p=top_p)) == expected


def test_top_p_applies_after_top_k_renormalizes():
    lg = np.log(PROBS)
    assert kept(filter_logits(lg, top_p=0.6)) == {1, 3}  # 0.5 < 0.6 of the full distribution
    assert kept(filter_logits(lg, top_k=2, top_p=0.6)) == {1}  # 0.5 / 0.75 = 0.67 >= 0.6 after top-k


def test_temperature_scales_kept_logits_and_types_round_trip():
    lg = np.log(PROBS)
    np.testing.assert_allclose(filter_logits(lg, temperature=2.0), lg / 2.0)
    out = filter_logits(torch.tensor(np.stack([lg, lg[::-1]]), dtype=torch.float32), top_k=1)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4) and out.dtype == torch.float32
    assert torch.isfinite(out).sum(1).tolist() == [1, 1] and out.argmax(1).tolist() == [1, 2]


def test_sample_logits_follows_the_filtered_distribution():
    rng = np.random.default_rng(0)
    lg = np.log(PROBS)
    n = 20000
    for kw in (dict(), dict(top_p=0.7), dict(temperature=0.5, top_k=3)):
        ids = sample_logits(np.tile(lg, (n, 1)), rng.random(n), **{"temperature": 1.0, "top_k": 0, "top_p": 1.0, **kw})
        f = filter_logits(lg, **kw)
        expected = np.exp(f - f.max()) / np.exp(f - f.max()).sum()
        freq = np.bincount(ids, minlength=4) / n
        np.testing.assert_allclose(freq, expected, atol=0.015)
        assert set(np.unique(ids)) <= kept(f)


def test_sample_logits_top_k_1_is_argmax_and_never_draws_minus_inf():
    rng = np.random.default_rng(1)
    lg = rng.normal(size=(5, 3, 30))
    assert np.array_equal(sample_logits(lg, rng.random((5, 3)), 1.0, 1, 1.0), lg.argmax(-1))
    lg[..., 20:] = -np.inf  # padding
    ids = sample_logits(lg, rng.random((5, 3)), 1.5, 0, 1.0)
    assert ids.shape == (5, 3) and ids.max() < 20


def test_grammar_mask_removes_exactly_the_zero_step_where_the_pitch_does_not_rise():
    mask = GrammarMask(0)
    logits = np.zeros((3, 4))  # uniform: the 0-step id has probability 1/4
    mask.measure(logits, pitch=np.array([5, 4, 6]), prev_pitch=np.array([5, 5, 5]))
    out = mask.apply(logits, pitch=np.array([5, 4, 6]), prev_pitch=np.array([5, 5, 5]))
    assert np.isneginf(out[:2, 0]).all() and np.isfinite(out[2]).all() and np.isfinite(out[:2, 1:]).all()
    assert mask.mean_mass == pytest.approx(2 * 0.25 / 3)
    assert sample_logits(out, np.zeros(3))[:2].tolist() == [1, 1]  # u = 0 never draws a masked id
    no_zero = GrammarMask(zero_step_id(seed_vocab()))  # the seed grid has no 0 bin
    assert no_zero.apply(logits, np.array([1]), np.array([5])) is logits and no_zero.mean_mass == 0.0
