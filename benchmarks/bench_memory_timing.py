"""The piece memory on both corpora: held-out nats/note with the memory each way it can be set.

**Real corpora** (``--corpora``, default the piano corpus and the real performances side by side):
each corpus's model (``--checkpoint CORPUS=PATH``; default the shipped model, its vocabulary
tokenizing the corpus) scores the corpus's test split alone, mixed with the memory at the piano
corpus's weights (``memory.MEMORY``), at the checkpoint's own (fitted at the end of its training),
and refitted on this corpus's validation split as training's end fits it
(``evaluate.memory_fit.fit_memory``: weights, timing kernel and strength, cross-fitted). The
performances are skipped with a note when absent.

**Timing varied** (``--shares``): a stand-in for performances on the piano corpus. It moves the step
and duration of a share of the held-out notes one bin up or down at random (the pitches stay),
then scores the piano model alone, with the memory at its fitted weights, and refitted on the
validation split treated alike. Prints nats/note; writes nothing but token caches.

    python benchmarks/bench_memory_timing.py                      # both corpora, the shipped model
    python benchmarks/bench_memory_timing.py --checkpoint performances=/tmp/perf/ckpt_best.pt --shares
    python benchmarks/bench_memory_timing.py --corpora piano --shares 0 0.3 0.6
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.common import BOTH_CORPORA, corpus_names, corpus_source, machine_header  # noqa: E402
from melody_utils.data import corpus  # noqa: E402
from melody_utils.data.composers import piece_composer_ids  # noqa: E402
from melody_utils.evaluate.likelihood import piece_logprobs  # noqa: E402
from melody_utils.evaluate.memory_fit import FIT_BASE, fit_memory, split_logprobs  # noqa: E402
from melody_utils.generate import memory  # noqa: E402
from melody_utils.model.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint  # noqa: E402


def vary_timing(tokens: np.ndarray, share: float, sizes, rng) -> np.ndarray:
    """A copy of ``tokens`` (N, F) with the step and duration of about ``share`` of the notes moved one bin."""
    out = tokens.copy()
    for f in memory.TIMING_FIELDS:
        moved = rng.random(len(out)) < share
        out[moved, f] = np.clip(out[moved, f] + rng.choice([-1, 1], moved.sum()), 0, sizes[f] - 1)
    return out


def mixed_nats(logprobs, pieces, settings: list) -> list[float]:
    """Nats/note (every field, every note but each piece's first) of the network mixed with the memory
    under each of ``settings`` (knob 1; one matching pass: they share how they match)."""
    kernels = [(s.timing_spread, s.timing_width) for s in settings]
    sums, n = np.zeros(len(settings)), 0
    for lp, toks in zip(logprobs, pieces):
        lengths, counts = memory.kernel_counts(toks, settings[0], kernels)
        for k, s in enumerate(settings):
            sums[k] -= memory.mixed_logprobs(np.asarray(lp), lengths[1:], counts[k][1:], memory.scaled_weights(1.0, s),
                                             s.fields).sum()
        n += len(lp)
    return list(sums / n)


def alone(logprobs) -> float:
    return -sum(float(np.sum(x)) for x in logprobs) / sum(len(x) for x in logprobs)


def real_row(name: str, source: str, checkpoint) -> str:
    """One corpus's row of the real-corpora table."""
    model, vocab, cfg, _ = load_checkpoint(checkpoint)
    cache = corpus.prepare(replace(cfg.data, source=source), vocab=vocab, progress=False)
    val, val_lp = split_logprobs(model, cache, "validation")
    test, test_lp = split_logprobs(model, cache, "test")
    refit, fit = fit_memory(val_lp, val, FIT_BASE)
    piano, own, refitted = mixed_nats(test_lp, test, [memory.MEMORY, memory.model_memory(model), refit])
    net = alone(test_lp)
    d = lambda x: f"{x:.3f} ({x - net:+.3f})"  # noqa: E731
    return (f"| {name} | {Path(checkpoint).name} | {len(test)} pieces, {sum(len(x) for x in test_lp):,} notes | {net:.3f} | "
            f"{d(piano)} | {d(own)} | {d(refitted)} | spread {refit.timing_spread:g}/{refit.timing_width}, strength "
            f"{refit.strength:g}; cross-fitted {-fit['saved_nats']:+.3f} |")


def timing_row(model, cache, share: float, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    splits = {}
    for split in ("validation", "test"):
        idx = cache.piece_indices(split)
        pieces = [vary_timing(cache.piece_tokens(i).astype(np.int64), share, cache.vocab.sizes, rng) for i in idx]
        composers = piece_composer_ids([cache.pieces[i] for i in idx], model.composer_names)
        splits[split] = (pieces, piece_logprobs(model, pieces, composers=composers))
    pieces, lp = splits["test"]
    refit, _ = fit_memory(splits["validation"][1], splits["validation"][0], FIT_BASE)
    fitted, refitted = mixed_nats(lp, pieces, [memory.model_memory(model), refit])
    return (f"| {share:.0%} of notes | {alone(lp):.3f} | {fitted:.3f} | {refitted:.3f} | "
            f"spread {refit.timing_spread:g}/{refit.timing_width}, strength {refit.strength:g} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", default=BOTH_CORPORA, help="corpora side by side: piano, performances, chorales, a folder")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="CORPUS=PATH",
                    help="the model of a corpus (default: the shipped model); repeatable")
    ap.add_argument("--shares", type=float, nargs="*", default=[],
                    help="timing-varied stand-in on the piano corpus: shares of notes whose step and duration move one bin")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared machine more threads wait on each other; the figures do not depend on it)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine_header("bench_memory_timing", argv))
    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)
    print("| corpus | model | test split | network alone | + memory, piano weights | + memory, the checkpoint's own "
          "| + memory refitted here | refit |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    for name in corpus_names(args.corpora):
        source, note = corpus_source(name)
        if source is None:
            print(f"| {note} |")
            continue
        print(real_row(name, source, checkpoints.get(name, SHIPPED_CHECKPOINT)), flush=True)
    if args.shares:
        model, vocab, cfg, _ = load_checkpoint(checkpoints.get("piano", SHIPPED_CHECKPOINT))
        cache = corpus.prepare(cfg.data, vocab=vocab, progress=False)
        print("\n| timing varied (piano corpus) | network alone | + memory (its weights) | + memory (refitted) | refit |")
        print("|---:|---:|---:|---:|---|")
        for share in args.shares:
            print(timing_row(model, cache, share), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
