"""Tests of melody_utils.display.piano_model, the built-in numpy piano, played through
audio.synthesize(method="numpy"): a note's strike, decay and release, loudness by velocity, the stereo image."""

import numpy as np

from melody_utils.display import audio, piano_model
from melody_utils.music.midi import Notes

from helpers import one_note

SR = 8000  # low rate keeps the tests fast


def test_numpy_note_is_released_at_its_end():
    w = audio.synthesize(one_note(duration=0.5), SR, "numpy")
    end = int((0.5 + piano_model.RELEASE_S) * SR) + 2
    assert np.abs(w[: int(0.4 * SR)]).max() > 0.1
    assert np.abs(w[end:]).max() == 0.0


def test_numpy_louder_velocity_is_louder():
    notes = Notes([60, 60], [0.0, 1.0], [0.5, 0.5], [30, 120])
    w = audio.synthesize(notes, SR, "numpy")
    soft, loud = w[: SR // 2], w[SR : SR + SR // 2]
    assert audio.rms_db(loud) > audio.rms_db(soft) + 6


def test_zero_duration_notes_still_sound():
    w = audio.synthesize(Notes([60, 64], [0.0, 0.0], [0.0, 0.0], [80, 80]), SR, "numpy")
    assert audio.rms_db(w) > -40


def test_numpy_note_decays_like_a_struck_string_and_stops_at_note_off():
    w = audio.synthesize(one_note(pitch=60, duration=2.0), SR, "numpy")
    rms = lambda a, b: float(np.sqrt(np.mean(w[int(a * SR):int(b * SR)] ** 2)))
    assert rms(0.0, 0.1) > 3 * rms(1.0, 1.1)  # the strike fades fast into a quieter aftersound
    assert rms(1.0, 1.1) > 0
    assert np.abs(w[int((2.0 + piano_model.RELEASE_S) * SR) + 2:]).max() < 1e-6  # silent after the release


def test_numpy_model_places_bass_left_and_treble_right():
    low = audio.synthesize(one_note(pitch=30), SR, "numpy")
    high = audio.synthesize(one_note(pitch=100), SR, "numpy")
    assert audio.rms_db(low[:, 0]) > audio.rms_db(low[:, 1]) + 3
    assert audio.rms_db(high[:, 1]) > audio.rms_db(high[:, 0]) + 3
