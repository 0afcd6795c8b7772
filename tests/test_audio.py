"""Tests of melody_utils.display.audio: synthesis by any method, the notebook audio player, levels and WAV
writing. The built-in numpy piano itself is tested in test_piano_model.py."""

import io
import math
import wave

import numpy as np
import pytest

from helpers import one_note, random_notes
from melody_utils.display import audio
from melody_utils.music.midi import Notes

SR = 8000  # low rate keeps the tests fast; every synthesizer takes it
METHODS = ["numpy"] + [m for m in ("symusic", "soundfont", "fluidsynth") if m in audio.available_methods()]


@pytest.mark.parametrize("method", METHODS)
def test_synthesize_length_level_and_range(method):
    notes = random_notes(20, seed=3)
    w = audio.synthesize(notes, SR, method)
    assert w.dtype == np.float32 and w.shape == (math.ceil((notes.seconds() + audio.TAIL_S) * SR), 2)  # stereo frames
    assert np.abs(w).max() <= 1.0
    assert np.isclose(np.abs(w).max(), audio.PEAK_LEVEL, atol=1e-3)  # peak-normalised
    assert audio.rms_db(w) > -40  # clearly audible, not silence


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("pitch", [57, 69])
def test_spectrum_peaks_at_the_fundamental(method, pitch):
    sr = 22050 if method != "numpy" else SR
    w = audio.to_mono(audio.synthesize(one_note(pitch), sr, method))
    spec = np.abs(np.fft.rfft(w))
    peak_hz = np.fft.rfftfreq(len(w), 1 / sr)[spec.argmax()]
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    assert abs(peak_hz - f0) < 0.02 * f0


def test_empty_notes_give_empty_wave_and_player_refuses():
    assert len(audio.synthesize(Notes.empty(), SR, "numpy")) == 0
    with pytest.raises(ValueError, match="nothing to play"):
        audio.audio_player(Notes.empty(), SR)


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "mp3"}, "method must be"),
    ({"sample_rate": 100}, "sample_rate"),
    ({"sample_rate": 22050.5}, "sample_rate"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        audio.synthesize(one_note(), **kwargs)


def test_bad_pitch_is_rejected():
    with pytest.raises(ValueError, match="pitches"):
        audio.synthesize(one_note(pitch=130), SR, "numpy")


def test_missing_method_says_how_to_install(monkeypatch):
    monkeypatch.setattr(audio, "_has_fluidsynth", lambda: False)
    monkeypatch.setattr(audio, "_has_tinysoundfont", lambda: False)
    monkeypatch.setattr(audio, "_symusic_in_tune", lambda sf2: False)
    assert audio.available_methods() == ["numpy"]
    with pytest.raises(ImportError, match="symusic"):
        audio.synthesize(one_note(), SR, "symusic")
    with pytest.raises(ImportError, match="pip install pyfluidsynth"):
        audio.synthesize(one_note(), SR, "fluidsynth")
    with pytest.raises(ImportError, match="pip install --no-deps tinysoundfont"):
        audio.synthesize(one_note(), SR, "soundfont")


def test_auto_falls_back_when_a_synthesizer_fails(monkeypatch):
    def broken(notes, sr, sf2_path=None):
        raise RuntimeError("no sound card")

    monkeypatch.setattr(audio, "available_methods", lambda sf2=None: ["soundfont", "numpy"])
    monkeypatch.setitem(audio._SYNTHS, "soundfont", broken)
    with pytest.warns(UserWarning, match="soundfont"):
        w = audio.synthesize(one_note(), SR, "auto")
    np.testing.assert_array_equal(w, audio.synthesize(one_note(), SR, "numpy"))


def test_custom_synthesizer_is_padded_and_normalised():
    calls = []

    def square(notes, sr):
        calls.append((len(notes), sr))
        return np.full(100, 0.25)

    w = audio.synthesize(one_note(duration=1.0), SR, square)
    assert calls == [(1, SR)]
    assert len(w) == math.ceil((1.0 + audio.TAIL_S) * SR)
    assert np.isclose(w[:50].max(), audio.PEAK_LEVEL) and np.all(w[100:] == 0)


def test_silent_synthesizer_is_an_error():
    with pytest.raises(RuntimeError, match="silence"):
        audio.synthesize(one_note(), SR, lambda notes, sr: np.zeros(10))


def test_rms_db():
    t = np.arange(SR) / SR
    assert audio.rms_db(np.sin(2 * np.pi * 100 * t)) == pytest.approx(-3.01, abs=0.05)
    assert audio.rms_db(0.1 * np.sin(2 * np.pi * 100 * t)) == pytest.approx(-23.01, abs=0.05)
    assert audio.rms_db(np.zeros(10)) == audio.SILENCE_DB
    assert audio.rms_db([]) == audio.SILENCE_DB


def wav_frames(data: bytes):
    with wave.open(io.BytesIO(data)) as r:
        return r.getnchannels(), r.getsampwidth(), r.getframerate(), np.frombuffer(r.readframes(r.getnframes()), "<i2")


def test_audio_player_clips_to_max_seconds():
    wave_40s = np.sin(np.arange(40 * SR) * 0.05).astype(np.float32)
    player = audio.audio_player(wave_40s, SR, max_seconds=5)
    channels, _, rate, pcm = wav_frames(player.data)
    assert (channels, rate, len(pcm)) == (1, SR, 5 * SR)
    assert pcm[-1] == 0  # faded out, no click


def test_audio_player_synthesizes_notes_up_to_max_seconds():
    notes = Notes.from_steps(np.full(40, 60), np.full(40, 0.5), np.full(40, 0.4))  # 20 s
    channels, _, rate, pcm = wav_frames(audio.audio_player(notes, SR, max_seconds=3, method="numpy").data)
    assert channels == 2 and len(pcm) <= 3 * SR * channels and np.abs(pcm).max() > 1000


def test_write_wav_round_trip(tmp_path):
    w = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0], dtype=np.float32)  # 2.0 clips to full scale
    path = audio.write_wav(w, tmp_path / "sub" / "x.wav", SR)
    channels, width, rate, pcm = wav_frames(path.read_bytes())
    assert (channels, width, rate) == (1, 2, SR)
    np.testing.assert_array_equal(pcm, [0, 16384, -16384, 32767, -32767, 32767])
    assert [p.name for p in path.parent.iterdir()] == ["x.wav"]  # no temp file left behind
    with pytest.raises(ValueError, match="sample_rate"):
        audio.write_wav(w, tmp_path / "y.wav", 0)


def test_synthesize_named_says_which_synthesizer_played():
    wave, name = audio.synthesize_named(one_note(), SR, "numpy")
    assert name == "numpy" and len(wave) > 0
    assert audio.synthesize_named(one_note(), SR, lambda notes, sr: np.ones(100))[1] == "custom"
    assert "numpy" in audio.player_caption(3.0, name)


def test_player_caption_says_when_it_cuts():
    assert "all 12.0 s" in audio.player_caption(12.0, "numpy", max_seconds=30)
    cut = audio.player_caption(45.0, "soundfont", max_seconds=30)
    assert "first 30 s of 45 s" in cut and "tinysoundfont" in cut


def test_audio_player_plays_the_whole_piece_by_default():
    wave_40s = np.full(40 * SR, 0.1, dtype=np.float32)
    _, _, rate, pcm = wav_frames(audio.audio_player(wave_40s, SR).data)
    assert len(pcm) == 40 * SR


def test_equal_loudness_gives_clips_the_same_rms():
    rng = np.random.default_rng(0)
    quiet, loud = 0.05 * rng.standard_normal(SR), 0.5 * rng.standard_normal(2 * SR)
    out = audio.equal_loudness({"quiet": quiet, "loud": loud})
    assert audio.rms_db(out["quiet"]) == pytest.approx(audio.rms_db(out["loud"]), abs=0.01)
    assert max(np.abs(w).max() for w in out.values()) <= audio.PEAK_LEVEL + 1e-6
    with pytest.raises(ValueError, match="silent"):
        audio.equal_loudness({"a": quiet, "b": np.zeros(10)})


def test_write_wav_stereo_interleaves_left_and_right(tmp_path):
    w = np.array([[0.5, -0.5], [0.25, 0.0], [1.0, -1.0]], dtype=np.float32)  # (frames, 2)
    channels, width, rate, pcm = wav_frames(audio.write_wav(w, tmp_path / "s.wav", 44100).read_bytes())
    assert (channels, width, rate) == (2, 2, 44100)
    np.testing.assert_array_equal(pcm, [16384, -16384, 8192, 0, 32767, -32767])


def test_render_to_wav_is_44k_stereo_and_not_silent(tmp_path):
    path, synth = audio.render_to_wav(random_notes(12, seed=1), tmp_path / "take.wav", method="numpy")
    channels, width, rate, pcm = wav_frames(path.read_bytes())
    assert (channels, width, rate, synth) == (2, 2, 44100, "numpy")
    left, right = pcm[0::2].astype(float), pcm[1::2].astype(float)
    assert audio.rms_db(left / 32767) > -40 and audio.rms_db(right / 32767) > -40
    assert not np.array_equal(left, right)  # placed in the stereo image, not mono twice


def test_soundfont_methods_name_the_soundfont_they_played(monkeypatch):
    calls = []

    def fake_symusic(notes, sr, sf2_path=None):
        calls.append(sf2_path)
        return np.ones((len(notes), 2))

    monkeypatch.setattr(audio, "available_methods", lambda sf2=None: ["symusic", "numpy"])
    monkeypatch.setitem(audio._SYNTHS, "symusic", fake_symusic)
    wave, synth = audio.synthesize_named(one_note(), SR)
    assert synth == f"symusic:{calls[0].name}" and calls[0].is_file()
    assert audio.describe_synth(synth) == f"symusic's SoundFont synthesizer playing {calls[0].name}"
    with pytest.raises(FileNotFoundError, match="--soundfont .*nothere.sf2"):
        audio.synthesize_named(one_note(), SR, sf2_path="/nothere.sf2")


@pytest.mark.skipif("symusic" not in audio.available_methods(),
                    reason="symusic's synthesizer does not play the machine's SoundFont in tune here (docs/audio.md)")
def test_symusic_renders_stereo_at_the_fundamental():
    wave, synth = audio.synthesize_named(one_note(69, duration=1.0), 22050, "symusic")
    assert wave.shape[1] == 2 and synth.startswith("symusic:")
    assert audio.fundamental_share(wave, 69, 22050) > 0.5


def test_fundamental_share_tells_an_in_tune_note_from_a_detuned_one():
    wave = audio.synthesize(one_note(69), SR, "numpy")
    assert audio.fundamental_share(wave, 69, SR) == pytest.approx(1.0)
    assert audio.fundamental_share(wave, 74, SR) < 0.05  # sounding A4 where D5 was asked for


def test_the_symusic_probe_refuses_a_failing_or_detuned_render(monkeypatch):
    def fails(*args, **kwargs):
        raise TypeError("Unable to convert function return value to a Python type!")

    def a_fifth_sharp(notes, sr, sf2_path=None):
        return audio.synth_numpy(Notes(notes.pitch + 7, notes.start, notes.duration, notes.velocity), sr)

    for render, works in ((fails, False), (a_fifth_sharp, False), (lambda n, sr, sf2_path=None: audio.synth_numpy(n, sr), True)):
        audio._symusic_in_tune.cache_clear()
        monkeypatch.setattr(audio, "synth_symusic", render)
        assert audio._symusic_in_tune("any.sf2") is works
        assert ("symusic" in audio.available_methods()) is works
    audio._symusic_in_tune.cache_clear()


def test_describe_sound_names_what_auto_plays_with(monkeypatch):
    monkeypatch.setattr(audio, "available_methods", lambda sf2=None: ["numpy"])
    assert audio.describe_sound() == f"sound: {audio.SYNTH_NAMES['numpy']}"
    monkeypatch.setattr(audio, "available_methods", lambda sf2=None: ["soundfont", "numpy"])
    assert audio.describe_sound() == f"sound: tinysoundfont playing {audio.find_soundfont().name}"
