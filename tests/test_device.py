"""Tests of melody_utils.device: the device a setting names, and the autocast precision: fp32 on a CPU
unless bf16 is native there and asked for, fp16 on a GPU that only emulates bf16."""

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


@pytest.mark.parametrize("flags, expect", [({"avx512f", "amx_bf16"}, torch.bfloat16), ({"avx512_bf16"}, torch.bfloat16),
                                           ({"avx2", "fma"}, torch.float32)])
def test_auto_trains_in_bf16_only_where_the_cpu_multiplies_it_natively(monkeypatch, flags, expect):
    monkeypatch.setattr(device, "cpu_flags", lambda: flags)
    assert autocast_context(torch.device("cpu"), cpu_bf16="auto")[1] == expect  # never an error
    assert autocast_context(torch.device("cpu"), cpu_bf16="false")[1] == torch.float32  # --set gives strings
    if expect == torch.bfloat16:
        assert autocast_context(torch.device("cpu"), cpu_bf16="true")[1] == torch.bfloat16
    else:
        with pytest.raises(ValueError, match="train.cpu_bf16=false"):
            autocast_context(torch.device("cpu"), cpu_bf16="true")


@pytest.mark.parametrize("value", ["fast", 1.0, None])
def test_a_bad_cpu_bf16_setting_names_it(value):
    with pytest.raises(ValueError, match="train.cpu_bf16 must be 'auto', true or false"):
        device.cpu_bf16_wanted(value)


def test_auto_is_the_default_and_the_tiny_preset_stays_fp32_on_every_cpu():
    from melody_utils.config import get_config

    assert get_config("small").train.cpu_bf16 == "auto" and get_config("colab").train.cpu_bf16 == "auto"
    assert get_config("tiny").train.cpu_bf16 is False  # tests and golden files: the same numbers on any CPU
    assert device.cpu_bf16_wanted(get_config("tiny").train.cpu_bf16) is False


def test_resolve_device_errors_name_the_value():
    assert device.resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="'gpu0'"):
        device.resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            device.resolve_device("cuda")
