"""A checkpoint evaluated on both corpora side by side (the shipped model by default).

For each corpus (``--corpora``; the real performances skipped with a note when absent), the
checkpoint's ``evaluate`` (``melody_utils.evaluate.report.evaluate_checkpoint``) on the corpus's test split,
tokenized with the checkpoint's vocabulary: held-out nats/note of the model, with its piece memory
(its own settings), with the memory refitted on this corpus's validation split, and of the
3-gram on the same tokens; then ``--samples`` generated pieces of ``--n-notes`` notes (the
checkpoint's sampling settings and memory; ``--memory`` to change it) against held-out excerpts of
the same length: mean overlap area, every statistic, degenerate pieces. ``--sweep`` adds the
sampling sweep per corpus. Prints markdown tables; writes nothing but token caches.

    python benchmarks/bench_evaluate.py --samples 32 --n-notes 400
    python benchmarks/bench_evaluate.py --samples 16 --n-notes 300 --sweep          # the sampling sweep, both corpora
    python benchmarks/bench_evaluate.py --checkpoint /tmp/perf/ckpt_best.pt --corpora performances --samples 32 --n-notes 400
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import BOTH_CORPORA, corpus_names, corpus_source, machine_header  # noqa: E402
from melody_utils.evaluate import report  # noqa: E402
from melody_utils.evaluate.sweep import SWEEP_TEMPERATURES, SWEEP_TOP_PS  # noqa: E402
from melody_utils.model.checkpoint import SHIPPED_CHECKPOINT  # noqa: E402
from melody_utils.music.stats import HIST_FEATURES, SCALAR_FEATURES  # noqa: E402

SHOWN_MEANS = ("repeat_ngram", "repeat_pitch_ngram", "polyphony", "velocity_spread")  # generated / held-out means shown


def likelihood_rows(result: dict) -> list[tuple[str, str]]:
    nll, mem = result["nll"], result.get("memory", {})
    total = lambda r: r["nats"]["total"]  # noqa: E731
    rows = [("test pieces scored (notes)", f"{result['stats']['n_reference']} ({nll['model']['n_notes']:,})"),
            ("model, nats/note", f"{total(nll['model']):.3f}")]
    for key, label in (("nll", "+ its piece memory"), ("nll_refit", "+ the memory refitted on this corpus")):
        if mem.get(key):
            rows.append((label, f"{total(mem[key]):.3f} ({total(mem[key]) - total(nll['model']):+.3f})"))
    if mem.get("refit"):
        r = mem["refit"]
        rows.append(("refitted memory", f"spread {r['timing_spread']:g}/{r['timing_width']}, strength {r['strength']:g}"))
    rows += [("3-gram, nats/note", f"{total(nll['3-gram']):.3f}"),
             ("model / 3-gram", f"{100 * total(nll['model']) / total(nll['3-gram']):.1f}%")]
    return rows


def statistics_rows(result: dict) -> list[tuple[str, str]]:
    stats = result["stats"]["features"]
    oas = {k: f["oa"] for k, f in stats.items()}
    low = min(oas, key=oas.get)
    rows = [("generated vs held-out: mean OA", f"**{result['stats']['mean_oa']:.2f}**"),
            ("lowest statistic", f"{low} {oas[low]:.2f}"),
            ("degenerate pieces (held-out)", f"{result['degenerate_rate']:.0%} ({result['reference_degenerate_rate']:.0%})")]
    for name in SCALAR_FEATURES + HIST_FEATURES:
        f = stats[name]
        means = f" ({f['gen_mean']:.3g} vs {f['ref_mean']:.3g})" if name in SHOWN_MEANS else ""
        rows.append((f"OA {name}", f"{f['oa']:.2f}{means}"))
    return rows


def sweep_rows(result: dict) -> list[tuple[str, str]]:
    sweep = result.get("sweep")
    if not sweep:
        return []
    rows = [(f"sweep T {r['temperature']:g}, top-p {r['top_p']:g}: mean OA (degenerate)",
             f"{r['mean_oa']:.2f} ({r['degenerate_rate']:.0%})" if r.get("mean_oa") is not None else "–")
            for r in sweep["rows"]]
    best = sweep.get("best")
    return rows + [("sweep: suggested", f"T {best['temperature']:g}, top-p {best['top_p']:g}" if best else "none")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    ap.add_argument("--corpora", default=BOTH_CORPORA, help="corpora side by side: piano, performances, chorales, a folder")
    ap.add_argument("--samples", type=int, default=32, help="generated pieces per corpus")
    ap.add_argument("--n-notes", type=int, default=400, help="notes per generated piece")
    ap.add_argument("--memory", type=float, help="piece memory strength (default: the checkpoint's sample.memory)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sweep", action="store_true", help="also the sampling sweep per corpus")
    ap.add_argument("--sweep-pieces", type=int, default=16, help="pieces per sweep setting")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine_header("bench_evaluate", argv))
    columns = {}
    for name in corpus_names(args.corpora):
        source, note = corpus_source(name)
        print(f"corpus {note}", flush=True)
        if source is None:
            continue
        sweep = {"temperatures": SWEEP_TEMPERATURES, "top_ps": SWEEP_TOP_PS, "n_pieces": args.sweep_pieces} if args.sweep else None
        sampling = {"n_notes": args.n_notes, **({} if args.memory is None else {"memory": args.memory})}
        result = report.evaluate_checkpoint(args.checkpoint, data={"source": source}, n_samples=args.samples,
                                            sampling=sampling, seed=args.seed, sweep=sweep, progress=False)
        columns[name] = dict(likelihood_rows(result) + statistics_rows(result) + sweep_rows(result))
        print(f"  {name}: mean OA {result['stats']['mean_oa']:.2f}", flush=True)
    names = list(dict.fromkeys(k for c in columns.values() for k in c))
    print(f"\ncheckpoint: {args.checkpoint}; {args.samples} generated pieces of {args.n_notes} notes per corpus")
    print("| | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for k in names:
        print(f"| {k} | " + " | ".join(c.get(k, "–") for c in columns.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
