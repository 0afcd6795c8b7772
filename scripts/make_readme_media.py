"""Remake the README's media from the shipped model: a piano roll and a short audio clip.

    python scripts/make_readme_media.py            # writes docs/media/generated_piano_roll.png and generated_clip.wav

Generates with the CLI's defaults (the shipped model, the first held-out primer, seed 0), as
`python -m melody_utils generate` would on a fresh clone, draws the first ``--roll-seconds`` as
a piano roll (colour = velocity) and renders the first ``--clip-seconds`` with the best
synthesizer and SoundFont available (docs/audio.md), mixed down to 16 kHz mono to keep
the file small. Prints what it used.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from melody_utils.display import audio, plots  # noqa: E402
from melody_utils.cli import commands as cli
from melody_utils.config import REPO_ROOT  # noqa: E402
from melody_utils.music.midi import midi_to_notes  # noqa: E402

MEDIA = REPO_ROOT / "docs" / "media"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=40.0, help="music to generate")
    ap.add_argument("--roll-seconds", type=float, default=30.0, help="seconds drawn in the piano roll")
    ap.add_argument("--clip-seconds", type=float, default=12.0, help="seconds in the audio clip")
    ap.add_argument("--out", default=str(MEDIA), help="folder for the two files")
    args = ap.parse_args(argv)
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        midi_path = Path(tmp) / "generated.midi"
        code = cli.main(["generate", "--out-dir", tmp, "--output", str(midi_path), "--seconds", str(args.seconds), "--quiet"])
        if code:
            return code
        notes = midi_to_notes(midi_path, sustain=False)
    fig = plots.piano_roll(notes, title="Melody Forge, the shipped model (python -m melody_utils generate)",
                           seconds=args.roll_seconds)
    fig.savefig(out / "generated_piano_roll.png", dpi=110, bbox_inches="tight")
    wave, method = audio.synthesize_named(audio.clip_notes(notes, args.clip_seconds), sample_rate=16000)
    audio.write_wav(audio.to_mono(wave), out / "generated_clip.wav", sample_rate=16000)  # mono: a small file
    print(f"{len(notes)} notes, {len(set(notes.velocity.tolist()))} distinct velocities; "
          f"piano roll {out / 'generated_piano_roll.png'}, clip {out / 'generated_clip.wav'} ({method})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
