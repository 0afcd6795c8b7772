"""Where the pieces come from: the embedded corpora, MAESTRO, or any folder of MIDI files.

Named sources (``data.source``):

- ``"piano"`` (alias ``"embedded"``): ``data/embedded/piano_corpus.npz``, 332 solo-piano works
  from piano-midi.de by Bernd Krueger (CC BY-SA 3.0 DE), with velocities and both the key-press
  and the pedal-extended durations, split by work (``scripts/build_piano_corpus.py``).
- ``"chorales"``: ``data/embedded/classical_corpus.npz``, Bach chorales and a few keyboard
  scores rendered by music21 (``scripts/build_embedded_corpus.py``): no dynamics.
- ``"maestro"``: MAESTRO under ``data/``; and any folder holding MAESTRO's CSV, wherever it is
  (e.g. ``/content/drive/MyDrive/maestro-v3.0.0``), is read as MAESTRO.
- any other folder of ``.mid``/``.midi`` files. Its split comes from, in this order:
  a ``metadata.csv`` beside the files with a split column (MAESTRO's columns
  ``canonical_composer,canonical_title,split,...,midi_filename``, or a plain
  ``path,split[,composer,title]``); a ``metadata.csv`` with a ``work`` column instead
  (``path,work[,composer,title]``: several performances or movements of one work): a seeded
  random split by work, so a work's files stay together; ``train/``, ``validation/`` and
  ``test/`` subfolders; else a seeded random split by file, with one warning that performances
  or movements of one piece may then leak between the splits.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import SHIPPED_DATA_DIR, SPLITS
from .maestro import MAESTRO_LICENCE, find_maestro, midi_files_with_split
from ..music.midi import Notes

PIANO_PATH = SHIPPED_DATA_DIR / "embedded" / "piano_corpus.npz"  # ships with the repository, wherever the data folder is
CHORALES_PATH = SHIPPED_DATA_DIR / "embedded" / "classical_corpus.npz"
EMBEDDED = {"piano": PIANO_PATH, "chorales": CHORALES_PATH}  # name -> file
ALIASES = {"embedded": "piano"}  # "embedded" means the default embedded corpus
MIDI_SUFFIXES = (".mid", ".midi")
FOLDER_METADATA = "metadata.csv"
PATH_COLUMNS = ("midi_filename", "path", "midi")  # MAESTRO's, the plain one, piano-midi's
LICENCES = {  # what a model trained on a named source may be shared under
    "piano": "CC BY-SA 3.0 DE (piano-midi.de by Bernd Krueger: name them, share alike)",
    "chorales": "the works are in the public domain (music21's corpus, BSD-3-Clause)",
    "maestro": MAESTRO_LICENCE,
}
LEAK_HINT = ("performances or movements of one piece may leak between the splits; to avoid it, put a "
             "metadata.csv (path,split[,composer,title]) or train/, validation/, test/ subfolders beside the files")


def source_licence(source: str) -> str:
    """The licence of a resolved source (:data:`LICENCES`; a MAESTRO folder anywhere is MAESTRO's;
    "" for another folder: its licence is its owner's to name)."""
    name = embedded_name(source) or source
    if name in LICENCES:
        return LICENCES[name]
    return MAESTRO_LICENCE if find_maestro(source) is not None else ""


def embedded_name(source: str) -> str | None:
    """The embedded corpus ``source`` names ("piano", "chorales"; "embedded" -> "piano"), else None."""
    name = ALIASES.get(source, source)
    return name if name in EMBEDDED else None


def load_embedded(name: str = "piano", sustain: bool = True) -> tuple[list[Notes], list[dict]]:
    """An embedded corpus as (notes per piece, metadata per piece).

    ``name``: "piano" (or "embedded"), "chorales", or the path of such a file. ``sustain``: the
    piano corpus's pedal-extended durations (True) or its key-press durations (False).
    Metadata dicts carry name, composer, title, path and, where the file holds one, work and split.
    """
    path = EMBEDDED.get(embedded_name(str(name)) or "", Path(name))
    if not path.is_file():
        script = "build_piano_corpus.py" if path.name == PIANO_PATH.name else "build_embedded_corpus.py"
        raise FileNotFoundError(f"embedded corpus missing: {path}; rebuild it with `python scripts/{script}`")
    with np.load(path, allow_pickle=False) as z:
        if "meta" in z.files:  # the chorales' layout: float seconds, metadata as JSON
            meta = json.loads(str(z["meta"]))
            off = z["offsets"]
            cols = [z[k] for k in ("pitch", "start", "duration", "velocity")]
            return [Notes(*(c[a:b] for c in cols)) for a, b in zip(off[:-1], off[1:])], meta
        off = z["offsets"]
        dur = z["sustained_ms" if sustain else "duration_ms"]
        cols = [z["pitch"], z["onset_ms"] / 1000.0, dur / 1000.0, z["velocity"]]
        per_piece = {k: z[k].tolist() for k in ("composer", "title", "work", "file", "split")}
    notes = [Notes(*(c[a:b] for c in cols)) for a, b in zip(off[:-1], off[1:])]
    meta = [{"name": Path(f).stem, "path": f, "composer": c, "title": t, "work": w, "split": s}
            for c, t, w, f, s in zip(*(per_piece[k] for k in ("composer", "title", "work", "file", "split")))]
    return notes, meta


def list_midi_files(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"MIDI folder not found: {folder} (check the path, or use source='piano')")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())


@dataclass
class FolderCorpus:
    """The files of a folder source, with whatever split and metadata the folder gives."""

    files: list  # sorted MIDI paths
    split_of: dict = field(default_factory=dict)  # str(path) -> split; empty: no split given
    meta_of: dict = field(default_factory=dict)  # str(path) -> {"composer", "title"}
    how: str = "random"  # "maestro", "metadata.csv", "work" (split by its work column), "subfolders" or "random"


def read_folder_metadata(folder: Path) -> tuple[dict, dict]:
    """``folder/metadata.csv`` -> (split_of, meta_of), both keyed by str(MIDI path).

    Columns: a path (``midi_filename``, ``path`` or ``midi``, relative to the folder), an
    optional ``split`` (train/validation/test), optional composer (``canonical_composer`` or
    ``composer``), title (``canonical_title`` or ``title``) and ``work`` (files of one work share it).
    """
    csv_path = folder / FOLDER_METADATA
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        path_col = next((c for c in PATH_COLUMNS if c in cols), None)
        if path_col is None:
            raise ValueError(f"{csv_path} has no path column (one of {PATH_COLUMNS}); "
                             "give it a header like path,split,composer,title")
        composer_col = next((c for c in ("canonical_composer", "composer") if c in cols), None)
        title_col = next((c for c in ("canonical_title", "title") if c in cols), None)
        split_of, meta_of = {}, {}
        for line, row in enumerate(reader, start=2):
            key = str(folder / row[path_col])
            if "split" in cols:
                if row["split"] not in SPLITS:
                    raise ValueError(f"{csv_path} line {line}: split {row['split']!r} is not one of {SPLITS}")
                split_of[key] = row["split"]
            meta_of[key] = {"composer": row[composer_col] if composer_col else "",
                            "title": row[title_col] if title_col else Path(row[path_col]).stem,
                            **({"work": row["work"]} if row.get("work") else {})}
    return split_of, meta_of


def folder_corpus(folder: str | os.PathLike) -> FolderCorpus:
    """A folder source's files and split (module docstring gives the order of the rules)."""
    folder = Path(folder)
    root = find_maestro(folder) if folder.is_dir() else None
    if root is not None:
        rows = midi_files_with_split(root)
        return FolderCorpus([Path(r[0]) for r in rows], {str(r[0]): r[1] for r in rows},
                            {str(r[0]): {"composer": r[2], "title": r[3]} for r in rows}, "maestro")
    files = list_midi_files(folder)
    if (folder / FOLDER_METADATA).is_file():
        split_of, meta_of = read_folder_metadata(folder)
        if split_of:
            listed = [p for p in files if str(p) in split_of]
            if not listed:
                raise ValueError(f"{folder / FOLDER_METADATA} names none of the MIDI files in {folder}; "
                                 "its paths must be relative to that folder")
            return FolderCorpus(listed, split_of, meta_of, FOLDER_METADATA)
        listed = [p for p in files if "work" in meta_of.get(str(p), {})]
        if listed:
            return FolderCorpus(listed, {}, meta_of, "work")
    else:
        meta_of = {}
    tops = {p: p.relative_to(folder).parts[0] for p in files}
    if any(t in SPLITS for t in tops.values()) and all(t in SPLITS for t in tops.values()):
        return FolderCorpus(files, {str(p): t for p, t in tops.items()}, meta_of, "subfolders")
    return FolderCorpus(files, {}, meta_of, "random")


def warn_random_split(source: str, n_files: int) -> None:
    """The one line said when a folder's files are split at random."""
    print(f"warning: {n_files} files in {source} split at random by file: {LEAK_HINT}", file=sys.stderr)
