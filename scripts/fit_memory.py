"""Fit the piece memory's weights (melody_utils.generate.memory) for a checkpoint, and compare its settings.

First the memory the checkpoint plays with (its own, fitted at the end of training, else the piano
corpus's), then the one training's end would fit (``melody_utils.evaluate.memory_fit.fit_memory``: weights,
timing kernel and strength, cross-fitted on the validation split), each on the test split;
``--store`` writes the latter into the checkpoint (for checkpoints trained before it was fitted there).
``--source`` scores another corpus, tokenized with the checkpoint's vocabulary. Then, for each match key (``--keys``: pitch only; pitch, step and duration), longest match
(``--orders``) and minimum copy distance (``--min-distances``), the weights per match length are
fitted on the validation split by maximum likelihood (``memory.fit_weights``) and the mixture's
held-out nats/note is printed on the validation and test splits beside the network's alone (the
same notes). Each line ends with the weights to paste into ``MemorySettings`` in
``melody_utils/generate/memory.py``. Prints only; writes nothing but the token cache (``--cache-dir``)
and, with ``--store``, the checkpoint.

    python scripts/fit_memory.py --keys 1          # the shipped model, the embedded piano corpus
    python scripts/fit_memory.py --checkpoint outputs/ckpt_best.pt --orders 4,8,16 --min-distances 0,32
    python scripts/fit_memory.py --checkpoint outputs/ckpt_best.pt --keys none --store
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from melody_utils.data import corpus  # noqa: E402
from melody_utils.generate import memory
from melody_utils.model.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint  # noqa: E402
from melody_utils.evaluate.memory_fit import FIT_BASE, describe_fit, fit_memory, split_logprobs  # noqa: E402
from melody_utils.model.checkpoint import store_memory  # noqa: E402

KEYS = {1: "pitch", 3: "pitch+step+duration"}


def nats(logprobs, pieces, settings) -> float:
    return sum(memory.memory_nll(logprobs, pieces, 1.0, settings=settings)["nats"].values())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    p.add_argument("--cache-dir", help="token cache folder (default: data/cache)")
    p.add_argument("--orders", default=str(memory.MEMORY.order), help="longest matches to try, comma-separated")
    p.add_argument("--keys", default="1,3", help="match keys to try: 1 = pitch, 3 = pitch, step and duration; none: skip")
    p.add_argument("--source", help="corpus to score (default: the checkpoint's), tokenized with its vocabulary")
    p.add_argument("--store", action="store_true", help="write the memory training's end fits into the checkpoint")
    p.add_argument("--no-loops", default=str(int(memory.MEMORY.no_loops)), help="1: skip candidates that continue a loop; '0,1': both")
    p.add_argument("--min-distances", default=str(memory.MEMORY.min_distance),
                   help="how many notes back copying starts, comma-separated (0 = from the previous note)")
    args = p.parse_args(argv)
    model, vocab, cfg, _ = load_checkpoint(args.checkpoint, "cpu")
    data = replace(cfg.data, source=args.source) if args.source else cfg.data
    cache = corpus.prepare(data, cache_dir=args.cache_dir, vocab=vocab)
    val, val_lp = split_logprobs(model, cache, "validation", progress=True)
    test, test_lp = split_logprobs(model, cache, "test", progress=True)
    net = {s: -sum(float(lp.sum()) for lp in lps) / sum(len(lp) for lp in lps)
           for s, lps in (("validation", val_lp), ("test", test_lp))}
    print(f"network alone: validation {net['validation']:.4f}, test {net['test']:.4f} nats/note")
    own = memory.model_memory(model)
    print(f"the checkpoint's memory: test {nats(test_lp, test, own) - net['test']:+.4f} nats/note; {own}")
    fitted, fit = fit_memory(val_lp, val, FIT_BASE, progress=True)
    print(f"fitted as training's end does: test {nats(test_lp, test, fitted) - net['test']:+.4f} nats/note; "
          f"cross-fitted on validation: {-fit['saved_nats']:+.4f}; per timing kernel (spread/width) at strength 1: "
          f"{ {k: round(-v, 4) for k, v in fit['kernels'].items()} }; {fitted}", flush=True)
    if args.store:
        stored = {**fitted.to_dict(), "fit": fit}
        store_memory(args.checkpoint, stored)
        print(f"{describe_fit(stored)}; stored in {args.checkpoint}")
    ints = lambda text: [] if text == "none" else [int(x) for x in text.split(",")]  # noqa: E731
    for key in ints(args.keys):
        for order in ints(args.orders):
            for distance, no_loops in [(d, bool(x)) for d in ints(args.min_distances) for x in ints(args.no_loops)]:
                settings = memory.MemorySettings(order=order, key_fields=key, min_distance=distance, no_loops=no_loops,
                                                 weights=(0.0,) * order)
                settings, support = memory.fit_weights(val_lp, val, settings)
                v, t = nats(val_lp, val, settings), nats(test_lp, test, settings)
                print(f"key {KEYS[key]}, order {order}, min distance {distance}, no loops {no_loops}: validation {v:.4f} "
                      f"({v - net['validation']:+.4f}), test {t:.4f} ({t - net['test']:+.4f}) nats/note; notes per "
                      f"match length {list(support.values())}; weights {settings.weights}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
