"""What a command writes, checked before it does any work: output files that may be replaced, and
the settings the command line bounds.

An output flag (``--output``, ``--wav``, ``--report``) may replace an earlier output of its own
kind (a MIDI file, a WAV file, an evaluation report); a file of any other kind (notes, a script,
someone's data) is refused in one line that names it and ``--force``.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..files import refuse_foreign_file
from ..generate.takes import take_paths
from ..music.midi import MIDI_MAGIC
from ..config import MAX_N_NOTES

WAV_MAGIC = (b"RIFF",)
# How the files evaluate.report.write_report writes begin: the report, its JSON and its figures.
REPORT_MAGIC = {".md": (b"# Evaluation of",), ".json": (b"{",), ".png": (b"\x89PNG",)}
REPORT_FIGURES = ("distributions", "sweep")


def force_arg(p) -> None:
    p.add_argument("--force", action="store_true", help="replace an existing output file even when it is not an "
                   "earlier output of its kind (MIDI, WAV, report)")


def refuse_foreign_midi(path: Path, args) -> None:
    refuse_foreign_file(path, MIDI_MAGIC, "MIDI file", "--output", getattr(args, "force", False))


def refuse_foreign_wav(path: Path, args) -> None:
    refuse_foreign_file(path, WAV_MAGIC, "WAV file", "--wav", getattr(args, "force", False))


def wav_path(args) -> Path | None:
    """--wav, checked before any work is done: not a folder, not a file of another kind (without --force)."""
    if not getattr(args, "wav", None):
        return None
    path = Path(args.wav).expanduser()
    if path.is_dir():
        raise ValueError(f"--wav {path} is a folder; give a file name, e.g. {path / 'piece.wav'}")
    refuse_foreign_wav(path, args)
    return path


def take_outputs(path: Path, args) -> list[Path]:
    """The MIDI files of --num-outputs takes (``path`` itself for one), each checked like --output."""
    paths = take_paths(path, getattr(args, "num_outputs", 1))
    for take in paths:
        refuse_foreign_midi(take, args)
    return paths


def wav_paths(args) -> list[Path]:
    """--wav numbered like the takes, each checked (none without --wav)."""
    wav = wav_path(args)
    paths = take_paths(wav, getattr(args, "num_outputs", 1)) if wav is not None else []
    for path in paths:
        refuse_foreign_wav(path, args)
    return paths


def report_path(args) -> Path | None:
    """--report (``.md`` added without a suffix), checked before the evaluation: neither it nor the
    JSON and figures written beside it may replace a file of another kind (without --force)."""
    if not args.report:
        return None
    path = Path(args.report).expanduser()
    path = path if path.suffix else path.with_suffix(".md")
    if path.is_dir():
        raise ValueError(f"--report {path} is a folder; give a file name, e.g. {path / 'evaluation.md'}")
    beside = [path, path.with_suffix(".json"), *(path.with_name(f"{path.stem}_{n}.png") for n in REPORT_FIGURES)]
    for p in beside:
        kind = REPORT_MAGIC.get(p.suffix, REPORT_MAGIC[".md"])
        refuse_foreign_file(p, kind, f"{p.suffix[1:]} file of an evaluation report", "--report", args.force)
    return path


def check_settings(cfg: Config) -> None:
    """What the command line bounds beyond the config's own checks: the length of a generated piece."""
    if cfg.sample.n_notes > MAX_N_NOTES:
        raise ValueError(f"sample.n_notes={cfg.sample.n_notes:,} is more than the {MAX_N_NOTES:,} notes one piece "
                         f"may have; lower it (--n-notes)")
