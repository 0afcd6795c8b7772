"""An interactive generator for the notebooks: sliders, a Generate button, roll + audio + download.

The work behind the button is a plain function, :func:`generate_and_render`, testable without a
browser. The model comes in as ``generate_fn(primer=, **sampling settings) -> Notes`` (keyword
arguments), so tests pass a fake and the notebook passes
:func:`melody_utils.generate.sample.model_generate_fn` (a trained model + vocabulary; the one contract the
CLI and the sampling sweep use too). Building the UI runs nothing: it only
lays out widgets, so it executes headless (nbval) without blocking.

The sampling-time controls (:mod:`melody_utils.generate.controls`: key, pitch range, density, per-field
temperature, repetition guard) and the length in seconds have widgets too; :func:`sampling_settings`
turns all the widgets' values into one :class:`~melody_utils.generate.settings.SamplingSettings`
(every control widget at its default = no control).
A user's MIDI becomes a primer through an upload (:mod:`melody_utils.generate.primer`): a ``FileUpload``
button in the generator, or in Colab :func:`colab_upload`; the music continues from the file's end.

Every press of **Generate** adds a numbered take (``NAME_take1.midi`` and ``NAME_take1.wav``, then
``_take2``, ...; never over an earlier take, see :func:`melody_utils.generate.takes.next_take_path`);
the takes list under the button plays any of them and offers both files for download.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

from ..display import audio
from ..display import plots
from ..config import SampleConfig
from ..config import MAX_MEMORY
from ..generate.controls import MAX_NOTES_PER_SECOND, MAX_SECONDS, Controls
from ..generate.settings import SamplingSettings
from ..music.midi import Notes, notes_to_midi
from ..generate.sample import GenerateFn
from ..generate.takes import next_take_path
from ..music.scales import KEY_CHOICES
from ..music.tokens import MAX_PIANO_PITCH, MIN_PIANO_PITCH
from ..generate.primer import MIDI_SUFFIXES, uploaded_files
from ..workspace import in_colab

TEMPERATURE_RANGE = (0.1, 2.0)  # below 1 sharpens the distributions, above 1 flattens them
TOP_K_RANGE = (0, 88)  # 0 = off; 88 = every piano key
TOP_P_RANGE = (0.05, 1.0)  # 1.0 = off
N_NOTES_RANGE = (1, 1000)  # notes to generate
SEED_RANGE = (0, 2**31 - 1)
MEMORY_RANGE = (0.0, MAX_MEMORY)  # piece memory: 0 = off, 1 = the fitted weights
KEY_STRENGTH_RANGE = (0.0, 10.0)  # nats taken from out-of-key pitches; 0 = masked (hard)
DENSITY_RANGE = (0.0, float(MAX_NOTES_PER_SECOND))  # notes per second; 0 = the model's own
FIELD_TEMPERATURE_RANGE = (0.1, 2.0)  # per-field temperature, times the global one
REPEAT_GUARD_RANGE = (0.0, 10.0)  # nats; 0 = off
SECONDS_RANGE = (0.0, MAX_SECONDS)  # length of music; 0 = count notes instead
CONTROL_DEFAULTS = {  # widget name -> its value that changes nothing
    "key": "any", "key_strength": 0.0, "pitch_range": (MIN_PIANO_PITCH, MAX_PIANO_PITCH), "density": 0.0,
    "temperature_pitch": 1.0, "temperature_timing": 1.0, "temperature_velocity": 1.0, "repeat_guard": 0.0,
    "seconds": 0.0, "keep_primer": False,
}

KNOBS = ("temperature", "top_k", "top_p", "n_notes", "seed", "memory", "composer")  # slider names = setting names


def sampling_settings(values: dict) -> SamplingSettings:
    """Widget values (:data:`KNOBS` and :data:`CONTROL_DEFAULTS` names; missing ones at their
    default) -> the :class:`SamplingSettings` they ask for, which checks them (ValueError naming the
    value). Widgets have no None, so 0 means off: ``key_strength`` 0 = hard mask, ``density`` 0 =
    the model's own, ``seconds`` 0 = count notes; the full piano range = no range control."""
    v = {**CONTROL_DEFAULTS, **values}
    low, high = v["pitch_range"]
    whole = (low, high) == (MIN_PIANO_PITCH, MAX_PIANO_PITCH)
    controls = Controls(key=v["key"], key_strength=v["key_strength"] or None, pitch_range=None if whole else (low, high),
                        density=v["density"] or None, temperature_pitch=v["temperature_pitch"],
                        temperature_timing=v["temperature_timing"], temperature_velocity=v["temperature_velocity"],
                        repeat_guard=v["repeat_guard"])
    knobs = {k: values[k] for k in KNOBS if k in values}
    return SamplingSettings(**knobs, seconds=v["seconds"] or None, keep_primer=bool(v["keep_primer"]), controls=controls)


def _title(notes: Notes, s: SamplingSettings) -> str:
    title = (f"{len(notes)} notes, temperature {s.temperature:.2f}, top-k {s.top_k or 'off'}, top-p {s.top_p:.2f}, "
             f"seed {s.seed}" + (f", memory {s.memory:g}" if s.memory else ""))
    return title + (f"\n{s.controls.describe()}" if s.controls.active else "")


def generate_and_render(generate_fn: GenerateFn, settings: SamplingSettings, primer, output_path, *,
                        sample_rate: int = audio.DEFAULT_SAMPLE_RATE, synth="auto", originality=None) -> dict:
    """Generate with ``settings``, write the MIDI, synthesize and draw it.

    Returns ``{"notes": Notes, "midi_path": Path, "wav_path": Path, "wave": float32 (frames, 2) array,
    "synth": what made the sound (see :func:`audio.describe_synth`), "figure": Figure, "originality":
    str or None}``; the WAV file beside the MIDI file (same name, ``.wav``) holds the same music.
    ``generate_fn(primer=, **settings)`` follows the generation contract
    (:func:`melody_utils.generate.sample.model_generate_fn`). Raises ValueError before ``generate_fn``
    runs for a bad output path, and when ``generate_fn`` returns no notes. ``synth``: an
    :func:`audio.synthesize` method. ``originality``: Notes -> one line
    (:func:`melody_utils.evaluate.originality.notes_report`), its result under ``"originality"``.
    """
    if not isinstance(settings, SamplingSettings):
        raise ValueError(f"settings must be a SamplingSettings (see sampling_settings), got {type(settings).__name__}")
    if output_path is None or not isinstance(output_path, (str, os.PathLike)) or not str(output_path):
        raise ValueError(f"output_path must be a file path for the MIDI file, got {output_path!r}")
    notes = generate_fn(primer=primer, **settings.as_changes())
    if not isinstance(notes, Notes):
        raise TypeError(f"generate_fn must return melody_utils.music.midi.Notes, got {type(notes).__name__}")
    if len(notes) == 0:
        raise ValueError("generate_fn returned no notes; try a larger n_notes or another primer")
    midi_path = notes_to_midi(notes, output_path)
    wave, synth_name = audio.synthesize_named(notes, sample_rate, synth)
    wav_path = audio.write_wav(wave, Path(midi_path).with_suffix(".wav"), sample_rate)
    figure = plots.piano_roll(notes, title=_title(notes, settings))
    return {"notes": notes, "midi_path": Path(midi_path), "wav_path": wav_path, "wave": wave, "synth": synth_name,
            "figure": figure, "originality": originality(notes) if originality is not None else None}


def download_widget(path):
    """In Colab, a button that downloads the file to the browser; elsewhere an ``IPython`` FileLink.
    Labelled by the file's kind ("Download MIDI", "Download WAV")."""
    kind = {".wav": "WAV"}.get(Path(path).suffix.lower(), "MIDI")
    try:
        from google.colab import files  # only importable in a Colab runtime
    except ImportError:
        from IPython.display import FileLink

        path = Path(path)
        try:
            shown = os.path.relpath(path)  # links resolve relative to the notebook's folder
        except ValueError:  # another drive on Windows
            shown = str(path)
        return FileLink(shown, result_html_prefix=f"Download {kind}: ")
    import ipywidgets as widgets

    button = widgets.Button(description=f"Download {kind}", icon="download")
    button.on_click(lambda _: files.download(str(path)))
    return button


def _defaults(defaults) -> dict:
    d = defaults if defaults is not None else SampleConfig()
    d = d if isinstance(d, dict) else {k: getattr(d, k) for k in ("temperature", "top_k", "top_p", "n_notes", "seed", "memory")}

    def clip(v, r):
        return min(max(v, r[0]), r[1])

    return {
        "temperature": clip(float(d.get("temperature", 1.0)), TEMPERATURE_RANGE),
        "top_k": clip(int(d.get("top_k", 0)), TOP_K_RANGE),
        "top_p": clip(float(d.get("top_p", 0.95)), TOP_P_RANGE),
        "n_notes": clip(int(d.get("n_notes", 200)), N_NOTES_RANGE),
        "seed": clip(int(d.get("seed", 0)), SEED_RANGE),
        "memory": clip(float(d.get("memory", SampleConfig.memory)), MEMORY_RANGE),
    }


def _knob_widgets(d: dict, style: dict, layout) -> dict:
    """The sampling knobs (:data:`KNOBS`), at the values ``d``."""
    import ipywidgets as widgets

    common = dict(style=style, layout=layout)
    return {
        "temperature": widgets.FloatSlider(d["temperature"], min=TEMPERATURE_RANGE[0], max=TEMPERATURE_RANGE[1], step=0.05,
                                           description="temperature", **common),
        "top_k": widgets.IntSlider(d["top_k"], min=TOP_K_RANGE[0], max=TOP_K_RANGE[1], description="top-k (0 = off)", **common),
        "top_p": widgets.FloatSlider(d["top_p"], min=TOP_P_RANGE[0], max=TOP_P_RANGE[1], step=0.01,
                                     description="top-p (1 = off)", **common),
        "n_notes": widgets.IntSlider(d["n_notes"], min=N_NOTES_RANGE[0], max=N_NOTES_RANGE[1], description="notes", **common),
        "seed": widgets.BoundedIntText(d["seed"], min=SEED_RANGE[0], max=SEED_RANGE[1], description="random seed", **common),
        "memory": widgets.FloatSlider(d["memory"], min=MEMORY_RANGE[0], max=MEMORY_RANGE[1], step=0.1,
                                      description="piece memory (0 = off)", **common),
    }


def control_widgets(style: dict, layout) -> dict:
    """The widgets of :data:`CONTROL_DEFAULTS` (each at its default: no control), for :func:`sampling_settings`."""
    import ipywidgets as widgets

    common = dict(style=style, layout=layout)
    d = CONTROL_DEFAULTS

    def slider(name, bounds, step, description):
        return widgets.FloatSlider(d[name], min=bounds[0], max=bounds[1], step=step, description=description, **common)

    return {
        "key": widgets.Dropdown(options=list(KEY_CHOICES), value=d["key"], description="key", **common),
        "key_strength": slider("key_strength", KEY_STRENGTH_RANGE, 0.5, "key strength (nats, 0 = hard)"),
        "pitch_range": widgets.IntRangeSlider(value=d["pitch_range"], min=MIN_PIANO_PITCH, max=MAX_PIANO_PITCH,
                                              description="pitch range (C4 = 60)", **common),
        "density": slider("density", DENSITY_RANGE, 0.5, "density (notes/s, 0 = off)"),
        **{f"temperature_{f}": slider(f"temperature_{f}", FIELD_TEMPERATURE_RANGE, 0.05, f"× temperature, {f}")
           for f in ("pitch", "timing", "velocity")},
        "repeat_guard": slider("repeat_guard", REPEAT_GUARD_RANGE, 0.5, "repeat guard (nats, 0 = off)"),
        "seconds": widgets.BoundedFloatText(d["seconds"], min=SECONDS_RANGE[0], max=SECONDS_RANGE[1], step=10,
                                            description="seconds (0 = use notes)", **common),
        "keep_primer": widgets.Checkbox(d["keep_primer"], description="keep the primer in the output", **common),
    }


def add_uploaded_primers(files, load_primer, primers: dict) -> list[str]:
    """Each uploaded ``(name, bytes)`` read by ``load_primer(name, data) -> Notes`` into ``primers``
    under ``"uploaded: NAME"``; returns the names added. A file that is not MIDI: ValueError (one
    line naming it and what is allowed), the files before it kept."""
    added = []
    for name, data in files:
        key = f"uploaded: {name}"
        primers[key] = load_primer(name, data)
        added.append(key)
    return added


def colab_upload(load_primer, ask: bool = True) -> dict:
    """In Colab with ``ask``: open Colab's file dialog (the cell waits) and return ``{"uploaded: NAME":
    primer}`` of the MIDI files chosen; a file that is not MIDI is said in one line and skipped.
    Elsewhere (or without ``ask``): ``{}``, and a line saying where to upload instead."""
    if not (ask and in_colab()):
        where = "set UPLOAD_IN_COLAB = True and run this cell again" if in_colab() else "use the Upload MIDI button of the generator below"
        print(f"primer from your own MIDI file: {where}")
        return {}
    from google.colab import files  # only importable in a Colab runtime

    primers = {}
    for name, data in uploaded_files(files.upload()):
        try:
            add_uploaded_primers([(name, data)], load_primer, primers)
        except ValueError as exc:
            print(f"Error: {exc}")
    print(f"primers from your files: {list(primers) or 'none'}")
    return primers


def _upload_widget(primers: dict, dropdown, load_primer, status):
    """A FileUpload button whose MIDI file joins ``primers`` and is selected in ``dropdown``."""
    import ipywidgets as widgets

    upload = widgets.FileUpload(accept=",".join(MIDI_SUFFIXES), multiple=False, description="Upload MIDI")

    def on_upload(change):
        try:
            added = add_uploaded_primers(uploaded_files(change["new"]), load_primer, primers)
        except ValueError as exc:
            status.value = f"Error: {exc}"
            return
        if added:
            dropdown.options = list(primers)
            dropdown.value = added[-1]
            status.value = f"primer: {added[-1]} ({len(primers[added[-1]])} notes)"

    upload.observe(on_upload, names="value")
    return upload


def make_generator_ui(generate_fn: GenerateFn, primers: dict, output_path, *, defaults=None,
                      sample_rate: int = audio.DEFAULT_SAMPLE_RATE, synth="auto", max_seconds: float | None = None,
                      composers=(), load_primer=None, originality=None):
    """Sliders + primer dropdown + controls + Generate button + an output area (roll, originality) + the takes.

    ``primers``: display name -> primer passed to ``generate_fn`` (Notes, tokens, or None).
    ``output_path``: the MIDI file name the takes are numbered from (``NAME_take1.midi`` + ``.wav``, ...).
    ``defaults``: a :class:`~melody_utils.config.SampleConfig` (or dict) for the starting values.
    ``max_seconds``: audio embedded in the notebook (None: all; a cut is said). ``composers``: names for a
    composer dropdown ("any" first; :func:`melody_utils.model.checkpoint.composer_names` of a model; empty = no
    dropdown). ``load_primer``: ``(name, bytes) -> Notes`` (:class:`melody_utils.generate.primer.PrimerLoader`)
    adds an **Upload MIDI** button (not in Colab: see :func:`colab_upload`). ``originality``: as in
    :func:`generate_and_render`, printed after each piece. Returns a ``VBox``; its ``controls`` dict
    holds the widgets by name (``"takes"``: the takes dropdown), ``takes`` a list of the
    :func:`generate_and_render` results so far (without their waveforms; oldest first) and
    ``last_result`` the latest result. Nothing is generated until the button is pressed.
    """
    import ipywidgets as widgets

    if not callable(generate_fn):
        raise TypeError(f"generate_fn must be callable, got {type(generate_fn).__name__}")
    if not isinstance(primers, dict) or not primers:
        raise ValueError("primers must be a non-empty dict of name -> primer (e.g. {'none': None})")
    primers = dict(primers)  # uploads join this copy
    style, layout = {"description_width": "150px"}, widgets.Layout(width="520px")
    knobs, steering = _knob_widgets(_defaults(defaults), style, layout), control_widgets(style, layout)
    # names as options (not the primer objects): a None primer would read as "nothing selected"
    knobs["primer"] = widgets.Dropdown(options=list(primers), description="primer", style=style, layout=layout)
    if composers:
        knobs["composer"] = widgets.Dropdown(options=["any", *composers], description="composer", style=style, layout=layout)
    status = widgets.Label("")
    if load_primer is not None and not in_colab():
        knobs["upload"] = _upload_widget(primers, knobs["primer"], load_primer, status)
    generate = widgets.Button(description="Generate", button_style="primary", icon="music")
    more = widgets.Accordion(children=[widgets.VBox(list(steering.values()))])
    more.set_title(0, "controls: key, pitch range, density, per-field temperature, repetition guard, length")
    out = widgets.Output()
    takes_list = widgets.Dropdown(options=[], description="takes", style=style, layout=layout)
    takes_out = widgets.Output()
    box = widgets.VBox([*knobs.values(), more, generate, status, out, takes_list, takes_out])
    box.controls = {**knobs, **steering, "generate": generate, "takes": takes_list}
    box.last_result, box.takes, box.status = None, [], status
    takes_list.observe(lambda change: _show_take(box.takes, change["new"], takes_out, sample_rate, max_seconds), names="value")
    run = _generate_callback(box, generate_fn, primers, output_path, status, out,
                             dict(sample_rate=sample_rate, synth=synth, originality=originality))
    generate.on_click(run)
    return box


def _show_take(takes: list, index, out, sample_rate: int, max_seconds) -> None:
    """Take ``index`` (0-based; None: nothing) in ``out``: its player (read back from its WAV file) and both downloads."""
    from IPython.display import display

    with out:
        out.clear_output(wait=True)
        if index is None:
            return
        take = takes[index]
        wave, rate = audio.read_wav(take["wav_path"])
        audio.listen(wave, take["synth"], rate, max_seconds=max_seconds)
        display(download_widget(take["midi_path"]), download_widget(take["wav_path"]))


def _generate_callback(box, generate_fn, primers: dict, output_path, status, out, render: dict):
    """The Generate button's work: read the widgets, :func:`generate_and_render` a new take, show it."""
    from IPython.display import display

    def on_generate(_=None):
        c = box.controls
        c["generate"].disabled = True
        status.value = "generating..."
        try:
            with out:
                out.clear_output(wait=True)
                try:
                    settings = sampling_settings({name: c[name].value for name in (*KNOBS, *CONTROL_DEFAULTS) if name in c})
                    result = generate_and_render(generate_fn, settings, primers[c["primer"].value],
                                                 next_take_path(output_path), **render)
                except ValueError as exc:  # a bad value: the message says what to change
                    print(f"Error: {exc}")
                    status.value = "failed"
                    return
                except Exception:  # anything else: the full traceback, in the output area
                    traceback.print_exc()
                    status.value = "failed"
                    return
                box.last_result = result
                box.takes.append({k: v for k, v in result.items() if k != "wave"})  # the WAV file holds the sound
                display(result["figure"])
                if result["originality"]:
                    print(result["originality"])
                print(f"take {len(box.takes)}: {result['midi_path']} and {result['wav_path'].name}")
            names = [f"take {i}: {t['midi_path'].stem} ({len(t['notes'])} notes, {t['notes'].seconds():.0f} s)"
                     for i, t in enumerate(box.takes, 1)]
            c["takes"].options = list(zip(names, range(len(names))))
            c["takes"].value = len(names) - 1  # the new take plays (the observer draws its player)
            status.value = f"take {len(box.takes)}: {len(result['notes'])} notes, {result['notes'].seconds():.0f} s"
        finally:
            c["generate"].disabled = False

    return on_generate


def setting_values(setting: dict) -> dict:
    """``{"temperature", "top_p"}`` of ``setting`` (e.g. the sweep's suggestion,
    ``evaluation["sweep"]["best"]``) clipped to the sliders' ranges; ValueError when it is None
    (the sweep suggested nothing) or lacks them."""
    if not setting or any(k not in setting for k in ("temperature", "top_p")):
        raise ValueError(f"no setting to apply (got {setting!r}): the sweep must suggest a temperature and a top_p")
    return {"temperature": min(max(float(setting["temperature"]), TEMPERATURE_RANGE[0]), TEMPERATURE_RANGE[1]),
            "top_p": min(max(float(setting["top_p"]), TOP_P_RANGE[0]), TOP_P_RANGE[1])}


def apply_setting(controls: dict, setting: dict) -> dict:
    """Set the ``temperature`` and ``top_p`` sliders of ``controls`` to :func:`setting_values`; returns them."""
    values = setting_values(setting)
    for name, value in values.items():
        controls[name].value = value
    return values


def apply_setting_button(ui, setting: dict):
    """A button that puts ``setting`` (the sweep's suggestion) on the sliders of ``ui``
    (:func:`make_generator_ui`'s box) with :func:`apply_setting`; press **Generate** there to hear it."""
    import ipywidgets as widgets

    values = setting_values(setting)  # a missing suggestion fails here, not on the click
    label = f"Use temperature {values['temperature']:g}, top-p {values['top_p']:g} on the sliders"
    button = widgets.Button(description=label, icon="sliders", layout=widgets.Layout(width="480px"))
    button.on_click(lambda _: apply_setting(ui.controls, setting))
    return button
