"""Fit the piece memory's weights (melody_utils.memory) for a checkpoint, and compare its match keys.

For each match key (pitch only; pitch, step and duration) and longest match (``--orders``), the
weights per match length are fitted on the validation split by maximum likelihood
(``memory.fit_weights``) and the mixture's held-out nats/note is printed on the validation and
test splits beside the network's alone (the same notes). The line for the settings in
``melody_utils/memory.py`` ends with the tuple to paste there. Prints only; writes nothing but the
token cache (``--cache-dir``).

    python scripts/fit_memory.py                     # the shipped model, the embedded piano corpus
    python scripts/fit_memory.py --checkpoint outputs/ckpt_best.pt --orders 4,8,16
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from melody_utils import corpus, memory  # noqa: E402
from melody_utils.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint  # noqa: E402
from melody_utils.composers import piece_composer_ids  # noqa: E402
from melody_utils.likelihood import piece_logprobs  # noqa: E402

KEYS = {1: "pitch", 3: "pitch+step+duration"}


def split_logprobs(model, cache, split: str):
    """(the split's token arrays, the model's per-note log-probabilities on them)."""
    idx = cache.piece_indices(split)
    pieces = [cache.piece_tokens(i) for i in idx]
    comps = piece_composer_ids([cache.pieces[i] for i in idx], model.composer_names)
    return pieces, piece_logprobs(model, pieces, composers=comps, progress=True)


def nats(logprobs, pieces, weights, order, key) -> float:
    return sum(memory.memory_nll(logprobs, pieces, 1.0, weights=weights, order=order, key_fields=key)["nats"].values())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    p.add_argument("--cache-dir", help="token cache folder (default: data/cache)")
    p.add_argument("--orders", default="4,8,16", help="longest matches to try, comma-separated")
    args = p.parse_args(argv)
    model, vocab, cfg, _ = load_checkpoint(args.checkpoint, "cpu")
    cache = corpus.prepare(cfg.data, cache_dir=args.cache_dir, vocab=vocab)
    val, val_lp = split_logprobs(model, cache, "validation")
    test, test_lp = split_logprobs(model, cache, "test")
    net = {s: -sum(float(lp.sum()) for lp in lps) / sum(len(lp) for lp in lps)
           for s, lps in (("validation", val_lp), ("test", test_lp))}
    print(f"network alone: validation {net['validation']:.4f}, test {net['test']:.4f} nats/note")
    for key in KEYS:
        for order in [int(o) for o in args.orders.split(",")]:
            weights, support = memory.fit_weights(val_lp, val, order, key)
            v, t = nats(val_lp, val, weights, order, key), nats(test_lp, test, weights, order, key)
            print(f"key {KEYS[key]:>20}, order {order:2d}: validation {v:.4f} ({v - net['validation']:+.4f}), "
                  f"test {t:.4f} ({t - net['test']:+.4f}) nats/note; notes per match length "
                  f"{list(support.values())}; weights {tuple(float(w) for w in np.round(weights, 2))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
