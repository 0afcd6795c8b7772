"""Notes -> audio, for listening in a notebook and for WAV files (like note-seq's ``midi_synth`` +
``notebook_utils``).

Four synthesizers, best first; ``method="auto"`` picks the first one that works here:

- ``"symusic"``: symusic's SoundFont synthesizer (symusic is already the MIDI reader): stereo and
  the fastest (docs/audio.md). It counts as available only for a SoundFont it plays in tune
  (:func:`_symusic_in_tune`, one probe per SoundFont): symusic 0.6.0's ``render`` fails on every
  call, and 0.5.9 plays pretty_midi's TimGM6mb 3 to 27 semitones sharp.
- ``"fluidsynth"``: pretty_midi's ``fluidsynth()``. Needs the FluidSynth C library and
  ``pyfluidsynth`` (``apt-get install fluidsynth`` and ``pip install pyfluidsynth``).
- ``"soundfont"``: ``tinysoundfont``, a pip-only C renderer, when installed
  (``pip install --no-deps tinysoundfont``: its only dependency, ``pyaudio``, is for live playback).
- ``"numpy"``: the built-in struck-string model (:mod:`melody_utils.display.piano_model`). Always
  available, offline, with nothing extra installed.

The SoundFont methods play :func:`~melody_utils.display.soundfonts.find_soundfont`'s choice (the
best one on the machine) unless ``sf2_path`` names one. ``method`` may also be a callable
``(notes, sample_rate) -> waveform``, so a caller or a test can pass any synthesizer in.

Every method returns a stereo float32 waveform of shape (frames, 2) at :data:`DEFAULT_SAMPLE_RATE`
unless asked otherwise, peak-normalised to :data:`PEAK_LEVEL` (never clipped), of length ``last
note end + TAIL_S`` seconds (the release tail), ending in a short fade so it never clicks.
:func:`synthesize_named` also says what made it (:func:`describe_synth`), :func:`listen` shows a
player with a line naming it, :func:`write_wav` writes 16-bit WAV files. Clips compared by ear go
through :func:`equal_loudness` first. Functions that take a waveform also take a mono (frames,) one.
"""

from __future__ import annotations

import functools
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
from .piano_model import RELEASE_S, TAIL_S, render_length, synth_numpy  # noqa: F401 (RELEASE_S re-exported)
from .soundfonts import find_soundfont, pretty_midi_soundfont

DEFAULT_SAMPLE_RATE = 44100  # Hz: CD quality, what the WAV files hold
CHANNELS = 2  # stereo
PEAK_LEVEL = 0.9  # output peak after normalisation (headroom below full scale)
FADE_OUT_S = 0.02  # final fade so a cut waveform never ends with a click
MIN_NOTE_S = 0.05  # zero-length notes still sound for this long
SILENCE_DB = -120.0  # rms_db floor reported for an all-zero waveform
METHODS = ("symusic", "fluidsynth", "soundfont", "numpy")  # in "auto" preference order
SOUNDFONT_METHODS = ("symusic", "fluidsynth", "soundfont")  # the ones that play a SoundFont
EQUAL_LOUDNESS_DB = -20.0  # RMS level (dB full scale) that equal_loudness brings clips to
SYNTH_NAMES = {  # what made the sound, in words
    "symusic": "symusic's SoundFont synthesizer",
    "fluidsynth": "FluidSynth",
    "soundfont": "tinysoundfont",
    "numpy": "the built-in numpy piano model (no SoundFont synthesizer works here; see docs/audio.md)",
    "custom": "the synthesizer passed in",
}
INSTALL_HINTS = {
    "symusic": "symusic's synthesizer does not play this SoundFont in tune here (0.6.0's render fails, 0.5.9 "
               "detunes TimGM6mb; docs/audio.md): pass another SoundFont (--soundfont) or use method='auto'",
    "fluidsynth": "install the FluidSynth library and its binding: `apt-get install fluidsynth` then `pip install pyfluidsynth` "
                  "(Colab: `!apt-get -qq install fluidsynth && pip install pyfluidsynth`)",
    "soundfont": "install the pip-only SoundFont renderer: `pip install --no-deps tinysoundfont`",
    "numpy": "",
}


# ---------------------------------------------------------------- what works here


def soundfont_path() -> Path:
    """The General MIDI SoundFont bundled with pretty_midi (see :mod:`melody_utils.display.soundfonts`)."""
    return pretty_midi_soundfont()


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


TUNING_PITCHES = (57, 69, 81)  # A3, A4, A5: the notes the symusic probe renders
TUNING_SHARE = 0.1  # each note's fundamental must reach this share of its spectrum's highest peak


def fundamental_share(wave, pitch: int, sample_rate: int) -> float:
    """Spectral magnitude within 3% of ``pitch``'s fundamental, relative to the spectrum's highest peak
    (about 1 for an in-tune piano note; near 0 when the note sounds at another pitch)."""
    w = to_mono(wave).astype(np.float64)
    spec = np.abs(np.fft.rfft(w * np.hanning(len(w))))
    freq = np.fft.rfftfreq(len(w), 1 / sample_rate)
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    band = (freq > 0.97 * f0) & (freq < 1.03 * f0)
    return float(spec[band].max() / spec.max()) if band.any() and spec.max() > 0 else 0.0


@functools.lru_cache(maxsize=4)
def _symusic_in_tune(sf2_path: str) -> bool:
    """Whether symusic's synthesizer plays this SoundFont here, in tune: A3, A4 and A5 each rendered
    alone must sound at their own fundamental (:data:`TUNING_SHARE`). False when symusic is missing,
    when its render fails (symusic 0.6.0) or when it detunes the SoundFont (0.5.9 with pretty_midi's
    TimGM6mb plays A4 near 1,660 Hz; docs/audio.md)."""
    try:
        for pitch in TUNING_PITCHES:
            wave = synth_symusic(Notes([pitch], [0.0], [0.5], [90]), DEFAULT_SAMPLE_RATE, sf2_path)
            if not (wave.size and np.isfinite(wave).all()) or fundamental_share(wave, pitch, DEFAULT_SAMPLE_RATE) < TUNING_SHARE:
                return False
    except Exception:  # no symusic, an unreadable SoundFont, or a render that fails
        return False
    return True


def _soundfont_or_none(sf2_path=None) -> Path | None:
    """``sf2_path`` checked (an error naming it), else the best SoundFont here, else None (numpy plays)."""
    if sf2_path is not None:
        return find_soundfont(sf2_path)
    try:
        return find_soundfont()
    except FileNotFoundError:
        return None


def available_methods(sf2_path=None) -> list[str]:
    """Synthesizers usable here with the SoundFont ``sf2_path`` (default: the best on the machine),
    best first (``"numpy"`` always last; the SoundFont methods need a SoundFont)."""
    sf2 = _soundfont_or_none(sf2_path)
    found = {"symusic": sf2 is not None and _symusic_in_tune(str(sf2)), "fluidsynth": sf2 is not None and _has_fluidsynth(),
             "soundfont": sf2 is not None and _has_tinysoundfont(), "numpy": True}
    return [m for m in METHODS if found[m]]


# ---------------------------------------------------------------- SoundFont synthesizers


def _playable(notes: Notes) -> Notes:
    """Copy with durations of at least MIN_NOTE_S and velocities clipped to 1..127."""
    return Notes(notes.pitch, notes.start, np.maximum(notes.duration, MIN_NOTE_S), np.clip(notes.velocity, 1, 127))


@functools.lru_cache(maxsize=2)
def _symusic_synthesizer(sf2_path: str, sample_rate: int):
    import symusic

    return symusic.Synthesizer(sf_path=sf2_path, sample_rate=sample_rate)  # loads the SoundFont once


def synth_symusic(notes: Notes, sample_rate: int, sf2_path=None, program: int = DEFAULT_PROGRAM) -> np.ndarray:
    """symusic's SoundFont synthesizer: (frames, 2). The notes become a score in seconds, one track."""
    import symusic

    track = symusic.Track(name="piano", program=program, is_drum=False, ttype="second")
    track.notes = symusic.Note.from_numpy(notes.start.astype(np.float32), notes.duration.astype(np.float32),
                                          notes.pitch.astype(np.int8), notes.velocity.astype(np.int8), "second")
    score = symusic.Score(ttype="second")
    score.tracks.append(track)
    synth = _symusic_synthesizer(str(sf2_path or find_soundfont()), int(sample_rate))
    return np.asarray(synth.render(score, stereo=True)).T  # (2, frames) -> (frames, 2)


def synth_fluidsynth(notes: Notes, sample_rate: int, sf2_path=None, program: int = DEFAULT_PROGRAM) -> np.ndarray:
    """pretty_midi's FluidSynth rendering (needs the C library and pyfluidsynth): mono."""
    pm = notes_to_pretty_midi(notes, program=program)
    # pretty_midi 0.2.11 renamed the SoundFont argument from sf2_path to synthesizer
    key = "synthesizer" if "synthesizer" in inspect.signature(pm.fluidsynth).parameters else "sf2_path"
    return pm.fluidsynth(fs=sample_rate, **{key: str(sf2_path or find_soundfont())})


def synth_soundfont(notes: Notes, sample_rate: int, sf2_path=None, program: int = DEFAULT_PROGRAM) -> np.ndarray:
    """Render with tinysoundfont, running the note-on/off events in time order over one channel: (frames, 2).

    Between two events the synthesizer renders straight into one preallocated buffer, so the
    cost is one C call per event.
    """
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sample_rate)
    sfid = synth.sfload(str(sf2_path or find_soundfont()))
    synth.program_select(0, sfid, 0, program)
    n = render_length(notes, sample_rate)
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
    return np.frombuffer(buf, dtype=np.float32).reshape(n, 2)


_SYNTHS = {"symusic": synth_symusic, "fluidsynth": synth_fluidsynth, "soundfont": synth_soundfont, "numpy": synth_numpy}


# ---------------------------------------------------------------- one call for every synthesizer


def as_frames(wave) -> np.ndarray:
    """Any waveform as float64 (frames, channels): mono (n,), (n, C), or (C, n) with C <= 2 < n."""
    w = np.array(wave, dtype=np.float64)
    if w.ndim == 1:
        return w[:, None]
    if w.ndim == 2 and w.shape[0] <= 2 < w.shape[1]:
        return w.T.copy()
    if w.ndim != 2:
        raise ValueError(f"a waveform is (frames,) or (frames, channels), got shape {w.shape}")
    return w


def to_mono(wave) -> np.ndarray:
    """The channels' mean, (frames,) float32 (for spectra, plots and small files)."""
    return as_frames(wave).mean(axis=1).astype(np.float32)


def _finish(wave, n: int, sample_rate: int) -> np.ndarray:
    """Stereo float32 (n, 2), faded out at the end and peak-normalised (a copy: the caller's array is left alone)."""
    w = as_frames(wave)[:n]
    w = np.repeat(w, CHANNELS, axis=1) if w.shape[1] == 1 else w[:, :CHANNELS]
    if len(w) < n:
        w = np.pad(w, ((0, n - len(w)), (0, 0)))
    fade = min(len(w), int(FADE_OUT_S * sample_rate))
    if fade:
        w[-fade:] *= np.linspace(1.0, 0.0, fade)[:, None]
    peak = np.abs(w).max() if w.size else 0.0
    if peak > 0:
        w = w * (PEAK_LEVEL / peak)
    return w.astype(np.float32)


def synthesize(notes: Notes, sample_rate: int = DEFAULT_SAMPLE_RATE, method: str | Callable = "auto", sf2_path=None) -> np.ndarray:
    """Notes -> stereo float32 (frames, 2) waveform in [-1, 1], peak at :data:`PEAK_LEVEL` (see :func:`synthesize_named`)."""
    return synthesize_named(notes, sample_rate, method, sf2_path)[0]


def _check_notes(notes: Notes, sample_rate) -> int:
    if not isinstance(notes, Notes):
        raise TypeError(f"notes must be a melody_utils.music.midi.Notes, got {type(notes).__name__}")
    sample_rate = check_number("sample_rate", sample_rate, "an integer between 4000 and 192000 Hz", 4000, 192000,
                               integer=True)
    if len(notes) and (notes.pitch.min() < MIN_MIDI_PITCH or notes.pitch.max() > MAX_MIDI_PITCH):
        raise ValueError(f"pitches must lie in {MIN_MIDI_PITCH}-{MAX_MIDI_PITCH}, got {notes.pitch.min()}-{notes.pitch.max()}")
    if len(notes) and (not (np.isfinite(notes.start).all() and np.isfinite(notes.duration).all()) or notes.start.min() < 0):
        raise ValueError("note onsets must be finite and >= 0 and durations finite; clean the notes first")
    return sample_rate


def _candidates(method, sf2_path) -> list[tuple[str, Callable]]:
    if callable(method):
        return [("custom", method)]
    if method == "auto":
        return [(m, _SYNTHS[m]) for m in available_methods(sf2_path)]
    if method in _SYNTHS:
        if method != "numpy" and method not in available_methods(sf2_path):
            raise ImportError(f"synthesis method {method!r} is not installed: {INSTALL_HINTS[method]}; or use method='auto'")
        return [(method, _SYNTHS[method])]
    raise ValueError(f"method must be 'auto', {', '.join(repr(m) for m in METHODS)} or a callable, not {method!r}")


def synthesize_named(notes: Notes, sample_rate: int = DEFAULT_SAMPLE_RATE, method: str | Callable = "auto",
                     sf2_path=None) -> tuple[np.ndarray, str]:
    """Notes -> (stereo float32 (frames, 2) waveform in [-1, 1], peak at :data:`PEAK_LEVEL`; what made it).

    ``method``: ``"auto"`` (the first of :func:`available_methods` that renders), one of
    :data:`METHODS`, or a callable ``(notes, sample_rate) -> waveform``. ``sf2_path``: the SoundFont
    for the SoundFont methods (default: the best on the machine; a missing file raises here).
    What made it: the method, with ``":<SoundFont file name>"`` for a SoundFont method (see
    :func:`describe_synth`). Length: last note end + :data:`TAIL_S` seconds; empty notes give an
    empty array. Raises ``ValueError`` for bad input and ``ImportError`` (with the install line)
    for a named method that does not work here.
    """
    sample_rate = _check_notes(notes, sample_rate)
    if len(notes) == 0:
        return np.zeros((0, CHANNELS), dtype=np.float32), "none"
    notes = _playable(notes)
    n = render_length(notes, sample_rate)
    sf2 = None if callable(method) or method == "numpy" else _soundfont_or_none(sf2_path)  # a missing --soundfont fails here
    candidates = _candidates(method, sf2)
    for name, fn in candidates:
        try:
            wave = fn(notes, sample_rate, sf2_path=sf2) if name in SOUNDFONT_METHODS else fn(notes, sample_rate)
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
            return wave, f"{name}:{sf2.name}" if name in SOUNDFONT_METHODS else name
        # e.g. a SoundFont without the requested program renders silence
        if method != "auto" or name == "numpy":
            break
    raise RuntimeError(f"synthesis method {name!r} rendered silence for {len(notes)} notes; try method='numpy'")


def describe_sound(sf2_path=None) -> str:
    """One line: what ``method="auto"`` plays with here, e.g. "sound: tinysoundfont playing TimGM6mb.sf2"."""
    method = available_methods(sf2_path)[0]
    sf2 = _soundfont_or_none(sf2_path) if method in SOUNDFONT_METHODS else None
    return f"sound: {describe_synth(f'{method}:{sf2.name}' if sf2 else method)}"


def describe_synth(synth: str) -> str:
    """What made a sound, in words: ``"symusic:TimGM6mb.sf2"`` -> "symusic's SoundFont synthesizer
    playing TimGM6mb.sf2"."""
    method, _, soundfont = str(synth).partition(":")
    words = SYNTH_NAMES.get(method, method)
    return f"{words} playing {soundfont}" if soundfont else words


# ---------------------------------------------------------------- notebook helpers


def rms_db(wave) -> float:
    """Root-mean-square level in dB relative to full scale (1.0), over every channel; :data:`SILENCE_DB` for silence."""
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

    Audio is embedded in the notebook as base64 WAV (16-bit): about 235 KB per second of stereo at
    44.1 kHz; ``max_seconds`` cuts it to the first seconds (``None``, the default: all of it; say so
    when cutting, as :func:`listen` does). ``normalize=False`` keeps the waveform's level (for clips
    made equally loud by :func:`equal_loudness`); otherwise the player scales it to full scale.
    """
    from IPython.display import Audio

    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0 or None, got {max_seconds!r}")
    if isinstance(notes_or_wave, Notes):
        notes = notes_or_wave if max_seconds is None else clip_notes(notes_or_wave, max_seconds)
        notes_or_wave = synthesize(notes, sample_rate, method)
    wave = np.asarray(notes_or_wave, dtype=np.float32)
    if max_seconds is not None and len(wave) > max_seconds * sample_rate:
        wave = wave[: int(max_seconds * sample_rate)].copy()
        fade = np.linspace(1.0, 0.0, min(len(wave), int(FADE_OUT_S * sample_rate)), dtype=np.float32)
        wave[len(wave) - len(fade):] *= fade if wave.ndim == 1 else fade[:, None]
    if wave.size == 0:
        raise ValueError("nothing to play: the notes or waveform are empty")
    # IPython takes (channels, frames) and rescales to full scale; an all-zero wave would divide by zero
    data = np.clip(wave if wave.ndim == 1 else wave.T, -1.0, 1.0)
    return Audio(data=data, rate=sample_rate, normalize=normalize and bool(np.abs(wave).max() > 0))


def player_caption(seconds: float, synth: str, max_seconds: float | None = None) -> str:
    """The line shown above a player: which synthesizer made the sound, and how much of it plays."""
    length = (f"the first {max_seconds:g} s of {seconds:.0f} s (cut to keep the notebook small; the files hold it all)"
              if max_seconds is not None and seconds > max_seconds else f"all {seconds:.1f} s")
    return f"sound: {describe_synth(synth)}; playing {length}"


def listen(notes_or_wave, synth: str | None = None, sample_rate: int = DEFAULT_SAMPLE_RATE, max_seconds: float | None = None,
           method="auto", normalize: bool = True) -> None:
    """Show :func:`player_caption` and the player: notes are synthesized here (``method``); a
    waveform comes with the name of the ``synth`` that made it."""
    from IPython.display import display

    if isinstance(notes_or_wave, Notes):
        notes_or_wave, synth = synthesize_named(notes_or_wave, sample_rate, method)
    wave = np.asarray(notes_or_wave, dtype=np.float32)
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
    """Float waveform in [-1, 1], mono (frames,) or (frames, channels) -> 16-bit PCM WAV file bytes
    (values outside are clipped)."""
    w = np.asarray(wave, dtype=np.float64)
    channels = 1 if w.ndim == 1 else as_frames(w).shape[1]
    frames = w if w.ndim == 1 else as_frames(w)
    pcm = (np.clip(frames, -1.0, 1.0) * 32767).round().astype("<i2")  # (frames[, channels]): interleaved in C order
    buf = io.BytesIO()
    with _wave.open(buf, "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(int(sample_rate))
        f.writeframes(pcm.tobytes())
    return buf.getvalue()


def write_wav(wave, path: str | os.PathLike, sample_rate: int = DEFAULT_SAMPLE_RATE) -> Path:
    """Write a 16-bit WAV file (stereo for a (frames, 2) waveform) atomically (temp file + rename). Returns the path."""
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    data = wave_to_wav_bytes(wave, sample_rate)
    return atomic_write_bytes(path, lambda tmp: Path(tmp).write_bytes(data))


def read_wav(path) -> tuple[np.ndarray, int]:
    """A 16-bit WAV file -> (float32 waveform, (frames,) for mono or (frames, channels), sample rate)."""
    with _wave.open(str(path), "rb") as f:
        if f.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit WAV files are read here, this one has {8 * f.getsampwidth()}-bit samples")
        channels, rate = f.getnchannels(), f.getframerate()
        pcm = np.frombuffer(f.readframes(f.getnframes()), "<i2").astype(np.float32) / 32767
    return (pcm if channels == 1 else pcm.reshape(-1, channels)), rate


def render_to_wav(notes: Notes, path, sample_rate: int = DEFAULT_SAMPLE_RATE, method="auto", sf2_path=None) -> tuple[Path, str]:
    """Synthesize ``notes`` and write them to the WAV file ``path``: (the path, what made the sound)."""
    wave, synth = synthesize_named(notes, sample_rate, method, sf2_path)
    return write_wav(wave, path, sample_rate), synth
