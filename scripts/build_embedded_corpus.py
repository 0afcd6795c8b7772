"""Rebuild data/embedded/classical_corpus.npz, the chorale corpus (source "chorales"), from music21's corpus.

The chorale corpus is real classical music that needs no network: the 371 Bach chorales
(four voices, playable on a piano) and the solo keyboard works that music21 ships (Bach,
Mozart, Chopin, Joplin, Clara Schumann, C.P.E. Bach). music21 (BSD-3) is only needed to
*rebuild* the file, not to use it:

    pip install music21 && python scripts/build_embedded_corpus.py

Each score is rendered to MIDI by music21 (480 ticks per quarter: music21's default 10,080
makes pretty_midi reject long pieces as "likely corrupt"), with repeats expanded (or removed
when a score's repeats do not expand), then read back with melody_utils.music.midi, so the notes
are exactly what the MIDI pipeline would produce. A per-file timeout skips pathological
scores.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from melody_utils.data.sources import CHORALES_PATH  # noqa: E402
from melody_utils.files import atomic_write_bytes  # noqa: E402
from melody_utils.music.midi import midi_to_notes  # noqa: E402

KEYBOARD_WORKS = [  # (music21 corpus path, composer, title)
    ("bach/bwv846", "Johann Sebastian Bach", "Prelude in C major, BWV 846"),
    ("mozart/k545/movement1_exposition", "Wolfgang Amadeus Mozart", "Sonata K. 545, I (exposition)"),
    ("chopin/mazurka06-2", "Frederic Chopin", "Mazurka Op. 6 No. 2"),
    ("joplin/maple_leaf_rag", "Scott Joplin", "Maple Leaf Rag"),
    ("schumann_clara/polonaise_op1n1", "Clara Schumann", "Polonaise Op. 1 No. 1"),
    ("schumann_clara/polonaise_op1n2", "Clara Schumann", "Polonaise Op. 1 No. 2"),
    ("schumann_clara/polonaise_op1n3", "Clara Schumann", "Polonaise Op. 1 No. 3"),
    ("schumann_clara/polonaise_op1n4", "Clara Schumann", "Polonaise Op. 1 No. 4"),
    ("cpebach/h186", "Carl Philipp Emanuel Bach", "Keyboard piece H. 186"),
]
TIMEOUT_S = 120  # per score


def render(job: tuple[str, str, str]) -> tuple[str, dict | None, str]:
    """Parse one music21 score, write MIDI, read the notes back. Returns (source, arrays|None, error)."""
    source, composer, title = job
    import music21

    music21.defaults.ticksPerQuarter = 480
    try:
        score = music21.corpus.parse(source)
        try:
            score = score.expandRepeats()
        except Exception:  # unbalanced repeat marks: play the score as written, once
            for rep in list(score.recurse().getElementsByClass(music21.bar.Repeat)):
                rep.activeSite.remove(rep)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "piece.mid"
            score.write("midi", fp=str(path))
            notes = midi_to_notes(path, sustain=False, backend="pretty_midi")
    except Exception as exc:
        return source, None, f"{type(exc).__name__}: {exc}"
    arrays = {"pitch": notes.pitch, "start": notes.start, "duration": notes.duration, "velocity": notes.velocity}
    return source, {"arrays": arrays, "composer": composer, "title": title}, ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(CHORALES_PATH))
    ap.add_argument("--max-chorales", type=int, default=0, help="0 = all 371")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)

    import music21
    from tqdm import tqdm

    # The iterator lists a few chorales twice (two catalogue numbers, one score): keep one copy,
    # or identical music would land in both the training and the test split.
    chorales = sorted({str(p) for p in music21.corpus.chorales.Iterator(returnType="filename")})
    if args.max_chorales:
        chorales = chorales[: args.max_chorales]
    jobs = [(c, "Johann Sebastian Bach", f"Chorale {c.split('/')[-1].upper()}") for c in chorales]
    jobs += KEYBOARD_WORKS
    t0 = time.time()
    results, failed = {}, []
    with mp.Pool(args.workers) as pool:
        pending = [(job, pool.apply_async(render, (job,))) for job in jobs]
        for job, res in tqdm(pending, desc="rendering scores"):
            try:
                source, out, err = res.get(timeout=TIMEOUT_S)
            except mp.TimeoutError:
                failed.append((job[0], f"timeout after {TIMEOUT_S} s"))
                continue
            if out is None:
                failed.append((source, err))
            else:
                results[source] = out
    names = [j[0] for j in jobs if j[0] in results]
    arrays = {k: np.concatenate([results[n]["arrays"][k] for n in names]) for k in ("pitch", "start", "duration", "velocity")}
    lengths = [len(results[n]["arrays"]["pitch"]) for n in names]
    meta = [{"name": n.replace("/", "_"), "source": f"music21 corpus: {n}", "composer": results[n]["composer"], "title": results[n]["title"]} for n in names]
    out = Path(args.out)

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(
                f,
                pitch=arrays["pitch"].astype(np.uint8),
                start=arrays["start"].astype(np.float32),
                duration=arrays["duration"].astype(np.float32),
                velocity=arrays["velocity"].astype(np.uint8),
                offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                meta=np.array(json.dumps(meta)),
            )

    atomic_write_bytes(out, write)
    print(f"{len(names)} pieces, {sum(lengths):,} notes -> {out} ({out.stat().st_size / 1e6:.2f} MB) in {time.time() - t0:.0f} s")
    for source, err in failed:
        print(f"skipped {source}: {err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
