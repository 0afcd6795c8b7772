"""An interactive generator for the notebooks: sliders, a Generate button, roll + audio + download.

The work behind the button is a plain function, :func:`generate_and_render`, testable without a
browser. The model comes in as ``generate_fn(temperature, top_k, top_p, n_notes, seed, primer)
-> Notes`` (keyword arguments), so tests pass a fake and the notebook passes
:func:`melody_utils.sample.model_generate_fn` (a trained model + vocabulary; the one contract the
CLI and the sampling sweep use too). Building the UI runs nothing: it only
lays out widgets, so it executes headless (nbval) without blocking.
"""

from __future__ import annotations

import math
import numbers
import os
import traceback
from pathlib import Path

from . import audio, plots
from .config import SampleConfig
from .midi import Notes, notes_to_midi
from .sample import GenerateFn

TEMPERATURE_RANGE = (0.1, 2.0)  # below 1 sharpens the distributions, above 1 flattens them
TOP_K_RANGE = (0, 88)  # 0 = off; 88 = every piano key
TOP_P_RANGE = (0.05, 1.0)  # 1.0 = off
N_NOTES_RANGE = (1, 1000)  # notes to generate
SEED_RANGE = (0, 2**31 - 1)

def _check(name: str, value, lo, hi, integer: bool):
    """Value within [lo, hi] (an integer when ``integer``), else ValueError naming it and the range."""
    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value) and lo <= value <= hi
    if not ok:
        what = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {what} between {lo} and {hi}, got {value!r}")
    return int(value) if integer else float(value)


def validate_controls(temperature, top_k, top_p, n_notes, seed) -> dict:
    """The slider values checked against their ranges, as plain Python numbers."""
    return {
        "temperature": _check("temperature", temperature, *TEMPERATURE_RANGE, integer=False),
        "top_k": _check("top_k", top_k, *TOP_K_RANGE, integer=True),
        "top_p": _check("top_p", top_p, *TOP_P_RANGE, integer=False),
        "n_notes": _check("n_notes", n_notes, *N_NOTES_RANGE, integer=True),
        "seed": _check("seed", seed, *SEED_RANGE, integer=True),
    }


def generate_and_render(generate_fn: GenerateFn, temperature, top_k, top_p, n_notes, seed, primer, output_path,
                        *, sample_rate: int = audio.DEFAULT_SAMPLE_RATE, synth="auto", composer=None) -> dict:
    """Check the values, generate, write the MIDI, synthesize and draw it.

    Returns ``{"notes": Notes, "midi_path": Path, "wave": float32 array, "synth": the synthesizer's
    name (see :data:`audio.SYNTH_NAMES`), "figure": Figure}``.
    Raises ValueError naming the parameter and its range before ``generate_fn`` runs, and when
    ``generate_fn`` returns no notes. ``synth``: an :func:`audio.synthesize` method. ``composer``:
    passed on to ``generate_fn`` when not None (models trained with composers).
    """
    knobs = validate_controls(temperature, top_k, top_p, n_notes, seed)
    if output_path is None or not isinstance(output_path, (str, os.PathLike)) or not str(output_path):
        raise ValueError(f"output_path must be a file path for the MIDI file, got {output_path!r}")
    notes = generate_fn(**knobs, primer=primer, **({} if composer is None else {"composer": composer}))
    if not isinstance(notes, Notes):
        raise TypeError(f"generate_fn must return melody_utils.midi.Notes, got {type(notes).__name__}")
    if len(notes) == 0:
        raise ValueError("generate_fn returned no notes; try a larger n_notes or another primer")
    midi_path = notes_to_midi(notes, output_path)
    wave, synth_name = audio.synthesize_named(notes, sample_rate, synth)
    title = (f"{len(notes)} notes, temperature {knobs['temperature']:.2f}, top-k {knobs['top_k'] or 'off'}, "
             f"top-p {knobs['top_p']:.2f}, seed {knobs['seed']}")
    figure = plots.piano_roll(notes, title=title)
    return {"notes": notes, "midi_path": Path(midi_path), "wave": wave, "synth": synth_name, "figure": figure}


def download_widget(path):
    """In Colab, a button that downloads the file to the browser; elsewhere an ``IPython`` FileLink."""
    try:
        from google.colab import files  # only importable in a Colab runtime
    except ImportError:
        from IPython.display import FileLink

        path = Path(path)
        try:
            shown = os.path.relpath(path)  # links resolve relative to the notebook's folder
        except ValueError:  # another drive on Windows
            shown = str(path)
        return FileLink(shown, result_html_prefix="Download MIDI: ")
    import ipywidgets as widgets

    button = widgets.Button(description="Download MIDI", icon="download")
    button.on_click(lambda _: files.download(str(path)))
    return button


def _defaults(defaults) -> dict:
    d = defaults if defaults is not None else SampleConfig()
    d = d if isinstance(d, dict) else {k: getattr(d, k) for k in ("temperature", "top_k", "top_p", "n_notes", "seed")}

    def clip(v, r):
        return min(max(v, r[0]), r[1])

    return {
        "temperature": clip(float(d.get("temperature", 1.0)), TEMPERATURE_RANGE),
        "top_k": clip(int(d.get("top_k", 0)), TOP_K_RANGE),
        "top_p": clip(float(d.get("top_p", 0.95)), TOP_P_RANGE),
        "n_notes": clip(int(d.get("n_notes", 200)), N_NOTES_RANGE),
        "seed": clip(int(d.get("seed", 0)), SEED_RANGE),
    }


def make_generator_ui(generate_fn: GenerateFn, primers: dict, output_path, *, defaults=None,
                      sample_rate: int = audio.DEFAULT_SAMPLE_RATE, synth="auto", max_seconds: float | None = None,
                      composers=()):
    """Sliders + primer dropdown + Generate button + an output area (piano roll, audio, download).

    ``primers``: display name -> primer passed to ``generate_fn`` (Notes, tokens, or None).
    ``defaults``: a :class:`~melody_utils.config.SampleConfig` (or dict) for the starting values.
    ``max_seconds``: audio embedded in the notebook (None: all; a cut is said). ``composers``: names for a
    composer dropdown ("any" first; :func:`melody_utils.checkpoint.composer_names` of a model; empty = no
    dropdown). Returns a ``VBox``; its ``controls`` dict
    holds the widgets by name and ``last_result`` the latest :func:`generate_and_render` result.
    Nothing is generated until the button is pressed.
    """
    import ipywidgets as widgets
    from IPython.display import display

    if not callable(generate_fn):
        raise TypeError(f"generate_fn must be callable, got {type(generate_fn).__name__}")
    if not isinstance(primers, dict) or not primers:
        raise ValueError("primers must be a non-empty dict of name -> primer (e.g. {'none': None})")
    d = _defaults(defaults)
    style = {"description_width": "110px"}
    layout = widgets.Layout(width="480px")
    controls = {
        "temperature": widgets.FloatSlider(d["temperature"], min=TEMPERATURE_RANGE[0], max=TEMPERATURE_RANGE[1], step=0.05,
                                           description="temperature", style=style, layout=layout),
        "top_k": widgets.IntSlider(d["top_k"], min=TOP_K_RANGE[0], max=TOP_K_RANGE[1], description="top-k (0 = off)",
                                   style=style, layout=layout),
        "top_p": widgets.FloatSlider(d["top_p"], min=TOP_P_RANGE[0], max=TOP_P_RANGE[1], step=0.01,
                                     description="top-p (1 = off)", style=style, layout=layout),
        "n_notes": widgets.IntSlider(d["n_notes"], min=N_NOTES_RANGE[0], max=N_NOTES_RANGE[1], description="notes",
                                     style=style, layout=layout),
        "seed": widgets.BoundedIntText(d["seed"], min=SEED_RANGE[0], max=SEED_RANGE[1], description="random seed",
                                       style=style, layout=layout),
        # names as options (not the primer objects): a None primer would read as "nothing selected"
        "primer": widgets.Dropdown(options=list(primers), description="primer", style=style, layout=layout),
        **({"composer": widgets.Dropdown(options=["any", *composers], description="composer", style=style,
                                         layout=layout)} if composers else {}),
        "generate": widgets.Button(description="Generate", button_style="primary", icon="music"),
    }
    status = widgets.Label("")
    out = widgets.Output()
    box = widgets.VBox([*controls.values(), status, out])
    box.controls = controls
    box.last_result = None

    def on_generate(_=None):
        c = controls
        c["generate"].disabled = True
        status.value = "generating..."
        try:
            with out:
                out.clear_output(wait=True)
                try:
                    result = generate_and_render(generate_fn, c["temperature"].value, c["top_k"].value, c["top_p"].value,
                                                 c["n_notes"].value, c["seed"].value, primers[c["primer"].value],
                                                 output_path, sample_rate=sample_rate, synth=synth,
                                                 composer=c["composer"].value if "composer" in c else None)
                except ValueError as exc:  # a bad value: the message says what to change
                    print(f"Error: {exc}")
                    status.value = "failed"
                    return
                except Exception:  # anything else: the full traceback, in the output area
                    traceback.print_exc()
                    status.value = "failed"
                    return
                box.last_result = result
                display(result["figure"])
                audio.listen(result["wave"], result["synth"], sample_rate, max_seconds=max_seconds)
                print(f"MIDI written to {result['midi_path']}")
                display(download_widget(result["midi_path"]))
                status.value = f"{len(result['notes'])} notes"
        finally:
            c["generate"].disabled = False

    controls["generate"].on_click(on_generate)
    return box


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
