"""Fuzz the MIDI readers and the corpus parser with corrupted MIDI files.

Cases are seeded mutations of real MIDI bytes (pieces of the embedded chorales written to MIDI,
with sustain pedal, several tracks and drums):
bit flips, truncations, inserted and deleted spans, corrupted chunk lengths and header fields,
spliced files, plus plain random bytes. Every case goes through both readers
(``midi.midi_to_notes(..., backend=...)`` for "symusic" and "pretty_midi") and, batch by batch,
through ``corpus.parse_files`` with worker processes. A case passes when each reader either
returns sane notes (finite, sorted onsets, positive durations, pitches 0-127) or raises the
documented ``MidiError``, and ``parse_files`` accounts for every file (kept or skipped with a
reason). Anything else is a failure: another exception escaping, insane notes, or the process
dying (a segfault in the C++ reader) or hanging. Batches run in child processes, so a crash is
detected, named (case, mutation, signal) and the run goes on.

    python scripts/fuzz_prepare.py --cases 5000            # the recorded run (docs/robustness.md)
    python scripts/fuzz_prepare.py --cases 200 --batch 50  # quick look
    python scripts/fuzz_prepare.py --show 1234             # one case: its mutation and each reader's answer

tests/test_fuzz.py runs ~100 of the same cases in CI.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from melody_utils.music.midi import MidiError, midi_to_notes  # noqa: E402

BACKENDS = ("symusic", "pretty_midi")
MUTATIONS = ("flip", "truncate", "insert", "delete", "chunk_length", "header", "splice", "duplicate", "body", "body",
             "random")  # "body" twice: most of the reader's code parses track events
N_BASE = 4  # embedded pieces used as seeds
BASE_NOTES = 150  # notes per seed piece (small files: more mutations land in events, not padding)
BATCH_TIMEOUT_S = 120.0  # a batch that takes longer is a hang
CRASH_CASE_ENV = "MELODY_FUZZ_CRASH_CASE"  # test hook: the worker kills itself (SIGSEGV) at this case


# ---------------------------------------------------------------- cases


def base_midis(n: int = N_BASE, notes_per_piece: int = BASE_NOTES) -> list[bytes]:
    """The first ``n`` embedded pieces (cut to ``notes_per_piece``) as MIDI file bytes.

    Like real performance files they carry sustain-pedal events (CC64), and every other piece is
    split over two piano tracks plus a drum track, so the pedal, track-merging and drum-skipping
    code is fuzzed too.
    """
    import pretty_midi

    from melody_utils.data.corpus import load_embedded
    from melody_utils.music.midi import SUSTAIN_CC, notes_to_pretty_midi

    notes, _ = load_embedded("chorales")
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            piece = notes[i][:notes_per_piece]
            pm = notes_to_pretty_midi(piece)
            piano = pm.instruments[0]
            for t in np.arange(0.0, piece.seconds(), 2.0):  # pedal down for 1.5 s every 2 s
                piano.control_changes += [pretty_midi.ControlChange(SUSTAIN_CC, 127, t), pretty_midi.ControlChange(SUSTAIN_CC, 0, t + 1.5)]
            if i % 2:
                low = pretty_midi.Instrument(program=0, name="Left hand")
                low.notes = [x for x in piano.notes if x.pitch < 60]
                piano.notes = [x for x in piano.notes if x.pitch >= 60]
                drums = pretty_midi.Instrument(program=0, is_drum=True, name="Drums")
                drums.notes = [pretty_midi.Note(90, 36, t, t + 0.1) for t in np.arange(0.0, piece.seconds(), 0.5)]
                pm.instruments += [low, drums]
            path = Path(tmp) / f"base{i}.mid"
            pm.write(str(path))
            out.append(path.read_bytes())
    return out


def chunks(data: bytes) -> list[int]:
    """Offsets of the chunk headers ("MThd"/"MTrk" + 4-byte length) found by walking the file."""
    offsets, i = [], 0
    while i + 8 <= len(data):
        offsets.append(i)
        i += 8 + struct.unpack(">I", data[i + 4 : i + 8])[0]
    return offsets


def mutate(data: bytes, rng: np.random.Generator, kind: str, bases: list[bytes]) -> bytes:
    b = bytearray(data)
    n = len(b)
    if kind == "flip":  # a few flipped bits anywhere
        for _ in range(int(rng.integers(1, 16))):
            i = int(rng.integers(n))
            b[i] ^= 1 << int(rng.integers(8))
    elif kind == "truncate":
        b = b[: int(rng.integers(0, n))]
    elif kind == "insert":
        i = int(rng.integers(n + 1))
        b[i:i] = rng.bytes(int(rng.integers(1, 64)))
    elif kind == "delete":
        i = int(rng.integers(n))
        del b[i : i + int(rng.integers(1, 64))]
    elif kind == "chunk_length":  # one chunk's length field: random, off by a little, huge or zero
        off = chunks(data)
        i = off[int(rng.integers(len(off)))] + 4
        old = struct.unpack(">I", data[i : i + 4])[0]
        choice = int(rng.integers(4))
        new = [int(rng.integers(0, 2**32)), min(0xFFFFFFFF, max(0, old + int(rng.integers(-8, 9)))), 0xFFFFFFFF, 0][choice]
        b[i : i + 4] = struct.pack(">I", new)
    elif kind == "header":  # format, track count or division
        field = int(rng.integers(3))
        value = int(rng.choice([0, 1, 2, 3, 7, 0x7FFF, 0x8000, 0xE250, 0xFFFF, int(rng.integers(0, 2**16))]))
        b[8 + 2 * field : 10 + 2 * field] = struct.pack(">H", value)
    elif kind == "splice":  # the head of one file on the tail of another
        other = bases[int(rng.integers(len(bases)))]
        b = b[: int(rng.integers(n))] + other[int(rng.integers(len(other))) :]
    elif kind == "duplicate":  # a span repeated (events appear twice, lengths stay the same)
        i = int(rng.integers(n))
        span = b[i : i + int(rng.integers(1, 256))]
        b[i:i] = span * int(rng.integers(1, 4))
    elif kind == "body":  # edit inside one track and fix its length field: the file stays well-formed
        off = chunks(data)  # chunk 0 is MThd; the tracks follow
        if len(off) < 2:
            return mutate(data, rng, "flip", bases)
        k = int(rng.integers(1, len(off)))
        a = off[k] + 8  # the track's first event byte
        end = a + struct.unpack(">I", data[a - 4 : a])[0]
        body = data[a:end]
        if body:
            body = mutate(body, rng, str(rng.choice(["flip", "insert", "delete", "duplicate"])), bases)
        b = bytearray(data[: a - 4] + struct.pack(">I", len(body)) + body + data[end:])
    elif kind == "random":
        b = bytearray(rng.bytes(int(rng.integers(0, 4000))))
        if rng.random() < 0.5:
            b[:14] = data[:14]  # a valid header on random bytes reaches the track parser
    else:
        raise ValueError(f"unknown mutation {kind!r}; choose one of {MUTATIONS}")
    return bytes(b)


def case(seed: int, bases: list[bytes]) -> tuple[str, bytes]:
    """Case ``seed``: (mutation kind, file bytes). The same seed always gives the same case."""
    rng = np.random.default_rng([seed, 2024])
    kind = MUTATIONS[seed % len(MUTATIONS)]
    data = bases[int(rng.integers(len(bases)))]
    out = mutate(data, rng, kind, bases)
    if rng.random() < 0.3:  # sometimes stack a second mutation
        out = mutate(out, rng, MUTATIONS[int(rng.integers(len(MUTATIONS) - 1))], bases) if len(out) > 14 else out
    return kind, out


# ---------------------------------------------------------------- checking


def insane(notes) -> str:
    """Why a reader's notes break the Notes contract ("" when they are fine)."""
    if len(notes) == 0:
        return "no notes returned without MidiError"
    if not (np.isfinite(notes.start).all() and np.isfinite(notes.duration).all()):
        return "non-finite times"
    if (notes.duration <= 0).any():
        return "non-positive duration"
    if (np.diff(notes.start) < 0).any():
        return "onsets not sorted"
    if notes.pitch.min() < 0 or notes.pitch.max() > 127:
        return f"pitch outside 0-127 ({notes.pitch.min()}..{notes.pitch.max()})"
    return ""


def read_case(path: Path, backend: str) -> str:
    """'ok', 'MidiError' or a failure description for one reader."""
    try:
        notes = midi_to_notes(path, backend=backend)
    except MidiError:
        return "MidiError"
    except Exception as exc:  # the failure this script looks for
        return f"FAIL escaped {type(exc).__name__}: {str(exc)[:200]}"
    why = insane(notes)
    return f"FAIL {why}" if why else "ok"


def run_cases(seeds, bases, folder: Path, backends=BACKENDS, workers: int = 2, emit=print) -> None:
    """Check ``seeds`` in this process; ``emit`` gets one JSON line per event."""
    from melody_utils.data.corpus import parse_files

    crash_at = os.environ.get(CRASH_CASE_ENV)
    paths = []
    for seed in seeds:
        kind, data = case(seed, bases)
        path = folder / f"case{seed:06d}.mid"
        path.write_bytes(data)
        paths.append(path)
        emit(json.dumps({"begin": seed, "kind": kind}))  # flushed before reading: a crash names this case
        if crash_at is not None and int(crash_at) == seed:
            os.kill(os.getpid(), signal.SIGSEGV)
        emit(json.dumps({"case": seed, "kind": kind, "size": len(data), **{b: read_case(path, b) for b in backends}}))
    # The same files through the corpus parser, with worker processes as prepare() uses them.
    notes, kept, skipped = parse_files(paths, workers=workers, progress=False)
    accounted = len(kept) + len(skipped) == len(paths) and {str(p) for p in paths} == set(kept) | {p for p, _ in skipped}
    unexplained = [p for p, reason in skipped if not reason]
    emit(json.dumps({"parse_files": len(paths), "kept": len(kept), "skipped": len(skipped),
                     "ok": bool(accounted and not unexplained)}))


def run_batch(start: int, count: int, backends=BACKENDS, timeout_s: float = BATCH_TIMEOUT_S, env=None) -> dict:
    """Run cases start..start+count-1 in a child process; a crash or hang becomes a failure record."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(start), str(count), "--backends", ",".join(backends)]
    lines, failures = [], []
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = None, (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or ""), ""
    for line in out.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    done = {d["case"] for d in lines if "case" in d}
    begun = [d for d in lines if "begin" in d]
    for d in lines:
        if "case" in d:
            for b in backends:
                if d[b].startswith("FAIL"):
                    failures.append({"case": d["case"], "kind": d["kind"], "backend": b, "what": d[b][5:]})
        if "parse_files" in d and not d["ok"]:
            failures.append({"case": start, "kind": "batch", "backend": "parse_files", "what": f"files not accounted for: {d}"})
    last = begun[-1] if begun else None
    if rc != 0:
        if rc is None:
            what = f"hang: batch exceeded {timeout_s:g} s"
        elif rc < 0:
            what = f"process killed by signal {signal.Signals(-rc).name}"
        else:
            what = f"exit code {rc}: {err.strip().splitlines()[-1] if err.strip() else ''}"
        if last is not None and last["begin"] not in done:
            failures.append({"case": last["begin"], "kind": last["kind"], "backend": "reader", "what": what})
        else:
            failures.append({"case": start, "kind": "batch", "backend": "parse_files", "what": what})
    next_case = (last["begin"] + 1) if (rc != 0 and last is not None and last["begin"] not in done) else start + count
    return {"tried": len(done), "failures": failures, "next": next_case,
            "outcomes": [d for d in lines if "case" in d]}


def fuzz(n_cases: int, batch: int = 250, start: int = 0, backends=BACKENDS, progress: bool = True, env=None) -> dict:
    """Check cases start..start+n_cases-1 in child-process batches; returns the figures."""
    from tqdm.auto import tqdm

    t0 = time.time()
    seed, end = start, start + n_cases
    tried, failures, counts = 0, [], {}
    bar = tqdm(total=n_cases, desc="fuzzing", unit="case", disable=not progress)
    while seed < end:
        r = run_batch(seed, min(batch, end - seed), backends, env=env)
        tried += r["tried"] + sum(1 for f in r["failures"] if f["backend"] == "reader")  # a crashed case was tried too
        failures += r["failures"]
        for d in r["outcomes"]:
            for b in backends:
                key = f"{b}: {'FAIL' if d[b].startswith('FAIL') else d[b]}"
                counts[key] = counts.get(key, 0) + 1
        bar.update(r["next"] - seed)
        seed = r["next"]
    bar.close()
    return {"cases": tried, "failures": failures, "outcomes": counts, "seconds": round(time.time() - t0, 1),
            "start": start, "backends": list(backends)}


def describe(result: dict, command: str) -> str:
    """A markdown block for docs/robustness.md."""
    lines = [
        f"- date: {datetime.date.today().isoformat()}; machine: {platform.machine()} {platform.system()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        f"- command: `{command}`",
        f"- cases tried: {result['cases']} (seeds {result['start']}..{result['start'] + result['cases'] - 1}), "
        f"{result['seconds']} s; failures: {len(result['failures'])}",
        "- outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(result["outcomes"].items())),
    ]
    lines += [f"  - FAILURE case {f['case']} ({f['kind']}, {f['backend']}): {f['what']}" for f in result["failures"]]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1000, help="number of cases (default 1000)")
    ap.add_argument("--start", type=int, default=0, help="first case seed")
    ap.add_argument("--batch", type=int, default=250, help="cases per child process")
    ap.add_argument("--backends", default=",".join(BACKENDS), help="readers to check, comma-separated")
    ap.add_argument("--show", type=int, help="print one case's mutation and each reader's answer, then exit")
    ap.add_argument("--save", help="with --show: write the case's bytes to this file")
    ap.add_argument("--worker", nargs=2, type=int, metavar=("START", "COUNT"), help=argparse.SUPPRESS)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    backends = tuple(args.backends.split(","))
    bases = None
    if args.worker or args.show is not None:
        bases = base_midis()
    if args.worker:
        start, count = args.worker

        def emit(line):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

        with tempfile.TemporaryDirectory() as tmp:
            run_cases(range(start, start + count), bases, Path(tmp), backends, emit=emit)
        return 0
    if args.show is not None:
        kind, data = case(args.show, bases)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(args.save or Path(tmp) / f"case{args.show}.mid")
            path.write_bytes(data)
            print(f"case {args.show}: {kind}, {len(data)} bytes" + (f", saved to {path}" if args.save else ""))
            for b in backends:
                print(f"  {b}: {read_case(path, b)}")
        return 0
    result = fuzz(args.cases, args.batch, args.start, backends, progress=not args.quiet)
    print(describe(result, "python scripts/fuzz_prepare.py " + " ".join(argv if argv is not None else sys.argv[1:])))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
