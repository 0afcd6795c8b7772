"""Evaluating a checkpoint, and the report of the result.

:func:`evaluate_checkpoint` ties the evaluation modules together for one checkpoint: held-out likelihood of
the model and its baselines (:mod:`melody_utils.evaluate.likelihood`), statistics of generated pieces
against held-out ones (:mod:`melody_utils.music.stats`) and, optionally, a sampling sweep
(:mod:`melody_utils.evaluate.sweep`). :func:`format_report` prints the result as markdown tables and
:func:`write_report` writes them with the JSON and figures beside them. The CLI's ``evaluate``
command (:mod:`melody_utils.cli.commands`) calls these two.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from urllib.parse import quote

import numpy as np
from tqdm.auto import tqdm

from ..checks import check_number
from ..model import checkpoint as ckpts
from ..data import corpus
from ..data import windows as data
from ..display import plots
from ..model.checkpoint import load_checkpoint
from ..data.composers import piece_composer_ids
from .likelihood import model_nll, ngram_nll, piece_memory_nll, piece_nll, uniform_nll
from .memory_fit import FIT_BASE, fit_memory, split_logprobs
from ..generate.memory import model_memory
from ..generate.settings import SamplingSettings
from ..files import atomic_write_bytes
from ..generate.sample import model_generate_fn, primer_length
from ..music.stats import DEGENERATE_TAIL, SCALAR_FEATURES, compare_sets, degeneracy, excerpts, piece_stats
from .sweep import best_setting, describe_best, sampling_sweep, sweep_options
from ..music.tokens import vocab_differences
from ..train.loop import window_and_stride

def _json_safe(x):
    """Non-finite floats -> None (strict JSON has no NaN), through dicts and lists."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _stats_to_json(stats: dict) -> dict:
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in stats.items()}


# ---------------------------------------------------------------------------------------------
# Evaluating a checkpoint
# ---------------------------------------------------------------------------------------------

NGRAM_ORDERS = (1, 2, 3)
VOCAB_FIELDS = ("bins", "n_step_bins", "n_dur_bins", "velocity_bins")  # data settings that shape the vocabulary


def context_nll(model, cfg, vocab, pieces, context: int = 0, batch_size: int = 64, device="cpu",
                progress: bool = False, composers=None) -> dict:
    """A model's NLL on the notes of ``pieces`` (token arrays of ``vocab``) with at least ``context`` notes before them.

    Causal models read each piece from its start with carried state (:func:`piece_nll`); window
    models read the ``data.seed_window`` notes before each note. ``context=0``: every note a model
    can score (causal: all but each piece's first, the notes the n-grams score; window models:
    those with a full window before them). The same ``context`` for both kinds scores the same notes.
    ``composers``: each piece's composer id, as the model names them (None = "any"; causal models).
    """
    if model.causal:
        return piece_nll(model, pieces, device, context=max(context, 1), progress=progress, composers=composers)
    window, stride = window_and_stride(cfg, model.causal)
    if context and context < window:
        raise ValueError(f"context={context} is shorter than the window model's {window} notes, which it reads before "
                         f"every note it scores; use a context >= {window} (or 0)")
    cut = max(context - window, 0)  # windows start here: their next notes are those with >= context before them
    held = corpus.TokenCache.from_pieces([np.asarray(t)[cut:] for t in pieces], vocab, ["test"] * len(pieces))
    return model_nll(model, data.make_loader(held, "test", window, stride, batch_size, shuffle=False), device,
                     progress=progress)


def held_out_nats(model, cfg, cache, split: str = "test", batch_size: int = 64, device="cpu", progress: bool = False,
                  context: int = 0) -> dict:
    """The model's NLL on ``split`` (:func:`likelihood.nll_result`: ``["nats"]["total"]`` per note, per field),
    on the notes :func:`context_nll` scores, each piece with its true composer (models trained with composers)."""
    composers = piece_composer_ids([cache.pieces[i] for i in cache.piece_indices(split)], model.composer_names)
    return context_nll(model, cfg, cache.vocab, cache.split_tokens(split), context, batch_size, device, progress,
                       composers)


def compare_with_shipped(checkpoint, cache, device="cpu") -> list[str]:
    """One line each: held-out nats/note of ``checkpoint``'s model and of the shipped model on the same
    pieces of ``cache`` (its test split, else validation); the second says why when it cannot compare."""
    split = "test" if len(cache.piece_indices("test")) else "validation"
    model, _, cfg, _ = load_checkpoint(checkpoint, device)
    lines = [f"held-out {split} split ({len(cache.piece_indices(split))} pieces): this run's model "
             f"{held_out_nats(model, cfg, cache, split, device=device)['nats']['total']:.3f} nats/note"]
    shipped = ckpts.SHIPPED_CHECKPOINT
    if not shipped.is_file():
        return lines + [f"shipped model: not compared ({shipped} is not in this checkout; scripts/build_shipped_model.py builds it)"]
    model, vocab, cfg, state = load_checkpoint(shipped, device)
    if vocab != cache.vocab:
        return lines + [f"shipped model: not compared, its vocabulary differs from this corpus's "
                        f"({'; '.join(vocab_differences(vocab, cache.vocab))})"]
    nats = held_out_nats(model, cfg, cache, split, device=device)["nats"]["total"]
    return lines + [f"held-out {split} split: the shipped model {nats:.3f} nats/note ({shipped}, {ckpts.describe(state)})"]


def _held_out_nll(model, vocab, cfg, cache, split: str, batch_size: int, device, progress: bool,
                  context: int = 0) -> dict:
    """:func:`evaluate_checkpoint`'s ``"nll"``: the model (see :func:`context_nll`), the uniform model and the n-grams on ``split``."""
    n_fields = len(model.sizes)
    sizes = dict(zip(vocab.fields[:n_fields], vocab.sizes[:n_fields]))
    scored = held_out_nats(model, cfg, cache, split, batch_size, device, progress, context)
    nll = {"model": scored, "uniform": uniform_nll(list(sizes.values()))}
    train_pieces, val_pieces = cache.split_tokens("train"), cache.split_tokens("validation")
    test_pieces = cache.split_tokens(split)
    for order in tqdm(NGRAM_ORDERS, desc="n-gram baselines", disable=not progress, leave=False):
        nll[f"{order}-gram"] = ngram_nll(train_pieces, test_pieces, list(sizes.values()), order,
                                         val_pieces=val_pieces if split != "validation" else None)
    return nll


def _memory_nll(model, cache, split: str, device, progress: bool, context: int = 0) -> dict:
    """:func:`evaluate_checkpoint`'s ``"memory"``: the causal model mixed with the piece memory, on the notes
    :func:`held_out_nats` scores. ``"settings"`` and ``"nll"``: the memory generation uses, the model's own
    (:func:`melody_utils.generate.memory.model_memory`: fitted at the end of its training, else the piano
    corpus's); ``"nll_refit"`` (scoring another split than validation): with the memory refitted on this
    corpus's validation split (:func:`melody_utils.evaluate.memory_fit.fit_memory`: weights, timing kernel,
    strength), what the memory gives on this corpus, ``"refit"`` its settings and fit."""
    pieces, lp = split_logprobs(model, cache, split, device, progress)
    ctx, own = max(context, 1), model_memory(model)
    out = {"settings": own.to_dict(), "nll": piece_memory_nll(model, pieces, 1.0, context=ctx, settings=own, logprobs=lp)}
    if split != "validation" and len(cache.piece_indices("validation")):
        val_pieces, val_lp = split_logprobs(model, cache, "validation", device, progress)
        refit, fit = fit_memory(val_lp, val_pieces, FIT_BASE, progress)
        out["nll_refit"] = piece_memory_nll(model, pieces, 1.0, context=ctx, settings=refit, logprobs=lp)
        out["refit"] = {**refit.to_dict(), "fit": fit}
    return out


def scored_data(cfg, data: dict | None):
    """The data settings of the corpus :func:`evaluate_checkpoint` scores: the checkpoint's (``cfg.data``) with
    ``data`` (e.g. ``{"source": "chorales"}``) over them; ValueError naming an unknown or vocabulary-shaping key."""
    data = dict(data or {})
    known = {f.name for f in dataclasses.fields(cfg.data)}
    bad = sorted(k for k in data if k not in known or k in VOCAB_FIELDS)
    if bad:
        raise ValueError(f"data setting(s) {bad} cannot change what evaluate scores: the vocabulary is the checkpoint's; "
                         f"give corpus settings such as source, sustain, max_files")
    return dataclasses.replace(cfg.data, **data)


def _held_out_pieces(checkpoint_path, vocab, cfg, cache, split: str, cache_dir, progress: bool, data: dict | None = None):
    """(the token cache, the split to score, its piece indices, the source scored or None when ``cache`` is
    given) for :func:`evaluate_checkpoint`, checked; ``data``: see :func:`scored_data`."""
    scored = None
    if data and cache is not None:
        raise ValueError("evaluate: pass either a token cache or data settings of the corpus to score, not both")
    if cache is None:
        data_cfg = scored_data(cfg, data)
        scored = corpus.resolve_source(data_cfg)
        cache = corpus.prepare(data_cfg, cache_dir=cache_dir, progress=progress, vocab=vocab)
    if cache.vocab != vocab:
        raise ValueError(
            f"checkpoint {checkpoint_path} was trained with another vocabulary than the token cache's "
            f"({'; '.join(vocab_differences(vocab, cache.vocab))}; checkpoint vs cache); evaluate on the cache prepared "
            "with the checkpoint's data settings (pass cache=None)"
        )
    if split == "test" and len(cache.piece_indices("test")) == 0:
        split = "validation"
    held_out = cache.piece_indices(split)
    if len(held_out) == 0:
        raise ValueError(f"the token cache has no {split!r} piece to evaluate on; prepare it with data.test_fraction > 0")
    return cache, split, held_out, scored


def _reference_excerpts(held_notes, n_notes: int, seed: int, split: str) -> list:
    """Held-out excerpts as long as the generated pieces; at least two, or a ValueError."""
    reference = excerpts(held_notes, n_notes, seed=seed)
    if len(reference) < 2:
        raise ValueError(f"the {split!r} split has {len(reference)} usable piece(s); the statistics need at least 2")
    return reference


def evaluate_checkpoint(checkpoint_path, cache=None, n_samples: int = 8, split: str = "test", sampling: dict | None = None,
                        device: str = "cpu", batch_size: int = 64, seed: int = 0, cache_dir=None, progress: bool = True,
                        sweep=None, likelihood: bool = True, context: int = 0, data: dict | None = None) -> dict:
    """Evaluate a checkpoint on held-out pieces; returns a JSON-ready dict (see :func:`format_report`).

    - ``"nll"``: held-out NLL per note of the model (:func:`~melody_utils.evaluate.likelihood.model_nll`, causal models on
      non-overlapping windows of ``data.window`` notes, window models on every window of
      ``data.seed_window`` notes), of the uniform model and of n-grams of orders 1-3 fitted on the
      train split and tuned on the validation split, all on the fields the model predicts.
      Empty when ``likelihood`` is False (it takes the longest on a large corpus; a notebook
      that only wants the sampling statistics skips it). ``context`` > 0: the model scores only
      the notes with at least that many notes before them (:func:`context_nll`), so a causal and
      a window model are compared on the same notes; the n-grams keep scoring every note but the first.
    - ``"memory"``: ``"strength"``, the piece memory's in generation, and for
      a causal model what :func:`_memory_nll` scores (``"settings"``, ``"nll"``, ``"nll_refit"``, ``"refit"``).
    - ``"stats"``: :func:`~melody_utils.music.stats.compare_sets` of ``n_samples`` generated pieces (``n_notes`` new notes
      each; primers: the first ``sample.primer_notes`` notes, or a
      window model's full window, of the held-out pieces in turn) against held-out excerpts as long, both at the bin centres.
    - ``"degenerate_rate"``: share of generated pieces that :func:`~melody_utils.music.stats.degeneracy` flags, and
      ``"reference_degenerate_rate"``, the same for the held-out excerpts (a calibration: a
      repetitive piece such as an arpeggiated prelude can be flagged too).
    - ``"piece_stats"``: the :func:`~melody_utils.music.stats.piece_stats` of every generated piece and held-out excerpt
      (``{"generated": [...], "reference": [...]}``, arrays as lists), what
      :func:`melody_utils.display.plots.compare_distributions` draws.
    - ``"sweep"`` (only when ``sweep`` is given): a :func:`~melody_utils.evaluate.sweep.sampling_sweep` over a grid of
      temperatures and top_p values with the same primers and held-out excerpts, and the setting
      :func:`~melody_utils.evaluate.sweep.best_setting` suggests. ``sweep``: True (the default grid, :data:`~melody_utils.evaluate.sweep.SWEEP_TEMPERATURES`
      x :data:`~melody_utils.evaluate.sweep.SWEEP_TOP_PS`) or a dict of any of ``temperatures``, ``top_ps``, ``n_pieces``
      (default ``n_samples``), ``n_notes`` (default: the pieces') and ``margin`` (default
      :data:`~melody_utils.evaluate.sweep.DEGENERATE_MARGIN`). The result holds these options, ``top_k``, ``rows`` (one per
      setting; a mean OA that could not be computed is None), ``reference_degenerate_rate`` (of
      the held-out excerpts of the sweep's length), ``max_degenerate_rate`` (that + margin) and
      ``best``.

    ``cache``: a :class:`~melody_utils.data.corpus.TokenCache` tokenized with the checkpoint's vocabulary; default:
    the one the checkpoint's data settings describe, with ``data`` over them (``{"source": "chorales"}``: any
    corpus, tokenized with the checkpoint's vocabulary; :func:`scored_data`), under ``cache_dir`` when given;
    ``"corpus"`` in the result names the source scored. ``sampling``: changes
    (:class:`~melody_utils.generate.settings.SamplingSettings` names, e.g. ``{"temperature": 0.9,
    "n_notes": 100}``) to the checkpoint's ``sample`` section, which the pieces are generated with. ``split``: "test" (falls back to "validation" when the corpus has no test
    piece).
    """
    check_number("n_samples", n_samples, "an integer >= 2 (a distribution needs 2 pieces)", lo=2, integer=True)
    model, vocab, cfg, state = load_checkpoint(checkpoint_path, device)
    cache, split, held_out, scored = _held_out_pieces(checkpoint_path, vocab, cfg, cache, split, cache_dir, progress, data)
    sc = cfg.sample
    settings = SamplingSettings.from_config(sc, **(sampling or {}))
    n_notes, top_k = settings.n_notes, settings.top_k
    sweep_opts = None if sweep is None or sweep is False else sweep_options(sweep, n_samples, n_notes)

    # 1. likelihood: the model and the baselines, on the fields the model predicts
    nll = _held_out_nll(model, vocab, cfg, cache, split, batch_size, device, progress, context) if likelihood else {}

    # 2. generated pieces against held-out excerpts of the same length
    n_primer = primer_length(model, sc.primer_notes)
    primers = [cache.piece_tokens(i)[:n_primer] for i in held_out]  # the sweep below uses the same primers
    generate_fn = model_generate_fn(model, vocab.on_grid(), settings, device=device)  # centres, as held_notes
    generated = [generate_fn(seed=seed + i, primer=primers[i % len(primers)])
                 for i in tqdm(range(n_samples), desc="generating", disable=not progress, leave=False)]
    held_notes = [cache.notes(i) for i in held_out]
    reference = _reference_excerpts(held_notes, n_notes, seed, split)
    result = {
        "checkpoint": str(checkpoint_path),
        "arch": cfg.model.arch,
        "corpus": scored,
        "epoch": state.get("epoch"),
        "split": split,
        "nll": nll,
        "memory": {"strength": settings.memory, **(_memory_nll(model, cache, split, device, progress, context) if nll and model.causal else {})},
        **_statistics(generated, reference, seed),
        "sampling": {"n_samples": n_samples, "n_notes": n_notes, **settings.knobs, "primer_notes": n_primer, "seed": seed},
    }

    # 3. optionally: which sampling settings come closest to the held-out pieces
    if sweep_opts is not None:
        result["sweep"] = _sweep_result(generate_fn, sweep_opts, held_notes, primers, top_k, seed, progress)
    return result


def _statistics(generated, reference, seed: int) -> dict:
    """:func:`evaluate_checkpoint`'s ``"stats"``, ``"degenerate_rate"``, ``"reference_degenerate_rate"`` and ``"piece_stats"``."""
    gen_stats, ref_stats = [piece_stats(g) for g in generated], [piece_stats(r) for r in reference]
    return {"stats": compare_sets(gen_stats, ref_stats, seed=seed),
            "degenerate_rate": float(np.mean([degeneracy(g)["degenerate"] for g in generated])),
            "reference_degenerate_rate": float(np.mean([degeneracy(r)["degenerate"] for r in reference])),
            "piece_stats": {"generated": [_stats_to_json(s) for s in gen_stats],
                            "reference": [_stats_to_json(s) for s in ref_stats]}}


def _sweep_result(generate_fn, o: dict, held_notes, primers, top_k: int, seed: int, progress: bool) -> dict:
    """:func:`evaluate_checkpoint`'s ``"sweep"``: the rows of :func:`~melody_utils.evaluate.sweep.sampling_sweep` and the suggested setting."""
    rows = sampling_sweep(generate_fn, o["temperatures"], o["top_ps"], held_notes, n_pieces=o["n_pieces"],
                          n_notes=o["n_notes"], seed=seed, progress=progress, primers=primers, top_k=top_k)
    ref_rate = float(np.mean([degeneracy(r)["degenerate"] for r in excerpts(held_notes, o["n_notes"], seed=seed)]))
    return {**o, "top_k": top_k, "rows": _json_safe(rows), "reference_degenerate_rate": ref_rate,
            "max_degenerate_rate": ref_rate + o["margin"], "best": best_setting(rows, ref_rate, o["margin"])}


def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def format_report(result: dict, figures: dict | None = None) -> str:
    """Markdown tables of an :func:`evaluate_checkpoint` result: NLL (bits per note), statistics overlap, sweep.

    ``figures``: image links to put under their sections, ``{"distributions": "report_distributions.png",
    "sweep": ...}`` (paths relative to the report; :func:`write_report` draws and names them).
    """
    figures = figures or {}
    lines = [f"# Evaluation of {result.get('checkpoint', 'a model')}", ""]
    if result.get("corpus"):
        lines += [f"Held-out pieces of the corpus {result['corpus']}, tokenized with the checkpoint's vocabulary.", ""]
    nll = result.get("nll", {})
    if nll:
        fields = [f for f in next(iter(nll.values()))["bits"] if f != "total"]
        lines += [
            f"## Held-out negative log-likelihood ({result.get('split', 'test')} split, bits per note; lower is better)",
            "",
            "| model | " + " | ".join(fields) + " | total (bits) | total (nats) | notes scored |",
            "|---|" + "---:|" * (len(fields) + 3),
        ]
        mem = result.get("memory", {})
        with_memory = [(label, mem[key]) for key, label in (("nll", "model + memory"), ("nll_refit", "model + memory refitted"))
                       if mem.get(key)]
        rows = [row for name, r in nll.items() for row in [(name, r)] + (with_memory if name == "model" else [])]
        for name, r in rows:
            label = f"model ({result['arch']})" if name == "model" and "arch" in result else name
            cells = [_fmt(r["bits"].get(f)) for f in fields] + [_fmt(r["bits"]["total"]), _fmt(r["nats"]["total"]), str(r["n_notes"] or "-")]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines += ["", "Uniform: every id equally likely. n-grams: counts on the train split, one field at a time "
                  "given the previous n-1 notes, smoothing tuned on the validation split."
                  + (" Model + memory: the model mixed with the piece memory (melody_utils.generate.memory), on the same notes, with "
                     "the settings generation uses (the model's own, else the piano corpus's: strength "
                     f"{mem['settings']['strength']:g}, timing spread {mem['settings']['timing_spread']:g})"
                     if with_memory and mem.get("settings") else "")
                  + ("; refitted: with weights fitted on this corpus's validation split." if mem.get("nll_refit") else
                     "." if with_memory else ""), ""]
    stats = result.get("stats")
    if stats:
        s = result.get("sampling", {})
        lines += [
            f"## Generated vs held-out pieces ({stats['n_generated']} generated, {stats['n_reference']} held-out excerpts"
            + (f" of {s['n_notes']} notes; temperature {s['temperature']}, top_k {s['top_k']}, top_p {s['top_p']}" if s else "")
            + (f", memory {result['memory']['strength']:g}" if "memory" in result else "") + ")",
            "",
            "OA: overlap of the two sets' distributions (1 = same). Intra-set OA: overlap of held-out piece-to-piece "
            "distances with generated-to-held-out distances (Yang & Lerch 2018).",
            "",
            "| feature | OA | KL | intra-set OA | generated mean | held-out mean |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, f in stats["features"].items():
            means = [_fmt(f["gen_mean"]), _fmt(f["ref_mean"])] if name in SCALAR_FEATURES else ["-", "-"]
            lines.append(f"| {name} | {_fmt(f['oa'], 2)} | {_fmt(f['kl'], 2)} | {_fmt(f['intra_oa'], 2)} | " + " | ".join(means) + " |")
        lines += ["", f"Mean OA: {_fmt(stats['mean_oa'], 2)}."]
    if "degenerate_rate" in result:
        ref = result.get("reference_degenerate_rate")
        lines.append(f"Degenerate samples (loops or one pitch in more than half of the last {DEGENERATE_TAIL} notes): "
                     f"{result['degenerate_rate']:.0%}" + (f" (held-out excerpts: {ref:.0%})." if ref is not None else "."))
    if figures.get("distributions"):
        lines += ["", f"![Generated vs held-out pieces, feature by feature]({figures['distributions']})"]
    if result.get("sweep"):
        lines += [""] + _format_sweep(result["sweep"])
        if figures.get("sweep"):
            lines += ["", f"![Mean OA and degenerate rate per sampling setting]({figures['sweep']})"]
    return "\n".join(lines).rstrip() + "\n"


def _format_sweep(sweep: dict) -> list[str]:
    """The report's sweep section: the rule, one table row per setting, the suggested setting."""
    best, ceiling = sweep.get("best"), sweep["max_degenerate_rate"]
    lines = [
        f"## Sampling sweep ({sweep['n_pieces']} pieces of {sweep['n_notes']} notes per setting after held-out primers, "
        f"top_k {sweep['top_k']})",
        "",
        "Mean OA: mean overlap of the generated pieces' feature distributions with the held-out excerpts' (1 = same). "
        "Degenerate: share of pieces caught in loops or on one pitch, as above. The suggested setting is the one with the "
        "highest mean OA among the settings whose degenerate rate is not above the held-out excerpts' own rate "
        f"({sweep['reference_degenerate_rate']:.0%}) plus a margin of {sweep['margin']:.0%}, i.e. at most {ceiling:.0%}; "
        "when no setting qualifies, the least degenerate one.",
        "",
        "| temperature | top_p | mean OA | degenerate | loop share | |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for r in sweep["rows"]:
        if best is not None and (r["temperature"], r["top_p"]) == (best["temperature"], best["top_p"]):
            note = "**suggested**"
        else:
            note = "too degenerate" if r["degenerate_rate"] > ceiling + 1e-9 else ""
        lines.append(f"| {r['temperature']:g} | {r['top_p']:g} | {_fmt(r.get('mean_oa'), 2)} | "
                     f"{r['degenerate_rate']:.0%} | {r['loop_share']:.0%} | {note} |")
    return lines + ["", describe_best(sweep)]


def write_report(result: dict, report_path) -> tuple[str, dict]:
    """Write an :func:`evaluate_checkpoint` result as a markdown report, its JSON and PNG figures beside it.

    ``report_path``: the markdown file (``.md`` is added when it has no suffix). Beside it go
    ``<stem>.json`` (the result), ``<stem>_distributions.png`` (generated vs held-out pieces,
    :func:`melody_utils.display.plots.compare_distributions`) and, when the result holds a sweep,
    ``<stem>_sweep.png`` (:func:`melody_utils.display.plots.plot_sweep`); the report links the PNGs.
    Every file is written atomically. Returns (the report text, {"markdown", "json", and each
    figure's name: its path}).
    """
    report_path = Path(report_path).expanduser()
    report_path = report_path if report_path.suffix else report_path.with_suffix(".md")
    if report_path.is_dir():
        raise ValueError(f"report path {report_path} is a folder; give a file name, e.g. {report_path / 'evaluation.md'}")
    paths = {}
    figures = {}
    if result.get("piece_stats"):
        ps = result["piece_stats"]
        figures["distributions"] = plots.compare_distributions(ps["generated"], ps["reference"], title="generated vs held-out pieces")
    if result.get("sweep"):
        figures["sweep"] = plots.plot_sweep(result["sweep"])
    for name, fig in figures.items():
        png = report_path.with_name(f"{report_path.stem}_{name}.png")
        paths[name] = atomic_write_bytes(png, lambda tmp, fig=fig: fig.savefig(tmp, format="png"))
    report = format_report(result, {name: quote(path.name) for name, path in paths.items()})
    text = json.dumps(result, indent=1)
    paths["markdown"] = atomic_write_bytes(report_path, lambda tmp: Path(tmp).write_text(report))
    paths["json"] = atomic_write_bytes(report_path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(text))
    return report, paths
