"""Tests of melody_utils.generate.settings: SamplingSettings check their values when made and replaced,
naming the setting."""

import numpy as np
import pytest

from melody_utils.generate.logits import filter_logits
from melody_utils.generate.settings import SamplingSettings


@pytest.mark.parametrize("kwargs,name", [
    (dict(temperature=0), "temperature"), (dict(temperature=-1.0), "temperature"),
    (dict(temperature=float("nan")), "temperature"), (dict(temperature="hot"), "temperature"),
    (dict(top_k=-1), "top_k"), (dict(top_k=2.5), "top_k"), (dict(top_k=True), "top_k"),
    (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"), (dict(top_p=-0.1), "top_p"),
])
def test_validation_names_the_parameter(kwargs, name):
    args = {"temperature": 1.0, "top_k": 0, "top_p": 0.9, **kwargs}
    with pytest.raises(ValueError, match=name):
        SamplingSettings(**args)
    with pytest.raises(ValueError, match=name):
        filter_logits(np.zeros(4), **args)


def test_valid_settings_pass():
    assert SamplingSettings(temperature=0.5, top_k=0, top_p=1.0).knobs == {"temperature": 0.5, "top_k": 0, "top_p": 1.0}
    s = SamplingSettings(temperature=2, top_k=np.int64(3), top_p=0.01)
    assert type(s.temperature) is float and type(s.top_k) is int  # normalised when checked


def test_settings_replace_checks_again_and_names_unknown_settings():
    s = SamplingSettings()
    assert s.replace(temperature=0.7).temperature == 0.7 and s.temperature == 1.0
    with pytest.raises(ValueError, match="temperature"):
        s.replace(temperature=0)
    with pytest.raises(ValueError, match="unknown sampling setting.*'temprature'"):
        s.replace(temprature=0.7)
