"""The built-in numpy piano: a struck-string model that needs nothing installed (the offline fallback
of :mod:`melody_utils.display.audio`).

Each note is up to :data:`N_PARTIALS` decaying partials of a stiff string (see
:func:`_string_partials`), a :data:`ATTACK_S` attack and a :data:`RELEASE_S` damper fade after the
note ends; louder notes are brighter. Notes are placed in the stereo image by pitch, as a listener
in front of a grand piano hears them (bass left, treble right; :func:`pan_gains`).
"""

from __future__ import annotations

import math

import numpy as np

from ..music.midi import Notes

N_PARTIALS = 10  # harmonics per note (fewer for high notes: none above 0.45 * sample rate)
INHARMONICITY = 1.5e-4  # piano strings are stiff: partial k sits at k f0 sqrt(1 + B k^2)
ATTACK_S = 0.003  # hammer attack ramp
PROMPT_SHARE = 0.65  # share of a partial's amplitude in the fast-decaying "prompt" sound after the strike
PROMPT_SPEEDUP = 8.0  # the prompt sound decays this many times faster than the aftersound
RELEASE_S = 0.08  # damper: fade to silence over this long after the note ends
MAX_RING_S = 6.0  # a longer held note is damped here (bounds the cost of pedalled notes)
PAN_WIDTH = 0.6  # share of the stereo field the keyboard spans (0 = mono, 1 = hard left to hard right)
TAIL_S = 0.5  # seconds kept after the last note ends, for its release


def render_length(notes: Notes, sample_rate: int) -> int:
    """Frames of a rendering: the last note's end plus :data:`TAIL_S`."""
    return int(math.ceil((notes.seconds() + TAIL_S) * sample_rate))


def pan_gains(pitch) -> np.ndarray:
    """(N, 2) equal-power left/right gains: A0 towards the left, C8 towards the right, by :data:`PAN_WIDTH`."""
    position = 0.5 + PAN_WIDTH * (np.clip(np.asarray(pitch, np.float64), 21, 108) - 64.5) / 87  # 0 = left, 1 = right
    angle = position * np.pi / 2
    return np.stack([np.cos(angle), np.sin(angle)], axis=-1)


def _string_decay_s(f0: float) -> float:
    """Time constant (s) of a string's fundamental: bass strings ring for seconds, treble briefly."""
    return float(np.clip(1.8 * (261.63 / f0) ** 0.6, 0.2, 3.0))


def _string_partials(pitch: int, n: int, sample_rate: int) -> np.ndarray:
    """(K, n) decaying partials of one struck string, K <= N_PARTIALS (none above 0.45 * sr).

    Partial k sits at k f0 sqrt(1 + B k^2) (a stiff string's stretched harmonics) and decays
    with time constant tau0 / (1 + 0.6 (k - 1)): the upper partials die first, so a held note
    mellows as it rings. Its amplitude falls in two stages, as a piano's does: a
    :data:`PROMPT_SHARE` that decays :data:`PROMPT_SPEEDUP` times faster (the bright strike),
    then a quieter, slower aftersound.
    """
    f0 = 440.0 * 2.0 ** ((pitch - 69) / 12)
    k = np.arange(1, N_PARTIALS + 1, dtype=np.float64)
    freq = k * f0 * np.sqrt(1 + INHARMONICITY * k**2)
    keep = freq < 0.45 * sample_rate
    freq, tau = freq[keep], _string_decay_s(f0) / (1 + 0.6 * (k[keep] - 1))
    out = np.zeros((len(freq), n), dtype=np.float64)
    for share, speed in ((PROMPT_SHARE, PROMPT_SPEEDUP), (1 - PROMPT_SHARE, 1.0)):
        # exp((i w - 1/tau) t) at t = j / sr is r**j: a running product, far cheaper than exp and
        # sin per sample (complex128 keeps the accumulated error near 1e-8 over MAX_RING_S).
        r = np.exp((2j * np.pi * freq - speed / tau) / sample_rate)  # (K,)
        z = np.empty((len(freq), max(n, 1)), dtype=np.complex128)
        z[:, 0] = 1.0
        z[:, 1:] = r[:, None]
        np.cumprod(z, axis=1, out=z)
        out += share * z.imag[:, :n]  # exp(-speed t / tau_k) sin(2 pi f_k t)
    return out.astype(np.float32)  # (K, n)


def _partial_weights(n_partials: int, velocity: np.ndarray) -> np.ndarray:
    """(N, K) partial amplitudes: a spectral slope k^-b, brighter (smaller b) for louder notes."""
    k = np.arange(1, n_partials + 1, dtype=np.float64)
    slope = 1.9 - 1.1 * np.asarray(velocity, dtype=np.float64)[:, None] / 127
    w = k[None, :] ** -slope
    return w / w.sum(axis=1, keepdims=True)


def synth_numpy(notes: Notes, sample_rate: int) -> np.ndarray:
    """Built-in struck-string synthesizer: (frames, 2) float32, no dependency beyond numpy.

    The partials of a pitch are computed once, for its longest note; each note is then one
    small matrix-vector product (its velocity's partial weights times the partials), added to
    both channels with its pitch's :func:`pan_gains`.
    """
    n_out = render_length(notes, sample_rate)
    out = np.zeros((n_out, 2), dtype=np.float32)
    n_attack = max(1, int(ATTACK_S * sample_rate))
    n_release = max(1, int(RELEASE_S * sample_rate))
    attack = np.linspace(0.0, 1.0, n_attack, endpoint=False, dtype=np.float32)
    release = np.linspace(1.0, 0.0, n_release, dtype=np.float32) ** 2
    velocity = np.clip(notes.velocity, 1, 127)
    gains = (velocity / 127.0) ** 1.6  # loudness grows faster than velocity
    starts = np.round(notes.start * sample_rate).astype(np.int64)
    ring = np.minimum(np.round(notes.duration * sample_rate).astype(np.int64), int(MAX_RING_S * sample_rate))
    lengths = np.minimum(ring + n_release, n_out - starts)
    for pitch in np.unique(notes.pitch):
        idx = np.flatnonzero(notes.pitch == pitch)
        partials = _string_partials(int(pitch), int(lengths[idx].max()), sample_rate)  # (K, L)
        weights = (_partial_weights(len(partials), velocity[idx]) * gains[idx, None]).astype(np.float32)  # (n, K)
        pan = pan_gains(pitch).astype(np.float32)  # (2,)
        for j, i in enumerate(idx):
            s, length = starts[i], lengths[i]
            # einsum, not @: a BLAS matvec this thin is slower (it may spin up threads)
            x = np.einsum("k,kn->n", weights[j], partials[:, :length])  # (length,)
            a, r = min(n_attack, length), min(n_release, length)
            x[:a] *= attack[:a]
            x[length - r :] *= release[n_release - r :]
            out[s : s + length] += x[:, None] * pan
    return out
