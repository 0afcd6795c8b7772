"""The generator UI: its callback logic without a browser, and the widgets wired to it."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.collections import PolyCollection

from helpers import D_MINOR, random_notes
from melody_utils.notebook import widgets as ui
from melody_utils.display.audio import rms_db
from melody_utils.config import MAX_MEMORY, SampleConfig
from melody_utils.generate.settings import SamplingSettings
from melody_utils.music.midi import Notes, midi_to_notes
from melody_utils.music.scales import KEY_CHOICES, parse_key

GOOD = {"temperature": 0.8, "top_k": 10, "top_p": 0.9, "n_notes": 12, "seed": 7}


class FakeGenerator:
    """Stands in for a model (the generation contract: ``generate_fn(*, primer, **settings)``):
    records its calls, returns n_notes seeded notes."""

    def __init__(self, notes_fn=None):
        self.calls = []
        self.notes_fn = notes_fn or (lambda n, seed: random_notes(n, seed=seed, chord_every=1000))

    def __call__(self, *, primer=None, **settings):  # settings: every SamplingSettings field by name
        self.calls.append({**settings, "primer": primer})
        return self.notes_fn(settings["n_notes"], settings["seed"])


def test_generate_and_render_writes_midi_audio_and_roll(tmp_path):
    fake = FakeGenerator()
    primer = random_notes(4, seed=99)
    settings = ui.sampling_settings(GOOD)
    out = ui.generate_and_render(fake, settings, primer, tmp_path / "gen.mid", synth="numpy", sample_rate=8000)
    assert fake.calls == [{**settings.as_changes(), "primer": primer}]  # every setting, by name
    assert {k: fake.calls[0][k] for k in GOOD} == GOOD
    assert set(out) == {"notes", "midi_path", "wav_path", "wave", "synth", "figure", "originality"} and out["synth"] == "numpy"
    assert out["wav_path"] == tmp_path / "gen.wav" and out["wav_path"].is_file()  # the same music as the MIDI file
    assert out["originality"] is None  # no report asked for
    back = midi_to_notes(out["midi_path"])
    assert len(back) == len(out["notes"]) > 0
    np.testing.assert_array_equal(back.pitch, out["notes"].pitch)
    assert rms_db(out["wave"]) > -40
    (bars,) = [c for c in out["figure"].axes[0].collections if isinstance(c, PolyCollection)]
    assert len(bars.get_paths()) == len(out["notes"])


BAD_VALUES = [
    ("temperature", 0.0), ("temperature", -0.5), ("temperature", float("nan")), ("temperature", "1.0"),
    ("top_k", -1), ("top_k", 2.5), ("top_k", True),
    ("top_p", 0.0), ("top_p", 1.01),
    ("n_notes", 0), ("n_notes", 10.0),
    ("seed", -1), ("seed", 1.5),
    ("memory", -0.5), ("memory", MAX_MEMORY + 1),
]


@pytest.mark.parametrize("name, value", BAD_VALUES)
def test_bad_slider_values_are_rejected_by_the_settings(name, value):
    says = rf"^{name} must be .*, got {re.escape(repr(value))}$"  # names the value, what is allowed and what it got
    with pytest.raises(ValueError, match=says):
        ui.sampling_settings({**GOOD, name: value})
    with pytest.raises(ValueError, match=says):
        SamplingSettings(**{**GOOD, name: value})


@pytest.mark.parametrize("name, value", BAD_VALUES[::3])
def test_bad_slider_values_are_rejected_before_generating(tmp_path, capsys, name, value):
    fake = FakeGenerator()
    box = ui.make_generator_ui(fake, {"none": None}, tmp_path / "x.mid", synth="numpy", sample_rate=8000)
    box.controls[name] = SimpleNamespace(value=value)  # a widget holding what no slider can: the callback reads .value
    box.controls["generate"].click()
    assert fake.calls == [] and box.last_result is None
    assert box.status.value == "failed"  # the status label
    assert f"Error: {name} must be " in capsys.readouterr().out  # one line saying what to change
    assert not list(tmp_path.iterdir())  # no take written
    box.controls[name] = SimpleNamespace(value={**GOOD, "memory": 1.0}[name])  # a good value generates
    box.controls["generate"].click()
    assert len(fake.calls) == 1 and (tmp_path / "x_take1.mid").is_file()


def test_range_limits_are_accepted(tmp_path):
    fake = FakeGenerator()
    for knobs in ({"temperature": 0.1, "top_k": 0, "top_p": 0.05, "n_notes": 1, "seed": 0},
                  {"temperature": 2.0, "top_k": 88, "top_p": 1.0, "n_notes": 3, "seed": 2**31 - 1}):
        ui.generate_and_render(fake, ui.sampling_settings(knobs), None, tmp_path / "x.mid", synth="numpy", sample_rate=8000)
    assert [c["n_notes"] for c in fake.calls] == [1, 3]
    assert [c["seed"] for c in fake.calls] == [0, 2**31 - 1]
    # the sliders' ranges only bound the widgets: the settings' limits allow more
    beyond = ui.sampling_settings({"temperature": 2.5, "top_k": 89, "top_p": 1.0, "n_notes": 1001, "seed": 2**31})
    assert (beyond.temperature, beyond.top_k, beyond.n_notes, beyond.seed) == (2.5, 89, 1001, 2**31)


def test_generator_returning_nothing_is_an_error(tmp_path):
    settings = ui.sampling_settings(GOOD)
    with pytest.raises(ValueError, match="no notes"):
        ui.generate_and_render(FakeGenerator(lambda n, s: Notes.empty()), settings, None, tmp_path / "x.mid")
    with pytest.raises(TypeError, match="must return"):
        ui.generate_and_render(FakeGenerator(lambda n, s: [60, 62]), settings, None, tmp_path / "x.mid")


def test_generate_and_render_needs_settings_and_an_output_path(tmp_path):
    fake = FakeGenerator()
    with pytest.raises(ValueError, match="settings must be a SamplingSettings"):
        ui.generate_and_render(fake, GOOD, None, tmp_path / "x.mid")  # a dict of values is not settings
    with pytest.raises(ValueError, match="output_path must be a file path"):
        ui.generate_and_render(fake, ui.sampling_settings(GOOD), None, None)
    assert fake.calls == [] and not (tmp_path / "x.mid").exists()


def test_building_the_ui_does_not_generate(tmp_path):
    fake = FakeGenerator()
    box = ui.make_generator_ui(fake, {"none": None, "scale": random_notes(4)}, tmp_path / "gen.mid")
    assert fake.calls == [] and box.last_result is None
    c = box.controls
    assert (c["temperature"].min, c["temperature"].max) == ui.TEMPERATURE_RANGE
    assert (c["top_k"].min, c["top_k"].max) == ui.TOP_K_RANGE
    assert (c["top_p"].min, c["top_p"].max) == ui.TOP_P_RANGE
    assert (c["n_notes"].min, c["n_notes"].max) == ui.N_NOTES_RANGE
    assert (c["seed"].min, c["seed"].max) == ui.SEED_RANGE
    assert (c["memory"].min, c["memory"].max) == ui.MEMORY_RANGE
    # the sliders cannot produce a value the settings would reject
    for end in ("min", "max"):
        s = ui.sampling_settings({k: getattr(c[k], end) for k in ("temperature", "top_k", "top_p", "n_notes", "seed", "memory")})
        assert s.knobs == {k: getattr(c[k], end) for k in ("temperature", "top_k", "top_p")}
    assert list(c["primer"].options) == ["none", "scale"]


def test_generate_button_passes_the_slider_values(tmp_path):
    fake = FakeGenerator()
    scale = random_notes(4, seed=5)
    box = ui.make_generator_ui(fake, {"none": None, "scale": scale}, tmp_path / "gen.mid", synth="numpy", sample_rate=8000)
    c = box.controls
    c["temperature"].value, c["top_k"].value, c["top_p"].value = 1.3, 5, 0.7
    c["n_notes"].value, c["seed"].value, c["primer"].value = 20, 42, "scale"
    assert c["memory"].value == SampleConfig().memory  # the configured default
    c["memory"].value = 1.5
    c["generate"].click()
    assert len(fake.calls) == 1
    call = fake.calls[0]
    assert call["primer"] is scale and call["memory"] == pytest.approx(1.5)
    assert (call["top_k"], call["n_notes"], call["seed"]) == (5, 20, 42)
    assert call["temperature"] == pytest.approx(1.3) and call["top_p"] == pytest.approx(0.7)
    assert box.last_result["midi_path"] == tmp_path / "gen_take1.mid" and (tmp_path / "gen_take1.mid").is_file()
    assert not c["generate"].disabled


def test_ui_defaults_come_from_the_sample_config(tmp_path):
    from melody_utils.config import SampleConfig

    c = ui.make_generator_ui(FakeGenerator(), {"none": None}, tmp_path / "g.mid",
                             defaults=SampleConfig(temperature=0.7, top_k=3, top_p=0.5, n_notes=5000, seed=9)).controls
    assert (c["temperature"].value, c["top_k"].value, c["top_p"].value, c["seed"].value) == (0.7, 3, 0.5, 9)
    assert c["n_notes"].value == ui.N_NOTES_RANGE[1]  # clipped into the slider's range


def test_ui_reports_generator_errors_without_raising(tmp_path):
    def failing(**kwargs):
        raise ValueError("primer: pitch 200 out of range")

    box = ui.make_generator_ui(failing, {"none": None}, tmp_path / "g.mid")
    box.controls["generate"].click()
    assert box.last_result is None and not box.controls["generate"].disabled
    assert box.status.value == "failed"  # the status label


def test_ui_needs_primers_and_a_callable(tmp_path):
    with pytest.raises(ValueError, match="primers"):
        ui.make_generator_ui(FakeGenerator(), {}, tmp_path / "g.mid")
    with pytest.raises(TypeError, match="generate_fn"):
        ui.make_generator_ui(None, {"none": None}, tmp_path / "g.mid")


def test_the_suggestion_button_puts_the_sweep_setting_on_the_sliders(tmp_path):
    fake = FakeGenerator()
    box = ui.make_generator_ui(fake, {"none": None}, tmp_path / "g.mid", synth="numpy", sample_rate=8000)
    best = {"temperature": 0.7, "top_p": 0.9, "mean_oa": 0.6, "degenerate_rate": 0.0, "eligible": True}
    button = ui.apply_setting_button(box, best)
    assert "0.7" in button.description and "0.9" in button.description
    assert box.controls["temperature"].value != pytest.approx(0.7)
    button.click()
    c = box.controls
    assert c["temperature"].value == pytest.approx(0.7) and c["top_p"].value == pytest.approx(0.9)
    assert fake.calls == []  # applying generates nothing; Generate then uses the new values
    c["generate"].click()
    assert fake.calls[0]["temperature"] == pytest.approx(0.7) and fake.calls[0]["top_p"] == pytest.approx(0.9)


def test_apply_setting_clips_to_the_sliders_and_refuses_no_suggestion(tmp_path):
    box = ui.make_generator_ui(FakeGenerator(), {"none": None}, tmp_path / "g.mid")
    assert ui.apply_setting(box.controls, {"temperature": 5.0, "top_p": 0.01}) == {
        "temperature": ui.TEMPERATURE_RANGE[1], "top_p": ui.TOP_P_RANGE[0]}
    with pytest.raises(ValueError, match="no setting to apply"):
        ui.apply_setting(box.controls, None)
    with pytest.raises(ValueError, match="no setting to apply"):
        ui.apply_setting_button(box, None)


def test_composer_dropdown_only_for_models_with_composers(tmp_path):
    calls = []

    def fake(*, composer=None, **knobs):
        calls.append(composer)
        return random_notes(knobs["n_notes"], seed=knobs["seed"], chord_every=1000)

    box = ui.make_generator_ui(fake, {"none": None}, tmp_path / "gen.mid", synth="numpy", sample_rate=8000,
                               composers=["Chopin", "Liszt"])
    assert box.controls["composer"].options == ("any", "Chopin", "Liszt")
    box.controls["composer"].value = "Liszt"
    box.controls["generate"].click()
    assert calls == ["Liszt"]
    fake = FakeGenerator()
    plain = ui.make_generator_ui(fake, {"none": None}, tmp_path / "gen.mid", synth="numpy", sample_rate=8000)
    assert "composer" not in plain.controls
    plain.controls["generate"].click()
    assert fake.calls[0]["composer"] is None  # no composer asked for (id 0, "any")


# ---------------------------------------------------------------------------------------------
# Sampling controls and your own MIDI
# ---------------------------------------------------------------------------------------------
def _vocab():
    from melody_utils.music.quantize import log_bins
    from melody_utils.music.tokens import Vocab

    return Vocab(log_bins(32, 0.02, 4, True), log_bins(32, 0.02, 4, False), 16)


def _midi_bytes(tmp_path, pitches=(60, 64, 67, 72, 76), name="mine.mid") -> bytes:
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(velocity=80, pitch=p, start=0.25 * i, end=0.25 * i + 0.2) for i, p in enumerate(pitches)]
    pm.instruments.append(piano)
    pm.write(str(tmp_path / name))
    return (tmp_path / name).read_bytes()


def _upload_value(name: str, data: bytes) -> tuple:
    """What an ipywidgets 8 FileUpload holds after the browser sent one file."""
    import datetime

    return ({"name": name, "type": "", "size": len(data), "content": memoryview(data),
             "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)},)


def test_sampling_settings_default_to_no_control_and_map_every_widget():
    plain = ui.sampling_settings({})
    assert not plain.controls.active and plain.seconds is None and plain.keep_primer is False
    assert plain.replace(controls=None) == SamplingSettings()  # nothing asked: the default settings
    s = ui.sampling_settings({"key": "D minor", "key_strength": 2.0, "pitch_range": (48, 72), "density": 6.0,
                              "temperature_pitch": 0.8, "temperature_timing": 1.2, "temperature_velocity": 0.5,
                              "repeat_guard": 3.0, "seconds": 60.0, "keep_primer": True, **GOOD, "memory": 1.5,
                              "composer": "Liszt"})
    c = s.controls
    assert (c.scale, c.key_strength, c.pitches, c.density, c.repeat_guard) == ((0, 2, 4, 5, 7, 9, 10), 2.0, (48, 72), 6.0, 3.0)
    assert (c.temperature_pitch, c.temperature_timing, c.temperature_velocity) == (0.8, 1.2, 0.5)
    assert (s.seconds, s.keep_primer, s.memory, s.composer) == (60.0, True, 1.5, "Liszt")
    assert {k: getattr(s, k) for k in GOOD} == GOOD
    assert ui.sampling_settings({"key": "C major"}).controls.key_strength is None  # strength 0 = hard mask
    assert ui.sampling_settings({"key": "C major"}).controls.scale == (0, 2, 4, 5, 7, 9, 11)


@pytest.mark.parametrize("values, name", [({"key": "H major"}, "key"), ({"density": -1.0}, "density"),
                                          ({"seconds": -5.0}, "seconds"), ({"key": "C major", "pitch_range": (61, 61)}, "key"),
                                          ({"temperature_pitch": 0.0}, "temperature_pitch"),
                                          ({"repeat_guard": -1.0}, "repeat_guard")])
def test_bad_control_values_name_the_value(values, name):
    with pytest.raises(ValueError, match=name):
        ui.sampling_settings(values)


def test_control_widgets_start_at_no_control_and_span_their_ranges():
    import ipywidgets

    w = ui.control_widgets({}, ipywidgets.Layout())
    assert set(w) == set(ui.CONTROL_DEFAULTS)
    s = ui.sampling_settings({k: x.value for k, x in w.items()})
    assert not s.controls.active and s.seconds is None and s.keep_primer is False
    assert w["key"].options[0] == "any" and "D minor" in w["key"].options
    assert (w["pitch_range"].min, w["pitch_range"].max) == (21, 108)
    assert (w["density"].min, w["density"].max) == ui.DENSITY_RANGE


def test_generate_button_passes_controls_seconds_and_keep_primer(tmp_path):
    calls = []

    def fake(*, controls=None, seconds=None, keep_primer=False, **knobs):
        calls.append((controls, seconds, keep_primer))
        return random_notes(knobs["n_notes"], seed=knobs["seed"], chord_every=1000)

    box = ui.make_generator_ui(fake, {"none": None}, tmp_path / "g.mid", synth="numpy", sample_rate=8000,
                               originality=lambda notes: f"originality of {len(notes)} notes")
    c = box.controls
    c["generate"].click()
    controls, seconds, keep = calls[-1]
    assert not controls.active and (seconds, keep) == (None, False)  # controls at their defaults: none on
    c["key"].value, c["pitch_range"].value, c["seconds"].value, c["keep_primer"].value = "A minor", (40, 80), 30.0, True
    c["generate"].click()
    controls, seconds, keep = calls[-1]
    assert controls.scale == (0, 2, 4, 5, 7, 9, 11) and controls.pitches == (40, 80) and (seconds, keep) == (30.0, True)
    assert box.last_result["originality"] == f"originality of {len(box.last_result['notes'])} notes"
    c["density"].value = 0.0
    c["key"].value, c["pitch_range"].value = "C major", (61, 61)  # no C-major pitch in C#4-C#4
    c["generate"].click()
    assert len(calls) == 2 and box.status.value == "failed"


def test_upload_of_a_real_midi_becomes_the_primer(tmp_path):
    from melody_utils.generate.primer import PrimerLoader, primer_from_bytes

    data = _midi_bytes(tmp_path, pitches=(10, 60, 64, 67, 72, 76))  # pitch 10 is below the piano: dropped
    notes = primer_from_bytes("mine.mid", data, _vocab(), n_notes=3)
    np.testing.assert_array_equal(notes.pitch, [67, 72, 76])  # the music continues from the file's end
    calls = []
    fake = FakeGenerator()
    box = ui.make_generator_ui(lambda **k: calls.append(k["primer"]) or fake(**k), {"none": None}, tmp_path / "g.mid",
                               synth="numpy", sample_rate=8000, load_primer=PrimerLoader(_vocab(), 4))
    c = box.controls
    c["upload"].value = _upload_value("mine.mid", data)
    assert c["primer"].value == "uploaded: mine.mid" and "4 notes" in box.status.value
    c["generate"].click()
    np.testing.assert_array_equal(calls[0].pitch, [64, 67, 72, 76])


@pytest.mark.parametrize("name, data, says", [
    ("song.mid", b"MThd this is not midi", "song.mid is not readable as MIDI"),
    ("song.mid", b"", "song.mid is empty"),
    ("notes.txt", b"C D E", "notes.txt is not a MIDI file"),
])
def test_an_upload_that_is_not_midi_is_one_line_naming_it(tmp_path, name, data, says):
    from melody_utils.generate.primer import PrimerLoader, primer_from_bytes

    with pytest.raises(ValueError, match=says) as err:
        primer_from_bytes(name, data, _vocab(), 8)
    assert "\n" not in str(err.value) and ".mid or .midi" in str(err.value)
    box = ui.make_generator_ui(FakeGenerator(), {"none": None}, tmp_path / "g.mid", load_primer=PrimerLoader(_vocab(), 8))
    box.controls["upload"].value = _upload_value(name, data)
    assert box.status.value.startswith(f"Error: {says}")
    assert list(box.controls["primer"].options) == ["none"]


def test_uploaded_files_reads_colab_and_both_ipywidgets_layouts():
    from melody_utils.generate.primer import uploaded_files

    assert uploaded_files({"a.mid": b"x"}) == [("a.mid", b"x")]  # Colab's files.upload()
    assert uploaded_files({"a.mid": {"metadata": {}, "content": b"x"}}) == [("a.mid", b"x")]  # ipywidgets 7
    assert uploaded_files(({"name": "a.mid", "content": memoryview(b"x")},)) == [("a.mid", b"x")]  # ipywidgets 8
    assert uploaded_files(()) == []


def test_colab_upload_outside_colab_asks_nothing(monkeypatch, capsys):
    monkeypatch.setenv("MELODY_COLAB", "0")
    assert ui.colab_upload(lambda name, data: 1 / 0) == {}
    assert "Upload MIDI button" in capsys.readouterr().out


def test_each_generate_press_adds_a_take_with_its_wav_and_the_takes_play(tmp_path, monkeypatch):
    import wave

    shown = []
    monkeypatch.setattr(ui.audio, "listen", lambda w, synth, rate, max_seconds=None: shown.append((w.shape, rate)))
    (tmp_path / "gen_take1.mid").write_bytes(b"an earlier session's take")  # kept: numbering goes on after it
    box = ui.make_generator_ui(FakeGenerator(), {"none": None}, tmp_path / "gen.mid", synth="numpy")
    c = box.controls
    for seed in (1, 2):
        c["seed"].value = seed
        c["generate"].click()
    assert [t["midi_path"].name for t in box.takes] == ["gen_take2.mid", "gen_take3.mid"]
    assert (tmp_path / "gen_take1.mid").read_bytes() == b"an earlier session's take"
    for take in box.takes:
        assert midi_to_notes(take["midi_path"]).pitch.tolist() == take["notes"].pitch.tolist()
        with wave.open(str(take["wav_path"])) as w:  # each take's own WAV, 44.1 kHz stereo
            assert (w.getnchannels(), w.getframerate()) == (2, 44100)
            pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        assert take["wav_path"].stem == take["midi_path"].stem and np.abs(pcm).max() > 1000
    assert c["takes"].value == 1 and len(c["takes"].options) == 2 and shown[-1][0][1] == 2  # the new take plays
    c["takes"].value = 0  # an earlier take plays again, from its WAV file
    frames = len(ui.audio.read_wav(box.takes[0]["wav_path"])[0])
    assert shown[-1] == ((frames, 2), 44100)


def test_download_widgets_name_the_kind_of_file(tmp_path):
    assert ui.download_widget(tmp_path / "a_take1.wav").result_html_prefix == "Download WAV: "
    assert ui.download_widget(tmp_path / "a_take1.midi").result_html_prefix == "Download MIDI: "


def test_widget_values_map_to_controls():
    assert not ui.sampling_settings({}).controls.active  # the widgets' defaults change nothing
    c = ui.sampling_settings({"key": "D minor", "key_strength": 0.0, "pitch_range": (48, 72), "density": 6.0,
                           "temperature_timing": 0.8, "repeat_guard": 2.0}).controls
    assert c.scale == D_MINOR and c.key_strength is None and c.pitches == (48, 72) and c.density == 6.0
    assert c.temperature_timing == 0.8 and c.repeat_guard == 2.0
    assert ui.sampling_settings({"key": "D minor", "key_strength": 1.5}).controls.key_strength == 1.5
    assert all(parse_key(k) is None or len(parse_key(k)) == 7 for k in KEY_CHOICES)
