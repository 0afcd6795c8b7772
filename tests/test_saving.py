"""When the training loop writes checkpoints (melody_utils/train/saving.py): the cadence and the snapshot."""

import pytest
import torch

from melody_utils.train.saving import Cadence, snapshot


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_cadence_waits_its_seconds_and_keeps_slow_writes_to_their_share():
    clock = FakeClock()
    c = Cadence(60, clock, share=0.05)
    clock.now = 59
    assert not c.due(epoch_end=True) and not c.due(epoch_end=False)
    clock.now = 60
    assert c.due(epoch_end=False)
    c.wrote(5.0)  # a slow write (a network drive): the next waits 5 / 0.05 = 100 s, not 60
    clock.now = 60 + 99
    assert not c.due(epoch_end=True)
    clock.now = 60 + 100
    assert c.due(epoch_end=True)
    every_epoch = Cadence(0, clock)
    assert every_epoch.due(epoch_end=True) and not every_epoch.due(epoch_end=False)
    exact = Cadence(1e-9, clock)  # an explicit cadence without a share is kept even after a slow write
    exact.wrote(5.0)
    clock.now += 1e-6
    assert exact.due(epoch_end=False)
    with pytest.raises(ValueError, match="checkpoint_every_s must be >= 0"):
        Cadence(-1, clock)


def test_snapshot_is_a_copy_that_later_steps_do_not_change():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    snap = snapshot(model, opt, {"step": 1, "history": {"val_loss": [1.0]}})
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    moments = opt.state_dict()["state"][0]["exp_avg"].clone()
    model(torch.ones(1, 3)).sum().backward()
    opt.step()  # training goes on
    for k, v in snap.model.state_dict().items():
        assert torch.equal(v, weights[k]) and not torch.equal(v, model.state_dict()[k])
    assert torch.equal(snap.optimizer.state_dict()["state"][0]["exp_avg"], moments)
    assert snap.entries == {"step": 1, "history": {"val_loss": [1.0]}}
