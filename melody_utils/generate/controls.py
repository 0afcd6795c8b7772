"""Sampling-time controls: key, pitch range, note density, per-field temperature and a repetition
guard, and the length of a piece in seconds. None of them needs retraining: they act on the logits.

:class:`Controls` holds the user's settings (checked when it is made). Each control is one
:class:`Control`, a :class:`~melody_utils.generate.logits.LogitsProcessor` made from the
settings when its setting is on (:meth:`Control.from_settings`); every subclass is registered in
:data:`CONTROLS`, in the order they are defined, which is the order they apply. The pipeline
(:mod:`melody_utils.generate.pipeline`) runs them after the grammar mask and the temperature, so
their nats are nats of the distribution the sampler draws from, and before top-k / top-p:

1. :class:`FieldTemperature`: the logits of pitch, of step and duration, or of velocity are
   divided again by ``temperature_pitch``, ``temperature_timing`` or ``temperature_velocity``
   (the two temperatures multiply).
2. :class:`KeyAndRange` (pitch): pitches whose pitch class is outside the scale get ``-inf``
   (hard, the default) or lose ``key_strength`` nats (soft); pitches outside the range get ``-inf``.
3. :class:`NoteDensity` (step): a feedback controller, see :meth:`NoteDensity.__call__`.
4. :class:`RepetitionGuard` (pitch, step, duration): the ids that would put the next note inside
   a loop that :func:`melody_utils.music.stats.loop_mask` detects lose at least ``repeat_guard``
   nats, more the longer the loop and the loopier the recent notes.

:class:`NoteClock` is the loop's note counter; with ``seconds`` it stops once the decoded onsets
pass that many seconds and shows progress in seconds of music.

Keys and ranges are read by :mod:`melody_utils.music.scales`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ..checks import Limit, check_fields, setting
from ..music.quantize import CHORD_THRESHOLD_S
from ..music.scales import parse_key, parse_pitch_range
from ..music.stats import DEGENERATE_TAIL, LOOP_MAX_PERIOD, LOOP_MIN_NOTES, LOOP_MIN_REPEATS, is_loop_run, loop_mask
from ..music.tokens import Vocab
from .logits import DURATION, PITCH, STEP, LogitsProcessor

DEFAULT_REPEAT_GUARD = 3.0  # nats: --repeat-guard without a value
GUARD_HORIZON = 64  # notes: the guard's push grows with a loop's length up to this
GUARD_PRESSURE = 4.0  # ... and by this factor more when all the recent notes already lie in loops
DENSITY_WINDOW = 256  # notes of recent history whose realised density the controller corrects
DENSITY_HORIZON = 16  # notes over which it plans to close the gap
DENSITY_MAX_TILT = 8.0  # largest |beta| (nats per e-fold of step length)
DENSITY_MAX_CORRECTION = 4.0  # the planned mean step stays within this factor of 1 / target
MAX_SECONDS = 3600.0  # longest piece --seconds accepts
MAX_NOTES_PER_SECOND = 40  # note budget per second of music when generating by length

_EXTRA_TEMPERATURE = Limit("float", "a number > 0 (1.0 = the global temperature alone)", 0.0, lo_open=True)


# ---------------------------------------------------------------------------------------------
# The settings
# ---------------------------------------------------------------------------------------------
@dataclass
class Controls:
    """Sampling-time controls, checked when made (ValueError naming the bad value). Defaults: off."""

    key: object = None  # "D minor", "C,D,E,G,A", [0, 2, 4, 7, 9], ...; None / "any" = every pitch
    # None: out-of-key pitches masked (hard); else lowered by this many nats (soft)
    key_strength: float | None = setting(None, Limit("float", "a number > 0 nats (None = hard mask)", 0.0,
                                                     lo_open=True, optional=True))
    pitch_range: object = None  # "C2-C6", "36-84" or (36, 84), inclusive; None = the vocabulary's whole range
    # target notes per second (chord notes count); None = the model's own
    density: float | None = setting(None, Limit("float", "a number > 0 notes per second, e.g. 8", 0.0, lo_open=True,
                                                optional=True))
    temperature_pitch: float = setting(1.0, _EXTRA_TEMPERATURE)  # multiplies the global temperature for pitch ...
    temperature_timing: float = setting(1.0, _EXTRA_TEMPERATURE)  # ... for step and duration ...
    temperature_velocity: float = setting(1.0, _EXTRA_TEMPERATURE)  # ... for velocity
    # nats taken from each id that would continue a loop (stats.loop_mask); 0 = off
    repeat_guard: float = setting(0.0, Limit("float", "a number >= 0 nats (0 = off)", 0.0))
    scale: tuple | None = field(init=False, default=None)  # the key's pitch classes (parsed)
    pitches: tuple | None = field(init=False, default=None)  # the range as (low, high) MIDI pitches (parsed)

    def __post_init__(self):
        check_fields(self)
        self.scale = parse_key(self.key)
        self.pitches = parse_pitch_range(self.pitch_range)
        if self.scale is not None and self.pitches is not None:
            lo, hi = self.pitches
            if not any(p % 12 in self.scale for p in range(lo, hi + 1)):
                raise ValueError(f"key {self.key!r} has no pitch in the pitch range {self.pitch_range!r}; widen the range")

    @property
    def temperatures(self) -> tuple:
        """The extra temperature of each field: pitch, step, duration, velocity."""
        return self.temperature_pitch, self.temperature_timing, self.temperature_timing, self.temperature_velocity

    @property
    def active(self) -> bool:
        return (self.scale is not None or self.pitches is not None or self.density is not None or self.repeat_guard > 0
                or self.temperatures != (1.0,) * 4)

    def describe(self) -> str:
        """One line for logs, e.g. ``key D minor (hard), range C2-C6, density 8/s``; '' when off."""
        parts = []
        if self.scale is not None:
            parts.append(f"key {self.key} ({'hard' if self.key_strength is None else f'-{self.key_strength:g} nats'})")
        if self.pitches is not None:
            parts.append(f"range {self.pitches[0]}-{self.pitches[1]}")
        if self.density is not None:
            parts.append(f"density {self.density:g}/s")
        temps = (self.temperature_pitch, self.temperature_timing, self.temperature_velocity)
        if temps != (1.0, 1.0, 1.0):
            parts.append("temperature x pitch {:g}, timing {:g}, velocity {:g}".format(*temps))
        if self.repeat_guard:
            parts.append(f"repeat guard {self.repeat_guard:g} nats")
        return ", ".join(parts)


# ---------------------------------------------------------------------------------------------
# The controls as processors
# ---------------------------------------------------------------------------------------------
CONTROLS: list[type] = []  # every Control subclass, in the order they apply


class Control(LogitsProcessor):
    """A sampling control: a processor made from the sampling settings when its setting is on.

    Subclasses register themselves in :data:`CONTROLS` (see :func:`unregister` to take one out).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        CONTROLS.append(cls)

    @classmethod
    def from_settings(cls, settings, vocab: Vocab) -> "Control | None":
        """The processor for ``settings`` (a :class:`~melody_utils.generate.settings.SamplingSettings`),
        or None when its setting is off."""
        raise NotImplementedError


def unregister(control: type) -> None:
    """Take a control out of :data:`CONTROLS` (a test's or a notebook's own)."""
    CONTROLS.remove(control)


class FieldTemperature(Control):
    """Divides the logits of each field by its extra temperature."""

    def __init__(self, temperatures: tuple):
        self.temperatures = temperatures
        self.fields = tuple(f for f, t in enumerate(temperatures) if t != 1.0)

    @classmethod
    def from_settings(cls, settings, vocab):
        temps = settings.controls.temperatures[:len(vocab.sizes)]
        return cls(temps) if any(t != 1.0 for t in temps) else None

    def __call__(self, field, logits, context):
        logits /= self.temperatures[field]
        return logits


class KeyAndRange(Control):
    """Adds a bias to each pitch: ``-inf`` outside the range or (hard) the key, ``-key_strength`` nats outside the key (soft)."""

    fields = (PITCH,)

    def __init__(self, bias: np.ndarray):
        self.bias = bias  # (V_pitch,)

    @classmethod
    def from_settings(cls, settings, vocab):
        c = settings.controls
        midi = np.arange(vocab.min_pitch, vocab.max_pitch + 1)
        bias = np.zeros(vocab.n_pitch)
        if c.scale is not None:
            bias[~np.isin(midi % 12, c.scale)] = -np.inf if c.key_strength is None else -c.key_strength
        if c.pitches is not None:
            bias[(midi < c.pitches[0]) | (midi > c.pitches[1])] = -np.inf
            if not np.isfinite(bias).any():
                raise ValueError(f"pitch range {c.pitch_range!r} has no pitch the model can play "
                                 f"({vocab.min_pitch}-{vocab.max_pitch}) in key {c.key!r}; widen it")
        return cls(bias) if bias.any() else None

    def __call__(self, field, logits, context):
        logits += self.bias
        return logits


class NoteDensity(Control):
    """Tilts the step logits towards a target density in notes per second (a feedback controller)."""

    fields = (STEP,)

    def __init__(self, target: float, vocab: Vocab):
        self.target = target
        self.step_s = np.asarray(vocab.step_bins.centers)  # (V_step,) seconds
        self.log_step = np.log(np.maximum(self.step_s, CHORD_THRESHOLD_S / 2))  # the 0 (chord) bin: half the threshold

    @classmethod
    def from_settings(cls, settings, vocab):
        return None if settings.controls.density is None else cls(settings.controls.density, vocab)

    def __call__(self, field, logits, context):
        """Realised density: the last ``DENSITY_WINDOW`` generated notes over the seconds their steps
        span. To be back on target ``DENSITY_HORIZON`` notes from now, the next steps should
        average ``m* = ((n + H) / target - elapsed) / H`` seconds (kept within a factor
        ``DENSITY_MAX_CORRECTION`` of ``1 / target``). The bias ``-beta * log(step_j)`` (an
        exponential tilt: ``beta`` nats per e-fold of step length, positive favours short steps)
        makes the distribution's mean step equal ``m*``; the mean falls monotonically as ``beta``
        grows, so ``beta`` is found per row by bisection. Reading the distribution at every note
        (feed-forward) gets close at once; the elapsed-time term (feedback) removes what top-p, the
        grammar and chance leave. How close it gets: docs/benchmarks.md.
        """
        recent = np.asarray(context.history)[:, -DENSITY_WINDOW:, 1]  # (B, n)
        n = recent.shape[1]
        elapsed = self.step_s[recent].sum(axis=1)  # (B,)
        want = ((n + DENSITY_HORIZON) / self.target - elapsed) / DENSITY_HORIZON
        want = np.clip(want, 1 / (self.target * DENSITY_MAX_CORRECTION), DENSITY_MAX_CORRECTION / self.target)
        lo, hi = np.full(len(logits), -DENSITY_MAX_TILT), np.full(len(logits), DENSITY_MAX_TILT)
        for _ in range(24):
            beta = (lo + hi) / 2
            t = logits - beta[:, None] * self.log_step
            p = np.exp(t - t.max(axis=1, keepdims=True))
            too_slow = (p @ self.step_s) / p.sum(axis=1) > want
            lo, hi = np.where(too_slow, beta, lo), np.where(too_slow, hi, beta)
        logits -= ((lo + hi) / 2)[:, None] * self.log_step
        return logits


class RepetitionGuard(Control):
    """Pushes the next note out of loops (pitch, step and duration); stateless between notes
    (it reads the history), with the loops found once per note."""

    fields = (PITCH, STEP, DURATION)

    def __init__(self, strength: float, vocab: Vocab):
        self.strength, self.vocab = strength, vocab
        self._loop_memo = None  # (key, value) of _loops for the note being sampled

    @classmethod
    def from_settings(cls, settings, vocab):
        return cls(settings.controls.repeat_guard, vocab) if settings.controls.repeat_guard > 0 else None

    def event_ids(self, tokens: np.ndarray) -> np.ndarray:
        """(..., F) ids -> (...) one int per (pitch, step, duration): the loop detector's events."""
        _, n_step, n_dur = self.vocab.sizes[:3]
        t = tokens.astype(np.int64)
        return (t[..., 0] * n_step + t[..., 1]) * n_dur + t[..., 2]

    def _loops(self, history: np.ndarray):
        """(length (B, P) as loop_continuations, the notes at T - p (B, P, F), loop share (B,) of
        the rows with a continuation), computed once per note: the fields of one note share it."""
        T = history.shape[1]
        key = (history.shape, history[:, -(GUARD_HORIZON + LOOP_MAX_PERIOD):, :3].tobytes())
        if self._loop_memo is None or self._loop_memo[0] != key:
            length = loop_continuations(self.event_ids(history))  # (B, P)
            prev = history[:, T - np.minimum(np.arange(1, length.shape[1] + 1), T)]  # (B, P, F)
            events = self.event_ids(history[:, -DEGENERATE_TAIL:])
            share = np.zeros(len(history))
            for r in np.flatnonzero(length.any(axis=1)):
                share[r] = loop_mask(events[r]).mean()
            self._loop_memo = (key, (length, prev, share))
        return self._loop_memo[1]

    def __call__(self, field, logits, context):
        """Lower each id that would continue a loop by
        ``repeat_guard * max(1, length / LOOP_MIN_NOTES) ** 2 * (1 + GUARD_PRESSURE * share)`` nats,
        ``length`` the loop's length with that note, ``share`` the share of the last
        ``DEGENERATE_TAIL`` notes that :func:`stats.loop_mask` already puts inside loops. So an
        occasional repeat, common in real music, is nudged, while a loop that goes on, or a piece
        that keeps falling back into loops, is pushed out harder and harder: the guard works on the
        very quantity :func:`stats.degeneracy` judges.

        Pitch: the pitch of every loop continuation; step and duration: the continuation's id
        where the pitch just chosen is the continuation's pitch (so a looping note is pushed off
        its pitch first, then off its rhythm). An id that continues loops of several periods
        takes the largest penalty.
        """
        history = np.asarray(context.history)
        if history.shape[1] == 0:
            return logits
        length, prev, share = self._loops(history)
        if field != PITCH:
            length = np.where(prev[:, :, 0] == np.asarray(context.pitch).reshape(-1, 1), length, 0)
        rows, ps = np.nonzero(length)
        nats = (self.strength * np.maximum(1.0, length[rows, ps] / LOOP_MIN_NOTES) ** 2
                * (1 + GUARD_PRESSURE * share[rows]))
        penalty = np.zeros_like(logits)
        np.maximum.at(penalty, (rows, prev[rows, ps, field]), nats)
        logits -= penalty
        return logits


# ---------------------------------------------------------------------------------------------
# Loops
# ---------------------------------------------------------------------------------------------
def loop_continuations(events, max_period: int = LOOP_MAX_PERIOD, min_notes: int = LOOP_MIN_NOTES,
                       min_repeats: int = LOOP_MIN_REPEATS, horizon: int = GUARD_HORIZON) -> np.ndarray:
    """(B, T) event ids -> (B, max_period) int: column ``p - 1`` is the length of the loop that a
    next element equal to ``events[:, T - p]`` would end, 0 when :func:`stats.loop_mask` would
    not mark that element (lengths beyond ``horizon + p`` read as ``horizon + p``).

    Appending ``events[T - p]`` extends the trailing run of matches at shift ``p`` by one; the
    loop test on that run is :func:`stats.is_loop_run`, the detector's own.
    """
    events = np.asarray(events)
    B, T = events.shape
    if T == 0:
        return np.zeros((B, max_period), np.int64)
    K = max((min_repeats - 1) * max_period, min_notes, horizon)  # a run this long is a loop at any period
    L = min(T, K + max_period)
    x = events[:, T - L:]  # (B, L)
    period = np.arange(1, max_period + 1)
    a = np.broadcast_to(L - 1 - np.arange(K)[None, :], (max_period, K))  # (P, K) positions back from the end
    b = a - period[:, None]  # (P, K) the positions they must equal
    eq = (x[:, a.clip(0)] == x[:, b.clip(0)]) & (b >= 0)  # (B, P, K)
    run = np.where(eq.all(-1), K, eq.argmin(-1))  # (B, P) trailing matches at each shift
    loop = is_loop_run(run + 1, period, min_notes, min_repeats) & (period <= T)
    return np.where(loop, run + 1 + period, 0)


# ---------------------------------------------------------------------------------------------
# Length in notes or in seconds
# ---------------------------------------------------------------------------------------------
def max_notes(n_notes: int, seconds: float | None) -> int:
    """How many notes the loop may generate: ``n_notes``, or a budget for ``seconds`` of music."""
    return n_notes if seconds is None else int(math.ceil(seconds * MAX_NOTES_PER_SECOND)) + 1


def onsets(tokens, vocab: Vocab) -> np.ndarray:
    """(..., N, F) ids -> (..., N) onset seconds of each note after the primer (cumulative steps)."""
    return np.cumsum(np.asarray(vocab.step_bins.centers)[np.asarray(tokens)[..., 1]], axis=-1)


def trim_to_seconds(tokens, vocab: Vocab, seconds: float | None) -> np.ndarray:
    """(N, F) ids -> the notes whose onset lies before ``seconds`` (at least the first)."""
    if seconds is None:
        return tokens
    return tokens[: max(1, int(np.searchsorted(onsets(tokens, vocab), seconds)))]


class NoteClock:
    """The generation loop's counter: ``for i in clock`` over the rows of ``out`` (B, N, F).

    Without ``seconds``: yields 0..N-1 with a bar in notes. With ``seconds``: stops once every
    row's latest note has its onset (cumulative steps after the primer) at or past ``seconds``,
    with a bar in seconds of music. ``count``: notes yielded, so ``out[:, :count]`` is the music.
    """

    def __init__(self, out: np.ndarray, vocab: Vocab, seconds: float | None = None, progress: bool = False):
        self.out, self.seconds, self.count = out, seconds, 0
        self.step_s = np.asarray(vocab.step_bins.centers)
        common = dict(desc="generating", leave=False, disable=not progress)
        if seconds is None:
            self.bar = tqdm(total=out.shape[1], unit="note", **common)
        else:
            self.bar = tqdm(total=float(seconds), unit="s", **common,
                            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s of music [{elapsed}<{remaining}]")

    def __iter__(self):
        onset = np.zeros(self.out.shape[0])
        try:
            for i in range(self.out.shape[1]):
                if i:
                    onset += self.step_s[self.out[:, i - 1, 1]]
                    done = float(onset.min())
                    self.bar.update(1 if self.seconds is None else min(done, self.seconds) - self.bar.n)
                    if self.seconds is not None and done >= self.seconds:
                        return
                self.count = i + 1
                yield i
            self.bar.update(1 if self.seconds is None else 0)
        finally:
            self.bar.close()


