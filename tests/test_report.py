"""Tests of melody_utils.evaluate.report: NLL and baselines, musical statistics, set comparison, sweep."""

import math

import json

import numpy as np
import pytest

from melody_utils.evaluate import report as M, likelihood as L, sweep as SW
from melody_utils.music import stats as S
from melody_utils.music.midi import Notes
from melody_utils.music.tokens import seed_vocab


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


def random_notes(rng, n, low=48, high=84):
    return Notes.from_steps(rng.integers(low, high, n), rng.choice([0.0, 0.125, 0.25, 0.5], n), rng.choice([0.125, 0.25, 0.5, 1.0], n))


def looped_notes(rng, n, period=4):
    pattern = rng.integers(60, 72, period)
    return Notes.from_steps(np.resize(pattern, n), np.full(n, 0.25), np.full(n, 0.25))


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

    loop, rand = S.piece_stats(looped_notes(rng, 128)), S.piece_stats(random_notes(rng, 128))
    assert loop["loop_share"] > 0.95 and rand["loop_share"] < 0.1
    assert loop["repeat_ngram"] > 0.9 and rand["repeat_ngram"] < 0.1


def test_degeneracy_flags_loops_and_stuck_pitches_only():
    rng = np.random.default_rng(4)
    assert S.degeneracy(looped_notes(rng, 100))["degenerate"]
    assert not S.degeneracy(random_notes(rng, 100))["degenerate"]
    # random opening, looped ending: the tail decides
    opening, ending = random_notes(rng, 100), looped_notes(rng, 100)
    both = Notes.from_steps(np.concatenate([opening.pitch, ending.pitch]), np.concatenate([opening.step, ending.step]), np.concatenate([opening.duration, ending.duration]))
    assert S.degeneracy(both)["degenerate"]
    stuck = random_notes(rng, 100)
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


def test_compare_sets_with_itself_and_with_a_disjoint_set():
    rng = np.random.default_rng(6)
    low = [random_notes(rng, 100, 30, 50) for _ in range(12)]
    high = [random_notes(rng, 100, 80, 100) for _ in range(12)]
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
    ref = [random_notes(rng, 100) for _ in range(10)]
    clones = [random_notes(np.random.default_rng(0), 100) for _ in range(10)]  # the same piece ten times
    f = S.compare_sets(clones, ref)["features"]["mean_pitch"]
    assert f["gen_intra"] == 0.0 and f["ref_intra"] > 0.5


def test_compare_sets_needs_two_pieces():
    rng = np.random.default_rng(8)
    with pytest.raises(ValueError, match="generated needs at least 2 pieces"):
        S.compare_sets([random_notes(rng, 20)], [random_notes(rng, 20)] * 3)


# ---- sampling sweep ----------------------------------------------------------------------


def test_sampling_sweep_with_a_fake_generator():
    calls = []

    def generate(*, temperature, top_k, top_p, n_notes, seed, primer):
        calls.append((temperature, top_p, n_notes, seed))
        rng = np.random.default_rng(seed)
        return looped_notes(rng, n_notes) if temperature < 0.5 else random_notes(rng, n_notes)

    ref_rng = np.random.default_rng(99)
    reference = [random_notes(ref_rng, 300) for _ in range(10)]
    rows = SW.sampling_sweep(generate, [0.2, 1.0], [0.9, 1.0], reference, n_pieces=4, n_notes=80, seed=10, progress=False)
    assert [(r["temperature"], r["top_p"]) for r in rows] == [(0.2, 0.9), (0.2, 1.0), (1.0, 0.9), (1.0, 1.0)]
    assert len(calls) == 16 and {c[2] for c in calls} == {80} and sorted({c[3] for c in calls}) == [10, 11, 12, 13]
    cold, hot = rows[0], rows[2]
    assert cold["degenerate_rate"] == 1.0 and hot["degenerate_rate"] == 0.0
    assert hot["mean_oa"] > cold["mean_oa"] + 0.2
    assert set(hot["oa"]) == set(S.SCALAR_FEATURES + S.HIST_FEATURES)


def sweep_row(temperature, top_p, mean_oa, degenerate_rate):
    return {"temperature": temperature, "top_p": top_p, "mean_oa": mean_oa, "degenerate_rate": degenerate_rate,
            "loop_share": degenerate_rate}


def test_best_setting_is_the_highest_oa_under_the_degenerate_ceiling():
    rows = [sweep_row(0.7, 0.9, 0.9, 0.5), sweep_row(0.7, 1.0, 0.8, 0.125), sweep_row(1.0, 0.9, 0.7, 0.0),
            sweep_row(1.0, 1.0, math.nan, 1.0)]

    def pick(ref, margin):
        best = SW.best_setting(rows, ref, margin)
        return best["temperature"], best["top_p"], best["eligible"]

    assert pick(0.0, 0.1) == (1.0, 0.9, True)  # the best OA (0.7, 0.9) degenerates too often
    assert pick(0.05, 0.1) == (0.7, 1.0, True)  # a repetitive held-out set raises the ceiling
    assert pick(0.375, 0.125) == (0.7, 0.9, True)  # a rate exactly at the ceiling is allowed
    assert SW.best_setting(rows, 0.0)["mean_oa"] == 0.7
    # nothing under the ceiling: the least degenerate, flagged as such
    high = [sweep_row(0.7, 0.9, 0.9, 0.75), sweep_row(1.0, 0.9, 0.4, 0.5), sweep_row(1.0, 1.0, 0.6, 0.5)]
    best = SW.best_setting(high, 0.0, 0.1)
    assert (best["temperature"], best["top_p"], best["eligible"]) == (1.0, 1.0, False)
    assert "No setting stays at or below 10%" in SW.describe_best({"best": best, "max_degenerate_rate": 0.1})
    # ties keep the first listed; rows read back from JSON carry None for NaN
    tie = [sweep_row(0.8, 0.9, None, 0.0), sweep_row(0.9, 0.9, 0.5, 0.0), sweep_row(1.0, 0.9, 0.5, 0.0)]
    assert SW.best_setting(tie, 0.0)["temperature"] == 0.9
    assert SW.best_setting([sweep_row(1.0, 1.0, None, 1.0)], 0.0) is None


def test_sweep_suggests_a_setting_that_does_not_loop():
    # Cold settings loop (all of them at 0.2, every other piece at 0.6); top_p 1.0 plays an octave
    # too high. Only (1.0, 0.9) is both like the reference and loop-free.
    def generate(*, temperature, top_k, top_p, n_notes, seed, primer):
        rng = np.random.default_rng(seed)
        if temperature < 0.5 or (temperature < 0.8 and seed % 2 == 0):
            return looped_notes(rng, n_notes)
        return random_notes(rng, n_notes, 60, 96) if top_p == 1.0 else random_notes(rng, n_notes)

    ref_rng = np.random.default_rng(12)
    reference = [random_notes(ref_rng, 200) for _ in range(8)]
    rows = SW.sampling_sweep(generate, [0.2, 0.6, 1.0], [0.9, 1.0], reference, n_pieces=4, n_notes=80, progress=False)
    assert [r["degenerate_rate"] for r in rows] == [1.0, 1.0, 0.5, 0.5, 0.0, 0.0]
    ref_rate = np.mean([S.degeneracy(r)["degenerate"] for r in S.excerpts(reference, 80)])
    assert ref_rate == 0.0
    best = SW.best_setting(rows, ref_rate)
    assert (best["temperature"], best["top_p"], best["eligible"]) == (1.0, 0.9, True)
    assert best["mean_oa"] > rows[5]["mean_oa"]

    sweep = {"rows": rows, "best": best, "n_pieces": 4, "n_notes": 80, "top_k": 0, "margin": SW.DEGENERATE_MARGIN,
             "reference_degenerate_rate": ref_rate, "max_degenerate_rate": ref_rate + SW.DEGENERATE_MARGIN}
    report = M.format_report({"sweep": sweep}, figures={"sweep": "r_sweep.png"})
    table = [line for line in report.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(table) == 6
    assert [line.endswith("| too degenerate |") for line in table] == [True] * 4 + [False] * 2
    assert table[4].startswith("| 1 | 0.9 |") and table[4].endswith("| **suggested** |")
    assert "Suggested setting: temperature 1, top_p 0.9" in report and "plus a margin of 10%" in report
    assert "![Mean OA and degenerate rate per sampling setting](r_sweep.png)" in report


def test_sweep_options_fill_defaults_and_reject_bad_values():
    o = SW.sweep_options(True, n_pieces=8, n_notes=100)
    assert (o["temperatures"], o["top_ps"]) == (list(SW.SWEEP_TEMPERATURES), list(SW.SWEEP_TOP_PS))
    assert (o["n_pieces"], o["n_notes"], o["margin"]) == (8, 100, SW.DEGENERATE_MARGIN)
    o = SW.sweep_options({"temperatures": 0.9, "top_ps": None, "n_pieces": 3}, n_pieces=8, n_notes=100)
    assert (o["temperatures"], o["top_ps"], o["n_pieces"]) == ([0.9], list(SW.SWEEP_TOP_PS), 3)
    for bad, match in (({"temperature": [1.0]}, "unknown sweep option"), ({"temperatures": [1.0, 0]}, "temperatures .*> 0"),
                       ({"top_ps": [1.5]}, r"top_ps .*\(0, 1\]"), ({"top_ps": []}, "non-empty"),
                       ({"temperatures": "hot"}, "temperatures"), ({"n_pieces": 1}, "n_pieces .*>= 2"),
                       ({"margin": 2}, "margin"), ([0.9], "None, True or a dict")):
        with pytest.raises(ValueError, match=match):
            SW.sweep_options(bad, n_pieces=8, n_notes=100)


def test_plot_sweep_draws_one_line_per_top_p():
    from melody_utils.display import plots

    rows = [sweep_row(t, p, 0.5 + t / 10 - p / 5, min(1.0, 1.2 - t)) for p in (1.0, 0.9) for t in (1.1, 0.7, 0.9)]
    rows[0]["mean_oa"] = None  # a setting without a score leaves a gap
    fig = plots.plot_sweep(rows)
    ax_oa, ax_deg = fig.axes[:2]
    for ax in (ax_oa, ax_deg):
        lines = {line.get_label(): line for line in ax.get_lines() if line.get_label().startswith("top_p")}
        assert sorted(lines) == ["top_p 0.9", "top_p 1"]
        # sorted by temperature, each top_p shifted a little so equal values stay visible
        np.testing.assert_allclose(lines["top_p 0.9"].get_xdata(), [0.7, 0.9, 1.1], atol=plots.SWEEP_OFFSET)
    np.testing.assert_allclose(ax_deg.get_lines()[0].get_ydata(), [min(1.0, 1.2 - t) for t in (0.7, 0.9, 1.1)])
    assert np.isnan(ax_oa.get_lines()[1].get_ydata()[-1])  # top_p 1.0 at 1.1
    assert not [c for c in ax_oa.collections if c.get_label() == "suggested"]

    best = SW.best_setting(rows, 0.0, 0.2)
    fig = plots.plot_sweep({"rows": rows, "best": best, "max_degenerate_rate": 0.2})
    ax_oa, ax_deg = fig.axes[:2]
    (star,) = [c for c in ax_oa.collections if c.get_label() == "suggested"]
    assert star.get_offsets()[0][0] == pytest.approx(best["temperature"], abs=plots.SWEEP_OFFSET)
    assert star.get_offsets()[0][1] == pytest.approx(best["mean_oa"])
    assert [line.get_ydata()[0] for line in ax_deg.get_lines() if line.get_label().startswith("ceiling")] == [0.2]
    with pytest.raises(ValueError, match="no sweep rows"):
        plots.plot_sweep([])


def test_excerpts_match_the_generated_length():
    rng = np.random.default_rng(9)
    cut = S.excerpts([random_notes(rng, 500), random_notes(rng, 30), random_notes(rng, 1)], 100)
    assert [len(c) for c in cut] == [100, 30]


# ---- evaluating a checkpoint ---------------------------------------------------------------


@pytest.fixture(scope="module", params=["causal", "baseline"])
def evaluated(request, tmp_path_factory):
    """An untrained tiny checkpoint of each kind on a synthetic cache, and its evaluation."""
    import torch

    from melody_utils.model import checkpoint
    from melody_utils.config import get_config
    from melody_utils.data.corpus import TokenCache
    from melody_utils.model.lstm import build_from_config

    arch = request.param
    torch.manual_seed(0)
    torch.set_num_threads(1)
    vocab = seed_vocab()
    rng = np.random.default_rng(10)
    pieces = [np.stack([(rng.integers(88) + np.arange(120)) % 88, rng.integers(0, 21, 120), rng.integers(0, 29, 120)], 1) for _ in range(8)]
    splits = ["train"] * 4 + ["validation"] * 2 + ["test"] * 2
    cache = TokenCache.from_pieces(pieces, vocab, splits)
    cfg = get_config("tiny", **{"model.arch": arch, "model.hidden": 16, "data.window": 16, "data.seed_window": 16,
                                "sample.n_notes": 40, "sample.primer_notes": 8})
    model = build_from_config(cfg, vocab)
    path = checkpoint.save_checkpoint(tmp_path_factory.mktemp(arch) / "ckpt.pt", model, cfg, vocab, epoch=1)
    result = M.evaluate_checkpoint(path, cache=cache, n_samples=3, device="cpu", progress=False)
    return {"arch": arch, "path": path, "cache": cache, "cfg": cfg, "model": model, "result": result}


def test_evaluate_scores_the_model_and_its_baselines(evaluated):
    nll = evaluated["result"]["nll"]
    assert list(nll) == ["model", "uniform", "1-gram", "2-gram", "3-gram"]
    assert set(nll["model"]["nats"]) == {"pitch", "step", "duration", "total"}
    # an untrained model is about as good as uniform; the cycle makes the 2-gram far better
    assert abs(nll["model"]["nats"]["total"] - nll["uniform"]["nats"]["total"]) < 1.0
    assert nll["2-gram"]["nats"]["pitch"] < nll["1-gram"]["nats"]["pitch"] - 2
    test_notes = 2 * 120
    assert nll["model"]["n_notes"] >= (test_notes - 2 * 17 if evaluated["arch"] == "causal" else 2 * (120 - 16))


def test_evaluate_compares_generated_with_held_out_pieces(evaluated):
    result = evaluated["result"]
    assert result["split"] == "test" and result["stats"]["n_generated"] == 3 and result["stats"]["n_reference"] == 2
    assert 0.0 <= result["degenerate_rate"] <= 1.0
    assert [len(result["piece_stats"][k]) for k in ("generated", "reference")] == [3, 2]
    assert "sweep" not in result


def test_evaluate_sweep_row_at_the_evaluated_setting_reproduces_the_evaluation(evaluated):
    # the sweep reuses the evaluation's primers, seeds and excerpts
    cfg, s = evaluated["cfg"], evaluated["cfg"].sample
    quick = M.evaluate_checkpoint(evaluated["path"], cache=evaluated["cache"], n_samples=2, sampling={"n_notes": 24},
                                  device="cpu", progress=False, likelihood=False,
                                  sweep={"temperatures": [s.temperature], "top_ps": [s.top_p, 0.5]})
    assert quick["nll"] == {} and "log-likelihood" not in M.format_report(quick)
    assert quick["sampling"]["n_notes"] == 24 and quick["stats"]["n_generated"] == 2
    sweep = quick["sweep"]
    assert [(r["temperature"], r["top_p"]) for r in sweep["rows"]] == [(s.temperature, s.top_p), (s.temperature, 0.5)]
    assert (sweep["n_pieces"], sweep["n_notes"], sweep["top_k"]) == (2, 24, cfg.sample.top_k)
    assert sweep["rows"][0]["mean_oa"] == pytest.approx(quick["stats"]["mean_oa"])
    assert sweep["rows"][0]["degenerate_rate"] == quick["degenerate_rate"]
    assert sweep["reference_degenerate_rate"] == quick["reference_degenerate_rate"]
    assert sweep["best"]["top_p"] in (s.top_p, 0.5)
    json.dumps(quick, allow_nan=False)


def test_evaluate_checkpoint_generates_with_the_sampling_changes_and_refuses_bad_ones(evaluated, monkeypatch):
    from melody_utils.generate.settings import SamplingSettings

    cfg, used = evaluated["cfg"], []
    real = M.model_generate_fn
    monkeypatch.setattr(M, "model_generate_fn", lambda model, vocab, settings=None, **kw: used.append(settings)
                        or real(model, vocab, settings, **kw))
    changes = {"temperature": 0.5, "top_k": 3, "n_notes": 20, "memory": 1.5}
    result = M.evaluate_checkpoint(evaluated["path"], cache=evaluated["cache"], n_samples=2, sampling=changes,
                                   device="cpu", progress=False, likelihood=False)
    assert used == [SamplingSettings.from_config(cfg.sample, **changes)]  # the checkpoint's sample section + the changes
    assert used[0].top_p == cfg.sample.top_p  # what is not given stays the checkpoint's
    s = result["sampling"]
    assert (s["temperature"], s["top_k"], s["top_p"], s["n_notes"]) == (0.5, 3, cfg.sample.top_p, 20)
    assert result["memory"]["strength"] == 1.5
    for bad, says in (({"top_p": 1.5}, r"^top_p must be a number in \(0, 1\]"), ({"memory": -1.0}, "^memory must be"),
                      ({"n_notes": 0}, "^n_notes must be"), ({"temp": 0.9}, "unknown sampling setting")):
        with pytest.raises(ValueError, match=says):
            M.evaluate_checkpoint(evaluated["path"], cache=evaluated["cache"], n_samples=2, sampling=bad, device="cpu",
                                  progress=False, likelihood=False)
    assert len(used) == 1  # refused before any piece is generated


def test_sampling_sweep_drives_a_model_through_the_generation_contract(evaluated):
    from melody_utils.generate.sample import model_generate_fn

    cache, model = evaluated["cache"], evaluated["model"]
    primers = [cache.piece_tokens(i)[:16] for i in cache.piece_indices("test")]
    rows = SW.sampling_sweep(model_generate_fn(model, cache.vocab), [1.0], [0.5, 1.0], [cache.notes(i) for i in range(8)],
                             n_pieces=2, n_notes=24, progress=False, primers=primers)
    assert [r["top_p"] for r in rows] == [0.5, 1.0] and all(0 <= r["mean_oa"] <= 1 for r in rows)


def test_format_report_has_the_likelihood_and_statistics_tables(evaluated):
    result = evaluated["result"]
    report = M.format_report(result)
    assert "| 3-gram |" in report and "| pitch_range |" in report and f"model ({evaluated['arch']})" in report
    assert "Sampling sweep" not in report
    json.dumps(result, allow_nan=False)  # JSON-ready: the CLI writes it


def test_evaluate_scores_the_piece_memory_with_its_weights_and_refitted_on_the_corpus(evaluated):
    mem, nll = evaluated["result"]["memory"], evaluated["result"]["nll"]
    if evaluated["arch"] != "causal":
        assert set(mem) == {"strength"}  # the memory's likelihood is scored for causal models only
        return
    from melody_utils.generate.memory import MEMORY

    assert mem["nll"]["n_notes"] == mem["nll_refit"]["n_notes"] == nll["model"]["n_notes"]  # the same notes
    # every piece here climbs the keyboard by semitones, so pitches repeat 88 notes later: the validation
    # pieces call for other weights than the piano corpus's, and the refit finds them
    refit = mem["refit"]
    assert len(refit["weights"]) == MEMORY.order and tuple(refit["weights"]) != MEMORY.weights
    assert mem["settings"] == MEMORY.to_dict()  # a checkpoint without a fitted memory plays the piano corpus's
    # its steps and durations do not repeat with the pitches: the piano weights mislead, the refitted ones less
    assert mem["nll_refit"]["nats"]["total"] < mem["nll"]["nats"]["total"]
    report = M.format_report(evaluated["result"])
    assert "| model + memory |" in report and "| model + memory refitted |" in report


def test_evaluate_rejects_a_cache_of_another_vocabulary(tmp_path):
    from melody_utils.model.checkpoint import save_checkpoint
    from melody_utils.config import get_config
    from melody_utils.data.corpus import TokenCache
    from melody_utils.model.lstm import build_from_config

    cfg = get_config("tiny", **{"model.hidden": 8})
    path = save_checkpoint(tmp_path / "ckpt.pt", build_from_config(cfg, seed_vocab()), cfg, seed_vocab())
    other = seed_vocab(velocity_bins=4)
    cache = TokenCache.from_pieces([np.zeros((40, 4), int)] * 4, other, ["train", "train", "test", "test"])
    with pytest.raises(ValueError, match="another vocabulary than the token cache's .velocity bins 0 vs 4"):
        M.evaluate_checkpoint(path, cache=cache, n_samples=2, progress=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """An untrained tiny checkpoint (OUT_DIR/ckpt_best.pt) and its token cache: the CLI's argv prefix."""
    import torch

    from melody_utils.data import corpus
    from melody_utils.model.checkpoint import save_checkpoint
    from melody_utils.config import get_config
    from melody_utils.model.lstm import build_from_config

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("run")
    cfg = get_config("tiny", **{"data.source": "embedded", "data.max_files": 24, "model.hidden": 8,
                                "sample.n_notes": 32, "train.out_dir": str(out)})
    cache = corpus.prepare(cfg.data, cache_dir=out / "cache", progress=False)
    save_checkpoint(out / "ckpt_best.pt", build_from_config(cfg, cache.vocab), cfg, cache.vocab)
    return ["evaluate", "--out-dir", str(out), "--cache-dir", str(out / "cache"), "--device", "cpu", "--quiet"]


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_cli_evaluate_prints_and_writes_the_report(tiny_run, tmp_path, capsys):
    import json

    from melody_utils.cli import commands as cli

    report = tmp_path / "eval" / "report.md"
    assert cli.main(tiny_run + ["--samples", "2", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "| 3-gram |" in out and "Mean OA" in out
    assert report.read_text() in out
    result = json.loads(report.with_suffix(".json").read_text())
    assert result["stats"]["n_generated"] == 2 and len(result["piece_stats"]["generated"]) == 2
    assert "sweep" not in result and "Sampling sweep" not in out
    assert (tmp_path / "eval" / "report_distributions.png").read_bytes().startswith(PNG_MAGIC)
    assert "](report_distributions.png)" in report.read_text()
    assert not (tmp_path / "eval" / "report_sweep.png").exists()

    assert cli.main(["evaluate", "--samples", "1"]) == 2  # a distribution needs 2 pieces
    assert "--samples" in capsys.readouterr().err
    assert cli.main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--quiet"]) == 1
    assert "checkpoint not found" in capsys.readouterr().err


def test_cli_evaluate_sweep_writes_the_table_and_the_figures(tiny_run, tmp_path, capsys):
    import json

    from melody_utils.cli import commands as cli

    argv = tiny_run + ["--samples", "2", "--sweep-temperatures", "0.9,1.1", "--sweep-top-ps", "1.0, 0.8",
                       "--report", str(tmp_path / "eval")]  # no suffix: eval.md
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    report = (tmp_path / "eval.md").read_text()
    assert report in out and "## Sampling sweep (2 pieces of 32 notes per setting" in report
    assert "](eval_sweep.png)" in report and "](eval_distributions.png)" in report
    for name in ("eval_sweep.png", "eval_distributions.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG_MAGIC), name
    sweep = json.loads((tmp_path / "eval.json").read_text())["sweep"]
    settings = [(r["temperature"], r["top_p"]) for r in sweep["rows"]]
    assert settings == [(0.9, 1.0), (0.9, 0.8), (1.1, 1.0), (1.1, 0.8)]
    for t, p in settings:
        assert f"| {t:g} | {p:g} |" in report
    assert sweep["max_degenerate_rate"] == pytest.approx(sweep["reference_degenerate_rate"] + SW.DEGENERATE_MARGIN)
    best = sweep["best"]
    assert (best["temperature"], best["top_p"]) in settings and report.count("**suggested**") == 1

    assert cli.main(tiny_run + ["--sweep-top-ps", "0.9,1.5"]) == 2  # a bad grid is a usage error, before any work
    err = capsys.readouterr().err
    assert "--sweep-top-ps" in err and "'0.9,1.5'" in err


def test_compare_distributions_plot_draws_one_panel_per_feature():
    from melody_utils.display import plots

    rng = np.random.default_rng(11)
    gen = [S.piece_stats(random_notes(rng, 60)) for _ in range(3)]
    ref = [random_notes(rng, 60) for _ in range(4)]  # Notes are accepted too
    fig = plots.compare_distributions(gen, ref)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == len(S.SCALAR_FEATURES + S.HIST_FEATURES)
    assert any(ax.get_title().startswith(plots.FEATURE_LABELS["pitch_class_hist"]) for ax in visible)
    fig = plots.compare_distributions(gen, ref, features=["mean_pitch", "step_hist"])
    assert [ax.get_title().split("  (OA")[0] for ax in fig.axes if ax.get_visible()] == [
        plots.FEATURE_LABELS["mean_pitch"], plots.FEATURE_LABELS["step_hist"]]
    with pytest.raises(ValueError, match="unknown feature"):
        plots.compare_distributions(gen, ref, features=["tempo"])


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


@pytest.mark.parametrize("context", [20, 30])
def test_context_scores_exactly_the_notes_with_that_many_before_them(evaluated, context):
    import torch
    import torch.nn.functional as F

    model, cfg, cache = evaluated["model"].eval(), evaluated["cfg"], evaluated["cache"]
    pieces = cache.split_tokens("test")
    got = M.context_nll(model, cfg, cache.vocab, pieces, context=context)
    # reference: every note i >= context of every piece, one at a time, from what the model reads before it
    total, n = 0.0, 0
    with torch.no_grad():
        for t in (torch.as_tensor(p.astype(np.int64)) for p in pieces):
            for i in range(context, len(t)):
                if model.causal:
                    logits = [lg[0, -1] for lg in model(t[None, :i], next_pitch=t[None, 1: i + 1, 0])]
                else:
                    logits = [lg[0] for lg in model(t[None, i - model.window: i])]
                total += sum(float(F.cross_entropy(lg[None], t[i, f][None])) for f, lg in enumerate(logits))
                n += 1
    assert got["n_notes"] == n == sum(len(p) - context for p in pieces)
    assert got["nats"]["total"] == pytest.approx(total / n, rel=1e-4)


def test_context_shorter_than_a_window_models_window_is_refused(evaluated):
    if evaluated["model"].causal:
        pytest.skip("causal models score any context")
    with pytest.raises(ValueError, match="context=8 is shorter than the window model's 16 notes"):
        M.context_nll(evaluated["model"], evaluated["cfg"], evaluated["cache"].vocab, evaluated["cache"].split_tokens("test"), 8)


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
