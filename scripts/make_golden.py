"""Record the behaviour the package must keep: loss curves, generated notes and CLI lines.

    python scripts/make_golden.py            # rewrite tests/data/golden/*.json

With the tiny preset on the embedded corpus, on the CPU and with fixed seeds, this trains a
causal model and one of the seed's window models for a few steps, then records

- ``loss_history.json``: both runs' loss curves (every history entry but the timings);
- ``generation.json``: notes sampled with fixed seed, temperature, top-k and top-p through every
  generation path (the numpy stepper, the causal torch loop, the window model's loop), through
  the notebooks' widget generator, the sampling sweep's generator and the ``generate`` command
  (its primer taken from a held-out piece by the primer-length rule), all decoded at the bin
  centres (``vocab.on_grid()``, ``--bin-centres``), the widget generator's notes once more decoded
  inside the bins (the default, ``widget_fn_in_bins``), and a small ``evaluate``;
- ``cli.json``: the CLI's output and error lines for a few commands (temporary paths and
  wall-clock times replaced by placeholders).

``tests/test_golden.py`` records the same again and compares it with these files, so a change
that alters behaviour by accident fails there. When behaviour changes on purpose (another
corpus, a new default, a reworded message), run this script again and commit the new files
together with the change, saying in the commit message why they changed.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = ROOT / "tests" / "data" / "golden"
CAUSAL_STEPS = 12  # optimizer steps of the causal run (tiny preset)
WINDOW_STEPS = 3  # ... of the window model's run
KNOBS = {"temperature": 0.9, "top_k": 20, "top_p": 0.95}  # fixed sampling settings
N_NOTES = 24  # notes per generated piece
SEED = 7
TIMING_KEYS = ("notes_per_s", "seconds")  # history entries that measure the machine, not the model


def _run_cli(argv: list[str], replace: dict[str, str]) -> dict:
    """Run ``python -m melody_utils argv`` in-process: {"argv", "code", "stdout", "stderr"}, normalized."""
    from melody_utils.cli import commands as cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)

    def clean(text: str) -> list[str]:
        for old, new in replace.items():
            text = text.replace(old, new)
        text = re.sub(r"in \d+\.\d+ s from", "in <T> s from", text)  # generation's wall-clock time
        return text.splitlines()

    return {"argv": [clean(a)[0] if a else a for a in argv], "code": code, "stdout": clean(out.getvalue()),
            "stderr": clean(err.getvalue())}


def _curve(history: dict) -> dict:
    return {k: v for k, v in history.items() if k not in TIMING_KEYS}


def _rows(tokens) -> list:
    return [[int(x) for x in row] for row in tokens]


def _notes(notes) -> list:
    """Notes -> [[pitch, start, end, velocity]], times rounded to the microsecond."""
    return [[int(p), round(float(s), 6), round(float(e), 6), int(v)]
            for p, s, e, v in zip(notes.pitch, notes.start, notes.end, notes.velocity)]


def _round(x, digits: int = 6):
    """Floats rounded to ``digits`` significant digits (NaN -> None), through dicts and lists."""
    if isinstance(x, dict):
        return {k: _round(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_round(v, digits) for v in x]
    if isinstance(x, float):
        return None if not math.isfinite(x) else float(f"{x:.{digits}g}")
    return x


def _sweep_piece(sweep, generate_fn, primers, cache):
    """The piece the sampling sweep generates for seed SEED + 1 (it continues primers[(SEED + 1) % 2])."""
    pieces = []

    def keep(**knobs):
        pieces.append(generate_fn(**knobs))
        return pieces[-1]

    sweep.sampling_sweep(keep, [KNOBS["temperature"]], [KNOBS["top_p"]], [cache.notes(0), cache.notes(1)], n_pieces=2,
                         n_notes=N_NOTES, seed=SEED, progress=False, primers=primers, top_k=KNOBS["top_k"])
    return pieces[1]


def record(work: Path) -> dict[str, dict]:
    """Train, generate and run the CLI under ``work``; returns {file name: content}."""
    import torch

    from melody_utils.model import checkpoint
    from melody_utils.data import corpus
    from melody_utils.evaluate import report, sweep
    from melody_utils.generate import sample
    from melody_utils.generate.settings import SamplingSettings
    from melody_utils.train import loop as train
    from melody_utils.config import get_config
    from melody_utils.music.midi import midi_to_notes

    torch.set_num_threads(1)
    cache_dir, out = work / "cache", work / "causal"
    common = ["--preset", "tiny", "--cache-dir", str(cache_dir), "--device", "cpu", "--quiet"]
    replace = {str(work): "<WORK>"}
    cli_lines = {"train": _run_cli(["train", *common, "--source", "embedded", "--out-dir", str(out),
                                    "--max-steps", str(CAUSAL_STEPS)], replace)}
    causal_history = json.loads((out / train.HISTORY_FILE).read_text())

    cfg = get_config("tiny", **{"data.source": "embedded", "model.arch": "baseline", "train.max_steps": WINDOW_STEPS,
                                "train.device": "cpu"})
    cache = corpus.prepare(cfg.data, cache_dir=cache_dir, progress=False)
    window_history = train.train(cfg, cache, work / "window", progress=False)

    model, vocab, _, _ = checkpoint.load_checkpoint(out / train.CHECKPOINT_BEST)
    wmodel, wvocab, _, _ = checkpoint.load_checkpoint(work / "window" / train.CHECKPOINT_BEST)
    held_out = cache.held_out_piece()
    primer = cache.piece_tokens(held_out)[:8]
    gen = {
        "causal_numpy": _rows(sample.generate(model, vocab, N_NOTES, primer, **KNOBS, batch=2, seed=SEED)[1]),
        "causal_torch": _rows(sample.generate(model, vocab, N_NOTES, primer, **KNOBS, batch=2, seed=SEED, fast=False)[1]),
        "window": _rows(sample.generate(wmodel, wvocab, N_NOTES, cache.piece_tokens(held_out)[:wmodel.window],
                                        **KNOBS, seed=SEED)[0]),
        "no_primer": _rows(sample.generate(model, vocab, N_NOTES, None, **KNOBS, seed=SEED)[0]),
        "widget_fn": _notes(sample.model_generate_fn(model, vocab.on_grid(), SamplingSettings(keep_primer=True))(
            n_notes=N_NOTES, seed=SEED, primer=primer, **KNOBS)),
        "sweep_fn": _notes(_sweep_piece(sweep, sample.model_generate_fn(model, vocab.on_grid()),
                                        [primer, cache.piece_tokens(0)[:4]], cache)),
        "widget_fn_in_bins": _notes(sample.model_generate_fn(model, vocab, SamplingSettings(keep_primer=True))(
            n_notes=N_NOTES, seed=SEED, primer=primer, **KNOBS)),
    }
    midi = work / "song.mid"
    cli_lines["generate"] = _run_cli(["generate", *common, "--out-dir", str(out), "--n-notes", str(N_NOTES),
                                      "--seed", str(SEED), "--top-k", "20", "--output", str(midi), "--bin-centres"], replace)
    gen["cli_generate"] = _notes(midi_to_notes(midi))
    evaluation = report.evaluate_checkpoint(out / train.CHECKPOINT_BEST, cache=cache, n_samples=2,
                                            sampling={"n_notes": N_NOTES}, seed=SEED, progress=False, sweep={"temperatures": [0.8, 1.0], "top_ps": [0.95], "n_pieces": 2})
    gen["evaluate"] = _round({k: evaluation[k] for k in ("nll", "stats", "degenerate_rate", "sampling")}
                             | {"sweep_best": evaluation["sweep"]["best"]})

    bad = [
        ["train", *common, "--set", "model.hidden=big"],
        ["train", *common, "--set", "nosuch.key=1"],
        ["generate", *common, "--checkpoint", str(work / "missing.pt")],
        ["generate", *common, "--temperature", "0"],
        ["generate", *common, "--top-p", "1.5"],
        ["evaluate", *common, "--samples", "1"],
        ["evaluate", *common, "--sweep-temperatures", "0.8,x"],
        ["evaluate", *common, "--out-dir", str(work / "empty")],
        ["generate", *common, "--out-dir", str(out), "--primer", str(work / "nothing.mid")],
    ]
    shipped = checkpoint.SHIPPED_CHECKPOINT
    checkpoint.SHIPPED_CHECKPOINT = work / "no-shipped-model.pt"  # the error lines of a checkout without one
    try:
        cli_lines["errors"] = [_run_cli(argv, replace) for argv in bad]
    finally:
        checkpoint.SHIPPED_CHECKPOINT = shipped
    env_columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps help text to the terminal's width
    try:
        cli_lines["help"] = [_run_cli([command, "--help"], replace) for command in ("generate", "evaluate")]
    finally:
        if env_columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = env_columns
    return {
        "loss_history.json": {"causal": _curve(causal_history), "window": _curve(window_history)},
        "generation.json": gen,
        "cli.json": cli_lines,
    }


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        files = record(Path(tmp))
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (GOLDEN_DIR / name).write_text(json.dumps(content, indent=None, separators=(",", ":")) + "\n")
        print(f"wrote {GOLDEN_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
