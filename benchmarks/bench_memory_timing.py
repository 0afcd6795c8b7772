"""The piece memory when repeats vary their timing: a stand-in for performances (MAESTRO).

The piano corpus is sequenced: a repeated passage repeats its timing exactly, and the memory's
weights (fitted there) trust that. In a performance the timing of a repeat varies. This moves the
step and duration of a share of the held-out notes one bin up or down at random (the pitches
stay), then scores the shipped model on them alone, mixed with the memory at its fitted weights,
and mixed with weights refitted on the validation split treated alike (what ``evaluate`` prints as
"model + memory refitted"). Prints nats/note; writes nothing.

    python benchmarks/bench_memory_timing.py --shares 0 0.3 0.6
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.common import machine_header  # noqa: E402
from melody_utils.data import corpus  # noqa: E402
from melody_utils.generate import memory
from melody_utils.model.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint  # noqa: E402
from melody_utils.data.composers import piece_composer_ids  # noqa: E402
from melody_utils.evaluate.likelihood import piece_logprobs  # noqa: E402

TIMING_FIELDS = (1, 2)  # step and duration


def vary_timing(tokens: np.ndarray, share: float, sizes, rng) -> np.ndarray:
    """A copy of ``tokens`` (N, F) with the step and duration of about ``share`` of the notes moved one bin."""
    out = tokens.copy()
    for f in TIMING_FIELDS:
        moved = rng.random(len(out)) < share
        out[moved, f] = np.clip(out[moved, f] + rng.choice([-1, 1], moved.sum()), 0, sizes[f] - 1)
    return out


def score(model, cache, share: float, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    splits = {}
    for split in ("validation", "test"):
        idx = cache.piece_indices(split)
        pieces = [vary_timing(cache.piece_tokens(i).astype(np.int64), share, cache.vocab.sizes, rng) for i in idx]
        composers = piece_composer_ids([cache.pieces[i] for i in idx], model.composer_names)
        splits[split] = (pieces, piece_logprobs(model, pieces, composers=composers))
    pieces, lp = splits["test"]
    refit, _ = memory.fit_weights(splits["validation"][1], splits["validation"][0])
    return {"alone": -sum(np.asarray(x).sum() for x in lp) / sum(len(x) for x in lp),
            "fitted": sum(memory.memory_nll(lp, pieces, 1.0)["nats"].values()),
            "refitted": sum(memory.memory_nll(lp, pieces, 1.0, settings=refit)["nats"].values())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    ap.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.3, 0.6],
                    help="shares of notes whose step and duration move one bin")
    args = ap.parse_args(argv)
    print(machine_header("bench_memory_timing", argv))
    model, vocab, cfg, _ = load_checkpoint(args.checkpoint)
    cache = corpus.prepare(cfg.data, vocab=vocab, progress=False)
    print("| timing varied | network alone | + memory (fitted weights) | + memory (refitted) |")
    print("|---:|---:|---:|---:|")
    for share in args.shares:
        r = score(model, cache, share)
        print(f"| {share:.0%} of notes | {r['alone']:.3f} | {r['fitted']:.3f} | {r['refitted']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
