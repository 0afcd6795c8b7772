"""Your own MIDI as a primer: a file path (``generate --primer song.mid``) or the bytes of an upload
(notebook 04: Colab's ``files.upload()`` or an ipywidgets ``FileUpload``).

The music continues from the end of the file: the primer is the file's notes that the model's
vocabulary can play (notes outside its piano range are dropped), those starting in its last
``seconds`` when asked (:func:`primer_tail`; the file ends where its last note ends), and of those
at most the last ``n_notes`` (:data:`MAX_PRIMER_NOTES` by default). A long primer costs its notes
once: the causal models feed it to the LSTM a single time and then carry the state (see
:mod:`melody_utils.generate.sample`). Anything else (a file that is not MIDI, empty, corrupt, with
no playable note, or none in the last seconds asked for) raises ValueError in one line naming the
file and what is allowed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..checks import check_number
from ..music.midi import MAX_MIDI_BYTES, MidiError, Notes, midi_to_notes
from ..music.tokens import Vocab

MIDI_SUFFIXES = (".mid", ".midi")  # what an upload may be called
ALLOWED = "a standard MIDI file (.mid or .midi) with piano notes"
MAX_PRIMER_NOTES = 2048  # a file primes with at most its last this many notes (a few minutes of piano)


def validate_primer_seconds(seconds) -> float | None:
    """``seconds`` (> 0, finite) as a float, None for None; else ValueError naming --primer-seconds."""
    if seconds is None:
        return None
    return check_number("--primer-seconds", seconds, "a number of seconds > 0", 0, lo_open=True)


def primer_tail(notes: Notes, seconds: float | None = None, n_notes: int = MAX_PRIMER_NOTES, name: str = "the primer") -> Notes:
    """The notes starting in the last ``seconds`` of ``notes`` (None: all of them; the end is where the
    last note ends), then at most the last ``n_notes`` of those. ValueError (naming ``name``) when no
    note starts in that span."""
    seconds = validate_primer_seconds(seconds)
    if seconds is not None and len(notes):
        end = notes.seconds()
        tail = notes[notes.start >= end - seconds]
        if len(tail) == 0:
            raise ValueError(f"{name}: no note starts in its last {seconds:g} s (its last note starts "
                             f"{end - notes.start.max():.1f} s before its end); raise --primer-seconds")
        notes = tail
    return notes[max(len(notes) - n_notes, 0):]


def primer_from_file(path, vocab: Vocab, n_notes: int = MAX_PRIMER_NOTES, sustain: bool = True, name: str | None = None,
                     seconds: float | None = None) -> Notes:
    """The notes of a MIDI file that ``vocab`` can play, from its end: :func:`primer_tail` with
    ``seconds`` and ``n_notes``.

    ``name``: how the file is called in errors (an upload's own name rather than its temp file).
    Raises FileNotFoundError for a missing path and ValueError for anything unreadable.
    """
    path = Path(path).expanduser()
    shown = name or str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{shown}: file not found; pass {ALLOWED}")
    _check_size(shown, path.stat().st_size)
    try:
        notes = midi_to_notes(path, sustain=sustain)
    except MidiError:
        raise ValueError(f"{shown} is not readable as MIDI (corrupt, empty or another format); use {ALLOWED}") from None
    notes = notes[vocab.in_range(notes)]
    if len(notes) == 0:
        raise ValueError(f"{shown} has no notes in the model's piano range {vocab.min_pitch}-{vocab.max_pitch}; "
                         f"use {ALLOWED}")
    return primer_tail(notes, seconds, n_notes, shown)


def _check_size(name: str, size: int) -> None:
    if size > MAX_MIDI_BYTES:
        raise ValueError(f"{name} is {size / 1e6:,.0f} MB, more than the {MAX_MIDI_BYTES >> 20} MB a MIDI file may have "
                         f"here; use {ALLOWED}")


def primer_from_bytes(name: str, data, vocab: Vocab, n_notes: int = MAX_PRIMER_NOTES, sustain: bool = True,
                      seconds: float | None = None) -> Notes:
    """An uploaded file (its name and bytes) -> the primer of :func:`primer_from_file`."""
    if not str(name).lower().endswith(MIDI_SUFFIXES):
        raise ValueError(f"{name} is not a MIDI file; upload {ALLOWED}")
    data = bytes(data)
    if not data:
        raise ValueError(f"{name} is empty (0 bytes); upload {ALLOWED}")
    _check_size(name, len(data))
    fd, tmp = tempfile.mkstemp(suffix=Path(name).suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return primer_from_file(tmp, vocab, n_notes, sustain, name=name, seconds=seconds)
    finally:
        os.unlink(tmp)


def uploaded_files(value) -> list[tuple[str, bytes]]:
    """(name, bytes) of each uploaded file, from Colab's ``files.upload()`` (name -> bytes) or an
    ipywidgets ``FileUpload.value`` (8.x: a tuple of dicts with ``name`` and ``content``; 7.x: name ->
    dict with ``content``)."""
    if isinstance(value, dict):
        return [(name, bytes(v["content"] if isinstance(v, dict) else v)) for name, v in value.items()]
    return [(v["name"], bytes(v["content"])) for v in value or ()]


class PrimerLoader:
    """``loader(name, data) -> Notes``: :func:`primer_from_bytes` for one model (what the notebook's
    upload calls): the upload's last ``seconds`` (None: all of it), at most its last ``n_notes``."""

    def __init__(self, vocab: Vocab, n_notes: int = MAX_PRIMER_NOTES, sustain: bool = True, seconds: float | None = None):
        self.vocab, self.n_notes, self.sustain = vocab, n_notes, sustain
        self.seconds = validate_primer_seconds(seconds)

    def __call__(self, name: str, data) -> Notes:
        return primer_from_bytes(name, data, self.vocab, self.n_notes, self.sustain, self.seconds)
