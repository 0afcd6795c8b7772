"""Tests of melody_utils.music.scales: a key or scale and a pitch range read from text, and bad text
named with the choices."""

import pytest

from melody_utils.music.scales import parse_key, parse_pitch_range

from helpers import D_MINOR


@pytest.mark.parametrize("text,pcs", [
    ("D minor", D_MINOR), ("C# major", (0, 1, 3, 5, 6, 8, 10)), ("Bb dorian", (0, 1, 3, 5, 7, 8, 10)),
    ("F harmonic minor", (0, 1, 4, 5, 7, 8, 10)), ("d  Minor", D_MINOR), ("A aeolian", (0, 2, 4, 5, 7, 9, 11)),
    ("G", (0, 2, 4, 6, 7, 9, 11)), ("C,D,E,G,A", (0, 2, 4, 7, 9)), ("0, 2, 4, 7, 9", (0, 2, 4, 7, 9)),
    ([0, 2, 4, 7, 9], (0, 2, 4, 7, 9)), ("Eb,G,Bb", (3, 7, 10)), ("any", None), (None, None),
])
def test_parse_key(text, pcs):
    assert parse_key(text) == pcs


@pytest.mark.parametrize("bad", ["H major", "D minorish", "C,X", [0, 12], "", [], "C# bogus"])
def test_unknown_key_names_the_value_and_the_choices(bad):
    if bad == "":
        assert parse_key(bad) is None  # empty = no key
        return
    with pytest.raises(ValueError, match="unknown key") as e:
        parse_key(bad)
    assert repr(bad) in str(e.value) and "dorian" in str(e.value) and "C,D,E,G,A" in str(e.value)


@pytest.mark.parametrize("text,expected", [("C2-C6", (36, 84)), ("A0-C8", (21, 108)), ("36-84", (36, 84)),
                                           ("Bb3 - F#5", (58, 78)), ((40, 41), (40, 41)), ("C4-C4", (60, 60))])
def test_parse_pitch_range(text, expected):
    assert parse_pitch_range(text) == expected


@pytest.mark.parametrize("bad,words", [("C6-C2", "empty"), ("84-36", "empty"), ("C0-C4", "leaves the piano"),
                                       ("A0-C9", "leaves the piano"), ("low-high", "not readable"), ("60", "not readable")])
def test_bad_range_names_the_value(bad, words):
    with pytest.raises(ValueError, match=words) as e:
        parse_pitch_range(bad)
    assert repr(bad) in str(e.value) and "A0-C8" in str(e.value)
