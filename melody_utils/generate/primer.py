"""Your own MIDI as a primer: a file path (``generate --primer song.mid``) or the bytes of an upload
(notebook 04: Colab's ``files.upload()`` or an ipywidgets ``FileUpload``).

A primer is the first ``n_notes`` notes of the file that the model's vocabulary can play (notes
outside its piano range are dropped). Anything else (a file that is not MIDI, empty, corrupt, or
with no playable note) raises ValueError in one line naming the file and what is allowed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..music.midi import MAX_MIDI_BYTES, MidiError, Notes, midi_to_notes
from ..music.tokens import Vocab

MIDI_SUFFIXES = (".mid", ".midi")  # what an upload may be called
ALLOWED = "a standard MIDI file (.mid or .midi) with piano notes"


def primer_from_file(path, vocab: Vocab, n_notes: int, sustain: bool = True, name: str | None = None) -> Notes:
    """The first ``n_notes`` notes of a MIDI file that ``vocab`` can play.

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
    return notes[:n_notes]


def _check_size(name: str, size: int) -> None:
    if size > MAX_MIDI_BYTES:
        raise ValueError(f"{name} is {size / 1e6:,.0f} MB, more than the {MAX_MIDI_BYTES >> 20} MB a MIDI file may have "
                         f"here; use {ALLOWED}")


def primer_from_bytes(name: str, data, vocab: Vocab, n_notes: int, sustain: bool = True) -> Notes:
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
        return primer_from_file(tmp, vocab, n_notes, sustain, name=name)
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
    upload calls)."""

    def __init__(self, vocab: Vocab, n_notes: int, sustain: bool = True):
        self.vocab, self.n_notes, self.sustain = vocab, n_notes, sustain

    def __call__(self, name: str, data) -> Notes:
        return primer_from_bytes(name, data, self.vocab, self.n_notes, self.sustain)
