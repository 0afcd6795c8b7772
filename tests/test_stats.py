"""Tests of melody_utils.music.stats: a piece's statistics, loops and degeneracy, and comparing sets
of pieces (overlap area, KL divergence, EMD)."""

import numpy as np
import pytest

from melody_utils.music import stats as S
from melody_utils.music.midi import Notes

from helpers import looped_notes, random_grid_notes

# ---- piece statistics --------------------------------------------------------------------


def test_piece_stats_on_a_hand_checked_example():
    # a C major chord held 1 s, then 72, 71, 60 as single notes
    notes = Notes(
        pitch=[60, 64, 67, 72, 71, 60],
        start=[0.0, 0.0, 0.0, 0.5, 1.0, 2.0],
        duration=[1.0, 1.0, 1.0, 0.25, 0.5, 0.5],
        velocity=[80] * 6,
    )
    s = S.piece_stats(notes)
    assert s["pitch_count"] == 5
    assert s["pitch_range"] == 12
    assert s["mean_interval"] == pytest.approx((5 + 1 + 11) / 3)  # top line 67 -> 72 -> 71 -> 60
    assert s["mean_ioi"] == pytest.approx(2 / 3)
    assert s["polyphony"] == pytest.approx((3 + 4 + 1 + 1) / 4)  # the chord is released at t=1
    assert s["note_density"] == pytest.approx(6 / 2.5)
    assert s["top_pitch_share"] == pytest.approx(2 / 6)
    np.testing.assert_allclose(s["pitch_class_hist"][[0, 4, 7, 11]], [3 / 6, 1 / 6, 1 / 6, 1 / 6])
    np.testing.assert_allclose(s["interval_hist"][[12 + 5, 12 - 1, 12 - 11]], [1 / 3] * 3)
    assert s["step_hist"].sum() == pytest.approx(1) and s["step_hist"][0] == pytest.approx(2 / 5)  # two 0 steps
    assert set(S.SCALAR_FEATURES + S.HIST_FEATURES) <= set(s)


def test_pitch_patterns_see_a_performed_repeat_that_exact_patterns_miss():
    rng = np.random.default_rng(0)
    chords = [sorted(rng.choice(np.arange(48, 84), 3, replace=False)) for _ in range(16)]  # a phrase of 16 chords
    pitch = np.array([p for c in chords for p in c] * 2)  # played twice
    onset = np.repeat(np.arange(32) * 0.5, 3)
    exact = Notes(pitch, onset, np.full(96, 0.4), np.full(96, 70)).sorted()
    # performed: every chord rolled over up to 26 ms in its own order, the timing and dynamics varying
    roll = np.concatenate([rng.permutation(3) * rng.uniform(0.005, 0.013) for _ in range(32)])
    timing = np.repeat(rng.uniform(-0.04, 0.04, 32), 3)
    played = Notes(pitch, onset + timing + roll, rng.uniform(0.3, 0.5, 96), rng.integers(40, 100, 96))
    s_exact, s_played = S.piece_stats(exact), S.piece_stats(played)
    grams = 96 - S.NGRAM_REPEAT + 1
    second_half = (48 - S.NGRAM_REPEAT + 1) / grams  # the 8-grams inside the repeat
    assert s_exact["repeat_pitch_ngram"] == pytest.approx(second_half)
    assert s_exact["repeat_ngram"] == pytest.approx(second_half - 1 / grams)  # the piece's first note has no step before it
    assert s_played["repeat_ngram"] == 0.0 and s_played["repeat_pitch_ngram"] == pytest.approx(second_half)
    assert S.repeated_ngram_share(played.sorted().pitch) < second_half / 2  # by onset order alone the rolls hide it


def test_piece_stats_rejects_too_short_input():
    with pytest.raises(ValueError, match="at least 2 notes"):
        S.piece_stats(Notes.from_steps([60], [0.0], [0.5]))


def test_loop_measure_flags_loops_and_not_random_sequences():
    rng = np.random.default_rng(3)
    assert S.loop_mask(np.resize(rng.integers(0, 50, 5), 100)).all()
    assert S.loop_mask(rng.integers(0, 1000, 200)).mean() < 0.05
    # a random opening, then a loop of period 7: only the loop is flagged
    ids = np.concatenate([rng.integers(100, 1000, 60), np.resize(np.arange(7), 60)])
    mask = S.loop_mask(ids)
    assert mask[70:].all() and mask[:55].mean() < 0.1
    # too short to count: a pattern played once and a half
    assert not S.loop_mask(np.concatenate([rng.integers(100, 1000, 20), [1, 2, 3, 4, 5, 1, 2, 3], rng.integers(100, 1000, 20)])).any()

    loop, rand = S.piece_stats(looped_notes(rng, 128)), S.piece_stats(random_grid_notes(rng, 128))
    assert loop["loop_share"] > 0.95 and rand["loop_share"] < 0.1
    assert loop["repeat_ngram"] > 0.9 and rand["repeat_ngram"] < 0.1


def test_degeneracy_flags_loops_and_stuck_pitches_only():
    rng = np.random.default_rng(4)
    assert S.degeneracy(looped_notes(rng, 100))["degenerate"]
    assert not S.degeneracy(random_grid_notes(rng, 100))["degenerate"]
    # random opening, looped ending: the tail decides
    opening, ending = random_grid_notes(rng, 100), looped_notes(rng, 100)
    both = Notes.from_steps(np.concatenate([opening.pitch, ending.pitch]), np.concatenate([opening.step, ending.step]), np.concatenate([opening.duration, ending.duration]))
    assert S.degeneracy(both)["degenerate"]
    stuck = random_grid_notes(rng, 100)
    stuck.pitch[::4] = 61  # 61 is outside random_notes' range ...
    stuck.pitch[1::4] = 61  # ... and holds half the notes plus
    stuck.pitch[2::8] = 61
    d = S.degeneracy(stuck)
    assert d["degenerate"] and d["top_pitch_share"] > 0.5 and d["loop_share"] < 0.5


# ---- comparing sets ----------------------------------------------------------------------


def test_overlap_area_of_known_distributions():
    rng = np.random.default_rng(5)
    a, b, c = rng.normal(0, 1, 2000), rng.normal(1, 1, 2000), rng.normal(10, 1, 2000)
    assert S.overlap_area(a, a) == pytest.approx(1.0, abs=1e-6)
    assert S.overlap_area(a, c) < 0.01
    assert S.overlap_area(a, b) == pytest.approx(2 * 0.3085, abs=0.05)  # 2 * Phi(-1/2)
    assert S.kl_divergence(a, a) == pytest.approx(0.0, abs=1e-6)
    assert 0.3 < S.kl_divergence(a, b) < 0.8  # true value 0.5; a KDE widens both
    assert S.overlap_area([2.0, 2.0], [2.0, 2.0]) == pytest.approx(1.0, abs=1e-6)  # constant sets


def test_a_constant_set_overlaps_a_set_that_matches_it_but_for_one_value():
    held_out, generated = np.zeros(44), np.r_[np.zeros(31), 0.0025]  # e.g. exact repeats in performances
    assert S.overlap_area(held_out, generated) == pytest.approx(31 / 32, abs=0.03)
    assert S.overlap_area(generated, held_out) == pytest.approx(31 / 32, abs=0.03)
    assert S.overlap_area(held_out, np.r_[np.zeros(8), np.full(24, 0.3)]) == pytest.approx(8 / 32, abs=0.03)


def test_compare_sets_with_itself_and_with_a_disjoint_set():
    rng = np.random.default_rng(6)
    low = [random_grid_notes(rng, 100, 30, 50) for _ in range(12)]
    high = [random_grid_notes(rng, 100, 80, 100) for _ in range(12)]
    same = S.compare_sets(low, low)
    for name, f in same["features"].items():
        assert f["oa"] == pytest.approx(1.0, abs=1e-6), name
        assert f["kl"] == pytest.approx(0.0, abs=1e-6), name
    assert same["mean_oa"] == pytest.approx(1.0, abs=1e-6)
    assert same["features"]["mean_pitch"]["intra_oa"] > 0.8

    far = S.compare_sets(high, low)
    assert far["features"]["mean_pitch"]["oa"] < 0.01
    assert far["features"]["mean_pitch"]["intra_oa"] < 0.01
    assert far["features"]["mean_pitch"]["emd"] == pytest.approx(50, abs=3)
    assert far["mean_oa"] < same["mean_oa"] - 0.1


def test_compare_sets_sees_low_diversity():
    rng = np.random.default_rng(7)
    ref = [random_grid_notes(rng, 100) for _ in range(10)]
    clones = [random_grid_notes(np.random.default_rng(0), 100) for _ in range(10)]  # the same piece ten times
    f = S.compare_sets(clones, ref)["features"]["mean_pitch"]
    assert f["gen_intra"] == 0.0 and f["ref_intra"] > 0.5


def test_compare_sets_needs_two_pieces():
    rng = np.random.default_rng(8)
    with pytest.raises(ValueError, match="generated needs at least 2 pieces"):
        S.compare_sets([random_grid_notes(rng, 20)], [random_grid_notes(rng, 20)] * 3)


def test_excerpts_match_the_generated_length():
    rng = np.random.default_rng(9)
    cut = S.excerpts([random_grid_notes(rng, 500), random_grid_notes(rng, 30), random_grid_notes(rng, 1)], 100)
    assert [len(c) for c in cut] == [100, 30]


def test_velocity_features_tell_dynamics_from_one_constant_velocity():
    from melody_utils.music.stats import VELOCITY_HIST_BINS, compare_sets, piece_stats

    rng = np.random.default_rng(0)

    def piece(dynamic: bool) -> Notes:
        n = 80
        velocity = rng.integers(30, 110, n) if dynamic else np.full(n, 80)
        return Notes(rng.integers(40, 80, n), np.cumsum(rng.uniform(0.05, 0.3, n)), np.full(n, 0.2), velocity)

    flat = piece_stats(piece(False))
    assert flat["mean_velocity"] == 80 and flat["velocity_spread"] == 0
    assert flat["velocity_hist"].shape == (VELOCITY_HIST_BINS,) and flat["velocity_hist"][80 * VELOCITY_HIST_BINS // 128] == 1
    same = compare_sets([piece(True) for _ in range(6)], [piece(True) for _ in range(6)])["features"]
    apart = compare_sets([piece(False) for _ in range(6)], [piece(True) for _ in range(6)])["features"]
    for name in ("velocity_spread", "velocity_hist"):
        assert same[name]["oa"] > 0.5 > apart[name]["oa"]  # constant velocity is far from real dynamics
