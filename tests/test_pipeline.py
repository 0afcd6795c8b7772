"""The sampling pipeline: one order for every field, and a new control as one class plus its setting
(the example of docs/architecture.md)."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from melody_utils.generate.controls import CONTROLS, Control, Controls, unregister
from melody_utils.generate.logits import PITCH, STEP, NoteContext
from melody_utils.generate.pipeline import SamplingPipeline
from melody_utils.generate.sample import generate
from melody_utils.generate.settings import SamplingSettings
from melody_utils.music.tokens import seed_vocab

from helpers import tiny_model

torch.set_num_threads(1)
VOCAB = seed_vocab(velocity_bins=8)


# ---- the example: a control that forbids octave leaps ----------------------------------------
@dataclass
class LeapControls(Controls):
    no_octave_leaps: bool = False  # the new setting


@pytest.fixture
def no_octave_leaps():
    class NoOctaveLeaps(Control):
        """Forbids a pitch an octave or more away from the previous note's."""

        fields = (PITCH,)

        @classmethod
        def from_settings(cls, settings, vocab):
            return cls() if getattr(settings.controls, "no_octave_leaps", False) else None

        def __call__(self, field, logits, context):
            if context.history.shape[1]:
                last = context.history[:, -1, 0][:, None]  # (B, 1) pitch ids
                logits[np.abs(np.arange(logits.shape[1])[None] - last) >= 12] = -np.inf
            return logits

    yield NoOctaveLeaps
    unregister(NoOctaveLeaps)


def test_a_new_control_is_one_class_and_its_setting(no_octave_leaps):
    model, vocab = tiny_model(velocity_bins=8)
    free = generate(model, vocab, 80, batch=4, seed=0, top_p=1.0, controls=LeapControls())
    leaps = lambda g: np.abs(np.diff(g[..., 0].astype(int), axis=1)) >= 12  # noqa: E731
    assert leaps(free).any()  # the model leaps on its own
    for fast in (True, False):
        held = generate(model, vocab, 80, batch=4, seed=0, top_p=1.0, fast=fast, controls=LeapControls(no_octave_leaps=True))
        assert not leaps(held).any()
    assert CONTROLS[-1] is no_octave_leaps  # registered by being defined, applied after the built-in ones


# ---- the order ----------------------------------------------------------------------------
def test_temperature_comes_before_the_controls_and_the_mask_before_both():
    settings = SamplingSettings(temperature=2.0, controls=Controls(key="C major", key_strength=1.0))
    pipe = SamplingPipeline(settings, VOCAB, batch=1, capacity=1)
    z = np.zeros((1, VOCAB.n_pitch))
    out = pipe.logits(PITCH, z, NoteContext(np.zeros((1, 0, 4), int)))
    midi = np.arange(VOCAB.min_pitch, VOCAB.max_pitch + 1)
    assert np.allclose(out[0, midi % 12 == 1], -1.0)  # 1 nat after the temperature, not 1 / 2
    step = pipe.logits(STEP, np.zeros((1, VOCAB.sizes[1])),
                       NoteContext(np.zeros((1, 0, 4), int), np.array([3]), np.array([5])))
    if VOCAB.step_bins.centers[0] == 0.0:
        assert np.isneginf(step[0, 0])


def test_a_processor_that_hears_draws_makes_fields_one_after_another():
    plain = SamplingPipeline(SamplingSettings(), VOCAB, batch=2, capacity=8)
    with_memory = SamplingPipeline(SamplingSettings(memory=1.0), VOCAB, batch=2, capacity=8)
    assert not plain.field_by_field and with_memory.field_by_field


def test_the_memory_mixes_before_the_temperature():
    """The mixture is the model's distribution: at temperature T the draw is from mixture ** (1 / T)."""
    pipe = SamplingPipeline(SamplingSettings(memory=4.0, temperature=2.0), VOCAB, batch=1, capacity=64)
    rng = np.random.default_rng(0)
    phrase = np.stack([rng.integers(0, n, 16) for n in VOCAB.sizes], axis=1)  # (16, 4)
    piece = np.concatenate([phrase, phrase[:6]])  # the phrase comes back: its 7th note is the memory's guess
    for note in piece:
        pipe.observe(note[None])
    z = np.zeros((1, VOCAB.n_pitch))
    mixed = pipe.distribution[0](PITCH, z.copy(), None)  # the mixture's log-probabilities
    assert mixed.argmax() == phrase[6, 0] and mixed.max() - mixed.min() > 1.0  # the memory recalls the phrase
    out = pipe.logits(PITCH, z, NoteContext(piece[None]))
    assert np.allclose(out, mixed / 2.0)
