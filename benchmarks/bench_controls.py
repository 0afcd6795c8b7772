"""The effect of each sampling-time control on a model: one markdown table per control.

Measures what the controls promise, not speed: the share of in-key notes (off, soft, hard), the
share of notes inside a pitch range, realised vs target note density across temperatures, the
length of music asked for in seconds, the degenerate-piece rate with and without the repetition
guard, and the originality of generated pieces (with a planted passage as a check).

    python benchmarks/bench_controls.py --checkpoint outputs/ckpt_best.pt
    python benchmarks/bench_controls.py --tiny      # seconds: trains a tiny model first (a smoke test)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.common import machine_header  # noqa: E402
from melody_utils.config import get_config  # noqa: E402
from melody_utils.generate.controls import Controls  # noqa: E402
from melody_utils.data.corpus import prepare  # noqa: E402
from melody_utils.music.stats import degeneracy  # noqa: E402
from melody_utils.evaluate.originality import OriginalityIndex  # noqa: E402
from melody_utils.generate.sample import generate, generate_notes  # noqa: E402
from melody_utils.music.scales import parse_key  # noqa: E402
from melody_utils.model.checkpoint import CHECKPOINT_LAST, load_checkpoint  # noqa: E402
from melody_utils.train.loop import train  # noqa: E402


def _table(title: str, header: tuple, rows: list) -> str:
    lines = ["", f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def key_and_range(run, key: str = "C major", pitch_range: str = "C3-C5") -> str:
    scale, lo, hi = parse_key(key), 48, 72
    rows = []
    for name, c in (("off", None), ("soft, 1 nat", Controls(key=key, key_strength=1.0)),
                    ("soft, 3 nats", Controls(key=key, key_strength=3.0)), ("hard", Controls(key=key))):
        pitch = run(c)[..., 0] + run.vocab.min_pitch
        rows.append((name, f"{np.isin(pitch % 12, scale).mean():.1%}"))
    out = _table(f"Key {key}: share of in-key notes", ("key control", "in-key notes"), rows)
    rows = []
    for name, c in (("off", None), (pitch_range, Controls(pitch_range=pitch_range))):
        pitch = run(c)[..., 0] + run.vocab.min_pitch
        rows.append((name, f"{((pitch >= lo) & (pitch <= hi)).mean():.1%}", f"{pitch.min()}-{pitch.max()}"))
    return out + "\n" + _table("Pitch range", ("range", "notes inside C3-C5", "lowest-highest pitch"), rows)


def density(run, targets=(2.0, 4.0, 8.0, 16.0), temperatures=(0.8, 1.0, 1.2)) -> str:
    steps = np.asarray(run.vocab.step_bins.centers)
    rows = []
    for target in (None,) + tuple(targets):
        cells = []
        for t in temperatures:
            g = run(Controls(density=target) if target else None, temperature=t)
            realised = g.shape[1] / steps[g[..., 1]].sum(axis=1)  # per piece
            cells.append(f"{realised.mean():.2f} ({np.abs(realised / target - 1).max():.0%})" if target else f"{realised.mean():.2f}")
        rows.append(("model's own" if target is None else f"{target:g}", *cells))
    return _table("Note density: realised notes/s (largest error of a piece)", ("target notes/s", *(f"T={t:g}" for t in temperatures)), rows)


def seconds(run, lengths=(30.0, 60.0, 120.0)) -> str:
    rows = []
    for s in lengths:
        notes = generate_notes(run.model, run.vocab, 1, run.primer, seed=0, seconds=s)
        rows.append((f"{s:g}", len(notes), f"{notes.seconds():.1f}"))
    return _table("Length in seconds", ("--seconds", "notes", "music (s)"), rows)


def guard(run, temperatures=(0.5, 0.7, 0.85, 1.0), strength: float = 3.0) -> str:
    rows = []
    for c, name in ((None, "off"), (Controls(repeat_guard=strength), f"{strength:g} nats")):
        rates = [np.mean([degeneracy(run.vocab.decode(x))["degenerate"] for x in run(c, temperature=t)]) for t in temperatures]
        rows.append((name, *(f"{r:.0%}" for r in rates)))
    return _table("Repetition guard: degenerate pieces", ("guard", *(f"T={t:g}" for t in temperatures)), rows)


def originality_table(run, cache) -> str:
    index = OriginalityIndex.for_cache(cache)
    results = [index.check(x) for x in run(None)]
    planted = run(None)[0].copy()
    source = cache.piece_tokens(int(cache.piece_indices("train")[0]))
    n = min(32, len(source), len(planted) // 2)
    planted[10: 10 + n] = source[:n]
    p = index.check(planted)
    rows = [("generated pieces (mean)", f"{np.mean([r['longest_copy'] for r in results]):.1f}",
             f"{np.mean([r['copied_share'] for r in results]):.1%}"),
            (f"one with {n} training notes planted", p["longest_copy"], f"{p['copied_share']:.1%}")]
    return _table("Originality", ("pieces", "longest copied run (notes)", "8-note sequences found"), rows)


class Runner:
    """Generates the benchmark's batch for a setting: ``run(controls, temperature)`` -> (B, N, F)."""

    def __init__(self, model, vocab, primer, pieces: int, notes: int):
        self.model, self.vocab, self.primer, self.pieces, self.notes = model, vocab, primer, pieces, notes

    def __call__(self, controls, temperature: float = 1.0):
        return generate(self.model, self.vocab, self.notes, self.primer, batch=self.pieces, seed=0,
                        temperature=temperature, controls=controls)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", help="model to measure (default: train a tiny model on the embedded corpus first)")
    ap.add_argument("--cache-dir", help="token caches (default: data/cache)")
    ap.add_argument("--pieces", type=int, default=16, help="pieces per setting")
    ap.add_argument("--notes", type=int, default=200, help="notes per piece")
    ap.add_argument("--tiny", action="store_true", help="seconds: 4 pieces of 64 notes (a smoke test)")
    args = ap.parse_args(argv)
    pieces, notes = (4, 64) if args.tiny else (args.pieces, args.notes)
    print(machine_header("bench_controls", argv))
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint
        if checkpoint is None:
            cfg = get_config("tiny", **{"data.source": "embedded", "train.max_steps": 40, "train.epochs": 10, "train.device": "cpu"})
            train(cfg, prepare(cfg.data, cache_dir=Path(tmp) / "cache", progress=False), Path(tmp) / "out", resume=False, progress=False)
            checkpoint = Path(tmp) / "out" / CHECKPOINT_LAST
        model, vocab, cfg, _ = load_checkpoint(checkpoint)
        cache = prepare(cfg.data, cache_dir=Path(tmp) / "cache" if args.checkpoint is None else args.cache_dir, progress=False)
        primer = cache.piece_tokens(cache.held_out_piece())[:32]
        run = Runner(model, vocab, primer, pieces, notes)
        print(f"model: {checkpoint}; {pieces} pieces of {notes} notes per setting, top_p 0.95, primer: a held-out piece")
        for part in (key_and_range(run), density(run), seconds(run), guard(run), originality_table(run, cache)):
            print(part)
    return 0


if __name__ == "__main__":
    sys.exit(main())
