"""Composer conditioning, measured: does naming the composer help, and does it move the music?

Two markdown tables:

1. Held-out nats/note (whole pieces read from their start, ``likelihood.piece_nll``) with each
   piece's true composer vs with "any" (id 0), on the held-out pieces whose composer the model
   knows. Lower is better; the difference is what the composer tells the model.
2. For each composer with at least two held-out pieces: pieces generated for that composer
   (primer: one default note, so only the composer differs) compared with the held-out
   excerpts of every such composer by ``stats.compare_sets``'s mean overlap area over the
   musical statistics (1 = same distributions). "own" is the overlap with that composer's
   pieces, "others" the mean over the other composers', "rank" the place of its own composer
   among all (1 = the closest); pieces generated for "any" give the baseline.

    python benchmarks/bench_composer.py --checkpoint data/pretrained/piano_lstm.pt
    python benchmarks/bench_composer.py --steps 400     # trains a tiny model first, at a fixed step count
    python benchmarks/bench_composer.py --tiny          # seconds: a smoke test

Fixed step counts, not seconds: the figures do not depend on how busy the machine is.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.common import machine_header  # noqa: E402
from melody_utils.model.checkpoint import CHECKPOINT_LAST, load_checkpoint  # noqa: E402
from melody_utils.data.composers import ANY, piece_composer_ids  # noqa: E402
from melody_utils.config import get_config  # noqa: E402
from melody_utils.data.corpus import prepare  # noqa: E402
from melody_utils.evaluate.likelihood import piece_nll  # noqa: E402
from melody_utils.generate.sample import generate  # noqa: E402
from melody_utils.music.stats import compare_sets, excerpts, piece_stats  # noqa: E402
from melody_utils.train.loop import train  # noqa: E402

HELD_OUT = ("validation", "test")


def _table(title: str, header: tuple, rows: list) -> str:
    lines = ["", f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def nats_table(model, cache, device: str = "cpu") -> str:
    rows = []
    for split in HELD_OUT:
        idx = cache.piece_indices(split)
        ids = piece_composer_ids([cache.pieces[i] for i in idx], model.composer_names)
        known = idx[ids > 0]
        if not len(known):
            continue
        pieces = [cache.piece_tokens(i) for i in known]
        true = piece_nll(model, pieces, device, composers=ids[ids > 0])
        anyc = piece_nll(model, pieces, device)
        t, a = true["nats"]["total"], anyc["nats"]["total"]
        rows.append((split, len(known), f"{true['n_notes']:,}", f"{t:.3f}", f"{a:.3f}", f"{a - t:+.3f}"))
    return _table("Held-out nats/note: true composer vs any",
                  ("split", "pieces (known composer)", "notes", "true composer", "any", "any - true"), rows)


def closeness_table(model, vocab, cache, pieces: int, notes: int, seed: int = 0) -> str:
    """Generated pieces per composer vs held-out excerpts per composer, by mean overlap area."""
    held = [i for s in HELD_OUT for i in cache.piece_indices(s)]
    ids = piece_composer_ids([cache.pieces[i] for i in held], model.composer_names)
    refs = {}
    for c in sorted(set(ids[ids > 0].tolist())):
        ex = excerpts([cache.notes(i) for i, k in zip(held, ids) if k == c], notes, seed)
        if len(ex) >= 2:
            refs[c] = [piece_stats(n) for n in ex]
    if len(refs) < 2:
        return "\n(fewer than two composers with two held-out pieces: no closeness table)"

    def stats_for(composer) -> list:
        gen = generate(model, vocab, notes, None, batch=pieces, seed=seed, composer=composer)
        return [piece_stats(vocab.decode(g)) for g in gen]

    rows, own_first, own_above = [], 0, 0
    for c in [*refs, 0]:
        gen = stats_for(c)
        oa = {r: compare_sets(gen, ref, seed)["mean_oa"] for r, ref in refs.items()}
        if c == 0:
            rows.append((ANY, "-", "-", f"{np.mean(list(oa.values())):.3f} (mean)", "-"))
            continue
        others = np.mean([v for r, v in oa.items() if r != c])
        rank = 1 + sum(v > oa[c] for v in oa.values())
        own_first += rank == 1
        own_above += oa[c] > others
        rows.append((model.composer_names[c - 1], len(refs[c]), f"{oa[c]:.3f}", f"{others:.3f}", f"{rank} of {len(refs)}"))
    rows.append(("**composers closer to their own pieces**", "", f"{own_above} of {len(refs)} above others' mean",
                 f"{own_first} of {len(refs)} ranked first", ""))
    return _table(f"Generated for a composer vs held-out pieces ({pieces} pieces of {notes} notes each; mean overlap area)",
                  ("generated for", "held-out pieces", "own", "others", "rank of own"), rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", help="a model trained with composers (default: train one first)")
    ap.add_argument("--source", default="embedded", help="corpus to train on when no --checkpoint (default: the embedded one)")
    ap.add_argument("--preset", default="tiny", help="size preset of the model trained here (default tiny)")
    ap.add_argument("--steps", type=int, default=400, help="optimizer steps of the model trained here (default 400)")
    ap.add_argument("--device", default="cpu", help="where the model trains and scores (generation runs on the CPU)")
    ap.add_argument("--cache-dir", help="token caches (default: data/cache, or a temporary one when training here)")
    ap.add_argument("--pieces", type=int, default=8, help="pieces generated per composer")
    ap.add_argument("--notes", type=int, default=200, help="notes per generated piece and held-out excerpt")
    ap.add_argument("--tiny", action="store_true", help="seconds: 20 steps, 3 pieces of 48 notes (a smoke test)")
    args = ap.parse_args(argv)
    steps, pieces, notes = (20, 3, 48) if args.tiny else (args.steps, args.pieces, args.notes)
    print(machine_header("bench_composer", argv))
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, cache_dir = args.checkpoint, args.cache_dir
        if checkpoint is None:
            cache_dir = cache_dir or Path(tmp) / "cache"
            cfg = get_config(args.preset, **{"data.source": args.source, "data.max_files": 0, "model.composers": True,
                                             "train.max_steps": steps, "train.epochs": 1000, "train.device": args.device})
            train(cfg, prepare(cfg.data, cache_dir=cache_dir, progress=False), Path(tmp) / "out", resume=False, progress=False)
            checkpoint = Path(tmp) / "out" / CHECKPOINT_LAST
        model, vocab, cfg, state = load_checkpoint(checkpoint, device=args.device)
        if not model.n_composer_ids:
            raise SystemExit(f"error: {checkpoint} was trained without composers; nothing to measure")
        cache = prepare(cfg.data, cache_dir=cache_dir, progress=False)
        print(f"model: {checkpoint} ({cfg.preset} preset, {state.get('step', 0)} steps, {model.n_composer_ids - 1} composers, "
              f"composer dropout {cfg.data.composer_dropout:g}); source {cfg.data.source}")
        print(nats_table(model, cache, str(next(model.parameters()).device)))
        print(closeness_table(model, vocab, cache, pieces, notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
