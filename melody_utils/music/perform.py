"""Sequenced notes played like a performer: chord asynchrony, tempo drift, velocity shaping.

Sequenced MIDI (the embedded piano corpus) strikes the notes of a chord at one instant, keeps a
tempo exactly and draws velocities from a small set; a pianist's performance (MAESTRO, a digital
piano) does none of that. :func:`perform` plays a sequenced piece the way performances differ
from it, so a model trained on sequenced pieces has heard both (``data.perform``, applied where the
token cache is made: :mod:`melody_utils.data.corpus`). Four changes, each a random process seeded
by the caller's generator:

- **onset jitter**: every onset moves by a normal deviate of :data:`ONSET_JITTER_S` (clipped at 3 sd):
  a chord's notes spread over tens of milliseconds, equal notes come slightly unequal;
- **tempo drift**: time runs at a rate whose logarithm follows a slow random walk (an AR(1)
  process at knots every :data:`TEMPO_KNOT_S` seconds, standard deviation :data:`TEMPO_SD`,
  correlation time :data:`TEMPO_TIME_S`); onsets and note ends are mapped through it;
- **dynamics**: a slow swell and fade (the same kind of process on velocity, :data:`DYNAMICS_SD` MIDI
  units over :data:`DYNAMICS_TIME_S` seconds) plus a note-to-note variation (:data:`VELOCITY_NOISE`).

The magnitudes were chosen with the development set of real performances (statistics in
docs/benchmarks.md, "At home with performances"): with them the piano corpus's chords spread
like the performances' (median 17 ms), and its velocities vary from note to note as theirs do.
"""

from __future__ import annotations

import numpy as np

from .midi import Notes

ONSET_JITTER_S = 0.012  # sd of each onset's move (seconds)
TEMPO_SD = 0.06  # sd of the log tempo (6 %: a phrase a little faster or slower)
TEMPO_TIME_S = 4.0  # correlation time of the tempo (seconds)
TEMPO_KNOT_S = 1.0  # the tempo changes linearly between knots this far apart
DYNAMICS_SD = 5.0  # sd of the slow dynamics curve (MIDI velocity units)
DYNAMICS_TIME_S = 6.0  # its correlation time (seconds)
VELOCITY_NOISE = 7.0  # sd of each note's own velocity change (MIDI velocity units)
MIN_DURATION_S = 0.01  # no note gets shorter than this


def slow_process(n: int, sd: float, corr_time_s: float, knot_s: float, rng: np.random.Generator) -> np.ndarray:
    """A stationary AR(1) process at ``n`` knots ``knot_s`` apart: standard deviation ``sd``, the
    correlation falling by e every ``corr_time_s`` seconds."""
    a = float(np.exp(-knot_s / corr_time_s))
    x = np.empty(n)
    x[0] = rng.normal(0.0, sd)
    innovations = rng.normal(0.0, sd * np.sqrt(1 - a * a), n)
    for i in range(1, n):
        x[i] = a * x[i - 1] + innovations[i]
    return x


def tempo_warp(seconds: float, rng: np.random.Generator, sd: float = TEMPO_SD):
    """``warp(t)``: performed time of score time ``t`` (0 <= t <= ``seconds``, beyond it extrapolated),
    the integral of a drifting rate exp(log tempo)."""
    knots = np.arange(0.0, seconds + 2 * TEMPO_KNOT_S, TEMPO_KNOT_S)  # (K,)
    rate = np.exp(slow_process(len(knots), sd, TEMPO_TIME_S, TEMPO_KNOT_S, rng))
    at_knots = np.concatenate([[0.0], np.cumsum((rate[1:] + rate[:-1]) / 2 * TEMPO_KNOT_S)])  # trapezoids

    def warp(t):
        return np.interp(t, knots, at_knots)

    return warp


def perform(notes: Notes, rng: np.random.Generator, jitter_s: float = ONSET_JITTER_S, tempo_sd: float = TEMPO_SD,
            dynamics_sd: float = DYNAMICS_SD, velocity_noise: float = VELOCITY_NOISE) -> Notes:
    """``notes`` played like a performer (module docstring): the same pitches, sorted again by onset."""
    if len(notes) == 0:
        return notes
    start, end = notes.start, notes.end
    warp = tempo_warp(float(end.max()), rng, tempo_sd)
    jitter = np.clip(rng.normal(0.0, jitter_s, len(notes)), -3 * jitter_s, 3 * jitter_s) if jitter_s else 0.0
    new_start = warp(start) + jitter
    new_start -= min(0.0, float(new_start.min()))  # nothing before 0
    duration = np.maximum(warp(end) - warp(start), MIN_DURATION_S)
    curve = slow_process(int(end.max() // TEMPO_KNOT_S) + 2, dynamics_sd, DYNAMICS_TIME_S, TEMPO_KNOT_S, rng)
    swell = np.interp(start, np.arange(len(curve)) * TEMPO_KNOT_S, curve)
    velocity = notes.velocity + swell + rng.normal(0.0, velocity_noise, len(notes))
    velocity = np.clip(np.round(velocity), 1, 127).astype(np.int16)
    return Notes(notes.pitch, new_start, duration, velocity).sorted()
