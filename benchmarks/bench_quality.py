"""Time to quality: held-out nats/note after the same CPU training budget, on the seed's grid.

Every setup trains for ``--budget`` seconds on the chorale corpus's training pieces (as the
figures in docs/benchmarks.md) with the seed's bins, then predicts the *same* held-out notes:
every note of the test pieces that has at least 50 notes before it. The seed-style model sees the 50 notes before each target (its
window); the causal model reads the piece from its start, carrying its LSTM state, so its
context is the whole past (that is part of what the comparison measures). Count-based n-gram
baselines and the uniform model are scored on the same targets.

    python benchmarks/bench_quality.py --budget 180
    python benchmarks/bench_quality.py --source piano,performances --only "batch 64, window 64" --exclude "window 32" "window 128"
    python benchmarks/bench_quality.py --source /path/to/midis --steps 800 --seed-steps 1300   # fixed steps

``--source`` picks other corpora (sustain off), comma-separated: each gets its table, and two or more a
side-by-side table of the ratios (``performances``, the real performances, is skipped with a note when absent); ``--steps``/``--seed-steps`` train for a fixed
number of optimizer steps instead of seconds, to compare setups on a busy machine; ``--only`` and
``--exclude`` pick rows by substrings of their names, ``--skip-seed`` leaves out the seed-style
model (when comparing our setups with each other); each ``--variant KEY=VALUE[,KEY=VALUE]`` adds a
row: the default (the small preset) with those settings, e.g. ``--variant train.lr=3e-3``.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import BOTH_CORPORA, corpus_names, corpus_source, machine_header  # noqa: E402
from benchmarks.seed_reference import SEED_LR, SEED_WINDOW, seed_loader, seed_train_step  # noqa: E402
from melody_utils.model.checkpoint import load_checkpoint  # noqa: E402
from melody_utils.cli.args import parse_setting  # noqa: E402
from melody_utils.config import get_config  # noqa: E402
from melody_utils.data.corpus import TokenCache, prepare  # noqa: E402
from melody_utils.evaluate.likelihood import NGramModel, uniform_nll  # noqa: E402
from melody_utils.evaluate.report import context_nll  # noqa: E402
from melody_utils.model.lstm import build_model, count_parameters, seed_model_config  # noqa: E402
from melody_utils.device import cpu_bf16_wanted, cpu_has_native_bf16  # noqa: E402
from melody_utils.train.loop import train  # noqa: E402

CONTEXT = SEED_WINDOW  # targets need this many notes before them


def same_target_nll(model, cache: TokenCache, context: int = CONTEXT) -> dict:
    """Mean nats per head over every test note with >= ``context`` notes before it: causal models
    read the piece from its start with carried state, window models the ``context`` notes before."""
    cfg = get_config("small", **{"data.seed_window": context})
    r = context_nll(model, cfg, cache.vocab, cache.split_tokens("test"), context, batch_size=256)
    return {**r["nats"], "n_notes": r["n_notes"]}


def ngram_same_target(train_pieces, val_pieces, test_pieces, vocab, order: int, context: int = CONTEXT) -> dict:
    """The n-gram baseline on the same targets: each test piece from note ``context - 1`` on, so
    the notes it predicts are those with >= ``context`` notes before them (an n-gram reads at
    most two of them)."""
    model = NGramModel(vocab, order).fit(train_pieces).tune(val_pieces)
    r = model.nll([t[context - 1 :] for t in test_pieces if len(t) > context])
    return {**r["nats"], "n_notes": r["n_notes"]}


def train_seed_style(cache: TokenCache, budget: float, max_steps: int = 0) -> tuple[torch.nn.Module, int]:
    """The seed's loop for ``budget`` seconds, or for ``max_steps`` optimizer steps when > 0."""
    torch.manual_seed(0)
    model = build_model(seed_model_config("baseline"), cache.vocab, SEED_WINDOW)
    opt = torch.optim.Adam(model.parameters(), lr=SEED_LR)
    t0, steps = time.time(), 0
    done = (lambda: steps >= max_steps) if max_steps else (lambda: time.time() - t0 >= budget)  # noqa: E731
    while not done():
        for x, y in seed_loader(cache.split_tokens("train"), seed=steps):
            seed_train_step(model, opt, x, y)
            steps += 1
            if done():
                break
    return model, steps


def train_ours(cache: TokenCache, budget: float, overrides: dict, max_steps: int = 0) -> tuple[torch.nn.Module, int]:
    """Our training loop for ``budget`` seconds (the schedule annealing over it), or ``max_steps`` steps."""
    limit = {"train.max_steps": max_steps, "train.time_budget_s": 0.0} if max_steps else {"train.time_budget_s": budget}
    cfg = get_config("small", **{"data.bins": "seed", "train.device": "cpu", **limit, **overrides})
    with tempfile.TemporaryDirectory() as out:
        history = train(cfg, cache, out_dir=out, resume=False, progress=False)
        model, _, _, _ = load_checkpoint(Path(out) / "ckpt_best.pt")  # lowest validation loss
    return model, int(history["step"][-1]) if history["step"] else 0


SETUPS = {
    # name: overrides of the small preset (seed bins). The learning-rate schedule ends with the
    # budget (train.time_budget_s), or with --steps.
    "causal 2x256 chained, batch 64, window 64": {"model.arch": "causal", "train.cpu_bf16": False},  # fp32
    "causal 2x256 chained, batch 64, window 64, bf16 autocast": {"model.arch": "causal", "train.cpu_bf16": True},
    "causal 2x256 chained, batch 64, window 64, peak lr 2e-3 (the previous default)": {"model.arch": "causal", "train.lr": 2e-3},
    "causal 2x256 chained, batch 32, window 128": {"model.arch": "causal", "train.batch_size": 32, "data.window": 128, "data.stride": 64},
    # the small preset's default has interval inputs and chain_all; the rows below take them away
    "causal without interval inputs or chain_all (the previous default)": {"model.arch": "causal", "model.interval_emb": 0,
                                                                          "model.chain_all": False},
    "causal with interval inputs only": {"model.arch": "causal", "model.chain_all": False},
    "causal with chain_all only (duration sees pitch and step)": {"model.arch": "causal", "model.interval_emb": 0},
    # train.carry_state: streams of consecutive windows, the LSTM state carried from batch to batch
    # (truncated back-propagation), at the default's 4,096 notes per step
    "causal, state carried across windows (tbptt), window 64 x batch 64": {"model.arch": "causal", "train.carry_state": True},
    "causal, state carried across windows (tbptt), window 32 x batch 128": {"model.arch": "causal", "train.carry_state": True,
                                                                           "train.batch_size": 128, "data.window": 32,
                                                                           "data.stride": 16},
    "causal, state carried across windows (tbptt), window 128 x batch 32": {"model.arch": "causal", "train.carry_state": True,
                                                                           "train.batch_size": 32, "data.window": 128,
                                                                           "data.stride": 64},
    "MusicLSTM_Advanced (seed size)": {"model.arch": "advanced", "model.emb_pitch": 128, "model.emb_step": 128, "model.emb_dur": 128,
                                       "model.hidden": 512, "model.layers": 3, "model.dropout": 0.3, "model.chained": False,
                                       "train.lr": 1e-3, "train.batch_size": 64},
}


SEED_FIELDS = ("pitch", "step", "duration")  # what the seed's models predict: the ratio compares these


def format_table(rows) -> str:
    """The markdown table. "vs seed-style" compares pitch + step + duration, the three fields the
    seed-style model predicts; a corpus with dynamics adds a velocity head to our models, shown
    apart (its nats are not in the ratio)."""
    def seed3(r):
        return sum(r[f] for f in SEED_FIELDS)

    ref = next((seed3(r) for name, _, _, r in rows if name.startswith("seed-style")), float("nan"))
    lines = ["| model | parameters | steps | pitch | step | duration | pitch+step+duration | vs seed-style | velocity |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, params, steps, r in rows:
        rel = f"{100 * seed3(r) / ref:.1f}%" if math.isfinite(ref) else ""
        p = f"{params / 1e6:.2f} M" if params else ""
        vel = f"{r['velocity']:.3f}" if "velocity" in r else "–"
        lines.append(f"| {name} | {p} | {steps or ''} | {r['pitch']:.3f} | {r['step']:.3f} | {r['duration']:.3f} "
                     f"| {seed3(r):.3f} | {rel} | {vel} |")
    return "\n".join(lines)


def corpus_rows(source: str, args, variants: dict) -> list:
    """Every row of one corpus's table: the baselines, the seed-style model, our setups."""
    data_cfg = get_config("small", **{"data.bins": "seed", "data.source": source, "data.sustain": False}).data
    cache = prepare(data_cfg, progress=False)
    vocab = cache.vocab
    tr, va, te = cache.split_tokens("train"), cache.split_tokens("validation"), cache.split_tokens("test")
    rows = [("uniform", 0, 0, {**uniform_nll(vocab)["nats"]})]
    for order in (1, 2, 3):
        rows.append((f"{order}-gram (count-based)", 0, 0, ngram_same_target(tr, va, te, vocab, order)))
        print(f"  {rows[-1][0]}: {rows[-1][3]['total']:.3f}", flush=True)

    if not args.skip_seed:
        model, steps = train_seed_style(cache, args.budget, args.seed_steps)
        rows.append(("seed-style MusicLSTM (seed training loop)", count_parameters(model), steps, same_target_nll(model, cache)))
        print(f"  {rows[-1][0]}: {rows[-1][3]['total']:.3f}", flush=True)
    chosen = {name: o for name, o in SETUPS.items()
              if not (args.only and not any(s in name for s in args.only)) and not any(s in name for s in args.exclude)}
    for name, overrides in {**chosen, **variants}.items():
        if overrides.get("train.cpu_bf16", "auto") != "auto" and cpu_bf16_wanted(overrides["train.cpu_bf16"]) \
                and not cpu_has_native_bf16():
            print(f"  skipped {name!r}: this CPU has no native bf16 (AVX512-BF16 or AMX)", flush=True)
            continue
        model, steps = train_ours(cache, args.budget, {"train.epochs": args.epochs, **overrides}, args.steps)
        rows.append((name, count_parameters(model), steps, same_target_nll(model, cache)))
        print(f"  {name}: {rows[-1][3]['total']:.3f} (pitch+step+duration "
              f"{sum(rows[-1][3][f] for f in SEED_FIELDS):.3f}, {steps} steps)", flush=True)
    print(f"held-out targets: {rows[-1][3]['n_notes']:,} notes of {len(te)} test pieces; budget {args.budget:g} s per model")
    return rows


def side_by_side(tables: dict) -> str:
    """One row per setup, per corpus its pitch+step+duration nats/note and its ratio to that corpus's
    seed-style model (or 3-gram when the seed-style model was skipped)."""
    names = list(dict.fromkeys(name for rows in tables.values() for name, *_ in rows))
    head = "| model | " + " | ".join(f"{c}: pitch+step+duration | {c}: vs seed-style | {c}: vs 3-gram" for c in tables) + " |"
    lines = [head, "|---|" + "---:|" * (3 * len(tables))]
    for name in names:
        cells = []
        for rows in tables.values():
            by_name = {n: sum(r[f] for f in SEED_FIELDS) for n, _, _, r in rows}
            ref, gram = next((v for n, v in by_name.items() if n.startswith("seed-style")), None), by_name.get("3-gram (count-based)")
            v = by_name.get(name)
            cells += ["–"] * 3 if v is None else [f"{v:.3f}", f"{100 * v / ref:.1f}%" if ref else "–", f"{100 * v / gram:.1f}%" if gram else "–"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=180.0, help="training seconds per setup")
    ap.add_argument("--epochs", type=int, default=30, help="epochs the cosine schedule spans (the budget stops earlier)")
    ap.add_argument("--only", nargs="*", help="substrings of setup names to run (default: all)")
    ap.add_argument("--exclude", nargs="*", default=(), help="substrings of setup names to leave out")
    ap.add_argument("--skip-seed", action="store_true",
                    help="leave out the seed-style model (no 'vs seed-style' column; compare with a recorded run)")
    ap.add_argument("--source", default="chorales",
                    help="corpora, comma-separated, side by side: 'chorales', 'piano' (the embedded corpora), 'performances' "
                         f"(real performances, skipped when absent; '{BOTH_CORPORA}': both columns) or a folder of MIDI files "
                         "(sustain off)")
    ap.add_argument("--steps", type=int, default=0,
                    help="train our setups for this many optimizer steps instead of --budget seconds (a shared machine)")
    ap.add_argument("--seed-steps", type=int, default=0, help="the same for the seed-style model")
    ap.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                    help="a further row: the default with these settings (repeatable; not filtered by --only)")
    args = ap.parse_args(argv)
    base = get_config("small")
    variants = {f"the default with {v}": {"model.arch": "causal", **dict(parse_setting(base, item) for item in v.split(","))}
                for v in args.variant}
    print(machine_header("bench_quality", argv))
    tables = {}
    for name in corpus_names(args.source):
        source, note = corpus_source(name)
        print(f"corpus {note}", flush=True)
        if source is not None:
            tables[name] = corpus_rows(source, args, variants)
            print(format_table(tables[name]))
            print()
    if len(tables) > 1:
        print(side_by_side(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
