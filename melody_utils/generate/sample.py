"""Sampling notes from a trained model: filtering, the grammar mask, and the generation loop.

Sampling one field (pitch, step, duration, velocity) from its logits:

1. divide by ``temperature`` (> 0; below 1 sharpens, above 1 flattens),
2. keep the ``top_k`` most likely ids (0 = off; 1 = greedy),
3. keep the smallest set of the remaining ids whose probability reaches ``top_p`` (nucleus;
   1 = off), the probabilities renormalized after step 2,
4. draw from what is left, by inverse CDF with one uniform number per note and field from a
   numpy generator seeded with ``seed``, so the same seed gives the same notes on every path.

Generation paths (:func:`generate` picks one):

- causal models on CPU (``fast=True``, the default): :class:`~melody_utils.model.stepper.NumpyStepper`
  (the model's LSTM in numpy, several times faster than ``nn.LSTM`` note by note) feeds the
  primer once, then one note at a time carrying the LSTM state, O(1) per note.
- causal models with ``fast=False`` or on a GPU: the same loop with the model's own
  ``encode``/``heads`` (the reference the fast path is tested against).
- window models (the seed's ``MusicLSTM``, ``MusicLSTM_Advanced``): like the seed, every new note
  re-reads the last ``model.window`` notes, O(window) per note.

Chained models sample the pitch first, then the other fields conditioned on it.

Models trained with composers (:mod:`melody_utils.data.composers`) play like the ``composer`` asked for
("any" or None: id 0); the fast path folds its input vector into its tables once (no cost per note).

Sampling-time controls (key, range, density, per-field temperature, repetition guard; see
:mod:`melody_utils.generate.controls`) reach every path through one call per note and field,
``steer.adjust(field, logits, history, pitch)``, before the filtering above; ``seconds``
generates by length of music instead of by note count.

Grammar: notes are stored onset first, then rising pitch, so a note at the previous note's
onset (a step of exactly 0 s, the log grid's step bin 0; the seed grid has no such bin) must be
higher than it. Every path samples the pitch first and then, when it is not above the previous
note's, gives the 0-step bin no probability (:class:`GrammarMask`): a key struck twice at one
onset cannot be generated. The probability the model gave those masked notes (at temperature 1,
before top-k/top-p) is what it has not learnt yet; ``generate(info=...)`` reports its mean per note.

Without a primer, generation starts from one default note (:data:`DEFAULT_PRIMER_NOTE`, middle C),
which is not part of the output. Window models read the notes they have while there are fewer
than ``model.window`` (no padding notes are invented).
"""

from __future__ import annotations

import numbers
from typing import Callable

import numpy as np
import torch

from ..data.composers import composer_id
from .controls import NoteClock, Steering, max_notes, trim_to_seconds, validate_seconds
from ..device import resolve_device
from .memory import PieceMemory, validate_memory
from ..music.midi import DEFAULT_VELOCITY, Notes
from ..model.stepper import NumpyStepper
from ..music.tokens import Vocab

DEFAULT_PRIMER_NOTE = (60, 0.0, 0.5, DEFAULT_VELOCITY)  # middle C, half a second: (pitch, step s, duration s, velocity)


# ---------------------------------------------------------------------------------------------
# Sampling one field
# ---------------------------------------------------------------------------------------------
def validate_sampling(temperature, top_k, top_p) -> None:
    """Raise ValueError naming the parameter and its valid range."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not np.isfinite(temperature) \
            or temperature <= 0:
        raise ValueError(f"temperature must be a number > 0 (1.0 = unchanged), got {temperature!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0 (0 = off, 1 = greedy), got {top_k!r}")
    if isinstance(top_p, bool) or not isinstance(top_p, numbers.Real) or not 0 < top_p <= 1:
        raise ValueError(f"top_p must be a number in (0, 1] (1 = off), got {top_p!r}")


def _cut(z: np.ndarray, temperature: float, top_k: int, top_p: float):
    """Steps 1-3 of the module docstring on (N, V) float64 logits (modified in place).

    Returns ``(order, cdf, n_keep)``: ``order`` (N, K) the ids sorted by falling probability
    (None when nothing is cut: ids in their own order), ``cdf`` (N, K) the running sum of
    unnormalized probabilities in that order, ``n_keep`` (N,) how many of them survive (None = all).
    """
    if temperature != 1.0:
        z *= 1.0 / temperature
    order = n_keep = None
    if top_k or top_p < 1.0:
        order = np.argsort(-z, axis=-1)  # (N, V)
        if 0 < top_k < z.shape[-1]:
            order = order[:, :top_k]  # (N, K)
        z = z[np.arange(len(z))[:, None], order]  # (N, K), falling
        p = np.exp(z - z[:, :1])  # the largest is 1
    else:
        p = np.exp(z - z.max(axis=-1, keepdims=True))  # (N, V)
    cdf = np.cumsum(p, axis=-1)
    if top_p < 1.0:
        # keep an id while the mass before it is still short of top_p: the smallest set reaching it
        n_keep = ((cdf - p) < top_p * cdf[:, -1:]).sum(axis=-1)  # (N,), >= 1
    return order, cdf, n_keep


def _as_rows(logits) -> np.ndarray:
    """(..., V) numpy array or tensor -> (N, V) float64 copy."""
    if isinstance(logits, torch.Tensor):
        logits = logits.detach().cpu().numpy()
    x = np.asarray(logits)
    return x.reshape(-1, x.shape[-1]).astype(np.float64)


def filter_logits(logits, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
    """Temperature, then top-k, then top-p: the scaled logits with cut ids set to -inf.

    ``logits`` (..., V) is a numpy array or a torch tensor; the result has the same type and shape.
    """
    validate_sampling(temperature, top_k, top_p)
    z = _as_rows(logits)  # (N, V)
    z *= 1.0 / temperature
    order, cdf, n_keep = _cut(z.copy(), 1.0, top_k, top_p)
    if order is not None:
        k = order.shape[-1] if n_keep is None else n_keep[:, None]
        kept = np.arange(order.shape[-1]) < k  # (N, K)
        out = np.full_like(z, -np.inf)
        rows = np.arange(len(z))[:, None]
        out[rows, order] = np.where(kept, z[rows, order], -np.inf)
        z = out
    z = z.reshape(np.shape(logits))
    return torch.from_numpy(z).to(logits.dtype) if isinstance(logits, torch.Tensor) else z


def sample_logits(logits, u, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """Draw ids from (..., V) logits with uniforms ``u`` (...) in [0, 1): (...) int64.

    No validation (the caller validated once); -inf logits (cut or padding) are never drawn;
    ``top_k=1`` is exactly argmax.
    """
    z = _as_rows(logits)  # (N, V)
    lead = np.shape(logits)[:-1]
    if top_k == 1:
        return z.argmax(axis=-1).reshape(lead)
    order, cdf, n_keep = _cut(z, temperature, top_k, top_p)
    rows = np.arange(len(z))
    total = cdf[:, -1] if n_keep is None else cdf[rows, n_keep - 1]  # (N,) kept mass
    u = np.maximum(np.reshape(u, -1), np.finfo(np.float64).tiny)  # u > 0: a masked (zero-probability) id is never drawn
    j = (cdf < (u * total)[:, None]).sum(axis=-1)  # (N,) first position whose cdf reaches u * total
    return (j if order is None else order[rows, j]).reshape(lead)


# ---------------------------------------------------------------------------------------------
# Grammar-aware decoding
# ---------------------------------------------------------------------------------------------
def zero_step_id(vocab: Vocab) -> int | None:
    """The step id meaning "same onset as the previous note" (a 0 s bin), or None when the grid has none."""
    return 0 if vocab.step_bins.centers[0] == 0.0 else None


class GrammarMask:
    """Forbids a 0 step after a pitch at or below the previous note's, and totals the mass it removes.

    ``apply(step_logits, pitch, prev_pitch)`` returns the (B, V) step logits with the 0-step id
    set to -inf in the rows where ``pitch <= prev_pitch``; ``mean_mass`` is the mean per note of the
    probability (softmax at temperature 1, before any cut) those ids had.
    """

    def __init__(self, zero_id: int | None):
        self.zero = zero_id
        self.mass, self.notes = 0.0, 0

    def apply(self, step_logits: np.ndarray, pitch: np.ndarray, prev_pitch: np.ndarray) -> np.ndarray:
        self.notes += len(pitch)
        bad = np.asarray(pitch) <= np.asarray(prev_pitch)  # (B,)
        if self.zero is None or not bad.any():
            return step_logits
        z = np.asarray(step_logits, dtype=np.float64)[bad]  # (b, V)
        p = np.exp(z - z.max(axis=-1, keepdims=True))
        self.mass += float((p[:, self.zero] / p.sum(axis=-1)).sum())
        out = np.array(step_logits, copy=True)
        out[bad, self.zero] = -np.inf
        return out

    @property
    def mean_mass(self) -> float:
        return self.mass / max(self.notes, 1)


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------
def _primer_tokens(primer, vocab: Vocab) -> np.ndarray:
    """Primer (tokens (P, F), Notes, or None) -> (P, F) int64 tokens, P >= 1."""
    if primer is None:
        return vocab.check(np.asarray([vocab.encode_note(*DEFAULT_PRIMER_NOTE)]))
    if isinstance(primer, Notes):
        primer = vocab.encode(primer)
    t = np.asarray(primer)
    if t.ndim != 2 or len(t) == 0:
        raise ValueError(f"primer must be a non-empty (P, {len(vocab.sizes)}) token array or Notes, got shape {t.shape}")
    try:
        return vocab.check(t)
    except ValueError as e:
        raise ValueError(f"primer: {e}; encode it with the model's vocabulary (vocab.encode(notes))") from None


def _check_model_vocab(model, vocab: Vocab) -> None:
    n = len(model.sizes)
    if tuple(model.sizes) != tuple(vocab.sizes[:n]) or (model.causal and n != len(vocab.sizes)):
        raise ValueError(
            f"the model predicts ids of sizes {tuple(model.sizes)} but the vocabulary has {tuple(vocab.sizes)}; "
            "use the vocab saved with the model's checkpoint"
        )


def generate(model, vocab: Vocab, n_notes: int, primer=None, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 0.95, batch: int = 1, seed: int = 0, device: str = "cpu", fast: bool = True,
             progress: bool = False, controls=None, seconds: float | None = None,
             info: dict | None = None, composer=None, memory: float = 0.0) -> np.ndarray:
    """Sample ``n_notes`` new notes after ``primer``: (batch, n_notes, F) int16 tokens, new notes only.

    ``primer``: (P, F) tokens, Notes, or None (one default note, see the module docstring); every
    row of the batch continues the same primer with its own random draws. ``device``: where the
    torch paths run ("auto": cuda if available; the model is moved there); ``fast``: use
    :class:`NumpyStepper` for causal models when ``device`` is the CPU. ``progress``: a tqdm bar.
    The same ``seed`` gives the same notes (on the same path and machine). ``controls``: a
    :class:`~melody_utils.generate.controls.Controls` (None = off). ``seconds``: generate until every row's
    latest onset reaches this many seconds (``n_notes`` is then ignored; the last note is the first
    at or past it, see ``controls.trim_to_seconds``), with a progress bar in seconds. ``info``: a dict that
    receives ``masked_mass``, the mean per note of the probability the grammar mask removed. ``composer``: a
    name (:func:`~melody_utils.data.composers.resolve_composer`), an id, "any" or None (models trained with composers).
    ``memory``: strength of the piece memory (:mod:`melody_utils.generate.memory`; 0 = off, 1 = the fitted
    weights, up to 4), mixed into the model's distribution before everything else above.
    """
    validate_sampling(temperature, top_k, top_p)
    validate_seconds(seconds)
    memory = validate_memory(memory)
    for name, v in (("n_notes", n_notes), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    _check_model_vocab(model, vocab)
    comp = composer_id(model, composer)
    device = resolve_device(device)
    prim = _primer_tokens(primer, vocab)  # (P, F)
    n_fields = len(vocab.sizes)
    rng = np.random.default_rng(seed)
    out = np.zeros((batch, max_notes(n_notes, seconds), n_fields), np.int64)
    steps = NoteClock(out, vocab, seconds, progress)
    draw = FieldSampler((temperature, top_k, top_p), Steering(controls, vocab, temperature),
                        GrammarMask(zero_step_id(vocab)),
                        PieceMemory(batch, len(prim) + out.shape[1], memory) if memory else None)
    for note in prim:
        draw.observe(np.broadcast_to(note, (batch, n_fields)))
    was_training = model.training
    model.eval()
    try:
        if model.causal and fast and device.type == "cpu":
            _generate_fast(NumpyStepper(model, comp), prim, out, rng, steps, draw)
        else:
            model.to(device)
            with torch.no_grad():
                if model.causal:
                    _generate_causal_torch(model, prim, out, rng, steps, device, draw, comp)
                else:
                    _generate_window(model, vocab, prim, out, rng, steps, device, draw)
    finally:
        model.train(was_training)
    if info is not None:
        info["masked_mass"] = draw.mask.mean_mass
    return out[:, : steps.count].astype(np.int16)


class FieldSampler:
    """Draws one field of a batch of notes: the piece memory's mix (when on), the grammar mask
    (the step field), the controls, then the filters and the draw (:func:`sample_logits`)."""

    def __init__(self, knobs: tuple, steer: Steering, mask: GrammarMask, memory: PieceMemory | None = None):
        self.knobs, self.steer, self.mask, self.memory = knobs, steer, mask, memory

    def __call__(self, field: int, logits, u, history, pitch=None, prev_pitch=None) -> np.ndarray:
        """(B, V) logits of ``field`` -> (B,) ids; ``prev_pitch`` (B,): apply the grammar mask (step field)."""
        if self.memory is not None:
            logits = self.memory.mix(field, logits)
        if prev_pitch is not None:
            logits = self.mask.apply(logits, pitch, prev_pitch)
        ids = sample_logits(self.steer.adjust(field, logits, history, pitch), u, *self.knobs)
        if self.memory is not None:
            self.memory.chose(field, ids)
        return ids

    def observe(self, notes: np.ndarray) -> None:
        """A note per row (B, F) joins the piece (the memory's)."""
        if self.memory is not None:
            self.memory.observe(notes)


def _prev_pitch(prim, out, i: int) -> np.ndarray:
    """(B,) pitch ids of the note before new note ``i``: the primer's last, then the previous new one."""
    return out[:, i - 1, 0] if i else np.full(len(out), prim[-1, 0])


def _generate_fast(stepper: NumpyStepper, prim, out, rng, steps, draw: FieldSampler) -> None:
    B, F = out.shape[0], out.shape[2]
    state = stepper.zero_state(B)
    for note in prim:  # feed the primer once
        h, state = stepper.step(np.broadcast_to(note, (B, F)), state)
    for i in steps:
        u = rng.random((F, B))  # one uniform per field and row
        pitch = draw(0, stepper.pitch_logits(h), u[0], out[:, :i])  # (B,)
        logits = stepper.rest_logits(h, pitch)  # (B, F-1, V_max), step first
        if not stepper.chain_all and draw.memory is None:  # every field at once
            logits[:, 0] = draw.mask.apply(logits[:, 0], pitch, _prev_pitch(prim, out, i))
            for f, n in enumerate(stepper.sizes[1:], 1):
                logits[:, f - 1, :n] = draw.steer.adjust(f, logits[:, f - 1, :n], out[:, :i], pitch)
            rest = sample_logits(logits, u[1:].T, *draw.knobs)  # (B, F-1)
        else:  # one field after the other, each seeing those chosen before it (the model's or the memory's)
            rest = np.zeros((B, F - 1), np.int64)
            for k, n in enumerate(stepper.sizes[1:]):
                lg = stepper.rest_logits(h, pitch, rest[:, :k])[:, k] if k and stepper.chain_all else logits[:, k]
                rest[:, k] = draw(k + 1, lg[:, :n], u[1 + k], out[:, :i], pitch,
                                  _prev_pitch(prim, out, i) if k == 0 else None)
        out[:, i, 0] = pitch
        out[:, i, 1:] = rest
        draw.observe(out[:, i])
        if i + 1 < len(out[0]):
            h, state = stepper.step(out[:, i], state)


def _generate_causal_torch(model, prim, out, rng, steps, device, draw: FieldSampler, composer: int = 0) -> None:
    B, F = out.shape[0], out.shape[2]
    x = torch.as_tensor(prim, device=device)[None].expand(B, -1, -1)  # (B, P, F)
    comp = torch.full((B,), composer, dtype=torch.long, device=device)
    hs, state = model.encode(x, composer=comp)  # the primer once: (B, P, H)
    h = hs[:, -1]  # (B, H)
    for i in steps:
        u = rng.random((F, B))
        pitch = draw(0, model.pitch_head(h).cpu().numpy(), u[0], out[:, :i])  # (B,)
        out[:, i, 0] = pitch
        for f in range(1, F):  # conditioned on the pitch (with chain_all, on every field chosen before f)
            if f == 1 or model.chain_all:
                rest = torch.as_tensor(out[:, i, 1:], device=device)
                logits = [lg.cpu().numpy() for lg in model.heads(h, torch.as_tensor(pitch, device=device), rest)]
            out[:, i, f] = draw(f, logits[f], u[f], out[:, :i], pitch, _prev_pitch(prim, out, i) if f == 1 else None)
        draw.observe(out[:, i])
        if i + 1 < len(out[0]):
            hs, state = model.encode(torch.as_tensor(out[:, i, None], device=device), state, comp)  # (B, 1, H)
            h = hs[:, 0]


def _generate_window(model, vocab, prim, out, rng, steps, device, draw: FieldSampler) -> None:
    B, n, F = out.shape
    W = model.window
    n_model = len(model.sizes)  # 3: the seed's models leave velocity to a constant
    notes = np.concatenate([np.broadcast_to(prim, (B,) + prim.shape), out], axis=1)  # (B, P + n, F)
    P = len(prim)
    if F > n_model:
        out[:, :, n_model:] = vocab.encode_note(*DEFAULT_PRIMER_NOTE)[n_model:]
    for i in steps:
        window = torch.as_tensor(notes[:, max(0, P + i - W): P + i], device=device)  # (B, <=W, F)
        logits = [lg.cpu().numpy() for lg in model(window)]  # [(B, V_f)]
        u = rng.random((F, B))
        out[:, i, 0] = draw(0, logits[0], u[0], out[:, :i])  # the pitch first, then the step consistent with it
        for f in range(1, n_model):
            out[:, i, f] = draw(f, logits[f], u[f], out[:, :i], out[:, i, 0], _prev_pitch(prim, out, i) if f == 1 else None)
        notes[:, P + i] = out[:, i]
        draw.observe(out[:, i])


def generate_notes(model, vocab: Vocab, n_notes: int, primer=None, keep_primer: bool = False, **kwargs) -> Notes:
    """One generated piece as Notes (``generate`` with batch 1, then ``vocab.decode``).

    ``keep_primer=True`` puts the primer (as quantized tokens) before the new notes; otherwise the
    result holds the new notes only, the first starting at its sampled step. Steps, durations and
    velocities are drawn inside their bins with the same ``seed`` (``vocab.on_grid()``: the bin centres).
    """
    if kwargs.get("batch", 1) != 1:
        raise ValueError("generate_notes makes one piece (batch=1); use generate() for a batch")
    new = trim_to_seconds(generate(model, vocab, n_notes, primer, **kwargs)[0], vocab, kwargs.get("seconds"))  # (n, F)
    if keep_primer and primer is not None:
        new = np.concatenate([_primer_tokens(primer, vocab), new])
    return vocab.decode(new, seed=kwargs.get("seed", 0))


# ---------------------------------------------------------------------------------------------
# The generation contract
# ---------------------------------------------------------------------------------------------
GenerateFn = Callable[..., Notes]  # generate_fn(*, temperature, top_k, top_p, n_notes, seed, primer) -> Notes


def primer_length(model, primer_notes: int) -> int:
    """Notes a primer should hold for ``model``: ``primer_notes``, or a window model's full window."""
    return primer_notes if model.causal else max(primer_notes, model.window)  # window models read a full window


def model_generate_fn(model, vocab: Vocab, keep_primer: bool = False, device: str = "cpu",
                      progress: bool = False, controls=None, seconds: float | None = None,
                      info: dict | None = None, composer=None, memory: float = 0.0) -> GenerateFn:
    """The one generation contract, for a trained model: ``generate_fn(temperature=, top_k=, top_p=,
    n_notes=, seed=, primer=) -> Notes`` (:func:`generate_notes` with those knobs).

    The CLI, the notebooks' widgets (:func:`melody_utils.notebook.widgets.generate_and_render`), the
    sampling sweep (:func:`melody_utils.evaluate.sweep.sampling_sweep`) and :func:`melody_utils.evaluate.report.evaluate`
    all call a model through it, so a test can pass a fake with the same keywords. ``controls``,
    ``seconds``, ``composer``, ``memory`` and ``keep_primer`` (see :func:`generate`) are bound here, so the contract
    stays the same; a call may still pass them (notebook 04's widgets). ``info``: a dict that receives
    each call's ``masked_mass`` (see :func:`generate`).
    """
    composer_id(model, composer)  # a bad composer or memory fails here, before any note is generated
    validate_memory(memory)

    def generate_fn(*, temperature, top_k, top_p, n_notes, seed, primer, composer=composer, controls=controls,
                    seconds=seconds, keep_primer=keep_primer, memory=memory):
        return generate_notes(model, vocab, n_notes, primer, keep_primer=keep_primer, temperature=temperature,
                              top_k=top_k, top_p=top_p, seed=seed, device=device, progress=progress,
                              controls=controls, seconds=seconds, info=info, composer=composer, memory=memory)

    return generate_fn
