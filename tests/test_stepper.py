"""Tests of melody_utils.model.stepper: the numpy stepper gives the torch model's logits, one note at a
time with carried state."""

import numpy as np
import pytest
import torch

from melody_utils.model.stepper import NumpyStepper

from helpers import EXTRAS, random_tokens, tiny_model

torch.set_num_threads(1)


@pytest.mark.parametrize("extra", EXTRAS)
@pytest.mark.parametrize("chained,velocity_bins,layers", [(True, 0, 2), (False, 0, 2), (True, 6, 1), (False, 6, 3)])
def test_numpy_stepper_matches_full_forward(chained, velocity_bins, layers, extra):
    model, vocab = tiny_model(chained=chained, velocity_bins=velocity_bins, layers=layers, **extra)
    model.eval()
    seq = np.stack([random_tokens(vocab, 12, seed=s) for s in range(3)])  # (B, T, F)
    with torch.no_grad():
        x = torch.as_tensor(seq)
        ref = model(x[:, :-1], next_pitch=x[:, 1:, 0], next_fields=x[:, 1:, 1:])  # [(B, T-1, V)]: after each prefix
    stepper = NumpyStepper(model)
    state = stepper.zero_state(3)
    for t in range(11):  # carried state: one note at a time
        h, state = stepper.step(seq[:, t], state)
        for f, lg in enumerate(stepper.heads(h, seq[:, t + 1, 0], seq[:, t + 1, 1:])):
            np.testing.assert_allclose(lg, ref[f][:, t].numpy(), atol=1e-4)
