"""Played like a pianist: generated notes decoded at the bin centres vs inside their bins.

Generates ``--pieces`` pieces of ``--n-notes`` notes with a checkpoint (default: the shipped model;
its sampling settings and piece memory, each piece after the start of a held-out test piece), and
decodes the same tokens twice: at the bin centres (``vocab.on_grid()``, ``generate --bin-centres``)
and inside the bins (the default, ``vocab.spread``). Prints per piece (median over pieces) the
distinct velocities and distinct gaps between onsets (to 1 ms), beside the held-out pieces as
the corpus plays them, and the overlap of 17 statistics with those held-out pieces (mean, and the
lowest features): the grid's, the in-bin decoding's, and (what ``evaluate`` reports) the grid's
against the held-out pieces decoded at the centres.

    python benchmarks/bench_decode.py                       # the shipped model, 32 pieces of 400 notes
    python benchmarks/bench_decode.py --pieces 4 --n-notes 64 --checkpoint outputs/ckpt_best.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.common import machine_header  # noqa: E402
from melody_utils.data import corpus  # noqa: E402
from melody_utils.generate.sample import generate, primer_length  # noqa: E402
from melody_utils.model.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint  # noqa: E402
from melody_utils.music.stats import compare_sets, excerpts  # noqa: E402


def distinct(notes) -> tuple[int, int]:
    """(distinct velocities, distinct gaps between successive onsets to 1 ms) of one piece."""
    onsets = np.unique(np.round(notes.start, 3))
    return len(np.unique(notes.velocity)), len(np.unique(np.round(np.diff(onsets), 3)))


def played_held_out(cfg, vocab, cache) -> list:
    """The held-out (test) pieces of ``cache`` as the corpus plays them: the embedded piano corpus's notes
    (pitches outside the vocabulary dropped); None for another corpus (its MIDI is not at hand here)."""
    if corpus.embedded_name(corpus.resolve_source(cfg.data)) != "piano":
        return None
    notes, meta = corpus.load_embedded("piano", sustain=cfg.data.sustain)
    by_name = {m["name"]: n for n, m in zip(notes, meta)}
    return [by_name[cache.pieces[i]["name"]][vocab.in_range(by_name[cache.pieces[i]["name"]])]
            for i in cache.piece_indices("test")]


def lowest(cmp: dict, n: int = 3) -> str:
    worst = sorted(cmp["features"].items(), key=lambda kv: kv[1]["oa"])[:n]
    return ", ".join(f"{k} {v['oa']:.2f}" for k, v in worst)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    ap.add_argument("--pieces", type=int, default=32)
    ap.add_argument("--n-notes", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args(argv)
    print(machine_header("bench_decode", argv))
    model, vocab, cfg, _ = load_checkpoint(args.checkpoint)
    cache = corpus.prepare(cfg.data, cache_dir=args.cache_dir, progress=False, vocab=vocab)
    held = cache.piece_indices("test")
    n_primer, sc = primer_length(model, cfg.sample.primer_notes), cfg.sample
    tokens = [generate(model, vocab, args.n_notes, cache.piece_tokens(held[i % len(held)])[:n_primer],
                       temperature=sc.temperature, top_k=sc.top_k, top_p=sc.top_p, seed=args.seed + i,
                       memory=sc.memory)[0] for i in range(args.pieces)]
    grid = [vocab.decode(t) for t in tokens]
    in_bins = [vocab.decode(t, seed=args.seed + i) for i, t in enumerate(tokens)]
    grid_ref = excerpts([cache.notes(i) for i in held], args.n_notes, seed=args.seed)
    played = played_held_out(cfg, vocab, cache)
    played_ref = excerpts(played, args.n_notes, seed=args.seed) if played else None
    print(f"\n{args.checkpoint}: {args.pieces} pieces of {args.n_notes} notes (temperature {sc.temperature}, "
          f"top-p {sc.top_p}, memory {sc.memory}); vocabulary spread: {'yes' if vocab.spread else 'none (centres)'}\n")
    print("| notes | distinct velocities (median) | distinct onset gaps (median) | mean OA vs held-out as played | lowest |")
    print("|---|---:|---:|---:|---|")
    rows = [("generated, bin centres (before)", grid), ("generated, inside the bins", in_bins)]
    if played_ref:
        rows.append(("held-out, as played (the corpus)", played_ref))
    for name, pieces in rows:
        v, g = np.median([distinct(p) for p in pieces], axis=0)
        cmp = compare_sets(pieces, played_ref, seed=args.seed) if played_ref and pieces is not played_ref else None
        oa = f"{cmp['mean_oa']:.3f}" if cmp else "–"
        print(f"| {name} | {v:.0f} | {g:.0f} | {oa} | {lowest(cmp) if cmp else ''} |")
    cmp = compare_sets(grid, grid_ref, seed=args.seed)
    print(f"\nwhat `evaluate` reports (generated and held-out both at the bin centres): mean OA {cmp['mean_oa']:.3f} "
          f"(lowest: {lowest(cmp)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
