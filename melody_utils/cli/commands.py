"""Command line: ``python -m melody_utils {prepare,train,generate,quickstart,evaluate}``.

    python -m melody_utils quickstart                 # embedded corpus -> small model -> MIDI, minutes on a CPU
    python -m melody_utils prepare --source data/my_midis
    python -m melody_utils train --preset colab --epochs 30
    python -m melody_utils train --init pretrained --source my_midis   # fine-tune the shipped model
    python -m melody_utils generate --temperature 0.9 --top-p 0.95 --n-notes 300 --primer test

Sizes come from a preset (``--preset``, default ``$MELODY_PRESET`` or ``small``); the flags
below override single settings, and ``--set section.field=value`` any other one. Bad input
exits non-zero with one ``error: ...`` line naming the parameter or file and the fix.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from pathlib import Path

from ..display import audio
from ..data import corpus
from ..evaluate import report as metrics
from ..model import checkpoint as ckpts
from ..model.checkpoint import CHECKPOINT_BEST, CHECKPOINT_LAST, default_checkpoint, load_checkpoint
from .args import (MEMORY, NON_NEGATIVE_FLOAT, NON_NEGATIVE_INT, POSITIVE_FLOAT, POSITIVE_INT, PROBABILITY, Parser,
                        at_least_two, number, number_list, parse_setting)
from ..data.composers import describe_composer
from ..config import DEFAULT_OUTPUT_NAME, PRESET_ENV_VAR, PRESETS, Config, get_config
from ..generate.controls import MAX_SECONDS, add_control_arguments, controls_from_args
from ..device import resolve_device
from ..generate.memory import MAX_MEMORY
from ..music.midi import notes_to_midi
from ..evaluate.originality import OriginalityIndex, describe
from ..generate.sample import model_generate_fn, primer_length, validate_sampling
from ..evaluate.sweep import SWEEP_TEMPERATURES, SWEEP_TOP_PS
from ..music.tokens import Vocab
from ..train.loop import HISTORY_FILE, train
from ..generate.primer import primer_from_file

PRIMER_CHOICES = "a .mid/.midi file, 'test' (the start of a held-out test piece) or 'none' (one default note)"


# ---------------------------------------------------------------- parser


def _base_args(p: argparse.ArgumentParser):
    g = p.add_argument_group("settings (override the preset)")
    g.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help=f"size preset (default: ${PRESET_ENV_VAR} or small)")
    g.add_argument("--out-dir", help="folder for checkpoints, history and (by default) the generated MIDI")
    g.add_argument("--cache-dir", help="folder of token caches (default: data/cache)")
    g.add_argument("--device", help="'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1', ...")
    g.add_argument("--seed", type=int, help="random seed (training: weights and data order; generation: sampling)")
    g.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="any other setting, e.g. --set model.hidden=128 (repeatable)")
    g.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    return g


def _data_args(g) -> None:
    g.add_argument("--source", help="'auto' (MAESTRO if downloaded, else the embedded piano corpus), 'piano' (alias 'embedded'), "
                   "'chorales', 'maestro', or a folder of MIDI files (a MAESTRO folder anywhere; its split from a "
                   "metadata.csv or train/ validation/ test/ subfolders)")
    g.add_argument("--bins", choices=("log", "seed"), help="time bins: 'log' (fitted, exact chords) or the seed notebook's grid")


def _train_args(g) -> None:
    g.add_argument("--arch", choices=("causal", "advanced", "baseline"), help="model: stateful causal LSTM, or the seed's MusicLSTM_Advanced / MusicLSTM")
    g.add_argument("--epochs", type=POSITIVE_INT, help="training epochs")
    g.add_argument("--max-steps", type=NON_NEGATIVE_INT, help="stop after this many optimizer steps (0 = no limit)")
    g.add_argument("--time-budget", type=NON_NEGATIVE_FLOAT, metavar="SECONDS", help="stop training after this many seconds (0 = no limit)")
    g.add_argument("--batch-size", type=POSITIVE_INT, help="windows per batch")
    g.add_argument("--lr", type=POSITIVE_FLOAT, help="peak learning rate")
    g.add_argument("--no-resume", action="store_true", help="start over instead of resuming from OUT_DIR/ckpt_last.pt")


def _init_arg(g) -> None:
    g.add_argument("--init", metavar="CHECKPOINT", help="fine-tune: start from this checkpoint's weights, model and "
                   "vocabulary ('pretrained': the shipped model); resuming OUT_DIR's own run still comes first")


def _generate_args(p: argparse.ArgumentParser, with_checkpoint: bool = True) -> None:
    g = p.add_argument_group("generation")
    if with_checkpoint:
        g.add_argument("--checkpoint", help="checkpoint to sample from (default: OUT_DIR/ckpt_best.pt, else ckpt_last.pt, "
                       "else the shipped model)")
    g.add_argument("--temperature", type=POSITIVE_FLOAT, help="sampling temperature, > 0 (lower = safer)")
    g.add_argument("--top-k", type=NON_NEGATIVE_INT, help="keep the k most likely ids (0 = off, 1 = greedy)")
    g.add_argument("--top-p", type=PROBABILITY, help="nucleus mass in (0, 1] (1 = off)")
    g.add_argument("--memory", type=MEMORY, help=f"piece memory: 0 = off, 1 = the fitted weights, up to {MAX_MEMORY:g} = more repeats")
    g.add_argument("--n-notes", type=POSITIVE_INT, help="notes to generate")
    g.add_argument("--primer", default="test", help=f"what the music continues: {PRIMER_CHOICES} (default: test)")
    g.add_argument("--primer-notes", type=POSITIVE_INT, help="notes taken from the primer")
    g.add_argument("--keep-primer", action="store_true", help="put the primer notes at the start of the output")
    g.add_argument("--output", help=f"MIDI file to write (default: OUT_DIR/{DEFAULT_OUTPUT_NAME})")
    g.add_argument("--seconds", type=number(float, 0.0, MAX_SECONDS, lo_open=True, what=f"in (0, {MAX_SECONDS:g}]"),
                   help="length of music in seconds (generate until the onsets pass it; replaces --n-notes)")
    g.add_argument("--composer", metavar="NAME", help="play like this composer (a model trained with composers; 'any' = none)")
    g.add_argument("--wav", metavar="PATH", help="also render the music to this WAV file (the notebooks' synthesizer)")
    g.add_argument("--bin-centres", action="store_true", default=None,
                   help="play each step, duration and velocity at its bin's centre (the grid) instead of a value "
                        "drawn inside the bin as the training corpus played it")
    add_control_arguments(p.add_argument_group("controls (see melody_utils.controls)"))


def _evaluate_args(parser) -> None:
    """Flags of the ``evaluate`` command (besides --checkpoint and the common ones)."""
    g = parser.add_argument_group("evaluation")
    g.add_argument("--samples", type=at_least_two, default=8, help="pieces to generate for the statistics (default 8)")
    g.add_argument("--n-notes", type=POSITIVE_INT, help="notes per generated piece (default: the checkpoint's sample.n_notes)")
    g.add_argument("--split", choices=("test", "validation"), default="test", help="held-out pieces to score (default test)")
    g.add_argument("--context", type=NON_NEGATIVE_INT, default=0, metavar="N",
                   help="score only notes with at least N notes before them, so causal and window models are scored "
                        "on the same notes (default 0: every note the model can score)")
    g.add_argument("--temperature", type=POSITIVE_FLOAT, help="sampling temperature (default: the checkpoint's)")
    g.add_argument("--top-k", type=NON_NEGATIVE_INT, help="top-k filter (0 = off; default: the checkpoint's)")
    g.add_argument("--top-p", type=PROBABILITY, help="nucleus mass in (0, 1] (default: the checkpoint's)")
    g.add_argument("--memory", type=MEMORY, help=f"piece memory strength in [0, {MAX_MEMORY:g}] (default: the checkpoint's)")
    g.add_argument("--report", metavar="PATH", help="also write the report as markdown to PATH, the JSON and PNG figures beside it")
    g = parser.add_argument_group("sampling sweep")
    g.add_argument("--sweep", action="store_true",
                   help="also generate --samples pieces per temperature x top_p setting, score each setting against the "
                        "held-out pieces and suggest the best one")
    g.add_argument("--sweep-temperatures", type=number_list(POSITIVE_FLOAT, "0.8,1.0"), metavar="T1,T2,...",
                   help=f"temperatures of the sweep (implies --sweep; default {','.join(map(str, SWEEP_TEMPERATURES))})")
    g.add_argument("--sweep-top-ps", type=number_list(PROBABILITY, "0.9,1.0"), metavar="P1,P2,...",
                   help=f"top_p values of the sweep (implies --sweep; default {','.join(map(str, SWEEP_TOP_PS))})")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m melody_utils", formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Melody Forge: train LSTMs on classical piano MIDI and generate new pieces.",
                     epilog="examples:\n" + __doc__.split("\n\n")[1] + "\n\nRun `python -m melody_utils COMMAND --help` for a command's options.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    p = sub.add_parser("prepare", help="parse the corpus and build the token cache")
    _data_args(_base_args(p))
    p.add_argument("--rebuild", action="store_true", help="rebuild the cache even if one exists")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train a model (resumes from OUT_DIR/ckpt_last.pt)")
    g = _base_args(p)
    _data_args(g)
    _train_args(g)
    _init_arg(g)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help="sample a MIDI file from a checkpoint")
    _base_args(p)
    _generate_args(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("quickstart", help="embedded corpus -> train a small causal model -> generate a MIDI file")
    g = _base_args(p)
    _data_args(g)
    _train_args(g)
    _generate_args(p, with_checkpoint=False)
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("evaluate", help="score a checkpoint (see melody_utils.evaluate.report)")
    _base_args(p)
    p.add_argument("--checkpoint", help="checkpoint to evaluate (default: OUT_DIR/ckpt_best.pt, else the shipped model)")
    _evaluate_args(p)
    p.set_defaults(func=cmd_evaluate)
    return parser


# ---------------------------------------------------------------- settings


def config_from_args(args, **defaults) -> Config:
    """The preset, then ``defaults`` (a command's own), then the flags, then ``--set`` items."""
    flag_keys = {
        "source": "data.source", "bins": "data.bins", "arch": "model.arch", "epochs": "train.epochs",
        "max_steps": "train.max_steps", "time_budget": "train.time_budget_s", "batch_size": "train.batch_size",
        "lr": "train.lr", "device": "train.device", "out_dir": "train.out_dir", "temperature": "sample.temperature",
        "top_k": "sample.top_k", "top_p": "sample.top_p", "n_notes": "sample.n_notes", "primer_notes": "sample.primer_notes",
        "memory": "sample.memory", "bin_centres": "sample.bin_centres"}
    flags = {key: getattr(args, name, None) for name, key in flag_keys.items()}  # commands lack some flags
    flags["train.seed"] = flags["sample.seed"] = args.seed
    changes = dict(defaults)
    changes.update({k: v for k, v in flags.items() if v is not None})
    if changes.get("train.out_dir"):
        changes["train.out_dir"] = str(Path(changes["train.out_dir"]).expanduser())
    cfg = get_config(args.preset, **changes)  # the preset's sizes for the chosen model, then these changes
    settings = dict(parse_setting(cfg, item) for item in args.set)
    return cfg.override(**settings) if settings else cfg


def _explicit_settings(args, cfg: Config) -> dict:
    """The settings the user gave by flag or --set (not the preset's), dotted keys -> values."""
    flags = {"data.bins": getattr(args, "bins", None), "model.arch": getattr(args, "arch", None)}
    return {**{k: v for k, v in flags.items() if v is not None}, **dict(parse_setting(cfg, item) for item in args.set)}


def output_path(cfg: Config, args) -> Path:
    """Where the MIDI goes: --output, else OUT_DIR/improved_generated_output.midi when --out-dir is
    given, else the config's default. Checked before any work is done."""
    if getattr(args, "output", None):
        path = Path(args.output).expanduser()
    elif args.out_dir:
        path = Path(cfg.train.out_dir) / DEFAULT_OUTPUT_NAME
    else:
        path = Path(cfg.sample.output)
    if path.is_dir():
        raise ValueError(f"--output {path} is a folder; give a file name, e.g. {path / DEFAULT_OUTPUT_NAME}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the nearest existing folder decides whether we may create the rest
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"--output {path}: cannot write to folder {folder}; choose a writable path with --output")
    return path


# ---------------------------------------------------------------- commands


def _prepare(cfg: Config, args, rebuild: bool = False, vocab=None):
    return corpus.prepare(cfg.data, cache_dir=args.cache_dir, progress=not args.quiet, rebuild=rebuild, vocab=vocab)


def _describe_cache(cache) -> str:
    splits = {s: len(cache.piece_indices(s)) for s in corpus.SPLITS}
    per_split = ", ".join(f"{n} {s}" for s, n in splits.items())
    return (f"{len(cache)} pieces ({per_split}), {len(cache.tokens):,} notes; vocabulary {cache.vocab.name}: "
            f"{dict(zip(cache.vocab.fields, cache.vocab.sizes))}\ncache: {cache.path}")


def cmd_prepare(args) -> int:
    cfg = config_from_args(args)
    cache = _prepare(cfg, args, rebuild=args.rebuild)
    print(_describe_cache(cache))
    return 0


def _train(cfg: Config, args, init=None, vocab=None):
    cache = _prepare(cfg, args, vocab=vocab)
    out_dir = Path(cfg.train.out_dir)
    history = train(cfg, cache, out_dir, resume=not args.no_resume, progress=not args.quiet, init=init)
    if history["val_loss"]:
        print(f"trained {history['epoch'][-1]:.2f} epochs ({history['step'][-1]} steps): "
              f"train loss {history['train_loss'][-1]:.3f}, validation loss {history['val_loss'][-1]:.3f} nats/note")
    print(f"checkpoints: {out_dir / CHECKPOINT_BEST} (best), {out_dir / CHECKPOINT_LAST} (last)\n"
          f"history: {out_dir / HISTORY_FILE}")
    return cache


def cmd_train(args) -> int:
    cfg = config_from_args(args)
    if not args.init:
        _train(cfg, args)
        return 0
    init = ckpts.init_checkpoint(args.init)  # fine-tuning: the checkpoint's model and vocabulary, the user's corpus
    ckpt = ckpts.read_checkpoint(init)
    cfg = ckpts.init_config(ckpt, cfg, _explicit_settings(args, cfg), init)
    if not args.quiet:
        print(f"fine-tuning {init} ({ckpts.describe(ckpt)}) on {cfg.data.source}")
    _train(cfg, args, init=init, vocab=Vocab.from_dict(ckpt["vocab"]))
    return 0


def load_primer(spec: str, train_cfg: Config, vocab, n_notes: int, args, cache=None):
    """--primer value -> Notes (the first ``n_notes`` notes) or None."""
    spec = (spec or "test").strip()
    if spec.lower() == "none":
        return None, "none (one default note)"
    if spec.lower() == "test":
        if cache is None:
            try:
                cache = corpus.prepare(train_cfg.data, cache_dir=args.cache_dir, progress=not args.quiet, vocab=vocab)
            except FileNotFoundError as exc:
                raise FileNotFoundError(f"--primer test needs the corpus the model was trained on: {exc}; "
                                        f"or pass --primer none or --primer a .mid file") from None
        try:
            i = cache.held_out_piece()
        except ValueError as exc:
            raise ValueError(f"--primer test: {exc}") from None
        return cache.notes(i)[:n_notes], f"{cache.pieces[i]['name']} ({cache.pieces[i]['split']} split)"
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"--primer {spec}: file not found; pass {PRIMER_CHOICES}")
    try:
        return primer_from_file(path, vocab, n_notes, train_cfg.data.sustain), str(path)
    except ValueError as exc:
        raise ValueError(f"--primer: {exc}") from None


def _generate(cfg: Config, args, checkpoint: Path, output: Path, cache=None) -> Path:
    s = cfg.sample
    validate_sampling(s.temperature, s.top_k, s.top_p)
    device = resolve_device(cfg.train.device)
    model, vocab, train_cfg, state = load_checkpoint(checkpoint, device=device)
    primer, primer_name = load_primer(args.primer, train_cfg, vocab, primer_length(model, s.primer_notes), args, cache)
    t0 = time.time()
    keep = s.keep_primer or args.keep_primer
    info = {}
    generate_fn = model_generate_fn(model, vocab.on_grid() if s.bin_centres else vocab, keep_primer=keep, device=str(device), progress=not args.quiet,
                                    controls=args.controls, seconds=args.seconds, info=info, composer=args.composer, memory=s.memory)
    notes = generate_fn(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, n_notes=s.n_notes, seed=s.seed,
                        primer=primer)
    notes_to_midi(notes, output)
    trained = state.get("history", {}).get("epoch") or [0]
    n_new = len(notes) - (len(primer) if keep and primer is not None else 0)
    print(f"generated {n_new} notes ({notes.seconds():.0f} s of music) in {time.time() - t0:.1f} s from "
          f"{checkpoint} ({trained[-1]:.2f} epochs, {state.get('step', 0)} steps); primer: {primer_name}\n"
          f"grammar mask: removed {100 * info['masked_mass']:.2f}% of the probability per note (notes at the "
          f"previous onset not above it)\nMIDI: {output}")
    _after_generate(notes, vocab, train_cfg, args, cache)
    return output


def _after_generate(notes, vocab, train_cfg: Config, args, cache=None) -> None:
    """The controls in effect, --wav, and the originality line when the training corpus's token
    cache is at hand."""
    if args.controls is not None:
        print(f"controls: {args.controls.describe()}")
    if args.composer is not None:
        print(f"composer: {describe_composer(args.composer, vocab.composers)}")
    if args.wav:
        print(f"WAV: {audio.write_wav(audio.synthesize(notes), Path(args.wav).expanduser())}")
    if cache is None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            cache = corpus.prepare(train_cfg.data, cache_dir=args.cache_dir, progress=False, vocab=vocab)
    if cache is not None and cache.vocab == vocab:
        print(describe(OriginalityIndex.for_cache(cache).check(vocab.encode(notes))))


def _checkpoint_arg(cfg: Config, args) -> Path:
    """--checkpoint (an error when missing), else OUT_DIR's own, else the shipped model (said in one line)."""
    if args.checkpoint:
        return Path(args.checkpoint).expanduser()
    checkpoint, note = ckpts.generation_checkpoint(cfg.train.out_dir)
    if note:
        print(note)
    return checkpoint


def cmd_generate(args) -> int:
    cfg = config_from_args(args)
    output = output_path(cfg, args)
    _generate(cfg, args, _checkpoint_arg(cfg, args), output)
    return 0


QUICKSTART_BUDGET_S = 240  # quickstart trains at most this long unless --time-budget says otherwise


def cmd_quickstart(args) -> int:
    # The time budget keeps "a few minutes" true for every --arch: the seed's window models learn
    # from stride-1 windows, so one of their epochs alone can take longer than that on a CPU.
    cfg = config_from_args(args, **{"data.source": "embedded", "model.arch": "causal",
                                    "train.time_budget_s": QUICKSTART_BUDGET_S})
    output = output_path(cfg, args)  # fail on an unwritable output before training
    budget = f", at most {cfg.train.time_budget_s:g} s" if cfg.train.time_budget_s else ""
    print(f"quickstart: preset {cfg.preset}, source {cfg.data.source}, {cfg.model.arch} model, "
          f"{cfg.train.epochs} epochs{budget}, out_dir {cfg.train.out_dir}")
    cache = _train(cfg, args)
    _generate(cfg, args, default_checkpoint(cfg.train.out_dir), output, cache)
    print(f"listen: open {output} in any MIDI player, or render it in notebooks/04")
    print("\n".join(metrics.compare_with_shipped(default_checkpoint(cfg.train.out_dir), cache, resolve_device(cfg.train.device))))
    return 0


def cmd_evaluate(args) -> int:
    """The CLI's ``evaluate`` subcommand: print the report; write it (JSON and figures too) with --report.

    The checkpoint is ``--checkpoint``, else OUT_DIR/ckpt_best.pt; the device ``--device`` (default
    auto: CUDA when available); the cache is the checkpoint's, under ``--cache-dir`` when given.
    ``--sweep`` (or a sweep grid flag) adds the sampling sweep.
    """
    cfg = config_from_args(args)
    checkpoint = _checkpoint_arg(cfg, args)
    report_path = args.report
    if report_path:  # checked before the evaluation, which may take minutes
        report_path = Path(report_path).expanduser()
        report_path = report_path if report_path.suffix else report_path.with_suffix(".md")
        if report_path.is_dir():
            raise ValueError(f"--report {report_path} is a folder; give a file name, e.g. {report_path / 'evaluation.md'}")
    sweep = None
    if args.sweep or args.sweep_temperatures or args.sweep_top_ps:
        sweep = {"temperatures": args.sweep_temperatures, "top_ps": args.sweep_top_ps}  # None: the default grid
    result = metrics.evaluate(
        checkpoint, n_samples=args.samples, n_notes=args.n_notes, split=args.split, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, device=str(resolve_device(cfg.train.device)),
        seed=args.seed if args.seed is not None else 0, cache_dir=args.cache_dir, progress=not args.quiet, sweep=sweep,
        context=args.context, memory=args.memory,
    )
    if not report_path:
        print(metrics.format_report(result))
        return 0
    report, paths = metrics.write_report(result, report_path)
    print(report)
    print("\n".join(f"{name}: {path}" for name, path in paths.items()))
    return 0


# ---------------------------------------------------------------- entry point


def main(argv=None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 bad input or failure, 2 bad usage, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        try:  # the control flags checked together, still a usage error (exit 2)
            args.controls = controls_from_args(args)
        except ValueError as exc:
            parser.error(str(exc))
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        if int(os.environ.get("RANK", "0") or 0) > 0:
            # torchrun's other processes: rank 0 speaks for the run; errors still reach stderr
            args.quiet = True
            with contextlib.redirect_stdout(io.StringIO()):
                return args.func(args)
        return args.func(args)
    except KeyboardInterrupt:
        print("\ninterrupted; completed checkpoints are kept: run the same command again to resume", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:  # FileNotFoundError, PermissionError, MidiError, ... carry the fix
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        print(f"error: the package {exc.name!r} is missing; install the requirements: pip install -r requirements.txt", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
