"""Tests of melody_utils.music.tokens: the vocabulary (notes <-> ids, velocity bins, what differs
between two) and decoding inside the bins (Vocab.spread)."""

import numpy as np
import pytest

from melody_utils.music.midi import Notes
from melody_utils.music.quantize import Bins, fit_log_bins, log_bins, seed_duration_bins, seed_step_bins
from melody_utils.music.tokens import Vocab, note_uniforms, seed_vocab

from helpers import random_notes


@pytest.mark.parametrize("velocity_bins", [0, 8])
def test_encode_decode_inverse_on_the_grid(velocity_bins):
    v = Vocab(log_bins(32, 0.02, 4, True), log_bins(32, 0.02, 4, False), velocity_bins)
    notes = random_notes(200, seed=3)
    tokens = v.encode(notes)
    assert tokens.shape == (len(notes), len(v.sizes))
    for col, size in enumerate(v.sizes):
        assert tokens[:, col].min() >= 0 and tokens[:, col].max() < size
    again = v.encode(v.decode(tokens))
    np.testing.assert_array_equal(again[1:], tokens[1:])
    assert again[0, 1] == 0  # a piece's first step is 0 by definition


def test_velocity_bins_roundtrip_close():
    v = Vocab(seed_step_bins(), seed_duration_bins(), velocity_bins=16)
    vel = np.arange(1, 128)
    n = Notes.from_steps(np.full(127, 60), np.full(127, 0.1), np.full(127, 0.2), vel)
    back = v.decode(v.encode(n)).velocity
    assert np.abs(back - vel).max() <= 127 / 16 / 2 + 1


def test_out_of_range_values_name_value_and_range():
    v = seed_vocab()
    with pytest.raises(ValueError, match=r"pitch 110 out of range 21\.\.108"):
        v.encode(Notes.from_steps([110], [0.1], [0.1]))
    with pytest.raises(ValueError, match=r"step id 21 out of range 0\.\.20"):
        v.decode(np.array([[0, 21, 0]]))
    with pytest.raises(ValueError, match="shape"):
        v.decode(np.array([1, 2, 3]))
    assert v.decode_note(v.encode_note(60, 0.5, 0.3))[:3] == (60, 0.5, 0.3)


def test_vocab_persists():
    v = Vocab(log_bins(10, 0.02, 4, True), seed_duration_bins(), 8, name="log")
    assert Vocab.from_dict(v.to_dict()) == v


def test_vocab_differences_say_what_differs_in_plain_words():
    from melody_utils.music.tokens import vocab_differences

    seed = seed_vocab()
    assert vocab_differences(seed, seed_vocab()) == []
    assert vocab_differences(seed, seed_vocab(velocity_bins=8)) == ["velocity bins 0 vs 8"]
    refit = Vocab(Bins(tuple(np.linspace(0.01, 2, len(seed.step_bins.centers)))), seed.dur_bins, name="seed")
    assert vocab_differences(seed, refit) == ["step bins differ: fitted on another corpus"]
    log = Vocab(Bins(tuple(np.geomspace(0.01, 2, 16))), seed.dur_bins, name="log")
    assert vocab_differences(seed, log) == ["step bins 21 vs 16 (seed vs log grid)"]
    assert vocab_differences(seed, Vocab(seed.step_bins, seed.dur_bins, min_pitch=24, name="seed")) == ["pitch range 21-108 vs 24-108"]


def test_velocity_error_shrinks_with_more_bins_and_is_bounded_by_half_a_bin():
    from melody_utils.music.tokens import velocity_error

    vel = np.arange(1, 128)
    e8, e16 = velocity_error(vel, 8), velocity_error(vel, 16)
    assert e16["mean"] < e8["mean"] and e16["max"] <= 127 / 16 / 2 + 0.5 < e8["max"]
    assert np.isnan(velocity_error(vel, 0)["mean"])


# ---- decoding inside the bins (Vocab.spread) ----


def _performed_notes(n_pieces: int = 6, n: int = 400) -> list[Notes]:
    """Pieces with continuous timing and every velocity: chords spread over a few ms, lognormal steps."""
    out = []
    for i in range(n_pieces):
        rng = np.random.default_rng(100 + i)
        step = np.where(rng.random(n) < 0.3, rng.uniform(0, 0.012, n), rng.lognormal(np.log(0.2), 0.8, n))
        dur = rng.lognormal(np.log(0.4), 0.9, n)
        vel = np.clip(rng.normal(64, 20, n), 1, 127).astype(int)
        out.append(Notes.from_steps(rng.integers(30, 100, n), step, dur, vel))
    return out


def _fitted_vocab(pieces, zero: bool = True) -> Vocab:
    steps = np.concatenate([p.step[1:] for p in pieces])
    durs = np.concatenate([p.duration for p in pieces])
    return Vocab(fit_log_bins(steps, 24, zero=zero), fit_log_bins(durs, 24, zero=False), 16).with_spread(pieces)


def _every_bin(vocab: Vocab, repeats: int = 50) -> np.ndarray:
    """Tokens using every id of every field, ``repeats`` times each (pitch cycling)."""
    n = max(vocab.sizes[1:]) * repeats
    return np.stack([np.arange(n) % s for s in (60,) + vocab.sizes[1:]], axis=1)


@pytest.mark.parametrize("zero", [True, False], ids=["log-with-0-bin", "log"])
def test_decoding_inside_the_bins_stays_in_each_bin(zero):
    pieces = _performed_notes()
    vocab = _fitted_vocab(pieces, zero)
    tokens = _every_bin(vocab)
    notes = vocab.decode(tokens, seed=3)
    np.testing.assert_array_equal(vocab.encode(notes), tokens)  # every value re-encodes to its own bin
    assert np.issubdtype(notes.velocity.dtype, np.integer) and notes.velocity.min() >= 1 and notes.velocity.max() <= 127
    grid = vocab.decode(tokens)
    assert not np.allclose(notes.duration, grid.duration)  # not the centres ...
    assert len(np.unique(notes.velocity)) > 3 * len(np.unique(grid.velocity))  # ... and many more velocities


def test_decoding_inside_the_bins_is_seeded_and_follows_the_corpus():
    pieces = _performed_notes()
    vocab = _fitted_vocab(pieces)
    tokens = vocab.encode(pieces[0])
    a, b, c = vocab.decode(tokens, seed=1), vocab.decode(tokens, seed=1), vocab.decode(tokens, seed=2)
    for field in ("start", "duration", "velocity"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))  # same seed, same notes
        assert not np.array_equal(getattr(a, field), getattr(c, field))  # another seed, other values
    # the chord bin (0 .. 15 ms): drawn as the corpus's chords spread, not at its centre 0
    steps = np.concatenate([p.step[1:] for p in pieces])
    in_chord_bin = steps[vocab.step_bins.quantize(steps) == 0]
    chords = np.stack([np.arange(4000) % 88, np.zeros(4000, int), np.arange(4000) // 88 % 24, np.zeros(4000, int)], 1)
    drawn = vocab.decode(chords, seed=0).step[1:]
    assert abs(np.median(drawn) - np.median(in_chord_bin)) < 0.001
    assert drawn.max() <= in_chord_bin.max() and drawn.min() >= in_chord_bin.min()


def test_a_passage_played_again_is_played_the_same_way():
    vocab = _fitted_vocab(_performed_notes(2))
    rng = np.random.default_rng(0)
    phrase = np.stack([rng.integers(0, s, 16) for s in vocab.sizes], 1)
    other = phrase.copy()
    other[:, 3] = (other[:, 3] + 1) % vocab.velocity_bins  # the same notes, each one velocity bin louder
    notes = vocab.decode(np.concatenate([phrase, other, phrase]), seed=9)
    a, b, c = notes[:16], notes[16:32], notes[32:]
    np.testing.assert_allclose(np.diff(c.start), np.diff(a.start), atol=1e-9)  # the repeat's timing ...
    np.testing.assert_array_equal(c.velocity, a.velocity)  # ... and dynamics: as the first time
    np.testing.assert_allclose(b.duration, a.duration)  # timing keyed by pitch, step and duration only ...
    u_a, u_b = note_uniforms(phrase, 9), note_uniforms(other, 9)
    np.testing.assert_array_equal(u_a[:, :2], u_b[:, :2])
    assert np.all(u_a[:, 2] != u_b[:, 2])  # ... the velocity by the whole token
    assert np.all(note_uniforms(phrase, 10) != u_a)  # another seed: other draws
    assert 0.45 < note_uniforms(np.arange(40000)[:, None] * [1, 1, 1, 1], 0).mean() < 0.55


def test_the_grid_setting_and_a_vocabulary_without_spread_decode_to_the_centres():
    pieces = _performed_notes(2)
    vocab = _fitted_vocab(pieces)
    tokens = vocab.encode(pieces[1])
    grid = vocab.decode(tokens)  # no seed: the centres, as before spreads existed
    for other in (vocab.on_grid().decode(tokens, seed=5), Vocab.from_dict(vocab.on_grid().to_dict()).decode(tokens, seed=5)):
        for field in ("start", "duration", "velocity"):
            np.testing.assert_array_equal(getattr(other, field), getattr(grid, field))
    np.testing.assert_array_equal(grid.duration, vocab.dur_bins.dequantize(tokens[:, 2]))


def test_spread_travels_with_the_vocabulary_and_is_not_part_of_its_identity():
    vocab = _fitted_vocab(_performed_notes(2))
    again = Vocab.from_dict(vocab.to_dict())
    assert again.spread == vocab.spread and again == vocab.on_grid() and hash(again) == hash(vocab.on_grid())
    assert "spread" not in vocab.on_grid().to_dict()  # a grid vocabulary's dict is as before
    bad = vocab.to_dict()
    bad["spread"]["step"] = bad["spread"]["step"][:-1]
    with pytest.raises(ValueError, match="step spread covers 23 bins, its grid has 24"):
        Vocab.from_dict(bad)
