import pytest
import torch

from melody_utils import device
from melody_utils.device import autocast_context, cpu_has_native_bf16


def test_cpu_is_plain_fp32_unless_bf16_is_asked_for():
    ctx, dtype = autocast_context(torch.device("cpu"), amp=True)
    assert dtype == torch.float32
    with ctx:
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_cpu_bf16_autocast_runs_matmuls_in_bf16_or_says_it_cannot():
    if not cpu_has_native_bf16():
        with pytest.raises(ValueError, match="train.cpu_bf16"):
            autocast_context(torch.device("cpu"), cpu_bf16=True)
        return
    ctx, dtype = autocast_context(torch.device("cpu"), cpu_bf16=True)
    assert dtype == torch.bfloat16
    with ctx:
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_cpu_bf16_on_a_cpu_without_it_names_the_setting(monkeypatch):
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx2", "fma"})
    assert not cpu_has_native_bf16()
    with pytest.raises(ValueError, match="train.cpu_bf16=false"):
        autocast_context(torch.device("cpu"), cpu_bf16=True)
