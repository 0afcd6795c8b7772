"""Names of keys, scales and pitches -> numbers, for the sampling-time controls.

Key names: a tonic (``C``, ``C#``, ``Db``, ... ``B``; ``#``/``b`` or ``♯``/``♭``) and a scale of
:data:`SCALES` (``"D minor"``, ``"F harmonic minor"``, ``"Bb dorian"``; a lone tonic means
major), or a set of pitch classes (``"C,D,E,G,A"``, ``[0, 2, 4, 7, 9]``). Pitch names with an
octave follow scientific pitch notation: C4 = 60 (middle C), A0 = 21, C8 = 108.

Every parser raises ValueError naming the value and what is allowed.
"""

from __future__ import annotations

from ..checks import is_number
import re

from .tokens import MAX_PIANO_PITCH, MIN_PIANO_PITCH

PITCH_CLASS_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_LETTER_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTAL = {"#": 1, "♯": 1, "b": -1, "♭": -1}
SCALES = {  # semitones above the tonic
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic minor": (0, 2, 3, 5, 7, 8, 11),
    "melodic minor": (0, 2, 3, 5, 7, 9, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    "major pentatonic": (0, 2, 4, 7, 9),
    "minor pentatonic": (0, 3, 5, 7, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "whole tone": (0, 2, 4, 6, 8, 10),
}
SCALE_ALIASES = {"ionian": "major", "aeolian": "minor", "natural minor": "minor", "pentatonic": "major pentatonic"}
NO_KEY = ("", "any", "none", "off")  # key values meaning "no key control"
KEY_CHOICES = ("any",) + tuple(f"{t} {m}" for m in ("major", "minor") for t in PITCH_CLASS_NAMES)  # for a dropdown
KEY_HELP = ("a tonic (C, C#, Db, ... B) and a scale (" + ", ".join(SCALES) + "), e.g. 'D minor', "
            "or pitch classes, e.g. 'C,D,E,G,A' or '0,2,4,7,9'")
RANGE_HELP = (f"LOW-HIGH as note names or MIDI numbers within the piano, A0-C8 ({MIN_PIANO_PITCH}-{MAX_PIANO_PITCH}), "
              "e.g. 'C2-C6' or '36-84'")


def _pitch_class(name: str) -> int:
    """'C#' -> 1, 'Bb' -> 10, '7' -> 7; ValueError otherwise."""
    name = name.strip()
    if name.isdigit() and int(name) < 12:
        return int(name)
    m = re.fullmatch(r"([A-Ga-g])([#♯b♭]*)", name)
    if not m:
        raise ValueError(name)
    return (_LETTER_PC[m.group(1).upper()] + sum(_ACCIDENTAL[a] for a in m.group(2))) % 12


def parse_key(value) -> tuple[int, ...] | None:
    """A key or scale -> its sorted pitch classes (0 = C), or None for no key (None, '', 'any').

    ValueError names the value and what is allowed (module docstring).
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in NO_KEY):
        return None
    try:
        if isinstance(value, str) and "," not in value:
            tonic, _, scale = value.strip().partition(" ")
            scale = " ".join(scale.lower().split()) or "major"
            pcs = SCALES[SCALE_ALIASES.get(scale, scale)]
            root = _pitch_class(tonic)
            return tuple(sorted((root + s) % 12 for s in pcs))
        items = value.split(",") if isinstance(value, str) else list(value)
        pcs = {_pitch_class(str(v)) for v in items}
        if not pcs:
            raise ValueError(value)
        return tuple(sorted(pcs))
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"unknown key {value!r}; use {KEY_HELP}, or 'any'") from None


def parse_pitch(value) -> int:
    """'C4' -> 60, 'A0' -> 21, 'Bb3' -> 58, '60' or 60 -> 60 (MIDI pitch); ValueError otherwise."""
    if is_number(value, integer=True):
        return int(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    m = re.fullmatch(r"([A-Ga-g][#♯b♭]*)(-?\d+)", text)
    if not m:
        raise ValueError(f"{value!r} is not a pitch; use a note name with an octave (C4 = 60) or a MIDI number")
    letter = m.group(1)[0].upper()
    return 12 * (int(m.group(2)) + 1) + _LETTER_PC[letter] + sum(_ACCIDENTAL[a] for a in m.group(1)[1:])


def parse_pitch_range(value) -> tuple[int, int] | None:
    """'C2-C6', 'A0-C8', '36-84' or (36, 84) -> (low, high) MIDI pitches, inclusive; None for no range.

    ValueError (naming the value) for an unreadable, empty or inverted range, or one that leaves
    the piano (A0-C8).
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in NO_KEY):
        return None
    try:
        if isinstance(value, str):
            m = re.fullmatch(r"\s*(\S+?)\s*(?:-|–|\.\.|\bto\b)\s*(\S+)\s*", value)
            if not m:
                raise ValueError
            lo, hi = parse_pitch(m.group(1)), parse_pitch(m.group(2))
        else:
            lo, hi = (parse_pitch(v) for v in value)
    except (ValueError, TypeError):
        raise ValueError(f"pitch range {value!r} is not readable; use {RANGE_HELP}") from None
    if lo > hi:
        raise ValueError(f"pitch range {value!r} is empty ({lo} > {hi}); put the low pitch first: {RANGE_HELP}")
    if lo < MIN_PIANO_PITCH or hi > MAX_PIANO_PITCH:
        raise ValueError(f"pitch range {value!r} ({lo}-{hi}) leaves the piano; use {RANGE_HELP}")
    return lo, hi
