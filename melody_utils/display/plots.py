"""Plots for the notebooks: piano roll, token histograms, loss history, generated-vs-held-out
statistics (compare_distributions) and the sampling sweep (plot_sweep).

Every function returns a ``matplotlib.figure.Figure`` and never calls ``plt.show()``: figures
are built with the object-oriented API (no pyplot global state, so a live plot redrawn every
epoch leaks nothing, and any backend, Agg included, works). They show themselves in a notebook
as PNG (:class:`NotebookFigure`) and save with ``fig.savefig(path)``. Functions that take an
``ax`` draw into it instead and return its figure.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ..music import stats
from ..music.midi import Notes

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
VELOCITY_CMAP = "viridis"
NOTE_HEIGHT = 0.8  # bar height in semitones (a gap between neighbouring pitches)
TIME_HIST_BINS = 60  # log-spaced histogram bins for step / duration
TRAIN_KEYS = ("train_loss", "train", "loss")  # history keys accepted for the training curve
VAL_KEYS = ("val_loss", "valid_loss", "validation_loss", "val")  # ... and the validation curve
# stats.piece_stats feature -> axis label with its unit
FEATURE_LABELS = {
    "pitch_count": "Distinct pitches (count)",
    "pitch_range": "Pitch range (semitones)",
    "mean_pitch": "Mean pitch (MIDI number)",
    "mean_interval": "Mean melodic interval (semitones)",
    "mean_ioi": "Inter-onset interval (s)",
    "polyphony": "Polyphony (notes)",
    "note_density": "Note density (notes/s)",
    "loop_share": "Notes in loops (share)",
    "repeat_ngram": "Repeated note patterns, exact (share)",
    "repeat_pitch_ngram": "Repeated pitch patterns (share)",
    "top_pitch_share": "Most frequent pitch (share of notes)",
    "pitch_class_hist": "Pitch class",
    "interval_hist": "Melodic interval (semitones)",
    "step_hist": "Step between onsets (s)",
    "duration_hist": "Duration (s)",
    "mean_velocity": "Mean velocity (MIDI 1-127)",
    "velocity_spread": "Velocity spread (std, MIDI units)",
    "velocity_hist": "Velocity (MIDI 1-127)",
}
SWEEP_LINESTYLES = ("-", "--", "-.", ":")  # one per top_p (cycled), with the markers below
SWEEP_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
SWEEP_OFFSET = 0.012  # temperature units between the lines of neighbouring top_p values, so equal values stay visible


class NotebookFigure(Figure):
    """A Figure that displays itself as PNG in Jupyter/Colab without going through pyplot."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png")
        return buf.getvalue()


def new_figure(nrows: int = 1, ncols: int = 1, figsize=(10, 4)):
    """(figure, axes) with constrained layout; ``axes`` is one Axes or an array of them."""
    fig = NotebookFigure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=True)


def pitch_to_name(pitch: int) -> str:
    """MIDI pitch -> scientific pitch name, middle C (60) = ``"C4"``."""
    return f"{NOTE_NAMES[int(pitch) % 12]}{int(pitch) // 12 - 1}"


def _set_c_ticks(axis, lo: int, hi: int) -> None:
    """Ticks and names at the C's between pitches ``lo`` and ``hi``."""
    cs = [p for p in range(int(lo), int(hi) + 1) if p % 12 == 0]
    axis.set_ticks(cs, [pitch_to_name(p) for p in cs])


# ---------------------------------------------------------------- piano roll


def piano_roll(notes: Notes, ax=None, title: str | None = None, seconds: float | None = None, colorbar: bool = True):
    """One horizontal bar per note: time on x, pitch on y (C's named), colour = velocity.

    ``seconds``: show only the notes that start in the first ``seconds`` seconds. The bars are
    one ``PolyCollection`` (labelled ``"notes"``), so thousands of notes draw quickly.
    """
    if not isinstance(notes, Notes):
        raise TypeError(f"notes must be a melody_utils.music.midi.Notes, got {type(notes).__name__}")
    if seconds is not None:
        if not seconds > 0:
            raise ValueError(f"seconds must be > 0 or None, got {seconds!r}")
        notes = notes[notes.start < seconds]
    fig, ax = (new_figure(figsize=(12, 4)) if ax is None else (ax.figure, ax))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch")
    if title:
        ax.set_title(title)
    if len(notes) == 0:
        ax.text(0.5, 0.5, "no notes", ha="center", va="center", transform=ax.transAxes)
        return fig
    s, e, p = notes.start, notes.end, notes.pitch.astype(np.float64)
    h = NOTE_HEIGHT / 2
    verts = np.stack([np.stack([s, p - h], 1), np.stack([e, p - h], 1), np.stack([e, p + h], 1), np.stack([s, p + h], 1)], axis=1)  # (N, 4, 2)
    bars = PolyCollection(verts, cmap=VELOCITY_CMAP, norm=Normalize(0, 127), linewidths=0, label="notes")
    bars.set_array(notes.velocity.astype(np.float64))
    ax.add_collection(bars)
    t_end = float(e.max()) if seconds is None else min(float(e.max()), seconds)
    ax.set_xlim(min(0.0, float(s.min())), max(t_end, float(s.min()) + 1e-3))
    lo, hi = int(p.min()), int(p.max())
    ax.set_ylim(lo - 1.5, hi + 1.5)
    _set_c_ticks(ax.yaxis, lo - 1, hi + 1)
    ax.grid(axis="y", alpha=0.3)
    if colorbar:
        fig.colorbar(bars, ax=ax, label="velocity", pad=0.01)
    return fig


# ---------------------------------------------------------------- token histograms


def _as_arrays(notes, pitch, step, duration):
    """Notes, a list of Notes, or arrays -> (pitch, step, duration) concatenated over pieces."""
    if notes is not None:
        pieces = [notes] if isinstance(notes, Notes) else list(notes)
        bad = [type(x).__name__ for x in pieces if not isinstance(x, Notes)]
        if bad:
            raise TypeError(f"notes must be a Notes or a list of Notes, got a list holding {bad[0]}")
        pieces = [x for x in pieces if len(x)]
        if not pieces:
            raise ValueError("no notes to plot: every piece is empty")
        # steps per piece: the first note of a piece has step 0, not the gap from the last piece
        return tuple(np.concatenate([getattr(x, f) for x in pieces]) for f in ("pitch", "step", "duration"))
    if pitch is None and step is None and duration is None:
        raise ValueError("pass notes=... or at least one of pitch=, step=, duration= arrays")
    return tuple(None if a is None else np.asarray(a, dtype=np.float64).reshape(-1) for a in (pitch, step, duration))


def _bin_edges(bins) -> np.ndarray | None:
    """A quantize.Bins (its decision edges), an array of edges, or None."""
    if bins is None:
        return None
    edges = getattr(bins, "edges", None)
    return np.asarray(edges if edges is not None else bins, dtype=np.float64).reshape(-1)


def _time_hist(ax, values: np.ndarray, edges: np.ndarray | None, label: str) -> None:
    """Histogram of seconds on a log axis; exact zeros (chords) are counted in a note instead."""
    v = values[np.isfinite(values)]
    pos = v[v > 0]
    lo = min(pos.min() if len(pos) else 1e-2, edges[edges > 0].min() if edges is not None and (edges > 0).any() else np.inf)
    hi = max(pos.max() if len(pos) else 1.0, edges.max() if edges is not None else 0.0)
    hist_edges = np.geomspace(lo * 0.9, hi * 1.1, TIME_HIST_BINS + 1)
    if len(pos):
        ax.hist(pos, bins=hist_edges, color="tab:blue", alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(f"{label} (s, log)")
    n_zero = int((v == 0).sum())
    if n_zero:
        ax.text(0.98, 0.95, f"{n_zero / max(len(v), 1):.0%} exactly 0 s", ha="right", va="top", transform=ax.transAxes,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    if edges is not None:
        ax.vlines(edges[edges > 0], 0, 1, transform=ax.get_xaxis_transform(), colors="tab:red", linestyles="--", linewidths=0.8, label="bin edges")
        ax.legend(loc="upper left")


def token_histograms(notes=None, *, pitch=None, step=None, duration=None, step_bins=None, dur_bins=None, title: str | None = None):
    """Histograms of pitch, step and duration, with the time bins' edges drawn over them.

    Data: ``notes`` (a Notes or a list of Notes) or the arrays ``pitch=``, ``step=``,
    ``duration=`` (seconds). ``step_bins``/``dur_bins``: a :class:`melody_utils.music.quantize.Bins`
    (its decision edges are drawn as dashed lines labelled ``"bin edges"``) or an array of edges.
    Times are on a log axis; exact zeros (chord notes) cannot be, so their share is written
    on the step panel. Returns a figure with three axes (pitch, step, duration).
    """
    p, s, d = _as_arrays(notes, pitch, step, duration)
    fig, axes = new_figure(1, 3, figsize=(15, 3.8))
    ax_p, ax_s, ax_d = axes
    if p is not None and len(p):
        lo, hi = int(np.min(p)), int(np.max(p))
        ax_p.hist(p, bins=np.arange(lo - 0.5, hi + 1.5), color="tab:blue", alpha=0.8)
        _set_c_ticks(ax_p.xaxis, lo, hi)
    ax_p.set_xlabel("pitch")
    ax_p.set_ylabel("notes")
    for ax, values, bins, label in ((ax_s, s, step_bins, "step"), (ax_d, d, dur_bins, "duration")):
        if values is None or len(values) == 0:
            ax.text(0.5, 0.5, f"no {label} data", ha="center", va="center", transform=ax.transAxes)
            continue
        _time_hist(ax, values, _bin_edges(bins), label)
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------- loss history


def _history_dict(history) -> dict:
    """A dict of lists, a list of per-epoch dicts, or a path to a history JSON -> dict of lists."""
    if isinstance(history, (str, os.PathLike)):
        path = Path(history)
        if not path.is_file():
            raise FileNotFoundError(f"history file not found: {path} (training writes history.json next to its checkpoints)")
        history = json.loads(path.read_text())
    if isinstance(history, (list, tuple)):
        keys = {k for row in history for k in row}
        return {k: [row.get(k, math.nan) for row in history] for k in keys}
    if not isinstance(history, dict):
        raise TypeError(f"history must be a dict of lists, a list of dicts or a JSON path, got {type(history).__name__}")
    return history


def _curve(h: dict, keys) -> tuple[str | None, np.ndarray]:
    for k in keys:
        if k in h and h[k] is not None and len(h[k]):
            return k, np.array([math.nan if v is None else v for v in h[k]], dtype=np.float64)
    return None, np.zeros(0)


def plot_history(history, ax=None, title: str | None = None, heads: bool = False):
    """Train and validation loss per epoch; safe to call again after every epoch (live plot).

    ``history``: a dict of lists like ``{"epoch": [...], "train_loss": [...], "val_loss": [...]}``
    (what ``train.train`` returns and writes as ``history.json``), a list of per-epoch dicts, or
    the JSON path. Missing keys are skipped: without ``"epoch"`` the x axis counts 1, 2, ...;
    None/NaN values leave gaps. ``heads``: also draw the per-head validation losses
    (``val_pitch``, ``val_step``, ...). The best validation loss is marked.
    """
    h = _history_dict(history)
    fig, ax = (new_figure(figsize=(8, 4)) if ax is None else (ax.figure, ax))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats per note)")
    if title:
        ax.set_title(title)
    _, epoch = _curve(h, ("epoch",))
    curves = [(_curve(h, TRAIN_KEYS), "train", "tab:blue", "-"), (_curve(h, VAL_KEYS), "validation", "tab:orange", "-")]
    if heads:
        head_keys = [k for k in h if k.startswith("val_") and k != "val_loss"]
        colors = ("tab:green", "tab:purple", "tab:brown", "tab:gray", "tab:olive", "tab:cyan")
        curves += [(_curve(h, (k,)), f"val {k[4:]}", colors[i % len(colors)], ":") for i, k in enumerate(head_keys)]
    drawn = 0
    for (key, y), label, color, style in curves:
        if key is None or not np.isfinite(y).any():
            continue
        x = epoch[: len(y)] if len(epoch) >= len(y) else np.arange(1, len(y) + 1, dtype=np.float64)
        marker = "o" if len(y) <= 30 else None  # a single epoch is a point, not an invisible line
        ax.plot(x, y, style, color=color, marker=marker, markersize=4, label=label)
        drawn += 1
        if label == "validation":
            best = int(np.nanargmin(y))
            ax.scatter([x[best]], [y[best]], s=120, marker="*", color="tab:red", zorder=3, label=f"best val {y[best]:.3f}")
    if drawn:
        ax.legend()
        ax.grid(alpha=0.3)
    else:
        ax.text(0.5, 0.5, "no losses recorded yet", ha="center", va="center", transform=ax.transAxes)
    return fig


# ---------------------------------------------------------------- evaluation statistics


def compare_distributions(gen_stats, ref_stats, features=None, title: str | None = None):
    """Generated vs reference pieces, one panel per feature of :func:`melody_utils.music.stats.piece_stats`.

    ``gen_stats``/``ref_stats``: lists of ``piece_stats`` dicts (or of Notes). Scalar features
    are overlaid density histograms, histogram features (pitch classes, intervals, steps,
    durations) the two sets' mean histograms; each panel's title gives the overlap area (OA,
    1 = same distribution) as :func:`melody_utils.music.stats.compare_sets` computes it.
    """
    gen = stats.stack_stats([s if isinstance(s, dict) else stats.piece_stats(s) for s in gen_stats])
    ref = stats.stack_stats([s if isinstance(s, dict) else stats.piece_stats(s) for s in ref_stats])
    names = list(features or stats.SCALAR_FEATURES + stats.HIST_FEATURES)
    unknown = [n for n in names if n not in gen]
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}; choose from {list(gen)}")
    ncols = min(4, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = new_figure(nrows, ncols, figsize=(4 * ncols, 2.8 * nrows))
    axes = np.atleast_1d(axes).ravel()
    for ax, name in zip(axes, names):
        g, r = gen[name], ref[name]
        if g.ndim == 1:  # scalar feature: one value per piece
            lo, hi = min(g.min(), r.min()), max(g.max(), r.max())
            edges = np.linspace(lo, hi if hi > lo else lo + 1, 21)
            ax.hist(r, edges, density=True, alpha=0.5, color="tab:blue", label="reference")
            ax.hist(g, edges, density=True, alpha=0.5, color="tab:orange", label="generated")
            oa = stats.overlap_area(g, r)
        else:  # histogram feature: the sets' mean histograms side by side
            gm, rm = g.mean(axis=0), r.mean(axis=0)
            x = np.arange(len(gm))
            ax.bar(x - 0.2, rm, 0.4, color="tab:blue", label="reference")
            ax.bar(x + 0.2, gm, 0.4, color="tab:orange", label="generated")
            oa = float(np.minimum(gm / max(gm.sum(), 1e-12), rm / max(rm.sum(), 1e-12)).sum())
            if name == "pitch_class_hist":
                ax.set_xticks(x, NOTE_NAMES, fontsize=7)
            elif name == "interval_hist":
                ticks = x[::6]
                ax.set_xticks(ticks, [str(t - stats.MAX_INTERVAL) for t in ticks])
            elif name == "velocity_hist":  # equal bins over 0..127: label with their lower edges in MIDI velocity
                ticks = x[::4]
                ax.set_xticks(ticks, [str(t * 128 // stats.VELOCITY_HIST_BINS) for t in ticks])
            else:  # time bins: label with their lower edges in seconds
                ticks = x[::4]
                ax.set_xticks(ticks, [f"{stats.STAT_TIME_EDGES[t]:.2g}" for t in ticks])
        ax.set_title(f"{FEATURE_LABELS.get(name, name)}  (OA {oa:.2f})", fontsize=9)
        ax.set_xlabel(FEATURE_LABELS.get(name, name), fontsize=8)
        ax.set_ylabel("density" if g.ndim == 1 else "share of notes", fontsize=8)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------- sampling sweep


def plot_sweep(sweep_rows, title: str | None = None):
    """Mean OA and degenerate rate over temperature, one line per top_p (the same colour in both panels).

    The axes are fixed, so small differences look small: mean OA from 0 to 1, the degenerate
    rate from 0 to 100%. Each top_p has its own colour, marker and line style, and is shifted by
    :data:`SWEEP_OFFSET` in temperature, so lines with equal values (all at 0% degenerate, say)
    stay visible side by side.

    ``sweep_rows``: :func:`melody_utils.evaluate.sweep.sampling_sweep`'s rows, or the ``"sweep"`` dict of
    an :func:`melody_utils.evaluate.report.evaluate` result; from the latter the suggested setting is
    starred (label ``"suggested"``) and the ceiling on the degenerate rate drawn dashed. A mean
    OA that could not be computed (NaN or None) leaves a gap. Lines are labelled ``"top_p 0.9"``.
    """
    best, ceiling = None, None
    if isinstance(sweep_rows, dict):
        if "rows" not in sweep_rows:
            raise ValueError("sweep_rows must be sampling_sweep's list of rows or an evaluate result's 'sweep' dict (with 'rows')")
        best, ceiling, sweep_rows = sweep_rows.get("best"), sweep_rows.get("max_degenerate_rate"), sweep_rows["rows"]
    rows = list(sweep_rows)
    if not rows:
        raise ValueError("no sweep rows to plot; run sweep.sampling_sweep with at least one temperature and top_p")
    fig, (ax_oa, ax_deg) = new_figure(1, 2, figsize=(11, 3.8))
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray")
    top_ps = sorted({r["top_p"] for r in rows})
    shift = {p: (i - (len(top_ps) - 1) / 2) * SWEEP_OFFSET for i, p in enumerate(top_ps)}  # centred on the true temperature
    for i, top_p in enumerate(top_ps):
        line = sorted((r for r in rows if r["top_p"] == top_p), key=lambda r: r["temperature"])
        t = np.array([r["temperature"] for r in line], dtype=np.float64) + shift[top_p]
        oa = np.array([math.nan if r.get("mean_oa") is None else r["mean_oa"] for r in line], dtype=np.float64)
        deg = np.array([r["degenerate_rate"] for r in line], dtype=np.float64)
        style = {"color": colors[i % len(colors)], "marker": SWEEP_MARKERS[i % len(SWEEP_MARKERS)], "markersize": 5,
                 "linestyle": SWEEP_LINESTYLES[i % len(SWEEP_LINESTYLES)], "alpha": 0.85, "label": f"top_p {top_p:g}"}
        ax_oa.plot(t, oa, **style)
        ax_deg.plot(t, deg, **style)
    if ceiling is not None:
        ax_deg.axhline(ceiling, color="black", linestyle="--", linewidth=0.8, label=f"ceiling {ceiling:.0%}")
    if best is not None:
        for ax, y in ((ax_oa, best["mean_oa"]), (ax_deg, best["degenerate_rate"])):
            ax.scatter([best["temperature"] + shift.get(best["top_p"], 0.0)], [y], s=160, marker="*", color="gold", edgecolors="black", zorder=3, label="suggested")
    ax_oa.set_ylabel("mean OA with held-out (1 = same)")
    ax_oa.set_ylim(-0.03, 1.03)  # the whole 0-1 scale (a margin so points at 0 or 1 show whole)
    ax_deg.set_ylabel("degenerate pieces (% of generated)")
    ax_deg.set_ylim(-0.03, 1.03)
    ax_deg.yaxis.set_major_formatter(lambda y, _: f"{y:.0%}")
    for ax in (ax_oa, ax_deg):
        ax.set_xlabel("temperature")
        ax.grid(alpha=0.3)
    ax_oa.legend(fontsize=8)
    ax_deg.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
