"""Sampling-time controls: key, pitch range, note density, per-field temperature, repetition guard,
and the length of a piece in seconds. None of them needs retraining: they act on the logits.

:class:`Controls` holds the user's settings (parsed and checked when it is made); bound to a
vocabulary it becomes a :class:`Steering`, whose ``adjust(field, logits, history, pitch)`` the
generation loop calls once per note and field (0 pitch, 1 step, 2 duration, 3 velocity), for a
batch of rows at once. In that call, in this order:

1. **per-field temperature**: the logits are divided by ``temperature_pitch`` (pitch),
   ``temperature_timing`` (step and duration) or ``temperature_velocity`` (velocity); the global
   temperature of :mod:`melody_utils.generate.sample` divides them again afterwards, so the two multiply.
   The biases below are scaled by the global temperature, so their nats are nats of the
   distribution the sampler draws from, whatever the temperature.
2. **key** (pitch): pitches whose pitch class is outside the scale get ``-inf`` (hard, the
   default) or lose ``key_strength`` nats (soft).
3. **pitch range** (pitch): pitches outside it get ``-inf``: the range is never left.
4. **note density** (step): a feedback controller, see :meth:`Steering.steer_density`.
5. **repetition guard** (pitch, step, duration): the ids that would put the next note inside a
   loop that :func:`melody_utils.music.stats.loop_mask` detects lose at least ``repeat_guard`` nats,
   more the longer the loop and the loopier the recent notes, see :meth:`Steering.guard`.

Every step adds to the logits (or scales them), so whatever the sampler does next (top-k,
top-p, a grammar that masks impossible notes) still applies on top.

:class:`NoteClock` is the loop's note counter; with ``seconds`` it stops once the decoded onsets
pass that many seconds and shows progress in seconds of music.

Keys and ranges are read by :mod:`melody_utils.music.scales`.
"""

from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ..music.stats import DEGENERATE_TAIL, LOOP_MAX_PERIOD, LOOP_MIN_NOTES, LOOP_MIN_REPEATS, is_loop_run, loop_mask
from ..music.quantize import CHORD_THRESHOLD_S
from ..music.scales import KEY_HELP, RANGE_HELP, parse_key, parse_pitch_range
from ..music.tokens import MAX_PIANO_PITCH, MIN_PIANO_PITCH, Vocab

DEFAULT_REPEAT_GUARD = 3.0  # nats: --repeat-guard without a value
GUARD_HORIZON = 64  # notes: the guard's push grows with a loop's length up to this
GUARD_PRESSURE = 4.0  # ... and by this factor more when all the recent notes already lie in loops
DENSITY_WINDOW = 256  # notes of recent history whose realised density the controller corrects
DENSITY_HORIZON = 16  # notes over which it plans to close the gap
DENSITY_MAX_TILT = 8.0  # largest |beta| (nats per e-fold of step length)
DENSITY_MAX_CORRECTION = 4.0  # the planned mean step stays within this factor of 1 / target
MAX_SECONDS = 3600.0  # longest piece --seconds accepts
MAX_NOTES_PER_SECOND = 40  # note budget per second of music when generating by length


def _positive(name: str, value, unit: str, allow_zero: bool = False) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) \
        and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be a number {'>=' if allow_zero else '>'} 0 ({unit}), got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------
# The settings
# ---------------------------------------------------------------------------------------------
@dataclass
class Controls:
    """Sampling-time controls, checked when made (ValueError naming the bad value). Defaults: off."""

    key: object = None  # "D minor", "C,D,E,G,A", [0, 2, 4, 7, 9], ...; None / "any" = every pitch
    key_strength: float | None = None  # None: out-of-key pitches masked (hard); else lowered by this many nats (soft)
    pitch_range: object = None  # "C2-C6", "36-84" or (36, 84), inclusive; None = the vocabulary's whole range
    density: float | None = None  # target notes per second (chord notes count); None = the model's own
    temperature_pitch: float = 1.0  # multiplies the global temperature for pitch ...
    temperature_timing: float = 1.0  # ... for step and duration ...
    temperature_velocity: float = 1.0  # ... for velocity
    repeat_guard: float = 0.0  # nats taken from each id that would continue a loop (stats.loop_mask); 0 = off
    scale: tuple | None = field(init=False, default=None)  # the key's pitch classes (parsed)
    pitches: tuple | None = field(init=False, default=None)  # the range as (low, high) MIDI pitches (parsed)

    def __post_init__(self):
        self.scale = parse_key(self.key)
        self.pitches = parse_pitch_range(self.pitch_range)
        if self.key_strength is not None:
            self.key_strength = _positive("key_strength", self.key_strength, "nats; None = hard mask")
        if self.density is not None:
            self.density = _positive("density", self.density, "notes per second, e.g. 8")
        for name in ("temperature_pitch", "temperature_timing", "temperature_velocity"):
            setattr(self, name, _positive(name, getattr(self, name), "1.0 = the global temperature alone"))
        self.repeat_guard = _positive("repeat_guard", self.repeat_guard, "nats; 0 = off", allow_zero=True)
        if self.scale is not None and self.pitches is not None:
            lo, hi = self.pitches
            if not any(p % 12 in self.scale for p in range(lo, hi + 1)):
                raise ValueError(f"key {self.key!r} has no pitch in the pitch range {self.pitch_range!r}; widen the range")

    @property
    def active(self) -> bool:
        return (self.scale is not None or self.pitches is not None or self.density is not None or self.repeat_guard > 0
                or (self.temperature_pitch, self.temperature_timing, self.temperature_velocity) != (1.0, 1.0, 1.0))

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

    def bind(self, vocab: Vocab, temperature: float = 1.0) -> "Steering":
        return Steering(self, vocab, temperature)


def controls_from_widgets(key="any", key_strength=0.0, pitch_low=MIN_PIANO_PITCH, pitch_high=MAX_PIANO_PITCH,
                          density=0.0, temperature_pitch=1.0, temperature_timing=1.0, temperature_velocity=1.0,
                          repeat_guard=0.0) -> Controls:
    """Widget values -> Controls. Widgets have no None, so 0 means off: ``key_strength`` 0 = hard
    mask, ``density`` 0 = the model's own; the full piano range = no range control."""
    whole = (pitch_low, pitch_high) == (MIN_PIANO_PITCH, MAX_PIANO_PITCH)
    return Controls(key=key, key_strength=key_strength or None, pitch_range=None if whole else (pitch_low, pitch_high),
                    density=density or None, temperature_pitch=temperature_pitch, temperature_timing=temperature_timing,
                    temperature_velocity=temperature_velocity, repeat_guard=repeat_guard)


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
# Controls bound to a vocabulary
# ---------------------------------------------------------------------------------------------
class Steering:
    """:class:`Controls` for one vocabulary; stateless between calls (it reads the history)."""

    def __init__(self, controls: Controls | None, vocab: Vocab, temperature: float = 1.0):
        c = controls or Controls()
        self.controls, self.vocab, self.active = c, vocab, c.active
        self.temperature = temperature  # the sampler's global temperature: biases are in nats after it
        self.temperatures = (c.temperature_pitch, c.temperature_timing, c.temperature_timing, c.temperature_velocity)
        midi = np.arange(vocab.min_pitch, vocab.max_pitch + 1)
        bias = np.zeros(vocab.n_pitch)
        if c.scale is not None:
            bias[~np.isin(midi % 12, c.scale)] = -np.inf if c.key_strength is None else -c.key_strength
        if c.pitches is not None:
            bias[(midi < c.pitches[0]) | (midi > c.pitches[1])] = -np.inf
            if not np.isfinite(bias).any():
                raise ValueError(f"pitch range {c.pitch_range!r} has no pitch the model can play "
                                 f"({vocab.min_pitch}-{vocab.max_pitch}) in key {c.key!r}; widen it")
        self.pitch_bias = bias if bias.any() else None
        self.step_s = np.asarray(vocab.step_bins.centers)  # (V_step,) seconds
        self._loop_memo = None  # (key, value) of _loops for the note being sampled
        self.log_step = np.log(np.maximum(self.step_s, CHORD_THRESHOLD_S / 2))  # the 0 (chord) bin: half the threshold

    def adjust(self, field: int, logits, history, pitch=None) -> np.ndarray:
        """Logits of ``field`` for the next note, (B, V) -> (B, V) float64 (steps 1-5 of the module).

        ``history``: (B, T, F) ids of the notes generated so far (T may be 0); ``pitch``: (B,)
        pitch ids just chosen for this note (needed for fields > 0 by the repetition guard).
        Returns ``logits`` itself when no control is on.
        """
        if not self.active:
            return logits
        z = np.array(logits, dtype=np.float64).reshape(-1, np.shape(logits)[-1])  # (B, V) copy
        if self.temperatures[field] != 1.0:
            z /= self.temperatures[field]
        if field == 0 and self.pitch_bias is not None:
            z += self.pitch_bias * self.temperature
        if field == 1 and self.controls.density is not None:
            self.steer_density(z, np.asarray(history))
        if field <= 2 and self.controls.repeat_guard > 0:
            self.guard(field, z, np.asarray(history), pitch)
        return z

    def steer_density(self, z: np.ndarray, history: np.ndarray) -> None:
        """Tilt the step logits (B, V) in place towards the target density.

        Realised density: the last ``DENSITY_WINDOW`` generated notes over the seconds their steps
        span. To be back on target ``DENSITY_HORIZON`` notes from now, the next steps should
        average ``m* = ((n + H) / target - elapsed) / H`` seconds (kept within a factor
        ``DENSITY_MAX_CORRECTION`` of ``1 / target``). The bias ``-beta * log(step_j)`` (an
        exponential tilt: ``beta`` nats per e-fold of step length, positive favours short steps)
        makes the model's own mean step equal ``m*``; the mean falls monotonically as ``beta``
        grows, so ``beta`` is found per row by bisection. Reading the model's distribution at every
        note at the sampler's global temperature (feed-forward) gets close at once; the
        elapsed-time term (feedback) removes what top-p, the grammar and chance leave. Measured on
        a small trained model (tests/test_controls.py): within 11% of targets from 2 to 20 notes/s
        over 200 notes, at temperatures 0.7 to 1.3.
        """
        target = self.controls.density
        recent = history[:, -DENSITY_WINDOW:, 1]  # (B, n)
        n = recent.shape[1]
        elapsed = self.step_s[recent].sum(axis=1)  # (B,)
        want = ((n + DENSITY_HORIZON) / target - elapsed) / DENSITY_HORIZON
        want = np.clip(want, 1 / (target * DENSITY_MAX_CORRECTION), DENSITY_MAX_CORRECTION / target)
        lo, hi = np.full(len(z), -DENSITY_MAX_TILT), np.full(len(z), DENSITY_MAX_TILT)
        zt = z / self.temperature  # what the sampler draws from
        for _ in range(24):
            beta = (lo + hi) / 2
            t = zt - beta[:, None] * self.log_step
            p = np.exp(t - t.max(axis=1, keepdims=True))
            too_slow = (p @ self.step_s) / p.sum(axis=1) > want
            lo, hi = np.where(too_slow, beta, lo), np.where(too_slow, hi, beta)
        z -= ((lo + hi) / 2 * self.temperature)[:, None] * self.log_step

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

    def guard(self, field: int, z: np.ndarray, history: np.ndarray, pitch) -> None:
        """Lower (in place) each id that would continue a loop by
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
        if history.shape[1] == 0:
            return
        length, prev, share = self._loops(history)
        if field:
            length = np.where(prev[:, :, 0] == np.asarray(pitch).reshape(-1, 1), length, 0)
        rows, ps = np.nonzero(length)
        nats = (self.controls.repeat_guard * self.temperature * np.maximum(1.0, length[rows, ps] / LOOP_MIN_NOTES) ** 2
                * (1 + GUARD_PRESSURE * share[rows]))
        penalty = np.zeros_like(z)
        np.maximum.at(penalty, (rows, prev[rows, ps, field]), nats)
        z -= penalty


# ---------------------------------------------------------------------------------------------
# Length in notes or in seconds
# ---------------------------------------------------------------------------------------------
def validate_seconds(seconds) -> None:
    if seconds is not None:
        ok = isinstance(seconds, numbers.Real) and not isinstance(seconds, bool) and math.isfinite(seconds)
        if not ok or not 0 < seconds <= MAX_SECONDS:
            raise ValueError(f"seconds must be a number in (0, {MAX_SECONDS:g}] (length of music), got {seconds!r}")


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


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------
def _arg(parse):
    """An argparse ``type`` from a parser raising ValueError (usage error: one line, exit 2)."""
    def parse_arg(text):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse_arg


def _number_arg(name: str, unit: str, allow_zero: bool = False):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{name} must be a number ({unit}), got {text!r}") from None
        return _positive(name, value, unit, allow_zero)

    return _arg(parse)


def add_control_arguments(group) -> None:
    """The control flags of ``generate`` and ``quickstart`` (on an argparse group). --key and
    --pitch-range are checked while parsing and kept as text, which Controls parses again."""
    group.add_argument("--key", type=_arg(lambda t: parse_key(t) and t), help=f"keep to a key or scale: {KEY_HELP}")
    group.add_argument("--key-strength", type=_number_arg("key strength", "nats > 0"), metavar="NATS",
                       help="soft key: lower out-of-key pitches by this many nats instead of masking them")
    group.add_argument("--pitch-range", type=_arg(lambda t: parse_pitch_range(t) and t), metavar="LOW-HIGH", help=RANGE_HELP)
    group.add_argument("--density", type=_number_arg("density", "notes per second, e.g. 8"), metavar="NOTES_PER_S",
                       help="target note density in notes per second (chord notes count)")
    for name in ("pitch", "timing", "velocity"):
        group.add_argument(f"--temperature-{name}", type=_number_arg(f"temperature-{name}", "> 0"), default=1.0,
                           metavar="T", help=f"extra temperature for {name} (multiplies --temperature; default 1)")
    group.add_argument("--repeat-guard", type=_number_arg("repeat guard", "nats >= 0", allow_zero=True), nargs="?",
                       const=DEFAULT_REPEAT_GUARD, default=0.0, metavar="NATS",
                       help=f"penalise notes that would continue a loop (default {DEFAULT_REPEAT_GUARD:g} nats when given)")


def controls_from_args(args) -> Controls | None:
    """The Controls the flags ask for (None without control flags). ValueError for a bad combination."""
    if not hasattr(args, "key"):
        return None
    c = Controls(key=args.key, key_strength=args.key_strength, pitch_range=args.pitch_range, density=args.density,
                 temperature_pitch=args.temperature_pitch, temperature_timing=args.temperature_timing,
                 temperature_velocity=args.temperature_velocity, repeat_guard=args.repeat_guard)
    return c if c.active else None
