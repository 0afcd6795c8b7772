"""Rebuild the shipped model, data/pretrained/piano_lstm.pt.

Trains the default causal LSTM at the shipped size on the embedded piano corpus for ``--budget``
seconds, exports the best checkpoint as an inference checkpoint (fp16 weights, config,
vocabulary, training summary; no optimizer state) and prints its size, parameter count and
held-out nats/note on the test split, with the exact command that made it.

    python scripts/build_shipped_model.py --device cuda --budget 300

Writes only under ``--out`` (the exported file) and ``--workdir`` (the token cache and the full
training checkpoints). Needs no network. The model loads and generates on a CPU.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from melody_utils.data import corpus  # noqa: E402
from melody_utils.evaluate import report as metrics
from melody_utils.model.checkpoint import CHECKPOINT_BEST, SHIPPED_CHECKPOINT, export_inference, load_checkpoint  # noqa: E402
from melody_utils.cli.args import parse_setting  # noqa: E402
from melody_utils.config import get_config  # noqa: E402
from melody_utils.device import resolve_device  # noqa: E402
from melody_utils.train.loop import train  # noqa: E402

CORPUS = "piano"  # the embedded piano corpus
LICENCE = "CC BY-SA 3.0 DE: derived from piano-midi.de by Bernd Krueger"
# The shipped size: about 2.3 M parameters (under 5 MB in fp16), trained until the budget ends it.
SHIPPED_SETTINGS = {
    "data.source": CORPUS, "data.window": 128, "data.stride": 64,
    "model.arch": "causal", "model.hidden": 384, "model.layers": 2, "model.dropout": 0.2,
    "model.composers": True, "data.composer_dropout": 0.2,  # generate --composer NAME; "any" learnt from 20 % of windows
    "train.batch_size": 256, "train.epochs": 1000, "train.warmup_steps": 200, "train.lr": 2e-3,  # as it was trained
}


def build_config(device: str, budget: float, workdir: Path, settings: list[str]):
    """The shipped model's config: the small preset, SHIPPED_SETTINGS, the budget, then ``--set`` items."""
    cfg = get_config("small", **SHIPPED_SETTINGS, **{"train.time_budget_s": float(budget), "train.device": device,
                                                      "train.out_dir": str(workdir / "train")})
    overrides = dict(parse_setting(cfg, item) for item in settings)
    return cfg.override(**overrides) if overrides else cfg


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="'auto' (cuda if available), 'cpu', 'cuda', ...")
    parser.add_argument("--budget", type=float, default=300.0, help="training seconds (default 300)")
    parser.add_argument("--out", default=str(SHIPPED_CHECKPOINT), help=f"the exported file (default {SHIPPED_CHECKPOINT})")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", help="any other setting")
    parser.add_argument("--workdir", help="token cache and full training checkpoints (default: a new temporary folder)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    args = parser.parse_args(argv)
    out = Path(args.out).expanduser()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="melody-shipped-")).expanduser()
    cfg = build_config(args.device, args.budget, workdir, args.set)
    device = resolve_device(cfg.train.device)
    cache = corpus.prepare(cfg.data, cache_dir=workdir / "cache", progress=not args.quiet)
    if cfg.model.composers and not cache.vocab.composers:  # a corpus (--set data.source=...) that names none
        cfg = cfg.override(**{"model.composers": False})
        print("note: the corpus names no composer: the model is trained without composers")
    print(f"training {cfg.model.arch} {cfg.model.layers}x{cfg.model.hidden} on {CORPUS} ({len(cache.tokens):,} notes, "
          f"{len(cache.vocab.composers) if cfg.model.composers else 'no'} composers) "
          f"for at most {cfg.train.time_budget_s:g} s on {device}; checkpoints in {cfg.train.out_dir}")
    train(cfg, cache, resume=False, progress=not args.quiet)
    best = Path(cfg.train.out_dir) / CHECKPOINT_BEST
    model, _, train_cfg, _ = load_checkpoint(best, device=device)
    split = "test" if len(cache.piece_indices("test")) else "validation"
    nats = metrics.held_out_nats(model, train_cfg, cache, split, device=device)["nats"]["total"]
    command = shlex.join(["python", "scripts/build_shipped_model.py", *(argv if argv is not None else sys.argv[1:])])
    export_inference(best, out, corpus=CORPUS, licence=LICENCE, held_out_nats_per_note=nats, held_out_split=split,
                     command=command)
    model, _, _, state = load_checkpoint(out)  # as a user gets it: on the CPU, fp16 -> fp32
    s = state["summary"]
    print(f"shipped model: {out} ({out.stat().st_size / 1e6:.1f} MB, {sum(p.numel() for p in model.parameters()):,} "
          f"parameters)\ntrained {s['steps']} steps ({s['epochs']:.1f} epochs) in {s['train_seconds']:.0f} s on "
          f"{s['device']}; best validation loss {s['best_val_loss']:.3f} nats/note\n"
          f"held-out {split} split ({len(cache.piece_indices(split))} pieces): {nats:.3f} nats/note\ncommand: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
