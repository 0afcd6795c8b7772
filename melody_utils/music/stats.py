"""Musical statistics of pieces, numpy only: per-piece features, set comparisons, loops.

:func:`piece_stats` computes per-piece features after Yang & Lerch, "On the evaluation of
generative models in music" (2018), and :func:`compare_sets` measures, per feature, how much a
generated set overlaps a reference set (overlap area, KL divergence, intra-set distances).
:func:`loop_mask` and :func:`degeneracy` find pieces caught in loops or stuck on one pitch;
:func:`excerpts` cuts reference pieces to the generated length.
"""

from __future__ import annotations

import numpy as np

from .midi import Notes
from .quantize import CHORD_THRESHOLD_S

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 names it trapz

# ---------------------------------------------------------------------------------------------
# Musical statistics (after Yang & Lerch 2018)
# ---------------------------------------------------------------------------------------------

# Fixed time bins (seconds) for the step and duration histograms, so that pieces quantized with
# different vocabularies stay comparable: a "chord" bin below CHORD_THRESHOLD_S, log-spaced bins
# up to 4 s, and one bin for everything longer.
STAT_TIME_EDGES = np.concatenate([[0.0, CHORD_THRESHOLD_S], np.geomspace(0.03, 4.0, 15)])
MAX_INTERVAL = 12  # melodic intervals are clipped to +-12 semitones in the interval histogram
NGRAM_REPEAT = 8  # n of the repeated n-gram measures
# Pitch patterns: onsets closer than this form one chord, its pitches taken lowest first, so a chord a
# pianist rolls differently on a repeat (performed chords spread over 10-50 ms) is the same pattern.
# Share of the pitch 8-grams of 400-note excerpts heard earlier in them (benchmarks/bench_repeats.py,
# 40 pieces, docs/benchmarks.md): performances 0.035 by onset order alone, 0.064 at 15 ms, 0.092 at
# 30 ms, 0.097 at 50 ms, 0.074 at 80 ms; the piano corpus 0.17 at every threshold.
PATTERN_CHORD_S = 0.05
LOOP_MAX_PERIOD = 32  # longest loop period (notes) that loop_mask looks for
LOOP_MIN_NOTES = 8  # a loop must span at least this many notes ...
LOOP_MIN_REPEATS = 2  # ... and repeat its period at least this many times
DEGENERATE_TAIL = 64  # degeneracy looks at the last notes of a piece
DEGENERATE_SHARE = 0.5  # degenerate: more than this share of the tail in loops, or on one pitch

SCALAR_FEATURES = (
    "pitch_count",  # distinct pitches used
    "pitch_range",  # highest - lowest pitch (semitones)
    "mean_pitch",
    "mean_interval",  # mean |interval| of the top-note line (semitones)
    "mean_ioi",  # mean time between successive onsets (chords count once), seconds
    "polyphony",  # mean number of notes sounding at an onset
    "note_density",  # notes per second
    "loop_share",  # share of notes inside exact loops (see loop_mask)
    "repeat_ngram",  # share of NGRAM_REPEAT-grams of notes already heard earlier in the piece (exact: pitch, step, duration)
    "repeat_pitch_ngram",  # the same for pitches only (pitch_pattern_ids): repeats whose timing and dynamics vary
    "top_pitch_share",  # share of the most frequent pitch
    "mean_velocity",  # mean MIDI velocity (loudness), 1-127
    "velocity_spread",  # standard deviation of the velocities: dynamics, 0 for one constant velocity
)
HIST_FEATURES = (
    "pitch_class_hist",  # (12,) C, C#, ..., B
    "interval_hist",  # (2 * MAX_INTERVAL + 1,) intervals of the top-note line, -12..12
    "step_hist",  # (len(STAT_TIME_EDGES),) steps between note onsets, STAT_TIME_EDGES bins
    "duration_hist",  # (len(STAT_TIME_EDGES),) durations, same bins
    "velocity_hist",  # (VELOCITY_HIST_BINS,) velocities in equal bins over 0..127
)
VELOCITY_HIST_BINS = 16
CIRCULAR_FEATURES = ("pitch_class_hist",)


def _hist(idx, n_bins: int) -> np.ndarray:
    """Normalised histogram of bin ids ``idx`` in 0..n_bins-1 (all zeros when empty)."""
    h = np.bincount(np.asarray(idx, dtype=np.int64), minlength=n_bins).astype(np.float64)
    return h / h.sum() if h.sum() > 0 else h


def _time_hist(seconds) -> np.ndarray:
    idx = np.searchsorted(STAT_TIME_EDGES, np.asarray(seconds, dtype=np.float64), side="right") - 1
    return _hist(np.clip(idx, 0, len(STAT_TIME_EDGES) - 1), len(STAT_TIME_EDGES))


def event_ids(notes: Notes) -> np.ndarray:
    """One int per note for exact-repetition tests: same pitch, step and duration (to 1 ms)."""
    if len(notes) == 0:
        return np.zeros(0, dtype=np.int64)
    rows = np.stack([notes.pitch.astype(np.int64), np.round(notes.step * 1000), np.round(notes.duration * 1000)], axis=1)
    _, inv = np.unique(rows.astype(np.int64), axis=0, return_inverse=True)
    return inv.reshape(-1).astype(np.int64)


def pitch_pattern_ids(notes: Notes, chord_s: float = PATTERN_CHORD_S) -> np.ndarray:
    """The pitches in onset order, the notes of a chord (onsets less than ``chord_s`` apart) lowest first:
    what a repeat keeps when a performance varies its timing, dynamics and the roll of its chords."""
    notes = notes.sorted()
    new = np.ones(len(notes), dtype=bool)
    new[1:] = np.diff(notes.start) >= chord_s
    order = np.lexsort((notes.pitch, np.cumsum(new)))
    return notes.pitch[order].astype(np.int64)


def is_loop_run(run, period: int, min_notes: int = LOOP_MIN_NOTES, min_repeats: int = LOOP_MIN_REPEATS):
    """Whether ``run`` consecutive matches ``ids[i + period] == ids[i]`` make a loop.

    Such a run makes ``ids`` ``period``-periodic over ``run + period`` elements; it is a loop
    when that spans at least ``min_notes`` elements and ``min_repeats`` periods. The one
    definition :func:`loop_mask` and the sampling-time repetition guard
    (``controls.loop_continuations``) share. ``run``: int or array; returns bool (array).
    """
    run = np.asarray(run)
    return (run >= (min_repeats - 1) * period) & (run + period >= min_notes)


def loop_mask(ids, max_period: int = LOOP_MAX_PERIOD, min_notes: int = LOOP_MIN_NOTES, min_repeats: int = LOOP_MIN_REPEATS) -> np.ndarray:
    """Boolean mask of the elements that lie inside an exact loop.

    A loop is a stretch of at least ``min_notes`` elements that is periodic with some period
    ``p <= max_period`` (``ids[t] == ids[t - p]`` throughout) and spans at least
    ``min_repeats`` full periods. Random sequences over a large alphabet have (almost) no
    loops; a model stuck repeating the same few notes is inside one all the time.
    """
    ids = np.asarray(ids)
    n = len(ids)
    mark = np.zeros(n + 1, dtype=np.int64)  # +1 where a loop starts, -1 one past its end
    for p in range(1, min(max_period, n // max(min_repeats, 1)) + 1):
        same = ids[p:] == ids[:-p]  # same[i]: ids[i + p] == ids[i]
        d = np.diff(np.concatenate([[0], same.astype(np.int8), [0]]))
        a, b = np.flatnonzero(d == 1), np.flatnonzero(d == -1)  # runs same[a:b]: ids[a : b + p] is p-periodic
        ok = is_loop_run(b - a, p, min_notes, min_repeats)
        np.add.at(mark, a[ok], 1)
        np.add.at(mark, b[ok] + p, -1)
    return np.cumsum(mark[:n]) > 0


def repeated_ngram_share(ids, n: int = NGRAM_REPEAT) -> float:
    """Share of the n-grams of ``ids`` that already occurred earlier in the sequence."""
    ids = np.asarray(ids)
    if len(ids) < n + 1:
        return 0.0
    grams = np.lib.stride_tricks.sliding_window_view(ids, n)
    _, first, inv = np.unique(grams, axis=0, return_index=True, return_inverse=True)
    return float(np.mean(first[inv.reshape(-1)] < np.arange(len(grams))))


def _onset_groups(notes: Notes) -> np.ndarray:
    """Index of the first note of each onset group (notes within CHORD_THRESHOLD_S form a chord)."""
    new = np.ones(len(notes), dtype=bool)
    new[1:] = np.diff(notes.start) > CHORD_THRESHOLD_S
    return np.flatnonzero(new)


def piece_stats(notes: Notes) -> dict:
    """Per-piece features (scalars: :data:`SCALAR_FEATURES`, arrays: :data:`HIST_FEATURES`).

    Pitch intervals are taken along the top-note line (the highest pitch of each onset group),
    the usual melody of piano music, so chord spreads do not count as melodic leaps.
    """
    if not isinstance(notes, Notes):
        raise ValueError(f"piece_stats expects a Notes object, got {type(notes).__name__}")
    if len(notes) < 2:
        raise ValueError(f"piece_stats needs at least 2 notes, got {len(notes)}")
    notes = notes.sorted()
    pitch = notes.pitch.astype(np.int64)
    n = len(notes)

    g = _onset_groups(notes)
    group_of = np.repeat(np.arange(len(g)), np.diff(np.append(g, n)))
    top = np.full(len(g), -1, dtype=np.int64)
    np.maximum.at(top, group_of, pitch)
    intervals = np.diff(top)
    onsets = notes.start[g]
    # Notes sounding at each onset group: the group itself plus earlier notes not yet released.
    # A zero-length note still counts at its own onset.
    ends = np.sort(np.maximum(notes.end, notes.start + 1e-9))
    released = np.searchsorted(ends, onsets, side="right")
    group_size = np.diff(np.append(g, n))
    sounding = group_size + np.maximum(g - released, 0)

    ids = event_ids(notes)
    counts = np.bincount(pitch)
    span = max(float(notes.end.max() - notes.start.min()), 1e-3)
    return {
        "n_notes": n,
        "pitch_count": int(np.count_nonzero(counts)),
        "pitch_range": int(pitch.max() - pitch.min()),
        "mean_pitch": float(pitch.mean()),
        "mean_interval": float(np.abs(intervals).mean()) if len(intervals) else 0.0,
        "mean_ioi": float(np.diff(onsets).mean()) if len(onsets) > 1 else 0.0,
        "polyphony": float(sounding.mean()),
        "note_density": n / span,
        "loop_share": float(loop_mask(ids).mean()),
        "repeat_ngram": repeated_ngram_share(ids),
        "repeat_pitch_ngram": repeated_ngram_share(pitch_pattern_ids(notes)),
        "top_pitch_share": float(counts.max() / n),
        "mean_velocity": float(notes.velocity.mean()),
        "velocity_spread": float(notes.velocity.std()),
        "pitch_class_hist": _hist(pitch % 12, 12),
        "interval_hist": _hist(np.clip(intervals, -MAX_INTERVAL, MAX_INTERVAL) + MAX_INTERVAL, 2 * MAX_INTERVAL + 1),
        "step_hist": _time_hist(notes.step[1:]),
        "duration_hist": _time_hist(notes.duration),
        "velocity_hist": _hist(np.clip(notes.velocity.astype(np.int64), 0, 127) * VELOCITY_HIST_BINS // 128, VELOCITY_HIST_BINS),
    }


def degeneracy(notes: Notes, tail: int = DEGENERATE_TAIL, share: float = DEGENERATE_SHARE) -> dict:
    """Is the end of a generated piece degenerate?

    Degenerate means: of the last ``tail`` notes, more than ``share`` lie inside an exact loop
    (:func:`loop_mask` on pitch + step + duration), or more than ``share`` have the same pitch.
    An empty piece is degenerate. Returns the two shares and the verdict.
    """
    if len(notes) == 0:
        return {"loop_share": 0.0, "top_pitch_share": 0.0, "degenerate": True}
    notes = notes.sorted()
    ids = event_ids(notes)  # on the whole piece, so the tail's first step is the real one
    loop = float(loop_mask(ids)[-tail:].mean())
    top = float(np.bincount(notes.pitch[-tail:].astype(np.int64)).max() / min(tail, len(notes)))
    return {"loop_share": loop, "top_pitch_share": top, "degenerate": bool(loop > share or top > share)}


def stack_stats(stats: list[dict]) -> dict[str, np.ndarray]:
    """List of :func:`piece_stats` dicts -> {feature: array with one row per piece}."""
    if not stats:
        raise ValueError("no piece statistics to stack (empty list)")
    return {k: np.asarray([s[k] for s in stats], dtype=np.float64) for k in SCALAR_FEATURES + HIST_FEATURES}


def excerpts(pieces: list[Notes], n_notes: int, seed: int = 0) -> list[Notes]:
    """One random ``n_notes``-long excerpt of each piece (shorter pieces whole, < 2 notes dropped).

    Features such as pitch range grow with length, so generated pieces must be compared with
    reference excerpts of the same length.
    """
    if n_notes < 2:
        raise ValueError(f"n_notes must be >= 2, got {n_notes}")
    rng = np.random.default_rng(seed)
    out = []
    for p in pieces:
        p = p.sorted()
        if len(p) < 2:
            continue
        s = int(rng.integers(0, len(p) - n_notes + 1)) if len(p) > n_notes else 0
        out.append(p[s : s + n_notes])
    return out


# ---- comparing two sets -------------------------------------------------------------------

MAX_DISTANCES = 4000  # intra/inter-set distance samples kept per feature (random subset beyond)


def _bandwidth(x: np.ndarray, floor: float) -> float:
    """Silverman's rule of thumb, never below ``floor``."""
    if len(x) < 2:
        return floor
    iqr = np.subtract(*np.percentile(x, [75, 25]))
    spread = min(x.std(ddof=1), iqr / 1.34) if iqr > 0 else x.std(ddof=1)
    return max(0.9 * spread * len(x) ** -0.2, floor)


def _kde_pair(a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian kernel densities of samples ``a`` and ``b`` on one common grid.

    Each sample is linearly binned onto the grid and convolved with the kernel (by FFT), so
    the cost is O(grid log grid) however many values there are.
    """
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if len(a) == 0 or len(b) == 0 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("overlap needs two non-empty sets of finite values")
    both = np.concatenate([a, b])
    scale = both.std() if both.std() > 0 else max(abs(both.mean()), 1.0)
    floor = 0.02 * scale  # keeps a constant set from collapsing to a spike
    bw_a, bw_b = _bandwidth(a, floor), _bandwidth(b, floor)
    # A constant set has no spread to estimate a width from: it takes the other set's, so a generated
    # set that matches it in 31 pieces of 32 overlaps it by about 31/32, not by a spike's width
    # against a kernel's (held-out performances repeat no 8 notes exactly: that statistic is all 0).
    if np.ptp(a) == 0 < np.ptp(b):
        bw_a = max(bw_a, bw_b)
    elif np.ptp(b) == 0 < np.ptp(a):
        bw_b = max(bw_b, bw_a)
    lo, hi = both.min() - 4 * max(bw_a, bw_b), both.max() + 4 * max(bw_a, bw_b)
    n_grid = int(np.clip((hi - lo) / (min(bw_a, bw_b) / 4), 512, 16384))  # >= 4 grid points per bandwidth
    grid, dx = np.linspace(lo, hi, n_grid, retstep=True)

    def density(x, bw):
        pos = (x - lo) / dx
        i = np.clip(np.floor(pos).astype(np.int64), 0, n_grid - 2)
        w = pos - i
        counts = np.bincount(i, 1 - w, n_grid) + np.bincount(i + 1, w, n_grid)
        half = int(np.ceil(4 * bw / dx))
        kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * dx / bw) ** 2)
        n_fft = n_grid + len(kernel) - 1
        f = np.fft.irfft(np.fft.rfft(counts, n_fft) * np.fft.rfft(kernel, n_fft), n_fft)[half : half + n_grid]
        f = np.maximum(f, 0.0)
        return f / _trapezoid(f, grid)

    return grid, density(a, bw_a), density(b, bw_b)


def _oa_kl(p_samples, q_samples) -> tuple[float, float]:
    grid, fp, fq = _kde_pair(p_samples, q_samples)
    oa = float(np.clip(_trapezoid(np.minimum(fp, fq), grid), 0.0, 1.0))
    eps = 1e-10 * max(fp.max(), fq.max())
    kl = float(max(_trapezoid(fp * np.log((fp + eps) / (fq + eps)), grid), 0.0))
    return oa, kl


def overlap_area(a, b) -> float:
    """Overlap area (0..1) of the kernel density estimates of two samples: 1 = same distribution."""
    return _oa_kl(a, b)[0]


def kl_divergence(p_samples, q_samples) -> float:
    """KL(P || Q) in nats between the kernel density estimates of two samples."""
    return _oa_kl(p_samples, q_samples)[1]


def emd_1d(a, b) -> float:
    """Earth mover's (Wasserstein-1) distance between two 1-D samples, in their units."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    u = (np.arange(512) + 0.5) / 512
    return float(np.abs(np.quantile(a, u) - np.quantile(b, u)).mean())


def _hist_distances(p: np.ndarray, q: np.ndarray, circular: bool) -> tuple[float, float, float]:
    """(overlap, KL(p || q), earth mover's distance in bins) of two histograms."""
    p, q = p / p.sum(), q / q.sum()
    oa = float(np.minimum(p, q).sum())
    eps = 1e-6
    ps, qs = (p + eps) / (1 + eps * len(p)), (q + eps) / (1 + eps * len(q))
    kl = float(np.sum(ps * np.log(ps / qs)))
    d = np.cumsum(p - q)
    emd = float(np.abs(d - np.median(d)).sum() if circular else np.abs(d[:-1]).sum())
    return oa, kl, emd


def _pairwise(x: np.ndarray, y: np.ndarray | None, rng) -> np.ndarray:
    """Euclidean distances between rows: all pairs i < j of ``x`` (y None) or all of x * y."""
    x = x.reshape(len(x), -1)
    if y is None:
        i, j = np.triu_indices(len(x), k=1)
    else:
        y = y.reshape(len(y), -1)
        i, j = np.divmod(np.arange(len(x) * len(y)), len(y))
    if len(i) > MAX_DISTANCES:
        keep = rng.choice(len(i), MAX_DISTANCES, replace=False)
        i, j = i[keep], j[keep]
    other = x if y is None else y
    return np.linalg.norm(x[i] - other[j], axis=1)


def as_stats(pieces, name: str) -> list[dict]:
    out = [p if isinstance(p, dict) else piece_stats(p) for p in pieces]
    if len(out) < 2:
        raise ValueError(f"{name} needs at least 2 pieces to estimate a distribution, got {len(out)}")
    return out


def compare_sets(generated, reference, seed: int = 0) -> dict:
    """Compare two sets of pieces (``Notes`` or precomputed :func:`piece_stats` dicts) per feature.

    For each feature, ``"features"[name]`` holds:

    - ``oa``: overlap area of the two sets' distributions of the feature (1 = same, 0 =
      disjoint). Scalars: overlap of kernel density estimates over pieces; histograms: overlap
      (intersection) of the sets' pooled histograms.
    - ``kl``: KL(reference || generated) of the same distributions (nats, 0 = same; densities
      are floored at 1e-10 of their peak, so about 23 nats means disjoint).
    - ``emd``: earth mover's distance (scalars: feature units; histograms: bins, circular for
      pitch classes).
    - ``intra_oa``, ``intra_kl``: Yang & Lerch's measure: overlap and KL between the
      reference's intra-set distances (piece to piece within the reference) and the inter-set
      distances (generated piece to reference piece). Near 1 / 0 when the generated pieces are
      as close to the reference as reference pieces are to each other.
    - ``gen_intra``, ``ref_intra``: mean intra-set distance of each set (diversity; a model that
      plays the same thing every time has a small ``gen_intra``).
    - ``gen_mean``, ``ref_mean``: the feature's mean in each set (a list for histograms).

    ``"mean_oa"`` is the mean ``oa`` over features, a one-number summary.
    """
    gen, ref = stack_stats(as_stats(generated, "generated")), stack_stats(as_stats(reference, "reference"))
    rng = np.random.default_rng(seed)
    features = {}
    for name in SCALAR_FEATURES + HIST_FEATURES:
        g, r = gen[name], ref[name]
        if name in SCALAR_FEATURES:
            oa, kl = _oa_kl(r, g)
            emd = emd_1d(g, r)
        else:
            oa, kl, emd = _hist_distances(g.mean(axis=0) + 1e-12, r.mean(axis=0) + 1e-12, name in CIRCULAR_FEATURES)
        intra_ref, intra_gen = _pairwise(r, None, rng), _pairwise(g, None, rng)
        inter = _pairwise(g, r, rng)
        intra_oa, intra_kl = _oa_kl(intra_ref, inter)
        features[name] = {
            "oa": oa,
            "kl": kl,
            "emd": emd,
            "intra_oa": intra_oa,
            "intra_kl": intra_kl,
            "gen_intra": float(intra_gen.mean()),
            "ref_intra": float(intra_ref.mean()),
            "gen_mean": float(g.mean()) if g.ndim == 1 else g.mean(axis=0).tolist(),
            "ref_mean": float(r.mean()) if r.ndim == 1 else r.mean(axis=0).tolist(),
        }
    return {
        "features": features,
        "mean_oa": float(np.mean([f["oa"] for f in features.values()])),
        "n_generated": len(g),
        "n_reference": len(r),
    }
