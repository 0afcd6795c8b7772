"""At home with performances: held-out nats/note on the piano corpus and on real performances,
for models trained on the piano corpus with and without training windows played like a performer.

Trains the ``small`` preset on the embedded piano corpus for ``--steps`` optimizer steps (same seed,
same steps) with each ``data.perform`` of ``--shares`` (music/perform.py), then scores each model on
the piano corpus's test split and on held-out performances of ``--performances`` (a folder of MIDI
files with a ``metadata.csv`` naming each file's ``work``), tokenized with the models' vocabulary:
``--held-out-share`` of the works (seeded), every performance of them. Beside them, in the same
tokens: the in-domain 3-gram of each corpus (fitted on the piano training split, and on the
performances of the other works; tuned on a validation share of those), and optionally a
checkpoint (``--checkpoint``, e.g. the shipped model, in its own vocabulary with its own n-grams).
No file or token of the performances is written outside ``--cache-dir``.

``--stats`` prints instead what the augmentation's magnitudes were chosen with: how chords spread,
beats vary and velocities move in the performances, in the piano corpus, and in the piano corpus
played by :func:`melody_utils.music.perform.perform` (no training).

    nice -n 19 python benchmarks/bench_perform.py --performances ../shared/corpora/performances --stats
    nice -n 19 python benchmarks/bench_perform.py --performances ../shared/corpora/performances --steps 300 --shares 0,0.25,0.5
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import machine_header  # noqa: E402
from melody_utils.config import get_config  # noqa: E402
from melody_utils.data import corpus  # noqa: E402
from melody_utils.evaluate.likelihood import ngram_nll, piece_nll  # noqa: E402
from melody_utils.model.checkpoint import CHECKPOINT_LAST, load_checkpoint  # noqa: E402
from melody_utils.music.perform import perform  # noqa: E402
from melody_utils.train.loop import train  # noqa: E402


CHORD_GAP_S = 0.05  # onsets chained closer than this count as one chord (for the statistics only)


def piece_statistics(notes) -> dict:
    """One piece's lists of: chord spreads (s), top-note leads (s), within-chord velocity sds, log ratios of
    near-equal successive beats; and its velocity sd, note-to-note velocity sd (about a running mean of 17
    notes), the running mean's sd, distinct velocities per 400 notes."""
    t, v, p = notes.start, notes.velocity.astype(float), notes.pitch
    group = np.concatenate([[0], np.cumsum(np.diff(t) > CHORD_GAP_S)])
    _, first, count = np.unique(group, return_index=True, return_counts=True)
    chords = [(i, c) for i, c in zip(first, count) if c >= 2]
    ioi = np.diff(t[first])
    ratio = np.log(ioi[1:] / ioi[:-1])
    mean = np.convolve(v, np.ones(17) / 17, mode="valid")
    return {"spread": [np.ptp(t[i:i + c]) for i, c in chords],
            "lead": [t[i + np.argmax(p[i:i + c])] - t[i] for i, c in chords],
            "chord_velocity": [v[i:i + c].std() for i, c in chords],
            "beats": list(ratio[np.abs(ratio) < np.log(1.25)]),
            "velocity_sd": [v.std()], "local_sd": [(v[8:-8] - mean).std()], "slow_sd": [mean.std()],
            "distinct": [len(np.unique(v[s:s + 400])) for s in range(0, len(v) - 400, 400)]}


def statistics_table(sets: dict) -> str:
    """Markdown: one column per set of pieces (name -> list of Notes of >= 50 notes)."""
    pooled = {}
    for name, pieces in sets.items():
        pooled[name] = {}
        for n in pieces:
            for k, x in piece_statistics(n).items():
                pooled[name].setdefault(k, []).extend(x)
    rows = [("chord spread, median (p25-p75), ms", lambda d: "{:.1f} ({:.1f}-{:.1f})".format(
                 *1000 * np.percentile(d["spread"], [50, 25, 75]))),
            ("top note's lead in a chord, mean, ms", lambda d: f"{1000 * np.mean(d['lead']):.1f}"),
            ("near-equal successive beats: sd of log ratio", lambda d: f"{np.std(d['beats']):.3f}"),
            ("... of them equal to within 0.2 %", lambda d: f"{100 * np.mean(np.abs(d['beats']) < 0.002):.1f}%"),
            ("distinct velocities per 400 notes, median", lambda d: f"{np.median(d['distinct']):.0f}"),
            ("velocity sd per piece, median", lambda d: f"{np.median(d['velocity_sd']):.1f}"),
            ("note-to-note velocity sd, median", lambda d: f"{np.median(d['local_sd']):.1f}"),
            ("slow dynamics (sd of a 17-note running mean), median", lambda d: f"{np.median(d['slow_sd']):.1f}"),
            ("velocity sd within a chord, median", lambda d: f"{np.median(d['chord_velocity']):.1f}")]
    lines = ["| statistic | " + " | ".join(sets) + " |", "|---|" + "---:|" * len(sets)]
    lines += [f"| {label} | " + " | ".join(fmt(pooled[n]) for n in sets) + " |" for label, fmt in rows]
    return "\n".join(lines)


def print_statistics(args) -> None:
    folder = Path(args.performances)
    with open(folder / "metadata.csv", newline="") as f:
        paths = [folder / r["path"] for r in csv.DictReader(f)]
    performed, _, _ = corpus.parse_files(paths, sustain=True, progress=False)
    piano, _ = corpus.load_embedded("piano", sustain=True)
    played = [perform(n, np.random.default_rng([args.seed, i])) for i, n in enumerate(piano)]
    sets = {f"performances ({len(performed)})": performed, f"piano corpus ({len(piano)})": piano,
            "piano corpus, performed": played}
    print(statistics_table({k: [n for n in v if len(n) >= 50] for k, v in sets.items()}))


def work_split(folder: Path, cache, share: float, seed: int) -> tuple[list, list, list]:
    """(train, validation, held-out) token arrays of a performances cache, split by work (metadata.csv)."""
    with open(folder / "metadata.csv", newline="") as f:
        work_of = {str(folder / r["path"]): r["work"] for r in csv.DictReader(f)}
    works = sorted(set(work_of.values()))
    order = np.random.default_rng(seed).permutation(len(works))
    n_held = max(1, round(share * len(works)))
    held = {works[i] for i in order[:n_held]}
    val = {works[i] for i in order[n_held: 2 * n_held]}
    groups = {"train": [], "validation": [], "test": []}
    for i, piece in enumerate(cache.pieces):
        w = work_of.get(piece.get("path", ""))
        groups["test" if w in held else "validation" if w in val else "train"].append(cache.piece_tokens(i))
    return groups["train"], groups["validation"], groups["test"]


def score(model, vocab, piano, perf_groups) -> dict:
    """Held-out nats/note (``"nats"``: total and per field) of ``model`` (None: the 3-gram of each corpus) on the
    piano test split (``"piano"``) and the held-out performances (``"perf"``)."""
    sizes = list(vocab.sizes)
    if model is None:
        return {"piano": ngram_nll(piano.split_tokens("train"), piano.split_tokens("test"), sizes, 3,
                                   val_pieces=piano.split_tokens("validation"))["nats"],
                "perf": ngram_nll(perf_groups[0], perf_groups[2], sizes, 3, val_pieces=perf_groups[1])["nats"]}
    return {"piano": piece_nll(model, piano.split_tokens("test"))["nats"], "perf": piece_nll(model, perf_groups[2])["nats"]}


def corpora(cfg_data, vocab, args):
    """(piano cache, performances split) in ``vocab``'s tokens."""
    piano = corpus.prepare(cfg_data, cache_dir=args.cache_dir, progress=False, vocab=vocab)
    perf_cfg = get_config("small", **{"data.source": str(args.performances), "data.sustain": cfg_data.sustain}).data
    perf = corpus.prepare(perf_cfg, cache_dir=args.cache_dir, progress=False, vocab=vocab)
    return piano, work_split(Path(args.performances), perf, args.held_out_share, args.seed)


FIELDS = ("pitch", "step", "duration", "velocity")


def row(name, s, ngram) -> str:
    p, q = s["piano"]["total"], s["perf"]["total"]
    fields = " | ".join(f"{s['perf'].get(f, float('nan')):.3f}" for f in FIELDS)
    return (f"| {name} | {p:.3f} | {100 * p / ngram['piano']['total']:.1f}% | {q:.3f} | "
            f"{100 * q / ngram['perf']['total']:.1f}% | {fields} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--performances", required=True, help="folder of performances with a metadata.csv (path, work)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--shares", default="0,0.5",
                    help="data.perform of each run, comma-separated (default 0,0.5; '' = no training, e.g. with --checkpoint)")
    ap.add_argument("--held-out-share", type=float, default=0.2, help="share of the works held out (and as many for validation)")
    ap.add_argument("--checkpoint", help="also score this checkpoint (e.g. data/pretrained/piano_lstm.pt)")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--stats", action="store_true", help="print the timing and dynamics statistics only")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine_header("bench_perform", argv))
    if args.stats:
        print_statistics(args)
        return 0
    base = get_config(args.preset, **{"data.source": "piano", "train.max_steps": args.steps, "train.device": "cpu",
                                      "train.seed": args.seed})
    shares = [float(x) for x in args.shares.split(",") if x.strip()]
    cache = corpus.prepare(base.override(**{"data.perform": max(shares, default=0.0)}).data, cache_dir=args.cache_dir,
                           progress=False)
    piano, perf = corpora(base.data, cache.vocab, args)
    print(f"\n{args.preset} preset, {args.steps} steps on the piano corpus ({len(cache.split_tokens('train'))} training "
          f"pieces); held out: {len(piano.split_tokens('test'))} piano pieces, {len(perf[2])} performances "
          f"({sum(map(len, perf[2])):,} notes; 3-gram fitted on {len(perf[0])})\n")
    ngram = score(None, cache.vocab, piano, perf)
    print("| model | piano nats/note | vs piano 3-gram | performances nats/note | vs performances 3-gram | "
          "performances: pitch | step | duration | velocity |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(row("3-gram, in-domain", ngram, ngram), flush=True)
    for share in shares:
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            train(base.override(**{"data.perform": share}), cache, out, resume=False, progress=False,
                  checkpoint_every_s=1e9)
            model = load_checkpoint(Path(out) / CHECKPOINT_LAST)[0]
            name = f"{args.preset}, data.perform={share:g} ({time.perf_counter() - t0:.0f} s)"
            print(row(name, score(model, cache.vocab, piano, perf), ngram), flush=True)
    if args.checkpoint:
        model, vocab, cfg, _ = load_checkpoint(args.checkpoint)
        piano, perf = corpora(cfg.data, vocab, args)
        own = score(None, vocab, piano, perf)
        print(row("3-gram, in-domain (its vocabulary)", own, own))
        print(row(f"{args.checkpoint}", score(model, vocab, piano, perf), own))
    return 0


if __name__ == "__main__":
    sys.exit(main())
