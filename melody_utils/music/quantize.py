"""Time bins for step and duration: seconds <-> bin ids.

A :class:`Bins` is a sorted tuple of bin centres (seconds). ``quantize`` maps a value to the
nearest centre (values outside clip to the end bins); for log-spaced bins "nearest" is
measured in log time, because a 10 ms error matters on a 30 ms step and not on a 2 s one.

Two grids:
- ``seed``: the seed notebook's linear grid: steps 0.05, 0.10, ... 1.05 s (21 bins, no 0 bin, so
  every chord becomes a 50 ms arpeggio) and durations 0.05 ... 1.45 s (29 bins). Kept so results
  can be compared with it.
- ``log``: bin 0 is exactly 0 s (chords stay chords), then log-spaced centres between
  percentiles of the data (:func:`fit_log_bins`).

Decoding a bin to its centre plays on a grid. A :class:`Spread` keeps, per bin, a few quantiles of
the corpus's values inside it (:meth:`Bins.fit_spread`), and :meth:`Spread.draw` turns uniform
numbers into values inside the bins, distributed as the corpus's were.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEED_STEP_CENTERS = tuple(np.round(np.arange(1, 22) * 0.05, 4))  # 0.05 .. 1.05 s, 21 bins
SEED_DUR_CENTERS = tuple(np.round(np.arange(1, 30) * 0.05, 4))  # 0.05 .. 1.45 s, 29 bins
CHORD_THRESHOLD_S = 0.015  # onsets closer than this are one chord (the 0 bin's upper edge at most)
DEFAULT_LOG_RANGE = (0.02, 4.0)  # used when there is no data to fit
# The quantiles a Spread keeps per bin (percent): the extremes, the 1st and 99th percentiles (so a rare
# value keeps its rarity: 1 % of the draws fall between the minimum and the 1st percentile), the octiles.
SPREAD_LEVELS = (0.0, 1.0, 12.5, 25.0, 37.5, 50.0, 62.5, 75.0, 87.5, 99.0, 100.0)
EDGE_MARGIN_S = 1e-6  # a Spread's times stay this far inside the bin edges: they re-encode to their own bin
# The end bins hold everything beyond them (a 10 s fermata, a 5 min pedal note in the last bin); a
# Spread keeps their values within [centre / END_BIN_RANGE, centre * END_BIN_RANGE].
END_BIN_RANGE = 2.0


@dataclass(frozen=True)
class Spread:
    """Where a corpus's values fall inside each bin: per bin, its quantiles at :data:`SPREAD_LEVELS`
    (non-decreasing). A bin the corpus never used holds its centre alone."""

    quantiles: tuple  # (n_bins,) tuples of len(SPREAD_LEVELS) floats

    def __post_init__(self):
        q = np.asarray(self.quantiles, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != len(SPREAD_LEVELS) or np.any(np.diff(q, axis=1) < 0):
            raise ValueError(f"a Spread needs (n_bins, {len(SPREAD_LEVELS)}) non-decreasing quantiles")
        object.__setattr__(self, "quantiles", tuple(tuple(float(x) for x in row) for row in q))

    def __len__(self) -> int:
        return len(self.quantiles)

    def draw(self, ids, u) -> np.ndarray:
        """Values inside bins ``ids`` (ints) from uniform numbers ``u`` in [0, 1) of the same shape,
        through each bin's piecewise-linear quantile function."""
        q = np.asarray(self.quantiles)  # (n_bins, L)
        levels = np.asarray(SPREAD_LEVELS) / 100.0  # (L,)
        ids = np.asarray(ids, dtype=np.int64)
        u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
        j = np.clip(np.searchsorted(levels, u, side="right") - 1, 0, len(levels) - 2)  # segment of the quantile function
        frac = (u - levels[j]) / (levels[j + 1] - levels[j])
        lo, hi = q[ids, j], q[ids, j + 1]
        return lo + frac * (hi - lo)

    def to_list(self) -> list:
        return [list(row) for row in self.quantiles]

    @classmethod
    def from_list(cls, rows) -> "Spread":
        return cls(tuple(tuple(r) for r in rows))


def fit_spread(values, ids, n_bins: int, centres, low, high) -> Spread:
    """The :class:`Spread` of ``values`` in bins ``ids``: each bin's values clipped to its
    [``low``, ``high``] (arrays of n_bins) first; a bin without values keeps its centre."""
    v = np.asarray(values, dtype=np.float64)
    ids = np.asarray(ids, dtype=np.int64)
    rows = []
    for b in range(n_bins):
        x = np.clip(v[ids == b], low[b], high[b])
        rows.append(np.percentile(x, SPREAD_LEVELS) if len(x) else np.full(len(SPREAD_LEVELS), centres[b]))
    return Spread(tuple(map(tuple, np.round(rows, 7))))  # 0.1 µs: compact in JSON, far inside EDGE_MARGIN_S


@dataclass(frozen=True)
class Bins:
    centers: tuple  # sorted bin centres in seconds
    log: bool = False  # nearest centre measured in log time (True) or linear time

    def __post_init__(self):
        c = np.asarray(self.centers, dtype=np.float64)
        if c.ndim != 1 or len(c) < 2 or np.any(np.diff(c) <= 0) or c[0] < 0:
            raise ValueError("bin centres must be >= 0, strictly increasing, at least 2")
        object.__setattr__(self, "centers", tuple(float(x) for x in c))

    def __len__(self) -> int:
        return len(self.centers)

    @property
    def edges(self) -> np.ndarray:
        """Decision boundaries between neighbouring centres (len - 1 values)."""
        c = np.asarray(self.centers)
        lo, hi = c[:-1], c[1:]
        if self.log:
            # Between the exact-0 bin and the first positive centre: the chord threshold when the
            # grid leaves room for it, else halfway.
            zero_edge = np.where(hi >= 2 * CHORD_THRESHOLD_S, CHORD_THRESHOLD_S, hi / 2)
            return np.where(lo > 0, np.sqrt(lo * np.maximum(hi, 1e-12)), zero_edge)
        return (lo + hi) / 2

    def quantize(self, seconds) -> np.ndarray:
        """Seconds -> bin ids (int64); out-of-range values clip to the end bins."""
        x = np.asarray(seconds, dtype=np.float64)
        if np.isnan(x).any():
            raise ValueError("cannot quantize NaN times")
        return np.searchsorted(self.edges, x, side="right").astype(np.int64)

    def dequantize(self, ids) -> np.ndarray:
        """Bin ids -> seconds (the bin centres). Raises ValueError for ids outside [0, len)."""
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            bad = ids[(ids < 0) | (ids >= len(self))].flat[0]
            raise ValueError(f"bin id {bad} out of range 0..{len(self) - 1}")
        return np.asarray(self.centers)[ids]

    def fit_spread(self, seconds) -> Spread:
        """The :class:`Spread` of ``seconds`` in these bins; values stay :data:`EDGE_MARGIN_S` inside
        the edges, and within :data:`END_BIN_RANGE` of the centre in the two end bins."""
        c, e = np.asarray(self.centers), self.edges
        low = np.concatenate([[c[0] / END_BIN_RANGE], e + EDGE_MARGIN_S])
        high = np.concatenate([e - EDGE_MARGIN_S, [c[-1] * END_BIN_RANGE]])
        x = np.asarray(seconds, dtype=np.float64)
        return fit_spread(x, self.quantize(x), len(self), c, low, np.maximum(high, low))

    def to_dict(self) -> dict:
        return {"centers": list(self.centers), "log": self.log}

    @classmethod
    def from_dict(cls, d: dict) -> "Bins":
        return cls(tuple(d["centers"]), bool(d["log"]))


def seed_step_bins() -> Bins:
    return Bins(SEED_STEP_CENTERS)


def seed_duration_bins() -> Bins:
    return Bins(SEED_DUR_CENTERS)


def log_bins(n: int, lo: float, hi: float, zero: bool) -> Bins:
    """``n`` bins: optionally an exact 0, then log-spaced centres from ``lo`` to ``hi`` seconds."""
    if n < 3:
        raise ValueError(f"n must be >= 3, got {n}")
    if not 0 < lo < hi:
        raise ValueError(f"need 0 < lo < hi, got lo={lo}, hi={hi}")
    pos = np.geomspace(lo, hi, n - 1 if zero else n)
    return Bins(tuple(([0.0] if zero else []) + list(pos)), log=True)


def fit_log_bins(values, n: int, zero: bool, lo_pct: float = 1.0, hi_pct: float = 99.5) -> Bins:
    """Log bins spanning the ``lo_pct``..``hi_pct`` percentiles of the positive values.

    With ``zero``, values below :data:`CHORD_THRESHOLD_S` are left out of the fit: they go to
    the exact-0 bin.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[v > (CHORD_THRESHOLD_S if zero else 0)]
    if len(v) < 10:
        return log_bins(n, *DEFAULT_LOG_RANGE, zero=zero)
    lo, hi = np.percentile(v, [lo_pct, hi_pct])
    lo = max(lo, 2 * CHORD_THRESHOLD_S if zero else 1e-3)
    hi = max(hi, lo * 2)
    return log_bins(n, lo, hi, zero)


def timing_error_ms(values, bins: Bins, pcts=(50, 95)) -> dict:
    """Absolute error |x - dequantize(quantize(x))| in milliseconds: median, 95th percentile, mean."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return {"median_ms": float("nan"), "p95_ms": float("nan"), "mean_ms": float("nan")}
    err = np.abs(v - bins.dequantize(bins.quantize(v))) * 1000
    med, p95 = np.percentile(err, pcts)
    return {"median_ms": float(med), "p95_ms": float(p95), "mean_ms": float(err.mean())}
