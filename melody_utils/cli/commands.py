"""Command line: ``python -m melody_utils {prepare,train,generate,quickstart,evaluate}``.

    python -m melody_utils quickstart                 # embedded corpus -> small model -> MIDI, minutes on a CPU
    python -m melody_utils prepare --source data/my_midis
    python -m melody_utils train --preset colab --epochs 30
    python -m melody_utils train --init pretrained --source my_midis   # fine-tune the shipped model
    python -m melody_utils generate --temperature 0.9 --top-p 0.95 --n-notes 300 --primer test
    python -m melody_utils generate --primer my_piece.mid --primer-seconds 20 --num-outputs 3 --wav take.wav

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

from ..checks import Limit
from ..config import DEFAULT_OUTPUT_NAME, MAX_MEMORY, MAX_N_NOTES, PRESET_ENV_VAR, PRESETS, Config, SampleConfig, \
    TrainConfig, get_config
from ..data import corpus
from ..data.composers import describe_composer
from ..device import resolve_device
from ..display import audio
from ..display.soundfonts import find_soundfont
from ..evaluate import report
from ..evaluate.memory_fit import describe_fit, fit_checkpoint_memory
from ..evaluate.originality import OriginalityIndex, describe
from ..evaluate.sweep import SWEEP_TEMPERATURES, SWEEP_TOP_PS
from ..generate.primer import MAX_PRIMER_NOTES
from ..generate.settings import SamplingSettings
from ..generate.takes import MAX_TAKES, generate_takes, take_paths
from ..model import checkpoint as ckpts
from ..model.checkpoint import CHECKPOINT_BEST, CHECKPOINT_LAST, default_checkpoint, load_checkpoint
from ..music.midi import MAX_MIDI_BYTES, notes_to_midi
from .outputs import check_settings, force_arg, report_path, take_outputs, wav_paths
from .primers import PRIMER_CHOICES, load_primer, primer_notes
from ..music.tokens import Vocab
from ..train import runs
from ..train.loop import HISTORY_FILE, train
from .args import (AT_LEAST_TWO, NON_NEGATIVE_INT, Parser, add_control_arguments, check_applicable, controls_from_args, flag,
                   number_list, parse_setting, setting_flag)

PRIMER_SECONDS = flag(Limit("float", "a number of seconds > 0", 0.0, lo_open=True))
NUM_OUTPUTS = flag(Limit("int", f"an integer in [1, {MAX_TAKES}]", 1, MAX_TAKES))


# ---------------------------------------------------------------- parser


def _base_args(p: argparse.ArgumentParser):
    g = p.add_argument_group("settings (override the preset)")
    g.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help=f"size preset (default: ${PRESET_ENV_VAR} or small)")
    g.add_argument("--out-dir", help="folder for checkpoints, history and (by default) the generated MIDI")
    g.add_argument("--cache-dir", help="folder of token caches (default: data/cache)")
    g.add_argument("--device", help="'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1', ...")
    g.add_argument("--seed", type=setting_flag(TrainConfig, "seed"), help="random seed (training: weights and data order; generation: sampling)")
    g.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="any other setting, e.g. --set model.hidden=128 (repeatable)")
    g.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    return g


def _data_args(g) -> None:
    g.add_argument("--source", help="'auto' (MAESTRO if downloaded, else the embedded piano corpus), 'piano' (alias 'embedded'), "
                   "'chorales', 'maestro', or a folder of MIDI files (a MAESTRO folder anywhere; its split from a "
                   f"metadata.csv or train/ validation/ test/ subfolders; files over {MAX_MIDI_BYTES >> 20} MB are skipped)")
    g.add_argument("--bins", choices=("log", "seed"), help="time bins: 'log' (fitted, exact chords) or the seed notebook's grid")


def _train_args(g) -> None:
    g.add_argument("--arch", choices=("causal", "advanced", "baseline"), help="model: stateful causal LSTM, or the seed's MusicLSTM_Advanced / MusicLSTM")
    g.add_argument("--epochs", type=setting_flag(TrainConfig, "epochs"), help="training epochs")
    g.add_argument("--max-steps", type=setting_flag(TrainConfig, "max_steps"), help="stop after this many optimizer steps (0 = no limit)")
    g.add_argument("--time-budget", type=setting_flag(TrainConfig, "time_budget_s"), metavar="SECONDS", help="stop training after this many seconds (0 = no limit)")
    g.add_argument("--batch-size", type=setting_flag(TrainConfig, "batch_size"), help="windows per batch")
    g.add_argument("--lr", type=setting_flag(TrainConfig, "lr"), help="peak learning rate")
    g.add_argument("--no-resume", action="store_true", help="start over instead of resuming from OUT_DIR/ckpt_last.pt")


def _init_arg(g) -> None:
    g.add_argument("--init", metavar="CHECKPOINT", help="fine-tune: start from this checkpoint's weights, model and "
                   "vocabulary ('pretrained': the shipped model); resuming OUT_DIR's own run still comes first")


def _generate_args(p: argparse.ArgumentParser, with_checkpoint: bool = True) -> None:
    g = p.add_argument_group("generation")
    if with_checkpoint:
        g.add_argument("--checkpoint", help="checkpoint to sample from (default: the newest run's ckpt_best.pt, else "
                       "ckpt_last.pt, in OUT_DIR or its run-* folders; else the shipped model)")
    g.add_argument("--temperature", type=setting_flag(SampleConfig, "temperature"), help="sampling temperature, > 0 (lower = safer)")
    g.add_argument("--top-k", type=setting_flag(SampleConfig, "top_k"), help="keep the k most likely ids (0 = off, 1 = greedy)")
    g.add_argument("--top-p", type=setting_flag(SampleConfig, "top_p"), help="nucleus mass in (0, 1] (1 = off)")
    g.add_argument("--memory", type=setting_flag(SampleConfig, "memory"), help=f"piece memory: 0 = off, 1 = the fitted weights, up to {MAX_MEMORY:g} = more repeats")
    g.add_argument("--n-notes", type=setting_flag(SampleConfig, "n_notes"), help=f"notes to generate (at most {MAX_N_NOTES:,})")
    g.add_argument("--primer", default="test", help=f"what the music continues: {PRIMER_CHOICES} (default: test)")
    g.add_argument("--primer-notes", type=setting_flag(SampleConfig, "primer_notes"), help="notes taken from the primer: "
                   f"the first of a test piece, the last of a file (default: the preset's for test, {MAX_PRIMER_NOTES} for a file)")
    g.add_argument("--primer-seconds", type=PRIMER_SECONDS, metavar="S", help="with --primer FILE: the file's last S "
                   "seconds prime the model and the music continues after them (default: the whole file)")
    g.add_argument("--keep-primer", action="store_true", help="put the primer notes at the start of the output")
    g.add_argument("--num-outputs", type=NUM_OUTPUTS, default=1, metavar="N",
                   help="N different pieces in one batched call, written to numbered files (OUTPUT_1.midi, ...)")
    g.add_argument("--output", help=f"MIDI file to write (default: OUT_DIR/{DEFAULT_OUTPUT_NAME})")
    g.add_argument("--seconds", type=setting_flag(SamplingSettings, "seconds"),
                   help="length of music in seconds (generate until the onsets pass it; replaces --n-notes)")
    g.add_argument("--composer", metavar="NAME", help="play like this composer (a model trained with composers; 'any' = none)")
    g.add_argument("--wav", metavar="PATH", help="also render the music to this WAV file, 44.1 kHz stereo (the notebooks' "
                   "synthesizer; numbered like the MIDI files with --num-outputs)")
    g.add_argument("--soundfont", metavar="PATH", help="the .sf2/.sf3 SoundFont --wav plays (default: the best on this "
                   "machine; see melody_utils.display.soundfonts)")
    g.add_argument("--bin-centres", action="store_true", default=None,
                   help="play each step, duration and velocity at its bin's centre (the grid) instead of a value "
                        "drawn inside the bin as the training corpus played it")
    add_control_arguments(p.add_argument_group("controls (see melody_utils.generate.controls)"))


def _evaluate_args(parser) -> None:
    """Flags of the ``evaluate`` command (besides --checkpoint and the common ones)."""
    g = parser.add_argument_group("evaluation")
    g.add_argument("--samples", type=AT_LEAST_TWO, default=8, help="pieces to generate for the statistics (default 8)")
    g.add_argument("--n-notes", type=setting_flag(SampleConfig, "n_notes"), help=f"notes per generated piece, at most "
                   f"{MAX_N_NOTES:,} (default: the checkpoint's sample.n_notes)")
    g.add_argument("--split", choices=("test", "validation"), default="test", help="held-out pieces to score (default test)")
    g.add_argument("--context", type=NON_NEGATIVE_INT, default=0, metavar="N",
                   help="score only notes with at least N notes before them, so causal and window models are scored "
                        "on the same notes (default 0: every note the model can score)")
    g.add_argument("--temperature", type=setting_flag(SampleConfig, "temperature"), help="sampling temperature (default: the checkpoint's)")
    g.add_argument("--top-k", type=setting_flag(SampleConfig, "top_k"), help="top-k filter (0 = off; default: the checkpoint's)")
    g.add_argument("--top-p", type=setting_flag(SampleConfig, "top_p"), help="nucleus mass in (0, 1] (default: the checkpoint's)")
    g.add_argument("--memory", type=setting_flag(SampleConfig, "memory"), help=f"piece memory strength in [0, {MAX_MEMORY:g}] (default: the checkpoint's)")
    g.add_argument("--report", metavar="PATH", help="also write the report as markdown to PATH, the JSON and PNG figures beside it")
    g = parser.add_argument_group("sampling sweep")
    g.add_argument("--sweep", action="store_true",
                   help="also generate --samples pieces per temperature x top_p setting, score each setting against the "
                        "held-out pieces and suggest the best one")
    g.add_argument("--sweep-temperatures", type=number_list(setting_flag(SampleConfig, "temperature"), "0.8,1.0"), metavar="T1,T2,...",
                   help=f"temperatures of the sweep (implies --sweep; default {','.join(map(str, SWEEP_TEMPERATURES))})")
    g.add_argument("--sweep-top-ps", type=number_list(setting_flag(SampleConfig, "top_p"), "0.9,1.0"), metavar="P1,P2,...",
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
    force_arg(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("quickstart", help="embedded corpus -> train a small causal model -> generate a MIDI file")
    g = _base_args(p)
    _data_args(g)
    _train_args(g)
    _generate_args(p, with_checkpoint=False)
    force_arg(p)
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("evaluate", help="score a checkpoint (see melody_utils.evaluate.report)")
    _base_args(p).add_argument("--source", help="the corpus to score, tokenized with the checkpoint's vocabulary "
                               "(default: the checkpoint's own): the same values as prepare --source")
    p.add_argument("--checkpoint", help="checkpoint to evaluate (default: the newest run's ckpt_best.pt in OUT_DIR or its "
                   "run-* folders, else the shipped model)")
    _evaluate_args(p)
    force_arg(p)
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
    check_applicable(getattr(args, "command", ""), settings)
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
    take_outputs(path, args)
    return path


# ---------------------------------------------------------------- commands


def _prepare(cfg: Config, args, rebuild: bool = False, vocab=None):
    cache = corpus.prepare(cfg.data, cache_dir=args.cache_dir, progress=not args.quiet, rebuild=rebuild, vocab=vocab)
    skipped = cache.report.skipped
    if args.quiet and skipped:  # not progress: what the corpus lacks is said even with --quiet
        print(f"note: the token cache leaves out {len(skipped)} file(s) that could not be used:\n"
              + "\n".join(f"  {p}: {r}" for p, r in skipped))
    return cache


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
    if int(os.environ.get("RANK", "0") or 0) == 0 and default_checkpoint(out_dir).is_file():  # the end of training:
        print(describe_fit(fit_checkpoint_memory(default_checkpoint(out_dir), cache,  # this model's piece memory
                                                 resolve_device(cfg.train.device), progress=not args.quiet)))
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


def _generate(cfg: Config, args, checkpoint: Path, output: Path, cache=None) -> list[Path]:
    s = cfg.sample
    if args.soundfont and not args.wav:
        raise ValueError("--soundfont plays the --wav rendering: add --wav PATH, or drop --soundfont")
    if args.soundfont:
        find_soundfont(args.soundfont)  # a missing SoundFont fails before the work
    device = resolve_device(cfg.train.device)
    model, vocab, train_cfg, state = load_checkpoint(checkpoint, device=device)
    primer, primer_name = load_primer(args.primer, train_cfg, vocab, primer_notes(model, cfg, args), args, cache)
    t0 = time.time()
    keep = s.keep_primer or args.keep_primer
    info = {}
    settings = SamplingSettings.from_config(s, keep_primer=keep, seconds=args.seconds, composer=args.composer,
                                            controls=args.controls)
    played = vocab.on_grid() if s.bin_centres else vocab  # where inside its bin each note is played
    takes = generate_takes(model, played, args.num_outputs, primer, settings, device=str(device), progress=not args.quiet,
                           info=info)
    targets = take_paths(output, len(takes))
    replaced = [" (replaced the earlier MIDI file)" if p.is_file() else "" for p in targets]
    paths = [notes_to_midi(notes, path) for notes, path in zip(takes, targets)]
    trained = state.get("history", {}).get("epoch") or [0]
    n_new = [len(notes) - (len(primer) if keep and primer is not None else 0) for notes in takes]
    what = (f"{n_new[0]} notes ({takes[0].seconds():.0f} s of music)" if len(takes) == 1 else
            f"{len(takes)} takes of {min(n_new)}-{max(n_new)} notes in one batch")
    print(f"generated {what} in {time.time() - t0:.1f} s from "
          f"{checkpoint} ({trained[-1]:.2f} epochs, {state.get('step', 0)} steps); primer: {primer_name}\n"
          f"grammar mask: removed {100 * info['masked_mass']:.2f}% of the probability per note (notes at the "
          f"previous onset not above it)")
    licence = ckpts.training_summary(state).get("licence")
    if licence:
        print(f"training data licence: {licence}")
    if len(takes) == 1:
        print(f"MIDI: {paths[0]}{replaced[0]}")
    _after_generate(takes, [f"{p}{r}" for p, r in zip(paths, replaced)], vocab, train_cfg, args, cache)
    return paths


def _after_generate(takes, shown, vocab, train_cfg: Config, args, cache=None) -> None:
    """The controls in effect, then per take: its files (--wav renders it), and its originality line when
    the training corpus's token cache is at hand."""
    if args.controls is not None:
        print(f"controls: {args.controls.describe()}")
    if args.composer is not None:
        print(f"composer: {describe_composer(args.composer, vocab.composers)}")
    if cache is None:  # read only: a token cache is never built for this line
        cache = corpus.find_cache(train_cfg.data, args.cache_dir, vocab)
    index = OriginalityIndex.for_cache(cache) if cache is not None and cache.vocab == vocab else None
    wavs = wav_paths(args) or [None] * len(takes)
    for i, (notes, midi, wav) in enumerate(zip(takes, shown, wavs), 1):
        label = f"take {i}: " if len(takes) > 1 else ""
        if len(takes) > 1:
            print(f"{label}{len(notes)} notes, {notes.seconds():.0f} s of music, MIDI: {midi}")
        if wav is not None:
            replaced = " (replaced the earlier WAV file)" if wav.is_file() else ""
            written, synth = audio.render_to_wav(notes, wav, sf2_path=args.soundfont)
            print(f"{label}WAV: {written}{replaced} (44.1 kHz stereo; sound: {audio.describe_synth(synth)})")
        if index is not None:
            print(label + describe(index.check(vocab.encode(notes))))
    if index is None:
        print(f"originality: not checked (no token cache of the model's corpus, {train_cfg.data.source}, in "
              f"{args.cache_dir or corpus.CACHE_DIR}; `python -m melody_utils prepare` with its settings builds one)")


def _checkpoint_arg(cfg: Config, args) -> Path:
    """--checkpoint (an error when missing), else the newest run's in OUT_DIR (itself or a run-* folder),
    else the shipped model (said in one line)."""
    if args.checkpoint:
        return Path(args.checkpoint).expanduser()
    newest = runs.newest_checkpoint(cfg.train.out_dir)
    if newest is not None:
        if newest.parent != Path(cfg.train.out_dir):
            print(f"using the newest run in {cfg.train.out_dir}: {newest}")
        return newest
    checkpoint, note = ckpts.generation_checkpoint(cfg.train.out_dir)
    if note:
        print(note)
    return checkpoint


def cmd_generate(args) -> int:
    cfg = config_from_args(args)
    output = output_path(cfg, args)
    wav_paths(args)
    _generate(cfg, args, _checkpoint_arg(cfg, args), output)
    return 0


QUICKSTART_BUDGET_S = 240  # quickstart trains at most this long unless --time-budget says otherwise


def cmd_quickstart(args) -> int:
    # The time budget keeps "a few minutes" true for every --arch: the seed's window models learn
    # from stride-1 windows, so one of their epochs alone can take longer than that on a CPU.
    cfg = config_from_args(args, **{"data.source": "embedded", "model.arch": "causal",
                                    "train.time_budget_s": QUICKSTART_BUDGET_S})
    output = output_path(cfg, args)  # fail on an unwritable output before training
    wav_paths(args)
    budget = f", at most {cfg.train.time_budget_s:g} s" if cfg.train.time_budget_s else ""
    print(f"quickstart: preset {cfg.preset}, source {cfg.data.source}, {cfg.model.arch} model, "
          f"{cfg.train.epochs} epochs{budget}, out_dir {cfg.train.out_dir}")
    cache = _train(cfg, args)
    _generate(cfg, args, default_checkpoint(cfg.train.out_dir), output, cache)
    print(f"listen: open {output} in any MIDI player, or render it in notebooks/04")
    print("\n".join(report.compare_with_shipped(default_checkpoint(cfg.train.out_dir), cache, resolve_device(cfg.train.device))))
    return 0


def _evaluate_settings(args, cfg: Config) -> tuple[dict, dict]:
    """(data settings of the corpus to score, sampling changes) that ``evaluate`` was given by flag or --set;
    what was not given stays the checkpoint's."""
    given = dict(parse_setting(cfg, item) for item in args.set)
    if args.source is not None:
        given.setdefault("data.source", args.source)
    data = {k.partition(".")[2]: v for k, v in given.items() if k.startswith("data.")}
    sampling = {name: given.get(f"sample.{name}", getattr(args, name))
                for name in ("n_notes", "temperature", "top_k", "top_p", "memory")}
    return data, {k: v for k, v in sampling.items() if v is not None}


def cmd_evaluate(args) -> int:
    """The CLI's ``evaluate`` subcommand: print the report; write it (JSON and figures too) with --report.

    The checkpoint is ``--checkpoint``, else the newest run's in OUT_DIR (:func:`_checkpoint_arg`); the corpus the
    checkpoint's own, or ``--source`` (any corpus, tokenized with the checkpoint's vocabulary); the device
    ``--device`` (default auto: CUDA when available); the cache under ``--cache-dir`` when given.
    ``--sweep`` (or a sweep grid flag) adds the sampling sweep.
    """
    cfg = config_from_args(args)
    checkpoint = _checkpoint_arg(cfg, args)
    out = report_path(args)  # checked before the evaluation, which may take minutes
    sweep = None
    if args.sweep or args.sweep_temperatures or args.sweep_top_ps:
        sweep = {"temperatures": args.sweep_temperatures, "top_ps": args.sweep_top_ps}  # None: the default grid
    data, sampling = _evaluate_settings(args, cfg)
    result = report.evaluate_checkpoint(
        checkpoint, n_samples=args.samples, split=args.split, sampling=sampling,
        device=str(resolve_device(cfg.train.device)), seed=args.seed if args.seed is not None else 0,
        cache_dir=args.cache_dir, progress=not args.quiet, sweep=sweep, context=args.context, data=data or None,
    )
    if out is None:
        print(report.format_report(result))
        return 0
    text, paths = report.write_report(result, out)
    print(text)
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
    try:  # the settings (preset, flags, --set) checked before any work: a bad value is a usage error too
        check_settings(config_from_args(args))
    except ValueError as exc:
        print(f"error: {exc} (see `{parser.prog} {args.command} --help`)", file=sys.stderr)
        return 2
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
