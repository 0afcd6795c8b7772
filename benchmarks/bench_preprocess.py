"""Preprocessing benchmark: parse + tokenize notes/s, peak memory, cache reload time.

Builds a corpus of real MIDI files of at least ``--notes`` notes (the embedded chorales written
to MIDI, transposed by -6..+6 semitones until large enough; or ``--folder`` such as MAESTRO),
then times ``corpus.prepare`` with each MIDI reader in a fresh subprocess (so peak memory is
that run's alone) and the reload of the cache it wrote.

    python benchmarks/bench_preprocess.py                # ~1.1 M notes
    python benchmarks/bench_preprocess.py --notes 7000000  # MAESTRO-sized
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine_header  # noqa: E402


def build_corpus(folder: Path, min_notes: int) -> int:
    """Write the embedded corpus to MIDI, transposed, until it holds >= min_notes notes."""
    import numpy as np

    from melody_utils.data.corpus import load_embedded
    from melody_utils.music.midi import Notes, notes_to_midi

    notes, meta = load_embedded("chorales")
    folder.mkdir(parents=True, exist_ok=True)
    total, shift = 0, 0
    shifts = [0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6]
    while total < min_notes:
        s = shifts[shift % len(shifts)]
        stretch = 1.0 + 0.05 * (shift // len(shifts))  # past 13 transpositions, also vary the tempo
        for n, m in zip(notes, meta):
            p = np.clip(n.pitch + s, 21, 108)
            notes_to_midi(Notes(p, n.start * stretch, n.duration * stretch, n.velocity), folder / f"{m['name']}_t{shift:02d}.mid")
            total += len(n)
            if total >= min_notes:
                break
        shift += 1
    return total


CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
from melody_utils.config import DataConfig
from melody_utils.data.corpus import TokenCache, prepare
cfg = DataConfig(source={folder!r})
t0 = time.perf_counter()
cache = prepare(cfg, cache_dir={cache!r}, progress=False, rebuild=True, backend={backend!r}, workers={workers})
t1 = time.perf_counter()
peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
t2 = time.perf_counter()
TokenCache.load(cache.path)
t3 = time.perf_counter()
print(json.dumps(dict(notes=int(len(cache.tokens)), files=cache.report.files, skipped=len(cache.report.skipped),
     seconds=t1 - t0, reload_s=t3 - t2, peak_mb=peak_self, peak_worker_mb=peak_children)))
"""


def run(folder: Path, backend: str, workers: int) -> dict:
    root = str(Path(__file__).resolve().parent.parent)
    with tempfile.TemporaryDirectory() as cache:
        code = CHILD.format(root=root, folder=str(folder), cache=cache, backend=backend, workers=workers)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--notes", type=int, default=1_000_000, help="minimum corpus size when building one")
    ap.add_argument("--folder", help="use this MIDI folder instead of building one")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pretty-midi-files", type=int, default=300, help="files for the (slow) pretty_midi run")
    args = ap.parse_args(argv)
    print(machine_header("bench_preprocess", argv))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder) if args.folder else Path(tmp) / "midi"
        if not args.folder:
            t0 = time.perf_counter()
            n = build_corpus(folder, args.notes)
            print(f"built corpus: {n:,} notes in {len(list(folder.glob('*.mid')))} files ({time.perf_counter() - t0:.0f} s)")
        rows = []
        r = run(folder, "symusic", args.workers)
        rows.append(("symusic", r))
        small = Path(tmp) / "small"
        small.mkdir()
        for p in sorted(folder.rglob("*.mid*"))[: args.pretty_midi_files]:
            (small / p.name).symlink_to(p)
        rows.append((f"pretty_midi ({args.pretty_midi_files} files)", run(small, "pretty_midi", args.workers)))
        rows.append((f"symusic ({args.pretty_midi_files} files)", run(small, "symusic", args.workers)))
    print()
    print("| reader | files | notes | seconds | notes/s | peak RSS main (MB) | peak RSS worker (MB) | cache reload (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['files']:,} | {r['notes']:,} | {r['seconds']:.2f} | {r['notes'] / r['seconds']:,.0f} | "
              f"{r['peak_mb']:.0f} | {r['peak_worker_mb']:.0f} | {r['reload_s']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
