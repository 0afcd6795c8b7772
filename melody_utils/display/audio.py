"""Notes -> audio, for listening in a notebook (like note-seq's ``midi_synth`` + ``notebook_utils``).

Three synthesizers, best first; ``method="auto"`` picks the first one installed:

- ``"fluidsynth"``: pretty_midi's ``fluidsynth()`` with its bundled General MIDI SoundFont.
  Needs the FluidSynth C library and ``pyfluidsynth`` (``apt-get install fluidsynth`` and
  ``pip install pyfluidsynth``; on Colab: ``!apt-get -qq install fluidsynth && pip install pyfluidsynth``).
- ``"soundfont"``: the same SoundFont (``TimGM6mb.sf2``, shipped inside the pretty_midi wheel)
  rendered by ``tinysoundfont``, a pip-only C renderer (~500x real time). Install it with
  ``pip install --no-deps tinysoundfont``: its only dependency, ``pyaudio``, is for live
  playback, which is not used here, and needs the PortAudio headers to build.
- ``"numpy"``: a built-in struck-string model (harmonics with a fast "prompt" decay into a
  quieter aftersound, silenced by a short damper release at note-off). Always available.

``method`` may also be a callable ``(notes, sample_rate) -> waveform``, so a caller or a test
can pass any synthesizer in.

Every method returns a mono float32 waveform peak-normalised to :data:`PEAK_LEVEL`, of length
``last note end + TAIL_S`` seconds (the release tail), ending in a short fade so it never clicks.
:func:`synthesize_named` also says which synthesizer made it (:data:`SYNTH_NAMES`), and
:func:`listen` shows a player with a line naming the synthesizer and the length played.
Clips compared by ear go through :func:`equal_loudness` first.
"""

from __future__ import annotations

import inspect
import io
import math
import os
import warnings
import wave as _wave
from pathlib import Path
from typing import Callable

import numpy as np

from ..checks import check_number
from ..files import atomic_write_bytes
from ..music.midi import DEFAULT_PROGRAM, MAX_MIDI_PITCH, MIN_MIDI_PITCH, Notes, notes_to_pretty_midi

DEFAULT_SAMPLE_RATE = 22050  # Hz; enough for piano, half the size of 44.1 kHz in a notebook
PEAK_LEVEL = 0.9  # output peak after normalisation (headroom below full scale)
TAIL_S = 0.5  # seconds kept after the last note ends, for its release
FADE_OUT_S = 0.02  # final fade so a cut waveform never ends with a click
MIN_NOTE_S = 0.05  # zero-length notes still sound for this long
SILENCE_DB = -120.0  # rms_db floor reported for an all-zero waveform
METHODS = ("fluidsynth", "soundfont", "numpy")  # in "auto" preference order
SOUNDFONT_FILE = "TimGM6mb.sf2"  # General MIDI SoundFont inside the pretty_midi package

# Struck-string model (numpy synthesizer).
N_PARTIALS = 10  # harmonics per note (fewer for high notes: none above 0.45 * sample rate)
INHARMONICITY = 1.5e-4  # piano strings are stiff: partial k sits at k f0 sqrt(1 + B k^2)
ATTACK_S = 0.003  # hammer attack ramp
PROMPT_SHARE = 0.65  # share of a partial's amplitude in the fast-decaying "prompt" sound after the strike
PROMPT_SPEEDUP = 8.0  # the prompt sound decays this many times faster than the aftersound
RELEASE_S = 0.08  # damper: fade to silence over this long after the note ends
MAX_RING_S = 6.0  # a longer held note is damped here (bounds the cost of pedalled notes)
EQUAL_LOUDNESS_DB = -20.0  # RMS level (dB full scale) that equal_loudness brings clips to
SYNTH_NAMES = {  # what made the sound, in words
    "fluidsynth": "FluidSynth with the General MIDI piano of pretty_midi's SoundFont (TimGM6mb)",
    "soundfont": "the General MIDI piano of pretty_midi's SoundFont (TimGM6mb), rendered by tinysoundfont",
    "numpy": "the built-in numpy piano model (for a sampled piano: pip install --no-deps tinysoundfont)",
    "custom": "the synthesizer passed in",
}

INSTALL_HINTS = {
    "fluidsynth": "install the FluidSynth library and its binding: `apt-get install fluidsynth` then `pip install pyfluidsynth` (Colab: `!apt-get -qq install fluidsynth && pip install pyfluidsynth`)",
    "soundfont": "install the pip-only SoundFont renderer: `pip install --no-deps tinysoundfont`",
    "numpy": "",
}


# ---------------------------------------------------------------- what is installed


def soundfont_path() -> Path:
    """The General MIDI SoundFont bundled with pretty_midi."""
    import pretty_midi

    path = Path(pretty_midi.__file__).parent / SOUNDFONT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the pretty_midi install lacks its SoundFont; reinstall pretty_midi or pass sf2_path=")
    return path


def _has_fluidsynth() -> bool:
    try:
        import fluidsynth  # pyfluidsynth; raises ImportError (or OSError) when the C library is missing
    except Exception:
        return False
    return hasattr(fluidsynth, "Synth")


def _has_tinysoundfont() -> bool:
    try:
        import tinysoundfont
    except Exception:
        return False
    return hasattr(tinysoundfont, "Synth")


def available_methods() -> list[str]:
    """Synthesizers usable here, best first (``"numpy"`` always last)."""
    found = {"fluidsynth": _has_fluidsynth(), "soundfont": _has_tinysoundfont(), "numpy": True}
    return [m for m in METHODS if found[m]]


# ---------------------------------------------------------------- synthesizers


def _render_length(notes: Notes, sample_rate: int) -> int:
    return int(math.ceil((notes.seconds() + TAIL_S) * sample_rate))


def _playable(notes: Notes) -> Notes:
    """Copy with durations of at least MIN_NOTE_S and velocities clipped to 1..127."""
    return Notes(notes.pitch, notes.start, np.maximum(notes.duration, MIN_NOTE_S), np.clip(notes.velocity, 1, 127))


def synth_fluidsynth(notes: Notes, sample_rate: int, sf2_path=None, program: int = DEFAULT_PROGRAM) -> np.ndarray:
    """pretty_midi's FluidSynth rendering (needs the C library and pyfluidsynth)."""
    pm = notes_to_pretty_midi(notes, program=program)
    if sf2_path is None:
        return pm.fluidsynth(fs=sample_rate)
    # pretty_midi 0.2.11 renamed the SoundFont argument from sf2_path to synthesizer
    key = "synthesizer" if "synthesizer" in inspect.signature(pm.fluidsynth).parameters else "sf2_path"
    return pm.fluidsynth(fs=sample_rate, **{key: str(sf2_path)})


def synth_soundfont(notes: Notes, sample_rate: int, sf2_path=None, program: int = DEFAULT_PROGRAM) -> np.ndarray:
    """Render with tinysoundfont: run the note-on/off events in time order over one channel.

    Between two events the synthesizer renders straight into one preallocated buffer, so the
    cost is one C call per event.
    """
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sample_rate)
    sfid = synth.sfload(str(sf2_path or soundfont_path()))
    synth.program_select(0, sfid, 0, program)
    n = _render_length(notes, sample_rate)
    on = np.round(notes.start * sample_rate).astype(np.int64)
    off = np.round(notes.end * sample_rate).astype(np.int64)
    # Events as (sample, kind, pitch, velocity); kind 0 = off sorts before 1 = on at the same
    # sample, so a re-struck key is released before it is struck again.
    times = np.concatenate([off, on])
    kinds = np.concatenate([np.zeros(len(notes), np.int64), np.ones(len(notes), np.int64)])
    pitches = np.concatenate([notes.pitch, notes.pitch]).astype(np.int64)
    vels = np.concatenate([np.zeros(len(notes), np.int64), notes.velocity.astype(np.int64)])
    order = np.lexsort((kinds, times))
    frame_bytes = 2 * 4  # stereo float32
    buf = memoryview(bytearray(n * frame_bytes))
    pos = 0
    for i in order:
        t = min(int(times[i]), n)
        if t > pos:
            synth.generate_simple(t - pos, buffer=buf[pos * frame_bytes : t * frame_bytes])
            pos = t
        if kinds[i]:
            synth.noteon(0, int(pitches[i]), int(vels[i]))
        else:
            synth.noteoff(0, int(pitches[i]))
    if pos < n:
        synth.generate_simple(n - pos, buffer=buf[pos * frame_bytes :])
    stereo = np.frombuffer(buf, dtype=np.float32).reshape(n, 2)
    return stereo.mean(axis=1)


def _string_decay_s(f0: float) -> float:
    """Time constant (s) of a string's fundamental: bass strings ring for seconds, treble briefly."""
    return float(np.clip(1.8 * (261.63 / f0) ** 0.6, 0.2, 3.0))


def _string_partials(pitch: int, n: int, sample_rate: int) -> np.ndarray:
    """(K, n) decaying partials of one struck string, K <= N_PARTIALS (none above 0.45 * sr).

    Partial k sits at k f0 sqrt(1 + B k^2) (a stiff string's stretched harmonics) and decays
    with time constant tau0 / (1 + 0.6 (k - 1)): the upper partials die first, so a held note
    mellows as it rings. Its amplitude falls in two stages, as a piano's does: a
    :data:`PROMPT_SHARE` that decays :data:`PROMPT_SPEEDUP` times faster (the bright strike),
    then a quieter, slower aftersound.
    """
    f0 = 440.0 * 2.0 ** ((pitch - 69) / 12)
    k = np.arange(1, N_PARTIALS + 1, dtype=np.float64)
    freq = k * f0 * np.sqrt(1 + INHARMONICITY * k**2)
    keep = freq < 0.45 * sample_rate
    freq, tau = freq[keep], _string_decay_s(f0) / (1 + 0.6 * (k[keep] - 1))
    out = np.zeros((len(freq), n), dtype=np.float64)
    for share, speed in ((PROMPT_SHARE, PROMPT_SPEEDUP), (1 - PROMPT_SHARE, 1.0)):
        # exp((i w - 1/tau) t) at t = j / sr is r**j: a running product, far cheaper than exp and
        # sin per sample (complex128 keeps the accumulated error near 1e-8 over MAX_RING_S).
        r = np.exp((2j * np.pi * freq - speed / tau) / sample_rate)  # (K,)
        z = np.empty((len(freq), max(n, 1)), dtype=np.complex128)
        z[:, 0] = 1.0
        z[:, 1:] = r[:, None]
        np.cumprod(z, axis=1, out=z)
        out += share * z.imag[:, :n]  # exp(-speed t / tau_k) sin(2 pi f_k t)
    return out.astype(np.float32)  # (K, n)


def _partial_weights(n_partials: int, velocity: np.ndarray) -> np.ndarray:
    """(N, K) partial amplitudes: a spectral slope k^-b, brighter (smaller b) for louder notes."""
    k = np.arange(1, n_partials + 1, dtype=np.float64)
    slope = 1.9 - 1.1 * np.asarray(velocity, dtype=np.float64)[:, None] / 127
    w = k[None, :] ** -slope
    return w / w.sum(axis=1, keepdims=True)


def synth_numpy(notes: Notes, sample_rate: int) -> np.ndarray:
    """Built-in struck-string synthesizer; no dependency beyond numpy.

    Each note: up to :data:`N_PARTIALS` decaying partials (see :func:`_string_partials`), a
    :data:`ATTACK_S` attack and a :data:`RELEASE_S` fade after the note ends. The partials of
    a pitch are computed once, for its longest note; each note is then one small
    matrix-vector product (its velocity's partial weights times the partials).
    """
    n_out = _render_length(notes, sample_rate)
    out = np.zeros(n_out, dtype=np.float32)
    n_attack = max(1, int(ATTACK_S * sample_rate))
    n_release = max(1, int(RELEASE_S * sample_rate))
    attack = np.linspace(0.0, 1.0, n_attack, endpoint=False, dtype=np.float32)
    release = np.linspace(1.0, 0.0, n_release, dtype=np.float32) ** 2
    velocity = np.clip(notes.velocity, 1, 127)
    gains = (velocity / 127.0) ** 1.6  # loudness grows faster than velocity
    starts = np.round(notes.start * sample_rate).astype(np.int64)
    ring = np.minimum(np.round(notes.duration * sample_rate).astype(np.int64), int(MAX_RING_S * sample_rate))
    lengths = np.minimum(ring + n_release, n_out - starts)
    for pitch in np.unique(notes.pitch):
        idx = np.flatnonzero(notes.pitch == pitch)
        partials = _string_partials(int(pitch), int(lengths[idx].max()), sample_rate)  # (K, L)
        weights = (_partial_weights(len(partials), velocity[idx]) * gains[idx, None]).astype(np.float32)  # (n, K)
        for j, i in enumerate(idx):
            s, length = starts[i], lengths[i]
            # einsum, not @: a BLAS matvec this thin is slower (it may spin up threads)
            x = np.einsum("k,kn->n", weights[j], partials[:, :length])  # (length,)
            a, r = min(n_attack, length), min(n_release, length)
            x[:a] *= attack[:a]
            x[length - r :] *= release[n_release - r :]
            out[s : s + length] += x
    return out


_SYNTHS = {"fluidsynth": synth_fluidsynth, "soundfont": synth_soundfont, "numpy": synth_numpy}


def _finish(wave: np.ndarray, n: int, sample_rate: int) -> np.ndarray:
    """Mono float32 of exactly ``n`` samples, faded out at the end and peak-normalised."""
    wave = np.array(wave, dtype=np.float64).reshape(-1)[:n]  # a copy: the caller's array is left alone
    if len(wave) < n:
        wave = np.pad(wave, (0, n - len(wave)))
    fade = min(len(wave), int(FADE_OUT_S * sample_rate))
    if fade:
        wave[-fade:] *= np.linspace(1.0, 0.0, fade)
    peak = np.abs(wave).max() if len(wave) else 0.0
    if peak > 0:
        wave = wave * (PEAK_LEVEL / peak)
    return wave.astype(np.float32)


def synthesize(notes: Notes, sample_rate: int = DEFAULT_SAMPLE_RATE, method: str | Callable = "auto", sf2_path=None) -> np.ndarray:
    """Notes -> mono float32 waveform in [-1, 1], peak at :data:`PEAK_LEVEL` (see :func:`synthesize_named`)."""
    return synthesize_named(notes, sample_rate, method, sf2_path)[0]


def synthesize_named(notes: Notes, sample_rate: int = DEFAULT_SAMPLE_RATE, method: str | Callable = "auto",
                     sf2_path=None) -> tuple[np.ndarray, str]:
    """Notes -> (mono float32 waveform in [-1, 1], peak at :data:`PEAK_LEVEL`; the method that made it).

    ``method``: ``"auto"`` (the first of :func:`available_methods`), ``"fluidsynth"``,
    ``"soundfont"``, ``"numpy"``, or a callable ``(notes, sample_rate) -> waveform``.
    ``sf2_path``: another SoundFont for the two SoundFont methods. Length: last note end +
    :data:`TAIL_S` seconds. Empty notes give an empty array. Raises ``ValueError`` for bad
    input and ``ImportError`` (with the install line) for a named method that is not installed.
    """
    if not isinstance(notes, Notes):
        raise TypeError(f"notes must be a melody_utils.music.midi.Notes, got {type(notes).__name__}")
    sample_rate = check_number("sample_rate", sample_rate, "an integer between 4000 and 192000 Hz", 4000, 192000,
                               integer=True)
    if len(notes) == 0:
        return np.zeros(0, dtype=np.float32), "none"
    if notes.pitch.min() < MIN_MIDI_PITCH or notes.pitch.max() > MAX_MIDI_PITCH:
        raise ValueError(f"pitches must lie in {MIN_MIDI_PITCH}-{MAX_MIDI_PITCH}, got {notes.pitch.min()}-{notes.pitch.max()}")
    if not (np.isfinite(notes.start).all() and np.isfinite(notes.duration).all()) or notes.start.min() < 0:
        raise ValueError("note onsets must be finite and >= 0 and durations finite; clean the notes first")
    notes = _playable(notes)
    n = _render_length(notes, sample_rate)

    if callable(method):
        candidates = [("custom", method)]
    elif method == "auto":
        candidates = [(m, _SYNTHS[m]) for m in available_methods()]
    elif method in _SYNTHS:
        if method not in available_methods():
            raise ImportError(f"synthesis method {method!r} is not installed: {INSTALL_HINTS[method]}; or use method='auto'")
        candidates = [(method, _SYNTHS[method])]
    else:
        raise ValueError(f"method must be 'auto', {', '.join(repr(m) for m in METHODS)} or a callable, not {method!r}")

    for name, fn in candidates:
        try:
            if name in ("fluidsynth", "soundfont") and sf2_path is not None:
                wave = fn(notes, sample_rate, sf2_path=sf2_path)
            else:
                wave = fn(notes, sample_rate)
        except Exception as exc:
            if method != "auto" or name == "numpy":
                raise
            # "auto" tries the next synthesizer rather than leaving the notebook without sound
            warnings.warn(f"synthesis method {name!r} failed ({type(exc).__name__}: {exc}); trying the next one", stacklevel=2)
            continue
        wave = _finish(wave, n, sample_rate)
        if not np.isfinite(wave).all():
            raise RuntimeError(f"synthesis method {name!r} returned NaN or infinite samples")
        if np.abs(wave).max() > 0:
            return wave, name
        # e.g. a SoundFont without the requested program renders silence
        if method != "auto" or name == "numpy":
            break
    raise RuntimeError(f"synthesis method {name!r} rendered silence for {len(notes)} notes; try method='numpy'")


# ---------------------------------------------------------------- notebook helpers


def rms_db(wave) -> float:
    """Root-mean-square level in dB relative to full scale (1.0); :data:`SILENCE_DB` for silence."""
    w = np.asarray(wave, dtype=np.float64).reshape(-1)
    if w.size == 0:
        return SILENCE_DB
    rms = float(np.sqrt(np.mean(w**2)))
    return max(SILENCE_DB, 20 * math.log10(rms)) if rms > 0 else SILENCE_DB


def clip_notes(notes: Notes, max_seconds: float) -> Notes:
    """Notes starting before ``max_seconds``, cut to end by then."""
    keep = notes[notes.start < max_seconds]
    return Notes(keep.pitch, keep.start, np.minimum(keep.end, max_seconds) - keep.start, keep.velocity)


def audio_player(notes_or_wave, sample_rate: int = DEFAULT_SAMPLE_RATE, max_seconds: float | None = None, method="auto",
                 normalize: bool = True):
    """An ``IPython.display.Audio`` player for notes (synthesized with ``method``) or a waveform.

    Audio is embedded in the notebook as base64 WAV (16-bit), ~59 KB per second at 22.05 kHz;
    ``max_seconds`` cuts it to the first seconds (``None``, the default: all of it; say so when
    cutting, as :func:`listen` does). ``normalize=False`` keeps the waveform's level (for clips
    made equally loud by :func:`equal_loudness`); otherwise the player scales it to full scale.
    """
    from IPython.display import Audio

    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0 or None, got {max_seconds!r}")
    if isinstance(notes_or_wave, Notes):
        notes = notes_or_wave if max_seconds is None else clip_notes(notes_or_wave, max_seconds)
        wave = synthesize(notes, sample_rate, method)
    else:
        wave = np.asarray(notes_or_wave, dtype=np.float32).reshape(-1)
    if max_seconds is not None and len(wave) > max_seconds * sample_rate:
        wave = wave[: int(max_seconds * sample_rate)].copy()
        fade = min(len(wave), int(FADE_OUT_S * sample_rate))
        wave[len(wave) - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    if wave.size == 0:
        raise ValueError("nothing to play: the notes or waveform are empty")
    # IPython rescales to full scale; an all-zero wave would divide by zero
    return Audio(data=np.clip(wave, -1.0, 1.0), rate=sample_rate, normalize=normalize and bool(np.abs(wave).max() > 0))


def player_caption(seconds: float, synth: str, max_seconds: float | None = None) -> str:
    """The line shown above a player: which synthesizer made the sound, and how much of it plays."""
    length = (f"the first {max_seconds:g} s of {seconds:.0f} s (cut to keep the notebook small; the files hold it all)"
              if max_seconds is not None and seconds > max_seconds else f"all {seconds:.1f} s")
    return f"sound: {SYNTH_NAMES.get(synth, synth)}; playing {length}"


def listen(notes_or_wave, synth: str | None = None, sample_rate: int = DEFAULT_SAMPLE_RATE, max_seconds: float | None = None,
           method="auto", normalize: bool = True) -> None:
    """Show :func:`player_caption` and the player: notes are synthesized here (``method``); a
    waveform comes with the name of the ``synth`` that made it."""
    from IPython.display import display

    if isinstance(notes_or_wave, Notes):
        notes_or_wave, synth = synthesize_named(notes_or_wave, sample_rate, method)
    wave = np.asarray(notes_or_wave, dtype=np.float32).reshape(-1)
    print(player_caption(len(wave) / sample_rate, synth or "custom", max_seconds))
    display(audio_player(wave, sample_rate, max_seconds=max_seconds, normalize=normalize))


def equal_loudness(waves: dict, target_db: float = EQUAL_LOUDNESS_DB) -> dict:
    """The waveforms scaled to the same RMS level (``target_db``, lowered for all alike if a peak
    would pass :data:`PEAK_LEVEL`), so that clips compared by ear differ in the music, not the level.
    Play them with ``normalize=False``."""
    rms = {k: rms_db(w) for k, w in waves.items()}
    silent = [k for k, db in rms.items() if db <= SILENCE_DB]
    if silent:
        raise ValueError(f"cannot match the loudness of silent clip(s) {silent}")
    gains = {k: 10 ** ((target_db - db) / 20) for k, db in rms.items()}
    loudest_peak = max(float(np.abs(w).max()) * gains[k] for k, w in waves.items())
    headroom = min(1.0, PEAK_LEVEL / loudest_peak)
    return {k: (np.asarray(w, dtype=np.float32) * (gains[k] * headroom)).astype(np.float32) for k, w in waves.items()}


def wave_to_wav_bytes(wave, sample_rate: int = DEFAULT_SAMPLE_RATE) -> bytes:
    """Mono float waveform in [-1, 1] -> 16-bit PCM WAV file bytes (values outside are clipped)."""
    pcm = (np.clip(np.asarray(wave, dtype=np.float64).reshape(-1), -1.0, 1.0) * 32767).round().astype("<i2")
    buf = io.BytesIO()
    with _wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def write_wav(wave, path: str | os.PathLike, sample_rate: int = DEFAULT_SAMPLE_RATE) -> Path:
    """Write a mono 16-bit WAV file atomically (temp file + rename). Returns the path."""
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    data = wave_to_wav_bytes(wave, sample_rate)
    return atomic_write_bytes(path, lambda tmp: Path(tmp).write_bytes(data))
