"""Which sampling settings work: a sweep over temperature x top_p, and the setting to suggest.

:func:`sampling_sweep` generates pieces per (temperature, top_p) setting through the one
generation contract (:func:`melody_utils.generate.sample.model_generate_fn`) and reports their overlap with
reference pieces (:func:`melody_utils.music.stats.compare_sets`) and how often they degenerate into
loops (:func:`melody_utils.music.stats.degeneracy`); :func:`best_setting` picks the setting to suggest
and :func:`describe_best` says it in one sentence.
"""

from __future__ import annotations

import math
from itertools import product

import numpy as np
from tqdm.auto import tqdm

from ..checks import check_number
from ..music.stats import HIST_FEATURES, SCALAR_FEATURES, as_stats, compare_sets, degeneracy, excerpts

# ---------------------------------------------------------------------------------------------
# Sampling sweep
# ---------------------------------------------------------------------------------------------


def sampling_sweep(generate_fn, temperatures, top_ps, reference, n_pieces: int = 8, n_notes: int = 200, seed: int = 0,
                   progress: bool = True, primers=(None,), top_k: int = 0) -> list[dict]:
    """Generate pieces for every (temperature, top_p) and score them against ``reference``.

    ``generate_fn`` follows the one generation contract (:func:`melody_utils.generate.sample.model_generate_fn`):
    ``generate_fn(temperature=, top_k=, top_p=, n_notes=, seed=, primer=) -> Notes``. It is called
    ``n_pieces`` times per setting, with seeds ``seed``, ``seed + 1``, ... and piece ``s``
    continuing ``primers[s % len(primers)]`` (so every setting sees the same primers; default: no
    primer). ``reference`` is a list of ``Notes``; it is cut to ``n_notes``-long excerpts so lengths match. Returns one dict per
    setting: ``temperature``, ``top_p``, ``n_pieces``, ``degenerate_rate`` (share of pieces
    :func:`~melody_utils.music.stats.degeneracy` flags), ``loop_share`` and ``top_pitch_share`` (means over pieces),
    ``mean_oa`` and ``oa`` (per feature, from :func:`~melody_utils.music.stats.compare_sets`; NaN when fewer than 2
    pieces had 2 notes or more).
    """
    if n_pieces < 1:
        raise ValueError(f"n_pieces must be >= 1, got {n_pieces}")
    if len(primers) == 0:
        raise ValueError("primers is empty; pass e.g. the first notes of a few held-out pieces, or leave the default")
    ref_stats = as_stats(excerpts(reference, n_notes, seed), "reference")
    settings = list(product(temperatures, top_ps))
    if not settings:
        raise ValueError("temperatures and top_ps must each hold at least one value")
    results = []
    bar = tqdm(total=len(settings) * n_pieces, desc="sampling sweep", disable=not progress)
    for temperature, top_p in settings:
        pieces = []
        for i in range(n_pieces):
            s = seed + i
            pieces.append(generate_fn(temperature=temperature, top_k=top_k, top_p=top_p, n_notes=n_notes, seed=s,
                                      primer=primers[s % len(primers)]))
            bar.update(1)
        deg = [degeneracy(p) for p in pieces]
        usable = [p for p in pieces if len(p) >= 2]
        row = {
            "temperature": float(temperature),
            "top_p": float(top_p),
            "n_pieces": n_pieces,
            "degenerate_rate": float(np.mean([d["degenerate"] for d in deg])),
            "loop_share": float(np.mean([d["loop_share"] for d in deg])),
            "top_pitch_share": float(np.mean([d["top_pitch_share"] for d in deg])),
        }
        if len(usable) >= 2:
            cmp = compare_sets(usable, ref_stats, seed=seed)
            row["mean_oa"] = cmp["mean_oa"]
            row["oa"] = {k: v["oa"] for k, v in cmp["features"].items()}
        else:
            row["mean_oa"] = float("nan")
            row["oa"] = {k: float("nan") for k in SCALAR_FEATURES + HIST_FEATURES}
        results.append(row)
    bar.close()
    return results


# ---- choosing a setting -------------------------------------------------------------------

SWEEP_TEMPERATURES = (0.7, 0.85, 1.0, 1.15)  # evaluate's default sweep grid ...
SWEEP_TOP_PS = (0.8, 0.9, 0.95, 1.0)  # ... 16 settings
DEGENERATE_MARGIN = 0.1  # a suggested setting may degenerate this much more often than held-out music


def _as_float(x) -> float:
    """A number, or None (NaN written to JSON as null) -> float (NaN)."""
    return float("nan") if x is None else float(x)


def best_setting(rows, reference_degenerate_rate: float, margin: float = DEGENERATE_MARGIN) -> dict | None:
    """The sweep setting to suggest: the highest mean OA among those that do not degenerate too often.

    ``rows``: :func:`sampling_sweep`'s result. A setting is eligible when its ``degenerate_rate``
    is at most ``reference_degenerate_rate + margin``: held-out music is sometimes flagged too (an
    arpeggiated accompaniment repeats exactly), so the ceiling starts from its own rate. The
    eligible setting with the highest ``mean_oa`` wins (the first listed on a tie). When no
    setting is eligible, the least degenerate one is returned (the highest mean OA among equals)
    with ``"eligible": False``. Rows without a mean OA (NaN or None) are never chosen; None when
    no row has one.

    Returns ``{"temperature", "top_p", "mean_oa", "degenerate_rate", "eligible"}``.
    """
    scored = [r for r in rows if math.isfinite(_as_float(r.get("mean_oa")))]
    if not scored:
        return None
    ceiling = reference_degenerate_rate + margin + 1e-9  # rates are counts / n_pieces: exact ties count as within
    eligible = [r for r in scored if r["degenerate_rate"] <= ceiling]
    if eligible:
        best = max(eligible, key=lambda r: r["mean_oa"])  # max keeps the first of equals
    else:
        best = min(scored, key=lambda r: (r["degenerate_rate"], -r["mean_oa"]))
    return {"temperature": best["temperature"], "top_p": best["top_p"], "mean_oa": float(best["mean_oa"]),
            "degenerate_rate": float(best["degenerate_rate"]), "eligible": bool(eligible)}


def describe_best(sweep: dict) -> str:
    """One sentence naming the suggested setting of an :func:`~melody_utils.evaluate.report.evaluate` result's ``"sweep"``."""
    best = sweep.get("best")
    if best is None:
        return "No setting produced pieces long enough to score; nothing to suggest."
    setting = (f"temperature {best['temperature']:g}, top_p {best['top_p']:g} (mean OA {best['mean_oa']:.2f}, "
               f"{best['degenerate_rate']:.0%} degenerate)")
    if best["eligible"]:
        return f"Suggested setting: {setting}."
    return (f"No setting stays at or below {sweep['max_degenerate_rate']:.0%} degenerate pieces; the least degenerate "
            f"one: {setting}. Try lower temperatures and top_p values, or train the model longer.")


def sweep_options(sweep, n_pieces: int, n_notes: int) -> dict:
    """``evaluate``'s ``sweep`` argument (True or a dict) -> the full, checked sweep options."""
    opts = {"temperatures": SWEEP_TEMPERATURES, "top_ps": SWEEP_TOP_PS, "n_pieces": n_pieces, "n_notes": n_notes,
            "margin": DEGENERATE_MARGIN}
    if sweep is True:
        sweep = {}
    if not isinstance(sweep, dict):
        raise ValueError(f"sweep must be None, True or a dict such as {{'temperatures': [0.9, 1.0], 'top_ps': [0.95]}}, got {sweep!r}")
    unknown = sorted(set(sweep) - set(opts))
    if unknown:
        raise ValueError(f"unknown sweep option(s) {unknown}; known: {sorted(opts)}")
    opts.update({k: v for k, v in sweep.items() if v is not None})
    for key, ok, want in (("temperatures", lambda v: v > 0, "> 0"), ("top_ps", lambda v: 0 < v <= 1, "in (0, 1]")):
        given = opts[key]
        try:
            values = [float(v) for v in ([given] if np.isscalar(given) else given)]
        except (TypeError, ValueError):
            values = []
        if not values or not all(math.isfinite(v) and ok(v) for v in values):
            raise ValueError(f"sweep {key} must be a non-empty list of numbers {want}, got {given!r}")
        opts[key] = values
    for key in ("n_pieces", "n_notes"):
        opts[key] = check_number(f"sweep {key}", opts[key], "an integer >= 2", lo=2, integer=True)
    opts["margin"] = check_number("sweep margin", opts["margin"], "in [0, 1] (a share of pieces)", 0, 1)
    return opts
