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


def _fake_gpu(monkeypatch, major: int, with_argument: bool = True):
    """Stand in a CUDA GPU of compute capability ``major`` whose torch reports bf16 as supported
    when emulation counts (what torch says on a T4)."""
    def is_bf16_supported(including_emulation=True):
        return major >= 8 or including_emulation

    def old_is_bf16_supported():  # torch before including_emulation existed
        return True

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported if with_argument else old_is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: type("Props", (), {"major": major})())


@pytest.mark.parametrize("with_argument", [True, False])
def test_a_gpu_that_only_emulates_bf16_trains_in_fp16(monkeypatch, with_argument):
    _fake_gpu(monkeypatch, major=7, with_argument=with_argument)  # a T4
    assert not device.cuda_has_native_bf16()
    _fake_gpu(monkeypatch, major=9, with_argument=with_argument)  # an H100
    assert device.cuda_has_native_bf16()


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_gpu_autocast_picks_fp16_where_bf16_is_emulated(monkeypatch):
    monkeypatch.setattr(device, "cuda_has_native_bf16", lambda: False)
    assert autocast_context(torch.device("cuda"), amp=True)[1] == torch.float16
    monkeypatch.setattr(device, "cuda_has_native_bf16", lambda: True)
    assert autocast_context(torch.device("cuda"), amp=True)[1] == torch.bfloat16
    assert autocast_context(torch.device("cuda"), amp=False)[1] == torch.float32
