"""MIDI files <-> note arrays.

A piece is a :class:`Notes`: parallel numpy arrays of pitch, onset (``start``, seconds),
``duration`` (seconds) and ``velocity``, sorted by onset then pitch, every non-drum
instrument merged into one stream. ``step`` (seconds since the previous note's onset, 0 for
the first note) is derived from the onsets.

Two readers give the same notes: ``symusic`` (a C++ parser, 100x+ faster; the default when
installed) and ``pretty_midi`` (the reference). They differ on one thing only, documented in
:func:`resolve_same_pitch_overlaps`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import atomic_write_bytes

MIN_MIDI_PITCH = 0
MAX_MIDI_PITCH = 127
SUSTAIN_CC = 64  # sustain pedal controller number
SUSTAIN_THRESHOLD = 64  # CC64 value >= 64 means "pedal down"
DEFAULT_PROGRAM = 0  # acoustic grand piano
DEFAULT_VELOCITY = 80  # velocity written when the notes carry none
# Largest MIDI file read: the readers hold a whole file (and more) in memory, so a huge file named
# .mid could end a Colab runtime before it is found not to be music. Piano performances are a hundred
# times smaller (docs/robustness.md).
MAX_MIDI_BYTES = 32 * 1024 * 1024
MIDI_MAGIC = (b"MThd", b"RIFF")  # a standard MIDI file, or one wrapped in RIFF (RMID)

try:  # optional fast reader
    import symusic as _symusic
except ImportError:  # pragma: no cover - exercised only where symusic is missing
    _symusic = None


class MidiError(ValueError):
    """A MIDI file could not be read or holds no usable notes; the message names the file."""


@dataclass
class Notes:
    """One piece as parallel arrays, sorted by (start, pitch)."""

    pitch: np.ndarray  # (N,) int16, MIDI pitch 0-127
    start: np.ndarray  # (N,) float64, onset in seconds
    duration: np.ndarray  # (N,) float64, seconds (>= 0)
    velocity: np.ndarray  # (N,) int16, 1-127

    def __post_init__(self):
        self.pitch = np.asarray(self.pitch, dtype=np.int16)
        self.start = np.asarray(self.start, dtype=np.float64)
        self.duration = np.asarray(self.duration, dtype=np.float64)
        self.velocity = np.asarray(self.velocity, dtype=np.int16)
        n = len(self.pitch)
        if not (len(self.start) == len(self.duration) == len(self.velocity) == n):
            raise ValueError("Notes arrays must have equal lengths")

    def __len__(self) -> int:
        return len(self.pitch)

    @property
    def step(self) -> np.ndarray:
        """Seconds since the previous note's onset; 0 for the first note."""
        return np.diff(self.start, prepend=self.start[:1]) if len(self) else np.zeros(0)

    @property
    def end(self) -> np.ndarray:
        return self.start + self.duration

    @classmethod
    def from_steps(cls, pitch, step, duration, velocity=None, t0: float = 0.0) -> "Notes":
        """Build notes from steps (the first step is the first onset measured from ``t0``)."""
        pitch = np.asarray(pitch)
        velocity = np.full(len(pitch), DEFAULT_VELOCITY) if velocity is None else velocity
        return cls(pitch, t0 + np.cumsum(np.asarray(step, dtype=np.float64)), duration, velocity)

    @classmethod
    def empty(cls) -> "Notes":
        return cls(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))

    def sorted(self) -> "Notes":
        order = np.lexsort((self.pitch, self.start))
        return self[order]

    def __getitem__(self, idx) -> "Notes":
        return Notes(self.pitch[idx], self.start[idx], self.duration[idx], self.velocity[idx])

    def seconds(self) -> float:
        return float(self.end.max()) if len(self) else 0.0


def apply_sustain(notes: Notes, pedal_down: np.ndarray, pedal_up: np.ndarray) -> Notes:
    """Extend note ends held by the sustain pedal, as a pianist hears them.

    A note released while the pedal is down sounds until the pedal comes up. A re-struck pitch
    cuts the sounding one: the earlier note ends at the new onset (the piano has one string
    per pitch). ``pedal_down``/``pedal_up`` are matching sorted interval bounds (seconds).
    """
    if len(notes) == 0 or len(pedal_down) == 0:
        return notes
    end = notes.end.copy()
    # Interval whose [down, up) contains the release time, if any.
    k = np.searchsorted(pedal_down, end, side="right") - 1
    held = (k >= 0) & (end < pedal_up[np.clip(k, 0, None)])
    end[held] = pedal_up[k[held]]
    out = Notes(notes.pitch, notes.start, end - notes.start, notes.velocity)
    return resolve_same_pitch_overlaps(out)


def resolve_same_pitch_overlaps(notes: Notes) -> Notes:
    """Cut each note at the next onset of the same pitch, so no two notes of a pitch overlap.

    A piano has one string per pitch: a re-struck key ends the note that was sounding. Files
    merged from several tracks (or sloppy sequencers) overlap same-pitch notes, and the two
    readers pair such note-ons and note-offs differently:

    - pretty_midi closes *every* open note of the pitch at the first note-off; symusic closes
      one, first in first out. So when a pitch is struck again before it was released, the
      later note ends at the first note-off with pretty_midi and at its own with symusic.
    - A note-on that never gets a note-off of its own is closed by that shared note-off in
      pretty_midi and dropped by symusic (this is why symusic returns a few notes fewer on
      files like string quartets).

    After this cut both readers give the same onsets, pitches and the same end for every note
    but such a later, re-struck note (tested in tests/test_midi.py).
    """
    if len(notes) < 2:
        return notes
    order = np.lexsort((notes.start, notes.pitch))  # group by pitch, by onset within a pitch
    p, s, e = notes.pitch[order], notes.start[order], notes.end[order]
    same_next = np.zeros(len(order), dtype=bool)
    same_next[:-1] = p[1:] == p[:-1]
    nxt = np.empty_like(s)
    nxt[:-1] = s[1:]
    nxt[-1] = np.inf
    e = np.where(same_next & (e > nxt), nxt, e)
    end = np.empty_like(e)
    end[order] = e
    return Notes(notes.pitch, notes.start, end - notes.start, notes.velocity)


def _pedal_intervals(times: np.ndarray, values: np.ndarray, end_time: float) -> tuple[np.ndarray, np.ndarray]:
    """CC64 events (sorted by time) -> (down, up) interval bounds."""
    downs, ups = [], []
    is_down = False
    for t, v in zip(times, values):
        if v >= SUSTAIN_THRESHOLD and not is_down:
            downs.append(t)
            is_down = True
        elif v < SUSTAIN_THRESHOLD and is_down:
            ups.append(t)
            is_down = False
    if is_down:
        ups.append(max(end_time, downs[-1]))
    return np.asarray(downs, dtype=np.float64), np.asarray(ups, dtype=np.float64)


def _read_pretty_midi(path: Path, sustain: bool) -> list[tuple[Notes, np.ndarray, np.ndarray]]:
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(path))
    out = []
    for inst in pm.instruments:
        if inst.is_drum:
            continue
        arr = np.array([(n.pitch, n.start, n.end - n.start, n.velocity) for n in inst.notes], dtype=np.float64)
        arr = arr.reshape(-1, 4)
        notes = Notes(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3])
        cc = [(c.time, c.value) for c in inst.control_changes if c.number == SUSTAIN_CC] if sustain else []
        cc_arr = np.array(cc, dtype=np.float64).reshape(-1, 2)
        out.append((notes, cc_arr[:, 0], cc_arr[:, 1]))
    return out


def _read_symusic(path: Path, sustain: bool) -> list[tuple[Notes, np.ndarray, np.ndarray]]:
    score = _symusic.Score(str(path), ttype="second")
    out = []
    for track in score.tracks:
        if track.is_drum:
            continue
        a = track.notes.numpy()
        notes = Notes(a["pitch"], a["time"], a["duration"], a["velocity"])
        times = values = np.zeros(0)
        if sustain and len(track.controls):
            c = track.controls.numpy()
            sel = c["number"] == SUSTAIN_CC
            times, values = c["time"][sel].astype(np.float64), c["value"][sel]
        out.append((notes, times, values))
    return out


def check_midi_file(path: Path) -> None:
    """:class:`MidiError` naming ``path`` when it is empty, larger than :data:`MAX_MIDI_BYTES` or does not
    begin with a MIDI header; only its size and first bytes are read."""
    size = path.stat().st_size
    if size == 0:
        raise MidiError(f"{path} is empty (0 bytes): not a MIDI file")
    if size > MAX_MIDI_BYTES:
        raise MidiError(f"{path} is {size / 1e6:,.0f} MB, more than the {MAX_MIDI_BYTES >> 20} MB a MIDI file may have "
                        f"here (piano pieces are far smaller); it is not a piano MIDI file, or split it into pieces")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith(MIDI_MAGIC):
        raise MidiError(f"could not read {path} as MIDI (it begins with {head!r}, not the MIDI header b'MThd'); "
                        f"the file is corrupt or not a standard MIDI file")


def midi_to_notes(path: str | os.PathLike, sustain: bool = True, backend: str = "auto") -> Notes:
    """Read every non-drum note of a MIDI file, merged across tracks, sorted by (onset, pitch).

    ``sustain``: apply the sustain pedal (CC64) to durations (per track). ``backend``:
    ``"symusic"``, ``"pretty_midi"`` or ``"auto"`` (symusic when installed).
    Raises :class:`MidiError` naming the file when it is missing, unreadable or has no notes.
    """
    path = Path(path)
    if not path.is_file():
        raise MidiError(f"MIDI file not found: {path} (check the path)")
    if backend == "auto":
        backend = "symusic" if _symusic is not None else "pretty_midi"
    if backend not in ("symusic", "pretty_midi"):
        raise ValueError(f"backend must be 'auto', 'symusic' or 'pretty_midi', not {backend!r}")
    check_midi_file(path)
    reader = _read_symusic if backend == "symusic" else _read_pretty_midi
    try:
        tracks = reader(path, sustain)
    except Exception as exc:  # both parsers raise assorted types on corrupt bytes
        raise MidiError(f"could not read {path} as MIDI ({type(exc).__name__}: {exc}); the file is corrupt or not a standard MIDI file") from None
    parts = []
    for notes, cc_t, cc_v in tracks:
        if len(notes) == 0:
            continue
        if sustain and len(cc_t):
            order = np.argsort(cc_t, kind="stable")
            down, up = _pedal_intervals(cc_t[order], cc_v[order], float(notes.end.max()))
            notes = apply_sustain(notes, down, up)
        parts.append(notes)
    if not parts:
        raise MidiError(f"{path} has no non-drum notes to use")
    merged = Notes(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("pitch", "start", "duration", "velocity")))
    merged = resolve_same_pitch_overlaps(merged).sorted()
    # Zero-length notes (note-on and note-off on one tick) make no sound; pretty_midi drops
    # them while reading, symusic keeps them: drop them here so both readers agree.
    keep = np.isfinite(merged.start) & np.isfinite(merged.duration) & (merged.duration > 0)
    merged = merged[keep]
    if len(merged) == 0:
        raise MidiError(f"{path} has only zero-length notes")
    return merged


def notes_to_pretty_midi(notes: Notes, program: int = DEFAULT_PROGRAM, velocity: int | None = None):
    """Notes -> a ``pretty_midi.PrettyMIDI`` with one piano instrument."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=program, name="Piano")
    for p, s, d, v in zip(notes.pitch, notes.start, notes.duration, notes.velocity):
        vel = int(velocity if velocity is not None else v)
        inst.notes.append(pretty_midi.Note(velocity=max(1, min(127, vel)), pitch=int(p), start=float(s), end=float(s + max(d, 1e-3))))
    pm.instruments.append(inst)
    return pm


def notes_to_midi(notes: Notes, path: str | os.PathLike, program: int = DEFAULT_PROGRAM, velocity: int | None = None) -> Path:
    """Write notes to a MIDI file (atomically). Returns the path."""
    if len(notes) and (notes.pitch.min() < MIN_MIDI_PITCH or notes.pitch.max() > MAX_MIDI_PITCH):
        raise ValueError(f"pitches must lie in {MIN_MIDI_PITCH}-{MAX_MIDI_PITCH}, got {notes.pitch.min()}-{notes.pitch.max()}")
    pm = notes_to_pretty_midi(notes, program, velocity)
    return atomic_write_bytes(path, lambda tmp: pm.write(tmp))
