"""Each model's piece memory: fitted on its validation pieces at the end of training, kept in its checkpoint.

The memory (:mod:`melody_utils.generate.memory`) helps a model as far as the pieces it plays repeat
themselves the way its memory expects: sequenced piano scores repeat exactly, performances vary
the timing of a repeat, and a model that already remembers well needs less help. So every causal
model gets its own memory settings, fitted on its corpus's validation pieces (:func:`fit_memory`):

- **Weights** per match length: maximum likelihood (:func:`~melody_utils.generate.memory.best_weights`).
- **Timing kernel** (``timing_spread`` over ``timing_width`` bins either side, :data:`KERNELS`) and
  **strength** (:data:`STRENGTHS`): chosen by cross-fitting, so the choice is judged on notes the
  weights were not fitted on. The validation pieces fall into :data:`FOLDS` folds; for each, weights are
  fitted on the others and it is scored; the kernel and then the strength with the lowest
  held-out nats/note win. Where no strength lowers them, the strength is 0: the memory is off
  for that model. Fewer than two validation pieces leave nothing to check it on: off too.

:func:`fit_checkpoint_memory` fits a checkpoint's model and stores the settings (and what the fit
measured, under ``"fit"``) in the checkpoint; :func:`melody_utils.model.checkpoint.load_checkpoint`
gives them to the model, and generation and ``evaluate`` use them. A checkpoint without them (the
shipped model, one written before training ended) uses the piano corpus's weights,
:data:`~melody_utils.generate.memory.MEMORY`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tqdm.auto import tqdm

from ..data.composers import piece_composer_ids
from ..generate.memory import MEMORY, MemorySettings, best_weights, joint_probabilities, kernel_counts, scaled_weights
from ..model.checkpoint import load_checkpoint, store_memory
from .likelihood import piece_logprobs

KERNELS = tuple((s, w) for w in (1, 2, 3) for s in (0.0, 0.1, 0.2, 0.35, 0.5, 0.7))  # (timing_spread, timing_width) tried
STRENGTHS = (0.0, 0.25, 0.5, 1.0)  # the model's strengths tried (odds of the fitted weights times this)
FOLDS = 2  # cross-fitting folds of the validation pieces (alternating)
MAX_FIT_NOTES = 200_000  # validation notes the fit reads at most (the first pieces): it counts matches note by note
FIT_BASE = replace(MEMORY, weights=(0.0,) * MEMORY.order, strength=1.0)  # what a fit keeps of MEMORY: how it matches


def split_logprobs(model, cache, split: str, device="cpu", progress: bool = False) -> tuple[list, list]:
    """(the split's token arrays, a causal model's per-note log-probabilities on them, each piece read
    with its composer where the model knows it): what the piece memory is scored and fitted on."""
    comps = piece_composer_ids([cache.pieces[i] for i in cache.piece_indices(split)], model.composer_names)
    pieces = cache.split_tokens(split)
    return pieces, piece_logprobs(model, pieces, device, progress, comps)


def _terms(logprobs, pieces, base: MemorySettings, progress: bool) -> list[tuple]:
    """Per piece: (p_net (M,), p_mem (K, M) under each of :data:`KERNELS`, match lengths (M,))."""
    out = []
    for lp, toks in zip(tqdm(logprobs, desc="fitting the piece memory", disable=not progress, leave=False), pieces):
        lengths, counts = kernel_counts(toks, base, KERNELS)
        mems = [joint_probabilities(lp, c, base.fields) for c in counts]
        out.append((mems[0][0], np.stack([m[1] for m in mems]), lengths[1:]))
    return out


def _gain(terms, weights: np.ndarray, strength: float) -> tuple[float, int]:
    """(nats the memory saves on ``terms`` (one kernel's (p_net, p_mem, lengths)), notes)."""
    p_net, p_mem, lengths = (np.concatenate(x) for x in zip(*terms))
    lam = scaled_weights(strength, replace(MEMORY, order=len(weights), weights=tuple(weights), strength=1.0))[lengths]
    return float(np.log((1 - lam) + lam * np.divide(p_mem, p_net, out=np.zeros_like(p_mem), where=p_net > 0)).sum()), len(p_net)


def _cross_fitted(terms, k: int, order: int) -> dict:
    """{strength: held-out nats/note the memory saves} of kernel ``k``, each fold scored with weights fitted on the others."""
    folds = [terms[i::FOLDS] for i in range(FOLDS)]
    saved, n = dict.fromkeys(STRENGTHS, 0.0), 0
    for i, held in enumerate(folds):
        rest = [t for j, f in enumerate(folds) if j != i for t in f]
        kernel = lambda ts: [(p, m[k], L) for p, m, L in ts]  # noqa: E731
        weights, _ = best_weights(*(np.concatenate(x) for x in zip(*kernel(rest))), order)
        for s in STRENGTHS:
            gain, m = _gain(kernel(held), weights, s)
            saved[s] += gain
        n += m
    return {s: g / n for s, g in saved.items()}


def fit_memory(logprobs, pieces, base: MemorySettings = MEMORY, progress: bool = False) -> tuple[MemorySettings, dict]:
    """The memory settings for a model whose validation pieces and log-probabilities (:func:`split_logprobs`)
    are given (see the module docstring), and what the fit measured: ``{"validation_pieces",
    "validation_notes", "network_nats" (per note, every field), "saved_nats" (cross-fitted, per note, at the
    chosen strength; > 0 = the memory helps), "kernels" ({"spread/width": saved nats at strength 1})}``."""
    pieces, logprobs = _capped(pieces, logprobs)
    info = {"validation_pieces": len(pieces), "validation_notes": int(sum(len(lp) for lp in logprobs)),
            "network_nats": -float(sum(np.sum(lp) for lp in logprobs)) / max(sum(len(lp) for lp in logprobs), 1)}
    if len(pieces) < FOLDS:
        return replace(base, strength=0.0), {**info, "saved_nats": 0.0, "saved_at_full_strength": 0.0, "kernels": {},
                                              "note": f"fewer than {FOLDS} validation pieces: nothing to check the memory on"}
    terms = _terms(logprobs, pieces, base, progress)
    cross = [_cross_fitted(terms, k, base.order) for k in range(len(KERNELS))]
    # the most nats saved; on a tie the weaker strength, then the narrower kernel (strength 0 saves exactly 0)
    best, strength = max(((k, s) for k in range(len(KERNELS)) for s in STRENGTHS),
                         key=lambda ks: (round(cross[ks[0]][ks[1]], 9), -ks[1], -ks[0]))
    weights, _ = best_weights(*(np.concatenate(x) for x in zip(*[(p, m[best], L) for p, m, L in terms])), base.order)
    spread, width = KERNELS[best]
    settings = replace(base, weights=tuple(float(w) for w in weights), timing_spread=spread, timing_width=width,
                       strength=float(strength))
    kernels = {f"{s:g}/{w}": c[1.0] for (s, w), c in zip(KERNELS, cross)}
    return settings, {**info, "saved_nats": cross[best][strength], "saved_at_full_strength": max(kernels.values()),
                      "kernels": kernels}


def _capped(pieces, logprobs):
    """The first pieces up to :data:`MAX_FIT_NOTES` notes (at least one)."""
    total, keep = 0, 0
    for p in pieces:
        if keep and total + len(p) > MAX_FIT_NOTES:
            break
        total, keep = total + len(p), keep + 1
    return list(pieces[:keep]), list(logprobs[:keep])


def fit_checkpoint_memory(path, cache, device="cpu", progress: bool = False) -> dict | None:
    """Fit the memory of the causal model in checkpoint ``path`` on ``cache``'s validation pieces and store it
    there (:func:`melody_utils.model.checkpoint.store_memory`); returns what it stored (settings and
    ``"fit"``), or None for a window model or a corpus without validation pieces (the checkpoint unchanged)."""
    model, vocab, _, _ = load_checkpoint(path, device)
    if not model.causal or cache.vocab != vocab or not len(cache.piece_indices("validation")):
        return None
    pieces, logprobs = split_logprobs(model, cache, "validation", device, progress)
    settings, info = fit_memory(logprobs, pieces, FIT_BASE, progress)
    memory = {**settings.to_dict(), "fit": info}
    store_memory(path, memory)
    return memory


def describe_fit(memory: dict | None) -> str:
    """One line on a fitted memory (what :func:`fit_checkpoint_memory` returns)."""
    if memory is None:
        return "piece memory: not fitted (a window model, or no validation piece); it plays with the piano corpus's weights"
    fit = memory["fit"]
    where = f"{fit['validation_pieces']} validation pieces"
    if not memory["strength"]:
        why = fit.get("note") or f"it did not lower held-out nats/note: {-fit['saved_at_full_strength']:+.3f} at full strength"
        return f"piece memory: off for this model ({why}; {where})"
    return (f"piece memory: fitted on {where}: {-fit['saved_nats']:+.3f} nats/note held out (cross-fitted), strength "
            f"{memory['strength']:g}, timing spread {memory['timing_spread']:g} over {memory['timing_width']} bin(s)")
