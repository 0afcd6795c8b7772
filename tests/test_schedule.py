"""Tests of melody_utils.train.schedule: the learning rate's warm-up and cosine decay (by steps or by a
time budget), and the steps a run is projected to make."""

import pytest

from melody_utils.train import schedule as S


def test_lr_schedule_warms_up_then_decays_to_floor():
    f = [S.lr_factor(s, 10, 100) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(f[:10], f[1:10]))  # warm-up rises
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # cosine falls
    assert S.lr_factor(100, 10, 100) == pytest.approx(S.MIN_LR_FRACTION)
    assert S.lr_factor(10_000, 10, 100) == pytest.approx(S.MIN_LR_FRACTION)  # no wrap-around past the end


def test_time_budget_ends_the_cosine_at_its_floor():
    assert S.lr_factor(20, 10, 10_000, time_fraction=1.0) == pytest.approx(S.MIN_LR_FRACTION)
    assert S.lr_factor(20, 10, 10_000, time_fraction=0.5) == pytest.approx(S.lr_factor(5005, 10, 10_000))
    assert S.lr_factor(9_000, 10, 10_000, time_fraction=0.1) == S.lr_factor(9_000, 10, 10_000)  # the further along wins
    assert S.lr_factor(5, 10, 10_000, time_fraction=0.9) == pytest.approx(0.6)  # warm-up stays by steps


def test_projected_steps_is_whichever_limit_ends_the_run_first():
    assert S.projected_steps(1000, 0, 0.0, 60.0) == 1000  # no pace yet: the steps
    assert S.projected_steps(1000, 100, 10.0, 60.0) == 600  # 10 steps/s for 60 s
    assert S.projected_steps(1000, 100, 1.0, 60.0) == 1000  # the epochs end it first
    assert S.projected_steps(1000, 100, 10.0) == 1000  # no budget
    assert S.projected_steps(1000, 700, 80.0, 60.0) == 700  # past the budget: never below the steps made
