"""The command line's primer: ``--primer test|none|FILE`` with ``--primer-notes`` and ``--primer-seconds``.

A test piece primes with its first notes (a held-out piece's opening); a MIDI file with its end, so
the music continues after it (:mod:`melody_utils.generate.primer`).
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..data import corpus
from ..generate.primer import MAX_PRIMER_NOTES, primer_from_file
from ..generate.sample import primer_length
from ..music.midi import MAX_MIDI_BYTES

PRIMER_CHOICES = (f"a .mid/.midi file (at most {MAX_MIDI_BYTES >> 20} MB), 'test' (the start of a held-out test piece) "
                  f"or 'none' (one default note)")


def load_primer(spec: str, train_cfg: Config, vocab, n_notes: int, args, cache=None):
    """--primer value -> (Notes or None, what it is in words): a test piece's first ``n_notes`` notes,
    or a file's last notes (its last --primer-seconds, at most ``n_notes``; see generate.primer)."""
    spec = (spec or "test").strip()
    seconds = getattr(args, "primer_seconds", None)
    if seconds is not None and spec.lower() in ("none", "test"):
        raise ValueError(f"--primer-seconds takes the last seconds of a --primer MIDI file, not of --primer {spec}; "
                         f"pass a file or drop --primer-seconds")
    if spec.lower() == "none":
        return None, "none (one default note)"
    if spec.lower() == "test":
        if cache is None:
            try:
                cache = corpus.prepare(train_cfg.data, cache_dir=args.cache_dir, progress=not args.quiet, vocab=vocab)
            except FileNotFoundError as exc:
                raise FileNotFoundError(f"--primer test needs the corpus the model was trained on: {exc}; "
                                        f"or pass --primer none or --primer a .mid file") from None
        try:
            i = cache.held_out_piece()
        except ValueError as exc:
            raise ValueError(f"--primer test: {exc}") from None
        return cache.notes(i)[:n_notes], f"{cache.pieces[i]['name']} ({cache.pieces[i]['split']} split)"
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"--primer {spec}: file not found; pass {PRIMER_CHOICES}")
    try:
        notes = primer_from_file(path, vocab, n_notes, train_cfg.data.sustain, seconds=seconds)
    except ValueError as exc:
        raise ValueError(f"--primer: {exc}") from None
    span = f"its last {seconds:g} s" if seconds is not None else "the whole file"
    return notes, f"{path} ({span}: {len(notes)} notes, {notes.seconds():.1f} s; the music continues after it)"


def primer_notes(model, cfg: Config, args) -> int:
    """Notes a primer may hold: --primer-notes, else the preset's for a test piece and MAX_PRIMER_NOTES for a
    file (a window model's full window at least)."""
    if args.primer_notes is None and (args.primer or "test").strip().lower() not in ("test", "none"):
        return primer_length(model, MAX_PRIMER_NOTES)
    return primer_length(model, cfg.sample.primer_notes)
