"""Notes <-> tokens: one token per note, a tuple of ids.

Token layout (columns of an ``(N, F)`` int array, ``F`` = 3 or 4):

====  ==========  ==========================================================
col   field       id
====  ==========  ==========================================================
0     pitch       MIDI pitch - ``min_pitch`` (0..87 for the piano's 21..108)
1     step        step bin (seconds since the previous onset), see quantize
2     duration    duration bin
3     velocity    optional: ``velocity_bins`` uniform bins over 1..127 (see config.DataConfig)
====  ==========  ==========================================================

``encode`` and ``decode`` are inverses up to quantization; ids or pitches out of range raise
``ValueError`` naming the value and the range.

Decoding: ``decode(tokens)`` gives each id its bin's centre (the grid). A vocabulary fitted on a
corpus also carries its ``spread`` (:meth:`Vocab.with_spread`, one :class:`~.quantize.Spread` per
step, duration and velocity field: where the corpus's values fall inside each bin), and
``decode(tokens, seed=...)`` then draws every step, duration and velocity from that spread: inside
its bin (``encode`` gives the same ids back), as the corpus played it. The uniform number behind each
draw is a hash of the seed and the note's ids (:func:`note_uniforms`): the timing's of its pitch, step
and duration, the velocity's of the whole token. So the same seed gives the same notes, and a passage
played again is played the same way again, as the corpus's repeats are. A vocabulary without a spread
(``on_grid()``, or saved before spreads were stored) decodes to the centres whatever the seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .midi import DEFAULT_VELOCITY, Notes
from .quantize import Bins, Spread, fit_spread, seed_duration_bins, seed_step_bins

MIN_PIANO_PITCH = 21  # A0
MAX_PIANO_PITCH = 108  # C8
FIELDS = ("pitch", "step", "duration", "velocity")
SPREAD_FIELDS = ("step", "duration", "velocity")  # the fields a spread decodes inside their bins
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on uint64s: every input bit moves every output bit."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def note_uniforms(tokens: np.ndarray, seed: int) -> np.ndarray:
    """(N, 3) numbers in [0, 1) for the step, duration and velocity draws of (N, F) tokens: a hash of
    ``seed`` and the note's pitch, step and duration ids (timing; the velocity's also of its velocity id)."""
    t = np.asarray(tokens, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = np.full(len(t), np.uint64(int(seed) % 2**64))
        for col in range(3):
            h = _mix(h + _GOLDEN + t[:, col])
        hv = _mix(h + _GOLDEN + t[:, 3]) if t.shape[1] > 3 else h
        out = [_mix(base + _GOLDEN * np.uint64(k + 2)) for k, base in enumerate((h, h, hv))]
    return np.stack([(x >> np.uint64(11)).astype(np.float64) * 2.0 ** -53 for x in out], axis=1)


@dataclass(frozen=True)
class Vocab:
    step_bins: Bins
    dur_bins: Bins
    velocity_bins: int = 0  # 0: velocity not modelled
    min_pitch: int = MIN_PIANO_PITCH
    max_pitch: int = MAX_PIANO_PITCH
    name: str = field(default="custom", compare=False)  # "seed", "log", ... for display only
    composers: tuple = ()  # composer names of the training pieces: composer id i + 1 (id 0 = "any"), see composers.py
    # Spreads of the step, duration (and velocity) values inside their bins, fitted on the training
    # corpus (with_spread); () = decode to the bin centres. Not part of the vocabulary's identity:
    # tokens mean the same with or without it.
    spread: tuple = field(default=(), compare=False)

    def __post_init__(self):
        for name, size, sp in zip(SPREAD_FIELDS, self.sizes[1:], self.spread):
            if len(sp) != size:
                raise ValueError(f"the vocabulary's {name} spread covers {len(sp)} bins, its grid has {size}; "
                                 f"fit it again (Vocab.with_spread) or drop it (Vocab.on_grid)")

    @property
    def n_pitch(self) -> int:
        return self.max_pitch - self.min_pitch + 1

    @property
    def fields(self) -> tuple[str, ...]:
        return FIELDS if self.velocity_bins else FIELDS[:3]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of ids per field, in column order."""
        sizes = (self.n_pitch, len(self.step_bins), len(self.dur_bins))
        return sizes + ((self.velocity_bins,) if self.velocity_bins else ())

    # ---- scalar pair, like note-seq's encode_event / decode_event ----
    def encode_note(self, pitch: int, step: float, duration: float, velocity: int = DEFAULT_VELOCITY) -> tuple[int, ...]:
        """One note -> one token (a tuple of ids)."""
        row = self.encode_arrays(np.array([pitch]), np.array([step]), np.array([duration]), np.array([velocity]))
        return tuple(int(x) for x in row[0])

    def decode_note(self, token) -> tuple:
        """One token -> (pitch, step seconds, duration seconds, velocity)."""
        n = self.decode(np.asarray([token]))
        return int(n.pitch[0]), float(n.start[0]), float(n.duration[0]), int(n.velocity[0])

    # ---- arrays ----
    def encode(self, notes: Notes) -> np.ndarray:
        """Notes -> (N, F) int16 tokens (the first note's step is 0). ValueError on a pitch out of range."""
        return self.encode_arrays(notes.pitch, notes.step, notes.duration, notes.velocity)

    def encode_arrays(self, pitch, step, duration, velocity) -> np.ndarray:
        pitch = np.asarray(pitch, dtype=np.int64)
        if len(pitch) and (pitch.min() < self.min_pitch or pitch.max() > self.max_pitch):
            bad = pitch[(pitch < self.min_pitch) | (pitch > self.max_pitch)][0]
            raise ValueError(
                f"pitch {bad} out of range {self.min_pitch}..{self.max_pitch}; drop such notes first (see in_range)"
            )
        cols = [pitch - self.min_pitch, self.step_bins.quantize(step), self.dur_bins.quantize(duration)]
        if self.velocity_bins:
            v = np.clip(np.asarray(velocity, dtype=np.int64), 1, 127)
            cols.append((v - 1) * self.velocity_bins // 127)
        if not len(pitch):
            return np.zeros((0, len(self.sizes)), np.int16)
        return np.stack(cols, axis=1).astype(np.int16)

    def in_range(self, notes: Notes) -> np.ndarray:
        """Boolean mask of notes whose pitch this vocabulary can encode."""
        return (notes.pitch >= self.min_pitch) & (notes.pitch <= self.max_pitch)

    def check(self, tokens: np.ndarray) -> np.ndarray:
        """Validate a token array's shape and ids; returns it as int64."""
        t = np.asarray(tokens)
        if t.ndim != 2 or t.shape[1] not in (3, 4) or t.shape[1] < len(self.sizes):
            raise ValueError(f"tokens must have shape (N, {len(self.sizes)}), got {t.shape}")
        t = t[:, : len(self.sizes)].astype(np.int64)
        for col, (name, size) in enumerate(zip(self.fields, self.sizes)):
            c = t[:, col]
            if c.size and (c.min() < 0 or c.max() >= size):
                bad = c[(c < 0) | (c >= size)][0]
                raise ValueError(f"{name} id {bad} out of range 0..{size - 1}")
        return t

    def decode(self, tokens, t0: float = 0.0, seed=None) -> Notes:
        """(N, F) tokens -> Notes (onsets accumulate steps from ``t0``).

        ``seed`` None: every id at its bin's centre. An int: step, duration and velocity drawn inside
        their bins from the vocabulary's ``spread`` (module docstring; centres when it has none).
        """
        t = self.check(tokens)
        pitch = t[:, 0] + self.min_pitch
        if seed is not None and self.spread:
            u = note_uniforms(t, seed)  # (N, 3)
            step, dur = self.spread[0].draw(t[:, 1], u[:, 0]), self.spread[1].draw(t[:, 2], u[:, 1])
            vel = np.round(self.spread[2].draw(t[:, 3], u[:, 2])) if len(self.spread) > 2 else self._velocity(t)
        else:
            step, dur, vel = self.step_bins.dequantize(t[:, 1]), self.dur_bins.dequantize(t[:, 2]), self._velocity(t)
        return Notes.from_steps(pitch, step, dur, vel, t0=t0)

    def _velocity(self, t: np.ndarray) -> np.ndarray:
        """The velocity at each token's bin centre (DEFAULT_VELOCITY without a velocity field)."""
        if not self.velocity_bins:
            return np.full(len(t), DEFAULT_VELOCITY)
        width = 127 / self.velocity_bins
        return np.round(1 + (t[:, 3] + 0.5) * width).clip(1, 127)

    # ---- where values fall inside the bins ----
    def with_spread(self, pieces) -> "Vocab":
        """This vocabulary carrying the spread of ``pieces`` (a list of Notes, e.g. the training
        split): per bin, quantiles of the steps (each piece's first excluded), durations and
        velocities that fall in it."""
        pieces = list(pieces)
        steps = np.concatenate([n.step[1:] for n in pieces] or [np.zeros(0)])
        durs = np.concatenate([n.duration for n in pieces] or [np.zeros(0)])
        spread = [self.step_bins.fit_spread(steps), self.dur_bins.fit_spread(durs)]
        if self.velocity_bins:
            v = np.clip(np.concatenate([n.velocity for n in pieces] or [np.zeros(0)]).astype(np.int64), 1, 127)
            ids = np.arange(self.velocity_bins)
            centres = self._velocity(np.stack([ids] * 4, axis=1)).astype(np.float64)
            spread.append(fit_spread(v, (v - 1) * self.velocity_bins // 127, self.velocity_bins, centres,
                                     np.ones(self.velocity_bins), np.full(self.velocity_bins, 127.0)))
        return dataclasses.replace(self, spread=tuple(spread))

    def on_grid(self) -> "Vocab":
        """This vocabulary without its spread: ``decode`` gives the bin centres whatever the seed."""
        return dataclasses.replace(self, spread=())

    # ---- persistence (stored in caches and checkpoints) ----
    def to_dict(self) -> dict:
        return {
            "step_bins": self.step_bins.to_dict(),
            "dur_bins": self.dur_bins.to_dict(),
            "velocity_bins": self.velocity_bins,
            "min_pitch": self.min_pitch,
            "max_pitch": self.max_pitch,
            "name": self.name,
            "composers": list(self.composers),
            **({"spread": {f: sp.to_list() for f, sp in zip(SPREAD_FIELDS, self.spread)}} if self.spread else {}),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Vocab":
        return cls(
            Bins.from_dict(d["step_bins"]),
            Bins.from_dict(d["dur_bins"]),
            int(d["velocity_bins"]),
            int(d["min_pitch"]),
            int(d["max_pitch"]),
            d.get("name", "custom"),
            tuple(d.get("composers", ())),
            tuple(Spread.from_list(d["spread"][f]) for f in SPREAD_FIELDS if f in d.get("spread", {})),
        )


def velocity_error(velocity, velocity_bins: int) -> dict:
    """|v - decode(encode(v))| in velocity units with ``velocity_bins`` uniform bins: mean, p95, max."""
    v = np.clip(np.asarray(velocity, dtype=np.int64), 1, 127)
    if not len(v) or not velocity_bins:
        return {"mean": float("nan"), "p95": float("nan"), "max": float("nan")}
    vocab = seed_vocab(velocity_bins)
    zeros = np.zeros(len(v))
    back = vocab.decode(vocab.encode_arrays(np.full(len(v), MIN_PIANO_PITCH), zeros, zeros, v)).velocity
    err = np.abs(back.astype(np.int64) - v)
    return {"mean": float(err.mean()), "p95": float(np.percentile(err, 95)), "max": float(err.max())}


def seed_vocab(velocity_bins: int = 0) -> Vocab:
    """The seed notebook's grid: 88 pitches, 21 step bins, 29 duration bins."""
    return Vocab(seed_step_bins(), seed_duration_bins(), velocity_bins, name="seed")


def vocab_differences(old: Vocab, new: Vocab) -> list[str]:
    """What differs between two vocabularies, in plain words, ``old`` first ("velocity bins 0 vs 8")."""
    diffs = []
    for what, a, b in (("step", old.step_bins, new.step_bins), ("duration", old.dur_bins, new.dur_bins)):
        if a == b:
            continue
        grids = f" ({old.name} vs {new.name} grid)" if old.name != new.name else ""
        if len(a.centers) != len(b.centers):
            diffs.append(f"{what} bins {len(a.centers)} vs {len(b.centers)}{grids}")
        elif grids:
            diffs.append(f"{what} bins differ: {old.name} vs {new.name} grid")
        else:
            diffs.append(f"{what} bins differ: fitted on another corpus")
    if old.velocity_bins != new.velocity_bins:
        diffs.append(f"velocity bins {old.velocity_bins} vs {new.velocity_bins}")
    if old.composers != new.composers:
        diffs.append(f"composers {len(old.composers)} vs {len(new.composers)} names")
    if (old.min_pitch, old.max_pitch) != (new.min_pitch, new.max_pitch):
        diffs.append(f"pitch range {old.min_pitch}-{old.max_pitch} vs {new.min_pitch}-{new.max_pitch}")
    return diffs
