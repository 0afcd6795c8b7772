"""Repeats in real pieces: the exact 8-note pattern statistic and the pitch-only one, on both corpora.

For ``--pieces`` pieces of each corpus (a seeded choice), one ``--n-notes`` excerpt each (as
``evaluate`` compares generated pieces with): the share of 8-note patterns heard earlier in the
excerpt, exact (pitch, step and duration to the millisecond: ``stats.event_ids``) and by pitch
only, the notes of a chord taken lowest first for several chord thresholds (onsets closer than it
form one chord; ``stats.pitch_pattern_ids``; 0 = onset order alone). A performance never repeats
its timing exactly; the pitch-only statistic sees its repeats. Reads MIDI, no training, seconds.

    python benchmarks/bench_repeats.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.common import BOTH_CORPORA, corpus_names, corpus_source, machine_header  # noqa: E402
from melody_utils.data.sources import folder_corpus, load_embedded  # noqa: E402
from melody_utils.music.midi import midi_to_notes  # noqa: E402
from melody_utils.music.stats import PATTERN_CHORD_S, event_ids, excerpts, pitch_pattern_ids, repeated_ngram_share  # noqa: E402

THRESHOLDS = (0.0, 0.015, 0.03, PATTERN_CHORD_S, 0.08)  # seconds


def pieces_of(source: str, n: int, seed: int) -> list:
    """``n`` pieces of a corpus, chosen with ``seed``."""
    rng = np.random.default_rng(seed)
    if source in ("piano", "chorales"):
        notes, _ = load_embedded(source)
        return [notes[i] for i in rng.choice(len(notes), min(n, len(notes)), replace=False)]
    files = folder_corpus(source).files
    return [midi_to_notes(files[i]) for i in rng.choice(len(files), min(n, len(files)), replace=False)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", default=BOTH_CORPORA)
    ap.add_argument("--pieces", type=int, default=40)
    ap.add_argument("--n-notes", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(machine_header("bench_repeats", argv))
    print("| corpus | exact | " + " | ".join(f"pitch, chords {1000 * t:g} ms" for t in THRESHOLDS) + " |")
    print("|---|---:|" + "---:|" * len(THRESHOLDS))
    for name in corpus_names(args.corpora):
        source, note = corpus_source(name)
        if source is None:
            print(f"| {note} |")
            continue
        ex = excerpts(pieces_of(source, args.pieces, args.seed), args.n_notes, seed=args.seed)
        exact = np.mean([repeated_ngram_share(event_ids(e)) for e in ex])
        pitch = [np.mean([repeated_ngram_share(pitch_pattern_ids(e, t)) for e in ex]) for t in THRESHOLDS]
        print(f"| {name} ({len(ex)} excerpts of {args.n_notes} notes) | {exact:.3f} | " + " | ".join(f"{p:.3f}" for p in pitch) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
