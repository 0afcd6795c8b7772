"""Build data/embedded/piano_corpus.npz, the default corpus, from the piano-midi.de collection.

Input: a folder holding ``metadata.csv`` (columns ``composer,title,year,midi,duration``) and the
MIDI files it names (the cleaned ``cheriell/ClassicalPianoMIDI-dataset`` copy of piano-midi.de,
by Bernd Krueger, CC BY-SA 3.0 DE; see data/embedded/PIANO_CORPUS.md):

    python scripts/build_piano_corpus.py [FOLDER]      # default ../shared/corpora/piano-midi

Every file is read with the package's own reader (``melody_utils.music.midi.midi_to_notes``) twice,
without and with the sustain pedal, so the file keeps both the key-press duration and the
pedal-extended one (``data.sustain`` picks between them). Per note: pitch (uint8), onset and
both durations in integer milliseconds (uint32) and velocity (uint8); per piece: composer,
title, work, file and split. The zip is written with fixed timestamps and in a fixed order, so
the same input gives the same bytes, into a temp file that is then renamed.

Split by work, never by file. Files are grouped into one work when any rule below joins them
(the groups are the connected pieces of these links; the composer is always part of the key):

1. **Catalogue number.** A title holding ``Opus_<n>``, ``KV_<n>``, ``D_<n>``, ``BWV_<n>`` or
   ``Hoboken_XVI_<n>`` (the first one, e.g. ``D_850`` before ``Opus_53``) belongs to that
   number's work: the movements of a sonata, the numbers of an opus (all of Chopin's Op. 28
   preludes, Tchaikovsky's Op. 37a Seasons) stay together.
2. **Title before a number.** Otherwise a title whose words after the first include a number is
   cut before that number: ``Grandes_Etudes_de_Paganini_3_La_campanella`` and
   ``..._Paganini_5`` are one work; ``19_Hungarian_Rhapsodies_2`` -> ``19_Hungarian_Rhapsodies``.
3. **Shared title head.** A title with neither gives its first two words, and files of one
   composer sharing them are one work (``Suite_bergamasque_Prelude`` / ``_Menuet``,
   ``Pictures_at_an_Exhibition_*``, ``Children's_Corner_*``); a title of two words or fewer is
   its own work (``For_Elise``).
4. **File name.** Files of one composer whose names agree once a trailing number is dropped
   (``muss_1`` .. ``muss_8``, ``bach_846``/``bach_847``) are one work; a name ending in an opus
   number (``chpn_op23``) keeps it, so different opera are not joined.
5. **Transcriptions.** A file whose name ends in another file's name after an underscore joins
   that file's work, whoever the composer: Godowsky's ``god_alb_esp2`` (on Albéniz's Tango,
   ``alb_esp2``) and ``god_chpn_op10_e01`` (on Chopin's Op. 10 No. 1) are the same music.

The split is a seeded search over random assignments of works to train/validation/test: among
the assignments whose note fractions are within :data:`TOLERANCE` of 80/10/10 %, the one with
the most composers in validation and test (then the smallest deviation) wins.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import time
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from melody_utils.data.sources import PIANO_PATH  # noqa: E402
from melody_utils.data.maestro import csv_rows  # noqa: E402
from melody_utils.files import atomic_write_bytes  # noqa: E402
from melody_utils.music.midi import midi_to_notes  # noqa: E402

DEFAULT_FOLDER = REPO_ROOT / ".." / "shared" / "corpora" / "piano-midi"
METADATA_COLUMNS = ("composer", "title", "midi")
FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}  # of notes
TOLERANCE = 0.01  # accepted deviation of each split's note fraction
N_TRIALS = 4000  # random assignments searched
SPLIT_SEED = 0
FORMAT = 1  # bump when the file's layout changes (melody_utils.data.sources reads it)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member timestamps: same input, same bytes
SOURCE_INFO = {
    "source": "piano-midi.de (http://www.piano-midi.de), via github.com/cheriell/ClassicalPianoMIDI-dataset",
    "author": "Bernd Krueger",
    "licence": "CC BY-SA 3.0 DE (https://creativecommons.org/licenses/by-sa/3.0/de/deed.en)",
}

CATALOGUE = re.compile(r"(?:^|_)(Opus_(?:posth_)?\d+[a-z]?|KV_\d+|D_\d+|BWV_\d+|Hoboken_XVI_\d+)(?=_|$)")
TRAILING_NUMBER = re.compile(r"[-_]?[a-z]?\d+$")
ENDS_IN_OPUS = re.compile(r"op(?:us)?\d+$")


def read_metadata(folder: Path) -> list[dict]:
    """Rows of ``folder/metadata.csv`` (composer, title, midi, ...), sorted by MIDI path."""
    path = folder / "metadata.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; pass the piano-midi folder (holding metadata.csv and midis/)")
    rows = csv_rows(path, METADATA_COLUMNS, "expected composer,title,year,midi,duration")
    return sorted(rows, key=lambda r: r["midi"])


def title_work(title: str) -> tuple[str, bool]:
    """(work key from the title, whether rules 1-2 found it); see the module docstring."""
    m = CATALOGUE.search(title)
    if m:
        return m.group(1), True
    words = title.split("_")
    for i, w in enumerate(words[1:], start=1):
        if w.isdigit():
            return "_".join(words[:i]), True
    return "_".join(words[:2]) if len(words) > 2 else title, False


def file_work(midi_path: str) -> str:
    """Rule 4: the file name without a trailing number (unless it is an opus number)."""
    stem = Path(midi_path).stem.lower()
    return stem if ENDS_IN_OPUS.search(stem) else TRAILING_NUMBER.sub("", stem)


def group_works(rows: list[dict]) -> list[str]:
    """One work name per row: rows joined by any rule share the name of their first row's work."""
    parent = list(range(len(rows)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_of: dict[tuple, int] = {}
    for i, r in enumerate(rows):
        for key in (("title",) + (r["composer"], title_work(r["title"])[0]), ("file", r["composer"], file_work(r["midi"]))):
            j = first_of.setdefault(key, i)
            parent[find(i)] = find(j)
    stems = [Path(r["midi"]).stem.lower() for r in rows]
    for i, stem in enumerate(stems):
        for j, other in enumerate(stems):
            if i != j and stem.endswith("_" + other):
                parent[find(i)] = find(j)
    roots = [find(i) for i in range(len(rows))]
    sizes = np.bincount(roots, minlength=len(rows))
    names = []
    for root in roots:  # a lone file is named by its whole title, a group by its shared key
        title = rows[root]["title"] if sizes[root] == 1 else title_work(rows[root]["title"])[0]
        names.append(f"{rows[root]['composer']}: {title.replace('_', ' ')}")
    return names


def split_works(work_notes: dict[str, int], work_composer: dict[str, str], seed: int = SPLIT_SEED,
                fractions: dict[str, float] = FRACTIONS, trials: int = N_TRIALS, tolerance: float = TOLERANCE) -> dict[str, str]:
    """Work -> split, about ``fractions`` of the notes each, composers spread (module docstring)."""
    works = sorted(work_notes)
    names = list(fractions)
    notes = np.array([work_notes[w] for w in works], dtype=np.float64)
    composer_ids = np.unique([work_composer[w] for w in works], return_inverse=True)[1]
    rng = np.random.default_rng(seed)
    cuts = np.cumsum([fractions[s] for s in names])[:-1]
    assign = np.searchsorted(cuts, rng.random((trials, len(works))), side="right")  # (trials, W) split ids
    share = np.stack([(notes * (assign == k)).sum(1) for k in range(len(names))], 1) / notes.sum()  # (trials, S)
    deviation = np.abs(share - np.array([fractions[s] for s in names])).max(1)  # (trials,)
    held_out = [k for k, s in enumerate(names) if s != "train"]
    spread = np.array([sum(len(np.unique(composer_ids[a == k])) for k in held_out) for a in assign])
    ok = deviation <= tolerance
    order = np.lexsort((deviation, -spread, ~ok))  # within tolerance first, then spread, then deviation
    best = assign[order[0]]
    return {w: names[k] for w, k in zip(works, best)}


def read_piece(path: Path) -> dict[str, np.ndarray]:
    """One file's notes: pitch, onset, key-press and pedal-extended duration (ms), velocity."""
    keys = midi_to_notes(path, sustain=False)
    held = midi_to_notes(path, sustain=True)
    if not (np.array_equal(keys.pitch, held.pitch) and np.array_equal(keys.start, held.start)):
        raise ValueError(f"{path}: the reader gave different notes with and without the pedal")
    ms = lambda x: np.round(np.asarray(x) * 1000).astype(np.uint32)  # noqa: E731
    return {"pitch": keys.pitch.astype(np.uint8), "onset_ms": ms(keys.start), "duration_ms": ms(keys.duration),
            "sustained_ms": ms(held.duration), "velocity": keys.velocity.astype(np.uint8)}


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """An ``np.load``-able .npz with fixed timestamps and member order, written atomically."""

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in sorted(arrays):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.asarray(arrays[name]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue(), compresslevel=9)

    return atomic_write_bytes(path, write)


def build(folder: Path, out: Path, seed: int = SPLIT_SEED, progress: bool = True) -> dict:
    """Read ``folder``, write ``out``; returns per-split counts (notes, pieces, works, composers)."""
    from tqdm.auto import tqdm

    rows = read_metadata(folder)
    works = group_works(rows)
    pieces = [read_piece(folder / r["midi"]) for r in tqdm(rows, desc="reading MIDI", unit="file", disable=not progress)]
    work_notes, work_composer = defaultdict(int), {}
    for r, w, p in zip(rows, works, pieces):
        work_notes[w] += len(p["pitch"])
        work_composer[w] = r["composer"]
    split_of = split_works(dict(work_notes), work_composer, seed)
    splits = [split_of[w] for w in works]
    lengths = [len(p["pitch"]) for p in pieces]
    arrays = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
    arrays.update(
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        composer=np.array([r["composer"] for r in rows]),
        title=np.array([r["title"].replace("_", " ") for r in rows]),
        work=np.array(works),
        file=np.array([r["midi"] for r in rows]),
        split=np.array(splits),
        info=np.array(json.dumps({**SOURCE_INFO, "format": FORMAT, "split_seed": seed}, sort_keys=True)),
    )
    write_npz(out, arrays)
    stats = {}
    for s in FRACTIONS:
        idx = [i for i, x in enumerate(splits) if x == s]
        stats[s] = {"notes": sum(lengths[i] for i in idx), "pieces": len(idx), "works": len({works[i] for i in idx}),
                    "composers": len({rows[i]["composer"] for i in idx})}
    return stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", nargs="?", default=str(DEFAULT_FOLDER), help="piano-midi folder holding metadata.csv")
    ap.add_argument("--out", default=str(PIANO_PATH))
    ap.add_argument("--seed", type=int, default=SPLIT_SEED, help="seed of the split search")
    args = ap.parse_args(argv)
    t0 = time.time()
    try:
        stats = build(Path(args.folder), Path(args.out), args.seed)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    total = sum(s["notes"] for s in stats.values())
    print(f"{out} ({out.stat().st_size / 1e6:.2f} MB) in {time.time() - t0:.0f} s")
    for s, d in stats.items():
        print(f"  {s:<10} {d['notes']:>8,} notes ({d['notes'] / total:.1%}), {d['pieces']:>3} pieces, "
              f"{d['works']:>3} works, {d['composers']:>2} composers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
