"""Tokens for performed music: which tokenization makes a corpus predictable, at a fixed number of steps.

Nats/note are comparable only within one vocabulary, so each tokenization is judged by the ratio of
the model's held-out nats/note to a 3-gram's on the same tokens (lower is better: the model
learnt more than counting does). Each variant tokenizes the corpus its way, trains the default
model (the ``small`` preset: log bins, causal LSTM) for ``--steps`` optimizer steps (a fixed amount
of work, not of time: a busy machine gives the same numbers), and scores every note but each
piece's first of the test split, each piece read from its start. Variants:

- ``default``: log bins fitted on the corpus's training pieces, durations after the sustain pedal,
  the 15 ms chord threshold (``quantize.CHORD_THRESHOLD_S``: closer onsets share the 0 step bin);
- ``chord 30 ms``, ``chord 50 ms``: that threshold raised (performed chords spread over 10-50 ms);
- ``sustain off``: key-press durations;
- ``piano bins``: the piano corpus's bins (the shipped model's vocabulary) instead of fitted ones.

Both corpora side by side (``--corpora``; the real performances are skipped with a note when
absent). Caches and checkpoints go under ``--work`` (default: a temporary folder), never into the
repository; ``--keep`` keeps them (e.g. for ``bench_memory_timing.py --checkpoint performances=...``).

    python benchmarks/bench_tokens.py --steps 300
    python benchmarks/bench_tokens.py --steps 300 --corpora performances --variants default "chord 30 ms" --work /tmp/tokens --keep
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import BOTH_CORPORA, corpus_names, corpus_source, machine_header  # noqa: E402
from melody_utils.config import get_config  # noqa: E402
from melody_utils.data import corpus  # noqa: E402
from melody_utils.evaluate.likelihood import ngram_nll, piece_nll  # noqa: E402
from melody_utils.model.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint, read_checkpoint  # noqa: E402
from melody_utils.music import quantize  # noqa: E402
from melody_utils.music.tokens import Vocab  # noqa: E402
from melody_utils.train.loop import train  # noqa: E402

VARIANTS = {  # name: (data settings, chord threshold in seconds, the shipped model's vocabulary)
    "default": ({}, 0.015, False),
    "chord 30 ms": ({}, 0.030, False),
    "chord 50 ms": ({}, 0.050, False),
    "sustain off": ({"data.sustain": False}, 0.015, False),
    "piano bins": ({}, 0.015, True),
}


@contextlib.contextmanager
def chord_threshold(seconds: float):
    """The 0 step bin's upper edge (``quantize.CHORD_THRESHOLD_S``) set to ``seconds`` for a while."""
    old, quantize.CHORD_THRESHOLD_S = quantize.CHORD_THRESHOLD_S, seconds
    try:
        yield
    finally:
        quantize.CHORD_THRESHOLD_S = old


def run_variant(source: str, name: str, steps: int, work: Path) -> dict:
    """Tokenize, train ``steps`` steps, score: the model's and the 3-gram's test nats/note, the step bins."""
    settings, threshold, piano_bins = VARIANTS[name]
    out = work / f"{Path(source).name}-{name.replace(' ', '_')}"
    cfg = get_config("small", **{"data.source": source, "train.max_steps": steps, "train.device": "cpu",
                                 "train.out_dir": str(out), **settings})
    vocab = Vocab.from_dict(read_checkpoint(SHIPPED_CHECKPOINT)["vocab"]) if piano_bins else None
    with chord_threshold(threshold):
        cache = corpus.prepare(cfg.data, cache_dir=out / "cache", progress=False, vocab=vocab)
        train(cfg, cache, out, resume=False, progress=False)
        model = load_checkpoint(out / "ckpt_best.pt")[0]
        test = cache.split_tokens("test")
        net = piece_nll(model, test)["nats"]["total"]
        gram = ngram_nll(cache.split_tokens("train"), test, cache.vocab, 3, val_pieces=cache.split_tokens("validation"))
        chords = sum(int((t[:, 1] == 0).sum()) for t in test) / sum(len(t) for t in test)
    return {"model": net, "3-gram": gram["nats"]["total"], "zero_steps": chords, "checkpoint": out / "ckpt_best.pt"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps per variant (the small preset's batch of 64)")
    ap.add_argument("--corpora", default=BOTH_CORPORA, help="corpora side by side: piano, performances, a folder")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--work", help="folder for caches and checkpoints (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep --work's caches and checkpoints")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared machine more threads wait on each other; the figures do not depend on it)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine_header("bench_tokens", argv))
    work = Path(args.work or tempfile.mkdtemp(prefix="melody-tokens-"))
    print("| corpus | tokenization | model nats/note | 3-gram nats/note | model / 3-gram | notes on the 0 step bin |")
    print("|---|---|---:|---:|---:|---:|")
    try:
        for corpus_name in corpus_names(args.corpora):
            source, note = corpus_source(corpus_name)
            if source is None:
                print(f"| {note} |")
                continue
            for name in args.variants:
                r = run_variant(source, name, args.steps, work)
                print(f"| {corpus_name} | {name} | {r['model']:.3f} | {r['3-gram']:.3f} | {100 * r['model'] / r['3-gram']:.1f}% "
                      f"| {r['zero_steps']:.1%} |", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"caches and checkpoints kept in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
