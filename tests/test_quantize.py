"""Tests of melody_utils.music.quantize: the seed notebook's linear grid and log grids, nearest-centre
quantization and its error, fitted bins, and the spread of values inside a bin."""

import numpy as np
import pytest

from melody_utils.music.quantize import Bins, fit_log_bins, log_bins, seed_duration_bins, seed_step_bins, timing_error_ms
from melody_utils.music.tokens import seed_vocab


def test_seed_grid_matches_the_seed_notebook():
    s, d = seed_step_bins(), seed_duration_bins()
    assert len(s) == 21 and s.centers[0] == 0.05 and s.centers[-1] == 1.05
    assert len(d) == 29 and d.centers[-1] == 1.45
    assert seed_vocab().sizes == (88, 21, 29)


def test_seed_grid_turns_chords_into_arpeggios_and_log_grid_keeps_them():
    chord_steps = np.zeros(10)
    assert np.all(seed_step_bins().dequantize(seed_step_bins().quantize(chord_steps)) == 0.05)
    lb = log_bins(32, 0.03, 4.0, zero=True)
    assert np.all(lb.dequantize(lb.quantize(chord_steps)) == 0.0)
    assert lb.quantize([0.010])[0] == 0  # within the chord threshold


@pytest.mark.parametrize("bins", [seed_step_bins(), log_bins(24, 0.03, 3.0, zero=True), log_bins(24, 0.03, 3.0, zero=False)])
def test_quantize_is_nearest_centre_and_idempotent(bins):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 4, 5000)
    ids = bins.quantize(x)
    c = np.asarray(bins.centers)
    dist = np.log(np.maximum(x, 1e-9))[:, None] - np.log(np.maximum(c, 1e-9))[None] if bins.log else x[:, None] - c[None]
    best = np.abs(dist).argmin(1)
    inside = (x > c[1]) & (x < c[-1])  # away from the chord edge and the clipped ends
    np.testing.assert_array_equal(ids[inside], best[inside])
    np.testing.assert_array_equal(bins.quantize(bins.dequantize(ids)), ids)


def test_error_bounds_inside_the_grid():
    bins = log_bins(32, 0.02, 4.0, zero=False)
    x = np.geomspace(0.02, 4.0, 1000)
    rel = np.abs(bins.dequantize(bins.quantize(x)) - x) / x
    ratio = bins.centers[1] / bins.centers[0]
    assert rel.max() <= np.sqrt(ratio) - 1 + 1e-9  # at most half a log-step away
    lin = seed_step_bins()
    y = np.linspace(0.05, 1.05, 1000)
    assert np.abs(lin.dequantize(lin.quantize(y)) - y).max() <= 0.025 + 1e-9


def test_timing_error_report_and_fit():
    rng = np.random.default_rng(1)
    steps = np.concatenate([np.zeros(300), rng.lognormal(np.log(0.2), 0.6, 2000)])
    fitted = fit_log_bins(steps, 32, zero=True)
    e_fit, e_seed = timing_error_ms(steps, fitted), timing_error_ms(steps, seed_step_bins())
    assert set(e_fit) == {"median_ms", "p95_ms", "mean_ms"}
    assert e_fit["mean_ms"] < e_seed["mean_ms"]  # chords cost the seed grid 50 ms each
    assert fitted.centers[0] == 0.0


def test_bins_validate():
    with pytest.raises(ValueError):
        Bins((0.1, 0.1))
    with pytest.raises(ValueError, match="out of range"):
        seed_step_bins().dequantize([21])


def test_end_bins_keep_their_values_near_the_centre():
    bins = log_bins(8, 0.05, 1.0, zero=True)
    values = np.concatenate([np.full(50, 30.0), np.full(50, 1.1), np.full(50, 0.0)])  # a fermata of 30 s in the last bin
    spread = bins.fit_spread(values)
    assert max(spread.quantiles[-1]) == pytest.approx(2 * bins.centers[-1])  # clipped to twice the centre
    assert spread.quantiles[0] == (0.0,) * len(spread.quantiles[0])  # exact chords stay exact
    assert spread.quantiles[3] == pytest.approx((bins.centers[3],) * len(spread.quantiles[3]), abs=1e-6)  # an unused bin: its centre
