"""Rebuild the shipped model, data/pretrained/piano_lstm.pt.

Trains the default causal LSTM at the shipped size on the embedded piano corpus to the end: the
learning rate anneals over ``train.epochs`` epochs (or over ``--budget`` seconds, if those end
first), and the run stops early once the validation loss has not improved for ``train.patience``
epochs. A share of the training windows is played like a performer (``data.perform``), so the
model also knows performed music;
on a CPU that multiplies bf16 natively it trains under bf16 autocast. Exports the best checkpoint
as an inference checkpoint (fp16 weights, config, vocabulary with its spread inside the bins,
training summary, its piece memory fitted on the validation split; no optimizer state) and prints
its size, parameter count and held-out nats/note on the test split, the device, precision and
time it took, with the exact command.

    python scripts/build_shipped_model.py --device cuda --budget 3600 --curve docs/media/shipped_learning_curve.png

Writes only under ``--out`` (the exported file), ``--workdir`` (the token cache and the full
training checkpoints) and, when given, ``--curve`` (the learning curve, PNG, and its history JSON
beside it). Needs no network. The model loads and generates on a CPU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from melody_utils.data import corpus  # noqa: E402
from melody_utils.evaluate import report as metrics  # noqa: E402
from melody_utils.evaluate.memory_fit import describe_fit, fit_checkpoint_memory  # noqa: E402
from melody_utils.model.checkpoint import CHECKPOINT_BEST, SHIPPED_CHECKPOINT, export_inference, load_checkpoint  # noqa: E402
from melody_utils.cli.args import parse_setting  # noqa: E402
from melody_utils.config import get_config  # noqa: E402
from melody_utils.device import cpu_has_native_bf16, resolve_device  # noqa: E402
from melody_utils.train.loop import evaluations_since_best, train  # noqa: E402

CORPUS = "piano"  # the embedded piano corpus
LICENCE = "CC BY-SA 3.0 DE: derived from piano-midi.de by Bernd Krueger"
# The shipped size: about 2.3 M parameters (under 5 MB in fp16), trained until the budget ends it.
SHIPPED_SETTINGS = {
    "data.source": CORPUS, "data.window": 128, "data.stride": 64,
    "model.arch": "causal", "model.hidden": 384, "model.layers": 2, "model.dropout": 0.2,
    "model.composers": True, "data.composer_dropout": 0.2,  # generate --composer NAME; "any" learnt from 20 % of windows
    "train.batch_size": 256, "train.warmup_steps": 200, "train.lr": 2e-3,
    # to the end: the cosine spans 40 epochs, the same schedule on any device (an 1800 s budget on the 2-core
    # CPU spanned 39.8 and beat early stopping at the peak rate on validation: docs/benchmarks.md, "The shipped
    # model"); early stopping on validation, should the model overfit before
    "train.epochs": 40, "train.patience": 10,
    # a quarter of the training windows played like a performer: 1.40 nats/note better on held-out real
    # performances, 0.08 worse on the piano corpus (small preset, 300 steps; docs/benchmarks.md)
    "data.perform": 0.25,
}
DEFAULT_BUDGET_S = 3 * 3600.0  # a cap: 40 epochs take minutes on a GPU, about 30 min on a quiet 2-core CPU with bf16


def build_config(device: str, budget: float, workdir: Path, settings: list[str]):
    """The shipped model's config: the small preset, SHIPPED_SETTINGS, the budget, bf16 autocast on a CPU
    that multiplies bf16 natively, then ``--set`` items."""
    bf16 = resolve_device(device).type == "cpu" and cpu_has_native_bf16()
    cfg = get_config("small", **SHIPPED_SETTINGS, **{"train.time_budget_s": float(budget), "train.device": device,
                                                      "train.out_dir": str(workdir / "train"), "train.cpu_bf16": bf16})
    overrides = dict(parse_setting(cfg, item) for item in settings)
    return cfg.override(**overrides) if overrides else cfg


def device_name(device) -> str:
    """The GPU's name, or the CPU's model and cores."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        model = ""
    return f"CPU {model or platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def stopped_by(cfg, history: dict, train_wall_s: float) -> str:
    """What ended the training: early stopping, the budget, or the epoch/step cap."""
    tc = cfg.train
    if tc.patience and evaluations_since_best(history) >= tc.patience:
        return f"early stopping (train.patience={tc.patience})"
    if tc.time_budget_s and train_wall_s >= tc.time_budget_s:
        return f"the time budget ({tc.time_budget_s:g} s)"
    return "the epoch or step limit"


def write_curve(history: dict, path: Path) -> None:
    """The learning curve (per-head validation included) as PNG at ``path``, its history as JSON beside it."""
    from melody_utils.display import plots

    path.parent.mkdir(parents=True, exist_ok=True)
    plots.plot_history(history, heads=True, title="the shipped model: loss per epoch").savefig(path)
    path.with_suffix(".json").write_text(json.dumps(history, indent=1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="'auto' (cuda if available), 'cpu', 'cuda', ...")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S,
                        help=f"at most this many training seconds (default {DEFAULT_BUDGET_S:g}); early stopping may end it sooner")
    parser.add_argument("--curve", help="also write the learning curve here (PNG; its history as JSON beside it)")
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
    precision = "bf16 autocast" if cfg.train.cpu_bf16 and device.type == "cpu" else (
        "autocast (bf16/fp16)" if device.type == "cuda" and cfg.train.amp else "fp32")
    print(f"training {cfg.model.arch} {cfg.model.layers}x{cfg.model.hidden} on {CORPUS} ({len(cache.tokens):,} notes, "
          f"{len(cache.vocab.composers) if cfg.model.composers else 'no'} composers) until validation has not improved "
          f"for {cfg.train.patience} epochs, at most {cfg.train.time_budget_s:g} s, on {device_name(device)} ({precision}); "
          f"checkpoints in {cfg.train.out_dir}")
    t0 = time.time()
    history = train(cfg, cache, resume=False, progress=not args.quiet)
    train_wall = time.time() - t0
    record = {"device_name": device_name(device), "precision": precision, "train_wall_seconds": train_wall,
              "stopped_by": stopped_by(cfg, history, train_wall),
              # the whole run (the summary's steps and seconds are the best checkpoint's, which early stopping precedes)
              "run_steps": int(history["step"][-1]), "run_epochs": float(history["epoch"][-1]),
              "run_train_seconds": float(sum(history["seconds"])),
              "built_at": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    if args.curve:
        write_curve(history, Path(args.curve).expanduser())
    best = Path(cfg.train.out_dir) / CHECKPOINT_BEST
    model, _, train_cfg, _ = load_checkpoint(best, device=device)
    split = "test" if len(cache.piece_indices("test")) else "validation"
    nats = metrics.held_out_nats(model, train_cfg, cache, split, device=device)["nats"]["total"]
    command = shlex.join(["python", "scripts/build_shipped_model.py", *(argv if argv is not None else sys.argv[1:])])
    export_inference(best, out, corpus=CORPUS, licence=LICENCE, held_out_nats_per_note=nats, held_out_split=split,
                     command=command, **record)
    print(describe_fit(fit_checkpoint_memory(out, cache, device, progress=not args.quiet)))  # its own piece memory
    model, _, _, state = load_checkpoint(out)  # as a user gets it: on the CPU, fp16 -> fp32
    s = state["summary"]
    print(f"shipped model: {out} ({out.stat().st_size / 1e6:.1f} MB, {sum(p.numel() for p in model.parameters()):,} "
          f"parameters)\ntrained {s['run_steps']} steps ({s['run_epochs']:.1f} epochs) in {s['run_train_seconds']:.0f} s of "
          f"steps and validation, {s['train_wall_seconds']:.0f} s in all "
          f"({100 * s['run_train_seconds'] / max(s['train_wall_seconds'], 1e-9):.1f}%), on {s['device_name']} "
          f"({s['precision']}); stopped by {s['stopped_by']}; best validation loss {s['best_val_loss']:.3f} nats/note at "
          f"step {s['steps']} (epoch {s['epochs']:.1f}), the checkpoint exported\n"
          f"held-out {split} split ({len(cache.piece_indices(split))} pieces): {nats:.3f} nats/note\ncommand: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
