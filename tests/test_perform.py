"""Sequenced notes played like a performer (melody_utils/music/perform.py)."""

import numpy as np
import pytest

from melody_utils.music.midi import Notes
from melody_utils.music.perform import perform, slow_process, tempo_warp


def sequenced(n_chords: int = 200, seed: int = 0) -> Notes:
    """Three-note chords on an exact grid of 0.25 s, one velocity per chord from a small set."""
    rng = np.random.default_rng(seed)
    pitch = np.concatenate([np.sort(rng.choice(np.arange(40, 90), 3, replace=False)) for _ in range(n_chords)])
    start = np.repeat(np.arange(n_chords) * 0.25, 3)
    vel = np.repeat(rng.choice([50, 64, 80], n_chords), 3)
    return Notes(pitch, start, np.full(len(pitch), 0.2), vel)


def chord_spreads(notes: Notes, gap: float = 0.05) -> np.ndarray:
    groups = np.concatenate([[0], np.cumsum(np.diff(notes.start) > gap)])
    return np.array([np.ptp(notes.start[groups == g]) for g in range(groups[-1] + 1)])


def test_perform_keeps_the_notes_and_spreads_chords_over_tens_of_milliseconds():
    score = sequenced()
    played = perform(score, np.random.default_rng(1))
    assert len(played) == len(score) and sorted(played.pitch) == sorted(score.pitch)
    assert np.all(np.diff(played.start) >= 0) and played.start.min() >= 0  # sorted by onset, nothing before 0
    spreads = chord_spreads(played)
    assert len(spreads) == 200 and chord_spreads(score).max() == 0  # the same chords, now spread ...
    assert 0.010 < np.median(spreads) < 0.030 and spreads.max() < 0.08  # ... over tens of ms
    assert played.duration.min() > 0


def test_perform_varies_velocities_and_tempo_like_a_performance():
    score = sequenced()
    played = perform(score, np.random.default_rng(2))
    assert len(np.unique(played.velocity)) > 30 and played.velocity.min() >= 1 and played.velocity.max() <= 127
    assert np.std(played.velocity) > np.std(score.velocity)
    groups = np.concatenate([[0], np.cumsum(np.diff(played.start) > 0.05)])
    within = [np.std(played.velocity[groups == g]) for g in range(groups[-1] + 1)]
    assert np.median(within) > 2  # a chord's notes no longer share one velocity
    iois = np.diff(played.start[::3])  # about one per chord
    assert 0.05 < np.std(np.log(iois[iois > 0.1] / 0.25)) < 0.3  # the beat is no longer exact
    assert abs(played.start.max() / score.start.max() - 1) < 0.3  # ... nor far from the score's tempo


def test_perform_is_seeded_and_without_its_changes_gives_the_score_back():
    score = sequenced(50)
    a, b, c = (perform(score, np.random.default_rng(s)) for s in (3, 3, 4))
    np.testing.assert_array_equal(a.start, b.start)
    np.testing.assert_array_equal(a.velocity, b.velocity)
    assert not np.array_equal(a.start, c.start)
    plain = perform(score, np.random.default_rng(3), jitter_s=0.0, tempo_sd=0.0, dynamics_sd=0.0, velocity_noise=0.0)
    np.testing.assert_allclose(plain.start, score.sorted().start, atol=1e-9)
    np.testing.assert_array_equal(plain.velocity, score.sorted().velocity)


def test_slow_processes_have_their_spread_and_the_warp_only_moves_forward():
    x = slow_process(20000, 0.06, 4.0, 1.0, np.random.default_rng(0))
    assert np.std(x) == pytest.approx(0.06, rel=0.1)
    assert np.corrcoef(x[:-1], x[1:])[0, 1] == pytest.approx(np.exp(-1 / 4.0), abs=0.03)
    warp = tempo_warp(100.0, np.random.default_rng(0))
    t = np.linspace(0, 100, 1001)
    assert np.all(np.diff(warp(t)) > 0) and warp(0.0) == 0.0
