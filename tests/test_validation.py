"""Tests of melody_utils.train.validation: the validation pass the training loop runs after each epoch."""

import pytest
import torch

from melody_utils.data import windows as data
from melody_utils.model import checkpoint as C
from melody_utils.train import loop as T
from melody_utils.train.validation import validation_loss

from helpers import tiny_cfg

torch.set_num_threads(1)


def test_trained_checkpoint_reproduces_its_validation_loss(cache, tmp_path):
    h = T.train(tiny_cfg(), cache, tmp_path, progress=False)
    model, _, cfg, _ = C.load_checkpoint(tmp_path / C.CHECKPOINT_LAST)
    loader = data.make_loader(cache, "validation", cfg.data.window, cfg.data.stride, 8, shuffle=False)
    val, heads = validation_loss(model, loader, torch.device("cpu"))
    assert val == pytest.approx(h["val_loss"][-1], abs=1e-6)
    assert set(heads) == {"pitch", "step", "duration"}
