"""Tests of melody_utils.evaluate.sweep: a grid of sampling settings scored against reference pieces,
and the setting it suggests."""

import math

import numpy as np
import pytest

from melody_utils.evaluate import report as M, sweep as SW
from melody_utils.music import stats as S

from helpers import looped_notes, random_grid_notes, sweep_row


def test_sampling_sweep_with_a_fake_generator():
    calls = []

    def generate(*, temperature, top_k, top_p, n_notes, seed, primer):
        calls.append((temperature, top_p, n_notes, seed))
        rng = np.random.default_rng(seed)
        return looped_notes(rng, n_notes) if temperature < 0.5 else random_grid_notes(rng, n_notes)

    ref_rng = np.random.default_rng(99)
    reference = [random_grid_notes(ref_rng, 300) for _ in range(10)]
    rows = SW.sampling_sweep(generate, [0.2, 1.0], [0.9, 1.0], reference, n_pieces=4, n_notes=80, seed=10, progress=False)
    assert [(r["temperature"], r["top_p"]) for r in rows] == [(0.2, 0.9), (0.2, 1.0), (1.0, 0.9), (1.0, 1.0)]
    assert len(calls) == 16 and {c[2] for c in calls} == {80} and sorted({c[3] for c in calls}) == [10, 11, 12, 13]
    cold, hot = rows[0], rows[2]
    assert cold["degenerate_rate"] == 1.0 and hot["degenerate_rate"] == 0.0
    assert hot["mean_oa"] > cold["mean_oa"] + 0.2
    assert set(hot["oa"]) == set(S.SCALAR_FEATURES + S.HIST_FEATURES)


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
        return random_grid_notes(rng, n_notes, 60, 96) if top_p == 1.0 else random_grid_notes(rng, n_notes)

    ref_rng = np.random.default_rng(12)
    reference = [random_grid_notes(ref_rng, 200) for _ in range(8)]
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


def test_sampling_sweep_drives_a_model_through_the_generation_contract(evaluated):
    from melody_utils.generate.sample import model_generate_fn

    cache, model = evaluated["cache"], evaluated["model"]
    primers = [cache.piece_tokens(i)[:16] for i in cache.piece_indices("test")]
    rows = SW.sampling_sweep(model_generate_fn(model, cache.vocab), [1.0], [0.5, 1.0], [cache.notes(i) for i in range(8)],
                             n_pieces=2, n_notes=24, progress=False, primers=primers)
    assert [r["top_p"] for r in rows] == [0.5, 1.0] and all(0 <= r["mean_oa"] <= 1 for r in rows)
