"""Fuzzing the MIDI readers and corpus.parse_files with seeded corruptions of real MIDI bytes.

A short run of the cases of scripts/fuzz_prepare.py (whose long run is recorded in
docs/robustness.md): every case must end in notes or the documented MidiError, with both
readers, and parse_files must account for every file. A reader that crashes its process must
be detected and named, never hang or abort a corpus build.
"""

import importlib.util
import multiprocessing as mp
import os
import signal
from pathlib import Path

import pytest

from melody_utils.data import corpus

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fuzz_prepare.py"
spec = importlib.util.spec_from_file_location("fuzz_prepare", SCRIPT)
fz = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fz)

N_CASES = 110  # 10 rounds of the 11 mutation slots


@pytest.fixture(scope="module")
def bases():
    return fz.base_midis()


@pytest.fixture(scope="module")
def cases(bases, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    out = []
    for seed in range(N_CASES):
        kind, data = fz.case(seed, bases)
        path = folder / f"case{seed:04d}.mid"
        path.write_bytes(data)
        out.append((seed, kind, path))
    return out


def test_cases_are_seeded_and_really_mutated(bases):
    assert {fz.case(s, bases)[0] for s in range(N_CASES)} == set(fz.MUTATIONS)
    for s in range(N_CASES):
        kind, data = fz.case(s, bases)
        assert fz.case(s, bases) == (kind, data)  # the same seed, the same bytes
        assert data not in bases, (s, kind)


@pytest.mark.parametrize("backend", fz.BACKENDS)
def test_readers_return_sane_notes_or_midierror(cases, backend):
    outcomes = {}
    for seed, kind, path in cases:
        got = fz.read_case(path, backend)
        assert got in ("ok", "MidiError"), f"case {seed} ({kind}) with {backend}: {got}"
        outcomes[got] = outcomes.get(got, 0) + 1
    assert outcomes.get("ok", 0) > 5 and outcomes.get("MidiError", 0) > 5  # both paths exercised


def test_parse_files_accounts_for_every_file(cases):
    paths = [p for _, _, p in cases]
    notes, kept, skipped = corpus.parse_files(paths, workers=2, progress=False)
    assert len(notes) == len(kept) and len(kept) + len(skipped) == len(paths)
    assert set(kept) | {p for p, _ in skipped} == {str(p) for p in paths}
    assert all(reason for _, reason in skipped)
    readable = {str(p) for _, _, p in cases if fz.read_case(p, "symusic") == "ok"}
    assert set(kept) == readable  # parse_files keeps exactly what the reader reads


_real_parse_one = corpus._parse_one


def _crash_on_piece3(job):  # module level: the worker pool pickles it by name
    if Path(job[0]).name == "piece03.mid":
        # Dies at once, as a segfault in the C++ reader would (SIGKILL rather than SIGSEGV, so
        # pytest's faulthandler, inherited by the forked worker, prints no crash dump).
        os.kill(os.getpid(), signal.SIGKILL)
    return _real_parse_one(job)


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="the crash is injected through a forked worker")
def test_a_reader_crash_in_a_worker_skips_and_names_the_file(tmp_path, monkeypatch):
    from helpers import write_midi_folder

    paths = write_midi_folder(tmp_path, n_good=6, notes_per_file=20)
    monkeypatch.setattr(corpus, "_parse_one", _crash_on_piece3)
    notes, kept, skipped = corpus.parse_files(paths, workers=2, progress=False)
    assert skipped == [(str(paths[3]), corpus.READER_CRASHED)]
    assert kept == [str(p) for i, p in enumerate(paths) if i != 3]  # the others kept, in order


def test_the_long_run_detects_a_crash_names_the_case_and_goes_on():
    env = {**os.environ, fz.CRASH_CASE_ENV: "3"}
    result = fz.fuzz(8, batch=8, start=0, progress=False, env=env)
    crash = [f for f in result["failures"] if "SIGSEGV" in f["what"]]
    assert [(f["case"], f["backend"]) for f in crash] == [(3, "reader")]
    assert result["cases"] == 8  # cases 0-2, the crashed 3, then 4-7 in a new process
    assert len(result["failures"]) == 1
    text = fz.describe(result, "cmd")
    assert "cases tried: 8" in text and "FAILURE case 3" in text
