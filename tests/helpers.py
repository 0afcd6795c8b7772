"""Small MIDI fixtures written on the fly (no binary test files in the repo)."""

from pathlib import Path

import numpy as np

from melody_utils.music.midi import Notes, notes_to_midi


def random_notes(n: int = 60, seed: int = 0, chord_every: int = 4) -> Notes:
    """Seeded piano-range notes with some chords (step 0) and varied durations."""
    rng = np.random.default_rng(seed)
    step = rng.choice([0.0, 0.125, 0.25, 0.5], size=n, p=[0.2, 0.3, 0.3, 0.2])
    step[::chord_every] = 0.0
    step[0] = 0.0
    pitch = rng.integers(36, 96, size=n)
    dur = rng.uniform(0.05, 1.5, size=n)
    vel = rng.integers(30, 120, size=n)
    notes = Notes.from_steps(pitch, step, dur, vel, t0=0.25).sorted()
    _, first = np.unique(np.stack([notes.start, notes.pitch]), axis=1, return_index=True)
    return notes[np.sort(first)]  # one note per (onset, pitch), like a real keyboard


def write_midi_folder(folder: Path, n_good: int = 4, notes_per_file: int = 60) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [notes_to_midi(random_notes(notes_per_file, seed=i), folder / f"piece{i:02d}.mid") for i in range(n_good)]
