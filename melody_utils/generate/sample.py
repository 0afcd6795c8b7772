"""Sampling notes from a trained model: the generation loops.

How one field is drawn from its logits (the piece memory, the temperature, the controls, the
grammar mask, top-k / top-p) is :mod:`melody_utils.generate.pipeline`, built from one
:class:`~melody_utils.generate.settings.SamplingSettings`; random numbers come from a numpy
generator seeded with the settings' ``seed``, one uniform number per note and field, so the same
seed gives the same notes on every path.

Generation paths (:func:`generate` picks one):

- causal models on CPU (``fast=True``, the default): :class:`~melody_utils.model.stepper.NumpyStepper`
  (the model's LSTM in numpy, several times faster than ``nn.LSTM`` note by note) feeds the
  primer once, then one note at a time carrying the LSTM state, O(1) per note.
- causal models with ``fast=False`` or on a GPU: the same loop with the model's own
  ``encode``/``heads`` (the reference the fast path is tested against).
- window models (the seed's ``MusicLSTM``, ``MusicLSTM_Advanced``): like the seed, every new note
  re-reads the last ``model.window`` notes, O(window) per note.

Chained models sample the pitch first, then the other fields conditioned on it.

Models trained with composers (:mod:`melody_utils.data.composers`) play like the settings'
``composer`` ("any" or None: id 0); the fast path folds its input vector into its tables once.

Without a primer, generation starts from one default note (:data:`DEFAULT_PRIMER_NOTE`, middle C),
which is not part of the output. Window models read the notes they have while there are fewer
than ``model.window`` (no padding notes are invented).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..checks import check_number
from ..data.composers import composer_id
from ..device import resolve_device, single_threaded
from ..model.stepper import NumpyStepper
from ..music.midi import DEFAULT_VELOCITY, Notes
from ..music.tokens import Vocab
from .controls import NoteClock, max_notes, trim_to_seconds
from .logits import NoteContext
from .memory import model_memory
from .pipeline import SamplingPipeline
from .settings import SamplingSettings

DEFAULT_PRIMER_NOTE = (60, 0.0, 0.5, DEFAULT_VELOCITY)  # middle C, half a second: (pitch, step s, duration s, velocity)


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


@single_threaded  # one BLAS thread: tiny matrix products (device.py, docs/benchmarks.md)
def generate(model, vocab: Vocab, n_notes: int | None = None, primer=None, settings: SamplingSettings | None = None, *,
             batch: int = 1, device: str = "cpu", fast: bool = True, progress: bool = False, info: dict | None = None,
             **changes) -> np.ndarray:
    """Sample new notes after ``primer``: (batch, n, F) int16 tokens, new notes only.

    ``settings`` (default :class:`SamplingSettings`) says how, with ``changes`` (setting names,
    e.g. ``temperature=0.9``) and ``n_notes`` on top, as Hugging Face's ``generate(**kwargs)``
    updates its ``GenerationConfig``. With ``settings.seconds``, generation runs until every row's
    latest onset reaches that many seconds (the last note is the first at or past it, see
    ``controls.trim_to_seconds``), with a progress bar in seconds. ``primer``: (P, F) tokens, Notes,
    or None (one default note); every row continues the same primer with its own random draws.
    ``device``: where the torch paths run ("auto": cuda if available; the model is moved there);
    ``fast``: use :class:`NumpyStepper` for causal models on the CPU. ``progress``: a tqdm bar.
    ``info``: a dict that receives ``masked_mass``, the mean per note of the probability the
    grammar mask removed. The piece memory (``settings.memory``, its strength) plays with the model's own
    settings (fitted at the end of its training and loaded with its checkpoint, ``memory.model_memory``).
    """
    settings = (settings or SamplingSettings()).replace(**changes, **({} if n_notes is None else {"n_notes": n_notes}))
    batch = check_number("batch", batch, "an integer >= 1", lo=1, integer=True)
    _check_model_vocab(model, vocab)
    comp = composer_id(model, settings.composer)
    device = resolve_device(device)
    prim = _primer_tokens(primer, vocab)  # (P, F)
    rng = np.random.default_rng(settings.seed)
    out = np.zeros((batch, max_notes(settings.n_notes, settings.seconds), len(vocab.sizes)), np.int64)
    clock = NoteClock(out, vocab, settings.seconds, progress)
    pipeline = SamplingPipeline(settings, vocab, batch, len(prim) + out.shape[1], model_memory(model))
    for note in prim:
        pipeline.observe(np.broadcast_to(note, (batch, out.shape[2])))
    was_training = model.training
    model.eval()
    try:
        if model.causal and fast and device.type == "cpu":
            _generate_fast(NumpyStepper(model, comp), prim, out, rng, clock, pipeline)
        else:
            model.to(device)
            with torch.no_grad():
                if model.causal:
                    _generate_causal_torch(model, prim, out, rng, clock, device, pipeline, comp)
                else:
                    _generate_window(model, vocab, prim, out, rng, clock, device, pipeline)
    finally:
        model.train(was_training)
    if info is not None:
        info["masked_mass"] = pipeline.mask.mean_mass
    return out[:, : clock.count].astype(np.int16)


def _context(prim, out, i: int, pitch=None) -> NoteContext:
    """What the processors see while note ``i`` is drawn: the notes before it, its pitch once chosen,
    and the pitch of the note before it (the primer's last for the first note)."""
    prev = out[:, i - 1, 0] if i else np.full(len(out), prim[-1, 0])
    return NoteContext(out[:, :i], pitch, prev if pitch is not None else None)


def _generate_fast(stepper: NumpyStepper, prim, out, rng, clock, pipeline: SamplingPipeline) -> None:
    B, F = out.shape[0], out.shape[2]
    state = stepper.zero_state(B)
    for note in prim:  # feed the primer once
        h, state = stepper.step(np.broadcast_to(note, (B, F)), state)
    for i in clock:
        u = rng.random((F, B))  # one uniform per field and row
        pitch = pipeline.draw(0, stepper.pitch_logits(h), u[0], _context(prim, out, i))  # (B,)
        context = _context(prim, out, i, pitch)
        logits = stepper.field_logits(h, pitch)  # (B, F-1, V_max), step first
        if not stepper.chain_all and not pipeline.field_by_field:  # every field at once
            fields = pipeline.draw_together(logits, stepper.sizes[1:], u[1:].T, context)  # (B, F-1)
        else:  # one field after the other, each seeing those chosen before it (the model's or the memory's)
            fields = np.zeros((B, F - 1), np.int64)
            for k, n in enumerate(stepper.sizes[1:]):
                lg = stepper.field_logits(h, pitch, fields[:, :k])[:, k] if k and stepper.chain_all else logits[:, k]
                fields[:, k] = pipeline.draw(k + 1, lg[:, :n], u[1 + k], context)
        out[:, i, 0] = pitch
        out[:, i, 1:] = fields
        pipeline.observe(out[:, i])
        if i + 1 < len(out[0]):
            h, state = stepper.step(out[:, i], state)


def _generate_causal_torch(model, prim, out, rng, clock, device, pipeline: SamplingPipeline, composer: int = 0) -> None:
    B, F = out.shape[0], out.shape[2]
    x = torch.as_tensor(prim, device=device)[None].expand(B, -1, -1)  # (B, P, F)
    comp = torch.full((B,), composer, dtype=torch.long, device=device)
    hs, state = model.encode(x, composer=comp)  # the primer once: (B, P, H)
    h = hs[:, -1]  # (B, H)
    for i in clock:
        u = rng.random((F, B))
        pitch = pipeline.draw(0, model.pitch_head(h).cpu().numpy(), u[0], _context(prim, out, i))  # (B,)
        out[:, i, 0] = pitch
        context = _context(prim, out, i, pitch)
        for f in range(1, F):  # conditioned on the pitch (with chain_all, on every field chosen before f)
            if f == 1 or model.chain_all:
                chosen = torch.as_tensor(out[:, i, 1:], device=device)
                logits = [lg.cpu().numpy() for lg in model.heads(h, torch.as_tensor(pitch, device=device), chosen)]
            out[:, i, f] = pipeline.draw(f, logits[f], u[f], context)
        pipeline.observe(out[:, i])
        if i + 1 < len(out[0]):
            hs, state = model.encode(torch.as_tensor(out[:, i, None], device=device), state, comp)  # (B, 1, H)
            h = hs[:, 0]


def _generate_window(model, vocab, prim, out, rng, clock, device, pipeline: SamplingPipeline) -> None:
    B, n, F = out.shape
    W = model.window
    n_model = len(model.sizes)  # 3: the seed's models leave velocity to a constant
    notes = np.concatenate([np.broadcast_to(prim, (B,) + prim.shape), out], axis=1)  # (B, P + n, F)
    P = len(prim)
    if F > n_model:
        out[:, :, n_model:] = vocab.encode_note(*DEFAULT_PRIMER_NOTE)[n_model:]
    for i in clock:
        window = torch.as_tensor(notes[:, max(0, P + i - W): P + i], device=device)  # (B, <=W, F)
        logits = [lg.cpu().numpy() for lg in model(window)]  # [(B, V_f)]
        u = rng.random((F, B))
        out[:, i, 0] = pipeline.draw(0, logits[0], u[0], _context(prim, out, i))  # the pitch first, then the fields after it
        context = _context(prim, out, i, out[:, i, 0].copy())
        for f in range(1, n_model):
            out[:, i, f] = pipeline.draw(f, logits[f], u[f], context)
        notes[:, P + i] = out[:, i]
        pipeline.observe(out[:, i])


def generate_notes(model, vocab: Vocab, n_notes: int | None = None, primer=None, settings: SamplingSettings | None = None,
                   **kwargs) -> Notes:
    """One generated piece as Notes (``generate`` with batch 1, then ``vocab.decode``).

    With ``settings.keep_primer`` the primer (as quantized tokens) comes before the new notes;
    otherwise the result holds the new notes only, the first starting at its sampled step.
    ``kwargs``: :func:`generate`'s keywords and setting changes. Steps, durations and
    velocities are drawn inside their bins with the settings' ``seed`` (``vocab.on_grid()``: the bin centres).
    """
    if kwargs.pop("batch", 1) != 1:
        raise ValueError("generate_notes makes one piece (batch=1); use generate() for a batch")
    run = {k: kwargs.pop(k) for k in ("device", "fast", "progress", "info") if k in kwargs}
    settings = (settings or SamplingSettings()).replace(**kwargs, **({} if n_notes is None else {"n_notes": n_notes}))
    new = trim_to_seconds(generate(model, vocab, primer=primer, settings=settings, **run)[0], vocab, settings.seconds)
    if settings.keep_primer and primer is not None:
        new = np.concatenate([_primer_tokens(primer, vocab), new])
    return vocab.decode(new, seed=settings.seed)


# ---------------------------------------------------------------------------------------------
# The generation contract
# ---------------------------------------------------------------------------------------------
GenerateFn = Callable[..., Notes]  # generate_fn(*, primer, **setting changes) -> Notes


def primer_length(model, primer_notes: int) -> int:
    """Notes a primer should hold for ``model``: ``primer_notes``, or a window model's full window."""
    return primer_notes if model.causal else max(primer_notes, model.window)  # window models read a full window


def model_generate_fn(model, vocab: Vocab, settings: SamplingSettings | None = None, device: str = "cpu",
                      progress: bool = False, info: dict | None = None) -> GenerateFn:
    """The one generation contract, for a trained model: ``generate_fn(*, primer, **changes) -> Notes``,
    :func:`generate_notes` with ``settings`` and the ``changes`` of this call (e.g. the sweep's
    ``temperature=``, ``top_p=``, ``n_notes=``, ``seed=``).

    The CLI, the notebooks' widgets (:func:`melody_utils.notebook.widgets.generate_and_render`), the
    sampling sweep (:func:`melody_utils.evaluate.sweep.sampling_sweep`) and
    :func:`melody_utils.evaluate.report.evaluate_checkpoint` all call a model through it, so a test
    can pass a fake with the same keywords. ``info``: a dict that receives each call's
    ``masked_mass`` (see :func:`generate`).
    """
    settings = settings or SamplingSettings()
    composer_id(model, settings.composer)  # a bad composer fails here, before any note is generated

    def generate_fn(*, primer=None, **changes):
        return generate_notes(model, vocab, primer=primer, settings=settings.replace(**changes), device=device,
                              progress=progress, info=info)

    return generate_fn
