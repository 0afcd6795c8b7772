"""Piano roll, token histograms, loss history, sampling sweep and compared distributions: what each
figure draws (melody_utils.display.plots)."""

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure

from helpers import random_grid_notes, random_notes, sweep_row
from melody_utils.display import plots
from melody_utils.evaluate import sweep as SW
from melody_utils.music import stats
from melody_utils.music.midi import Notes
from melody_utils.music.quantize import log_bins, seed_duration_bins, seed_step_bins


def labelled(ax, cls, label):
    return [c for c in ax.collections if isinstance(c, cls) and c.get_label() == label]


def test_piano_roll_draws_one_bar_per_note_coloured_by_velocity():
    notes = random_notes(50, seed=1)
    fig = plots.piano_roll(notes, title="roll")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    (bars,) = labelled(ax, PolyCollection, "notes")
    paths = bars.get_paths()
    assert len(paths) == len(notes)
    x0 = np.array([p.vertices[:, 0].min() for p in paths])
    x1 = np.array([p.vertices[:, 0].max() for p in paths])
    yc = np.array([(p.vertices[:, 1].min() + p.vertices[:, 1].max()) / 2 for p in paths])
    np.testing.assert_allclose(x0, notes.start)
    np.testing.assert_allclose(x1, notes.end)
    np.testing.assert_allclose(yc, notes.pitch)
    np.testing.assert_array_equal(bars.get_array(), notes.velocity)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels and all(t.startswith("C") for t in labels)
    assert ax.get_title() == "roll"


def test_piano_roll_seconds_keeps_the_opening_only():
    notes = random_notes(80, seed=2)
    ax = plots.piano_roll(notes, seconds=5.0).axes[0]
    (bars,) = labelled(ax, PolyCollection, "notes")
    assert len(bars.get_paths()) == int((notes.start < 5.0).sum()) < len(notes)
    assert ax.get_xlim()[1] <= 5.0


def test_piano_roll_into_given_axes_and_empty_notes():
    fig = Figure()
    ax = fig.subplots()
    assert plots.piano_roll(random_notes(5), ax=ax, colorbar=False) is fig
    empty = plots.piano_roll(Notes.empty()).axes[0]
    assert not labelled(empty, PolyCollection, "notes")
    assert any("no notes" in t.get_text() for t in empty.texts)


def test_pitch_names():
    assert [plots.pitch_to_name(p) for p in (21, 60, 61, 108)] == ["A0", "C4", "C#4", "C8"]


def test_figures_stay_out_of_pyplot_and_render_as_png():
    before = plt.get_fignums()
    fig = plots.piano_roll(random_notes(10))
    assert plt.get_fignums() == before  # no global figures to leak in a live-plot loop
    assert fig._repr_png_().startswith(b"\x89PNG")


@pytest.mark.parametrize("step_bins, dur_bins", [
    (seed_step_bins(), seed_duration_bins()),
    (log_bins(16, 0.03, 2.0, zero=True), log_bins(12, 0.05, 3.0, zero=False)),
])
def test_token_histograms_draw_the_bin_edges(step_bins, dur_bins):
    notes = [random_notes(60, seed=0), random_notes(40, seed=1)]
    fig = plots.token_histograms(notes, step_bins=step_bins, dur_bins=dur_bins)
    ax_p, ax_s, ax_d = fig.axes
    for ax, bins in ((ax_s, step_bins), (ax_d, dur_bins)):
        (edges,) = labelled(ax, LineCollection, "bin edges")
        xs = sorted(seg[0, 0] for seg in edges.get_segments())
        np.testing.assert_allclose(xs, bins.edges)
        assert ax.get_xscale() == "log"
        assert sum(p.get_height() for p in ax.patches) > 0
    pitch_counts = sum(p.get_height() for p in ax_p.patches)
    assert pitch_counts == sum(len(n) for n in notes)  # every note in the pitch histogram
    # chord notes (step exactly 0) cannot sit on a log axis: their share is written instead
    assert any("exactly 0 s" in t.get_text() for t in ax_s.texts)


def test_token_histograms_from_arrays_and_edge_arrays():
    rng = np.random.default_rng(0)
    fig = plots.token_histograms(pitch=rng.integers(40, 80, 100), step=rng.uniform(0.01, 1, 100),
                                 duration=rng.uniform(0.05, 2, 100), step_bins=[0.1, 0.2, 0.4])
    (edges,) = labelled(fig.axes[1], LineCollection, "bin edges")
    assert len(edges.get_segments()) == 3
    assert not labelled(fig.axes[2], LineCollection, "bin edges")  # no dur_bins given


def test_token_histograms_reject_bad_input():
    with pytest.raises(ValueError, match="notes="):
        plots.token_histograms()
    with pytest.raises(TypeError, match="list of Notes"):
        plots.token_histograms([np.zeros(3)])
    with pytest.raises(ValueError, match="empty"):
        plots.token_histograms([Notes.empty()])


def curves(fig):
    return {line.get_label(): line for line in fig.axes[0].get_lines()}


def test_plot_history_one_epoch_is_visible():
    lines = curves(plots.plot_history({"epoch": [1], "train_loss": [5.9], "val_loss": [6.1]}))
    assert set(lines) == {"train", "validation"}
    assert list(lines["train"].get_xdata()) == [1] and lines["train"].get_marker() == "o"


def test_plot_history_several_epochs_marks_the_best():
    h = {"epoch": [1, 2, 3, 4], "train_loss": [5.9, 5.6, 5.4, 5.3], "val_loss": [6.0, 5.7, 5.5, 5.6],
         "val_pitch": [3.0, 2.9, 2.8, 2.8], "lr": [1e-3] * 4}
    fig = plots.plot_history(h, heads=True)
    lines = curves(fig)
    assert set(lines) == {"train", "validation", "val pitch"}
    np.testing.assert_array_equal(lines["validation"].get_ydata(), h["val_loss"])
    best = [c for c in fig.axes[0].collections if c.get_label().startswith("best val")]
    np.testing.assert_allclose(best[0].get_offsets(), [[3, 5.5]])


def test_plot_history_is_lenient():
    # no epoch key, no validation, a None gap
    lines = curves(plots.plot_history({"train_loss": [5.0, None, 4.0]}))
    assert set(lines) == {"train"}
    assert list(lines["train"].get_xdata()) == [1, 2, 3]
    # a list of per-epoch dicts, and a history.json path
    rows = [{"epoch": 1, "train_loss": 5.0, "val_loss": 5.5}, {"epoch": 2, "train_loss": 4.5, "val_loss": 5.1}]
    assert list(curves(plots.plot_history(rows))["validation"].get_ydata()) == [5.5, 5.1]
    empty = plots.plot_history({"epoch": [], "train_loss": [], "val_loss": []}).axes[0]
    assert not empty.get_lines() and any("no losses" in t.get_text() for t in empty.texts)


def test_plot_history_reads_json_and_names_a_missing_file(tmp_path):
    path = tmp_path / "history.json"
    path.write_text(json.dumps({"epoch": [1, 2], "train_loss": [5, 4], "val_loss": [5.5, 4.5]}))
    assert len(curves(plots.plot_history(path))["train"].get_xdata()) == 2
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        plots.plot_history(tmp_path / "nothere.json")


def _sweep_rows():
    # three top_p values with identical degenerate rates: their lines must not hide one another
    return [{"temperature": t, "top_p": p, "mean_oa": 0.50 + 0.01 * i, "degenerate_rate": 0.0}
            for i, p in enumerate((0.9, 0.95, 1.0)) for t in (0.8, 1.0)]


def test_plot_sweep_axes_are_fixed_and_lines_stay_distinguishable():
    best = {"temperature": 1.0, "top_p": 0.95, "mean_oa": 0.51, "degenerate_rate": 0.0, "eligible": True}
    fig = plots.plot_sweep({"rows": _sweep_rows(), "best": best, "max_degenerate_rate": 0.1})
    ax_oa, ax_deg = fig.axes[:2]
    lo, hi = ax_oa.get_ylim()
    assert lo <= 0 and hi >= 1 and hi - lo < 1.1  # the whole 0-1 scale, not autoscaled to 0.50-0.52
    lo, hi = ax_deg.get_ylim()
    assert lo <= 0 and hi >= 1 and hi - lo < 1.1
    lines = [line for line in ax_deg.get_lines() if line.get_label().startswith("top_p")]
    assert len(lines) == 3
    assert len({(line.get_marker(), line.get_linestyle()) for line in lines}) == 3
    xs = [tuple(line.get_xdata()) for line in lines]
    assert len(set(xs)) == 3  # offset in temperature, so equal values do not coincide
    star = [c for c in ax_deg.collections if c.get_label() == "suggested"][0]
    middle = [line for line in lines if line.get_label() == "top_p 0.95"][0]
    assert star.get_offsets()[0][0] == pytest.approx(middle.get_xdata()[1])  # on its own line


def test_compare_distributions_names_features_with_units():
    gen = [random_notes(40, seed=s) for s in range(3)]
    ref = [random_notes(40, seed=10 + s) for s in range(3)]
    fig = plots.compare_distributions(gen, ref, features=["polyphony", "mean_ioi", "pitch_class_hist"])
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles[0].startswith("Polyphony (notes)") and titles[1].startswith("Inter-onset interval (s)")
    assert all("_" not in t for t in titles)
    assert set(stats.SCALAR_FEATURES + stats.HIST_FEATURES) <= set(plots.FEATURE_LABELS)


def test_the_velocity_histogram_is_labelled_in_velocity_not_seconds():
    gen = [random_notes(40, seed=s) for s in range(3)]
    ref = [random_notes(40, seed=10 + s) for s in range(3)]
    fig = plots.compare_distributions(gen, ref, features=["velocity_hist", "step_hist"])
    velocity, step = fig.axes[:2]
    assert velocity.get_xlabel() == "Velocity (MIDI 1-127)"
    assert [t.get_text() for t in velocity.get_xticklabels()] == ["0", "32", "64", "96"]
    assert [t.get_text() for t in step.get_xticklabels()][:2] == [f"{stats.STAT_TIME_EDGES[0]:.2g}", f"{stats.STAT_TIME_EDGES[4]:.2g}"]


def test_plot_sweep_draws_one_line_per_top_p():
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


def test_compare_distributions_plot_draws_one_panel_per_feature():
    rng = np.random.default_rng(11)
    gen = [stats.piece_stats(random_grid_notes(rng, 60)) for _ in range(3)]
    ref = [random_grid_notes(rng, 60) for _ in range(4)]  # Notes are accepted too
    fig = plots.compare_distributions(gen, ref)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == len(stats.SCALAR_FEATURES + stats.HIST_FEATURES)
    assert any(ax.get_title().startswith(plots.FEATURE_LABELS["pitch_class_hist"]) for ax in visible)
    fig = plots.compare_distributions(gen, ref, features=["mean_pitch", "step_hist"])
    assert [ax.get_title().split("  (OA")[0] for ax in fig.axes if ax.get_visible()] == [
        plots.FEATURE_LABELS["mean_pitch"], plots.FEATURE_LABELS["step_hist"]]
    with pytest.raises(ValueError, match="unknown feature"):
        plots.compare_distributions(gen, ref, features=["tempo"])
