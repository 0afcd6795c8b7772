"""Renderers side by side: speed, level, clipping and tuning of every synthesizer that runs here.

For the first ``--seconds`` of ``--pieces`` pieces of the embedded piano corpus, each renderer of
``melody_utils.display.audio`` (symusic's SoundFont synthesizer, FluidSynth, tinysoundfont, the
numpy piano model; whichever are installed) renders at 44.1 kHz, in one run:

- **x real time**: seconds of music per second of rendering (all pieces), and the ratio to the
  numpy model, the path that always works;
- **raw peak / raw RMS**: the renderer's own output before normalisation (dBFS), and the share of
  samples at or past full scale (**clipped**);
- **RMS after**: the level of what the package plays and writes (peak-normalised to 0.9);
- **in tune**: the lowest share of A3, A4 and A5's fundamentals (``audio.fundamental_share``,
  about 1 when each note sounds at its own pitch; ``audio`` refuses symusic below 0.1).

    python benchmarks/bench_audio.py                          # the best SoundFont on the machine
    python benchmarks/bench_audio.py --soundfont path/to/piano.sf2 --seconds 30
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RENDERERS = ("symusic", "fluidsynth", "soundfont", "numpy")
RATE = 44100


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="seconds of each piece to render")
    p.add_argument("--pieces", type=int, default=3, help="pieces of the embedded piano corpus (its test split first)")
    p.add_argument("--soundfont", help="SoundFont for the SoundFont renderers (default: the best on the machine)")
    return p.parse_args(argv)


def _renderer(name: str, sf2):
    """(notes, rate) -> raw waveform for ``name``, or None with the reason it cannot run here."""
    from melody_utils.display import audio

    if name == "numpy":
        return audio.synth_numpy, ""
    if name == "symusic":  # measured whether or not it plays in tune: the table says
        try:
            audio.synth_symusic(audio.Notes([60], [0.0], [0.1], [80]), 8000, sf2)
        except Exception as exc:
            return None, f"render fails ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})"
        return (lambda n, r: audio.synth_symusic(n, r, sf2)), ""
    installed = {"fluidsynth": audio._has_fluidsynth, "soundfont": audio._has_tinysoundfont}[name]()
    if not installed:
        return None, "not installed"
    fn = audio._SYNTHS[name]
    return (lambda n, r: fn(n, r, sf2_path=sf2)), ""


def _tuning(render) -> float:
    from melody_utils.display import audio

    shares = [audio.fundamental_share(render(audio.Notes([p], [0.0], [0.5], [90]), RATE), p, RATE)
              for p in audio.TUNING_PITCHES]
    return min(shares)


def _db(x: float) -> str:
    import math

    return f"{20 * math.log10(x):.1f}" if x > 0 else "-inf"


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np

    from benchmarks.common import machine_header
    from melody_utils.data.sources import load_embedded
    from melody_utils.display import audio

    print(machine_header("bench_audio", argv))
    sf2 = audio.find_soundfont(args.soundfont)
    try:
        import symusic

        version = symusic.__version__
    except ImportError:
        version = "not installed"
    print(f"SoundFont: {sf2} | symusic {version} | what 'auto' plays here: {audio.describe_sound(args.soundfont)}")
    notes_list, meta = load_embedded("piano")
    order = sorted(range(len(meta)), key=lambda i: (meta[i].get("split") != "test", i))[: args.pieces]
    pieces = [audio._playable(notes_list[i][notes_list[i].start < args.seconds]) for i in order]
    music_s = sum(p.seconds() for p in pieces)
    print(f"pieces: {', '.join(meta[i]['name'] for i in order)} ({music_s:.0f} s of music, {sum(map(len, pieces)):,} notes)")
    rows, numpy_speed = [], None
    for name in RENDERERS[::-1]:  # numpy first: the reference of the speed ratio
        render, why = _renderer(name, sf2)
        if render is None:
            rows.append(f"| {name} | {why} | | | | | | |")
            continue
        t0 = time.perf_counter()
        raw = [audio.as_frames(render(p, RATE)) for p in pieces]
        speed = music_s / (time.perf_counter() - t0)
        numpy_speed = numpy_speed or speed
        every = np.concatenate([w.reshape(-1) for w in raw])
        finished = np.concatenate([audio._finish(w, len(w), RATE).reshape(-1) for w in raw])
        clipped = float(np.mean(np.abs(every) >= 1.0))
        rows.append(f"| {name} | {speed:,.0f}x | {speed / numpy_speed:.2f} | {_db(float(np.abs(every).max()))} | "
                    f"{_db(float(np.sqrt(np.mean(every ** 2))))} | {clipped:.2%} | {audio.rms_db(finished):.1f} | "
                    f"{_tuning(render):.2f} |")
    print("\n| renderer | x real time | speed / numpy | raw peak (dBFS) | raw RMS (dBFS) | clipped | RMS after (dBFS) | in tune |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    print("\n".join(rows[::-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
