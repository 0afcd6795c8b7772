"""Corpus sources: the embedded piano corpus and its builder (split by work), folder splits from
metadata.csv or subfolders, the warning for a random file split, MAESTRO folders anywhere, and
velocity from MIDI through tokens back to MIDI."""

import csv
import importlib.util
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from fake_maestro import PIECES, build_fake_maestro
from melody_utils.data import maestro
from melody_utils.config import DataConfig, get_config
from melody_utils.data.corpus import prepare, spread_first
from melody_utils.music.midi import Notes, midi_to_notes, notes_to_midi
from melody_utils.data.sources import PIANO_PATH, load_embedded
from helpers import random_notes, write_midi_folder

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "build_piano_corpus.py"
spec = importlib.util.spec_from_file_location("build_piano_corpus", SCRIPT)
builder = importlib.util.module_from_spec(spec)
spec.loader.exec_module(builder)
# The piano-midi collection the shipped corpus is built from, where it is at hand.
SHARED = Path(os.environ.get("MELODY_PIANO_MIDI", builder.DEFAULT_FOLDER))

# A small piano-midi-like collection: (composer, title, file). Works: A's Opus 1 (3 movements),
# A's Suite (2 unnumbered movements), A's Opus 2 (alone), B's Etudes (numbers 1-2, no opus),
# B's sonata KV 5 (2 movements), C's files c_1..c_3 (one work by file name), C's Waltz.
FAKE = [
    ("A", "Sonata_Opus_1_1", "midis/A/a_op1_1.mid"), ("A", "Sonata_Opus_1_2", "midis/A/a_op1_2.mid"),
    ("A", "Sonata_Opus_1_3", "midis/A/a_op1_3.mid"), ("A", "Suite_in_G_Prelude", "midis/A/a_prel.mid"),
    ("A", "Suite_in_G_Gigue", "midis/A/a_gigue.mid"), ("A", "Ballade_Opus_2", "midis/A/a_op2.mid"),
    ("B", "Etudes_de_concert_1", "midis/B/b_et1.mid"), ("B", "Etudes_de_concert_2_Storm", "midis/B/b_storm.mid"),
    ("B", "Sonata_No.3_KV_5_1", "midis/B/b_kv5_1.mid"), ("B", "Sonata_No.3_KV_5_2", "midis/B/b_kv5_2.mid"),
    ("C", "Nocturne", "midis/C/c_1.mid"), ("C", "Romance", "midis/C/c_2.mid"), ("C", "Elegy", "midis/C/c_3.mid"),
    ("C", "Waltz", "midis/C/c_waltz.mid"),
]
FAKE_WORKS = [["a_op1_1", "a_op1_2", "a_op1_3"], ["a_prel", "a_gigue"], ["a_op2"], ["b_et1", "b_storm"],
              ["b_kv5_1", "b_kv5_2"], ["c_1", "c_2", "c_3"], ["c_waltz"]]


def fake_piano_folder(root: Path) -> Path:
    rows = []
    for i, (composer, title, midi) in enumerate(FAKE):
        notes_to_midi(random_notes(40 + 10 * i, seed=i), root / midi)
        rows.append({"composer": composer, "title": title, "year": "1800", "midi": midi, "duration": "10"})
    with open(root / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


def test_builder_groups_works_and_keeps_each_in_one_split(tmp_path):
    folder = fake_piano_folder(tmp_path / "piano")
    rows = builder.read_metadata(folder)
    work_of = {Path(r["midi"]).stem: w for r, w in zip(rows, builder.group_works(rows))}
    assert sorted(sorted(g) for g in _groups(work_of).values()) == sorted(sorted(g) for g in FAKE_WORKS)
    out = tmp_path / "corpus.npz"
    stats = builder.build(folder, out, progress=False)
    assert {s: d["pieces"] for s, d in stats.items()} and sum(d["pieces"] for d in stats.values()) == len(FAKE)
    with np.load(out) as z:
        split_of_work = defaultdict(set)
        for w, s in zip(z["work"], z["split"]):
            split_of_work[str(w)].add(str(s))
        assert z["pitch"].dtype == np.uint8 and z["onset_ms"].dtype == np.uint32
        assert (z["sustained_ms"] >= z["duration_ms"]).all()
    assert all(len(s) == 1 for s in split_of_work.values())
    first = out.read_bytes()
    builder.build(folder, out, progress=False)
    assert out.read_bytes() == first  # deterministic: same input, same bytes


def test_builder_names_a_folder_without_metadata(tmp_path, capsys):
    assert builder.main([str(tmp_path), "--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "metadata.csv not found" in err and not (tmp_path / "x.npz").exists()


def _groups(work_of: dict) -> dict:
    groups = defaultdict(list)
    for stem, w in work_of.items():
        groups[w].append(stem)
    return groups


@pytest.mark.skipif(not (SHARED / "metadata.csv").is_file(), reason="the piano-midi folder is not here")
def test_shipped_corpus_is_what_the_builder_makes(tmp_path):
    builder.build(SHARED, tmp_path / "piano.npz", progress=False)
    assert (tmp_path / "piano.npz").read_bytes() == PIANO_PATH.read_bytes()


@pytest.mark.skipif(not (SHARED / "metadata.csv").is_file(), reason="the piano-midi folder is not here")
def test_real_metadata_grouping_keeps_movements_together():
    rows = builder.read_metadata(SHARED)
    work_of = {Path(r["midi"]).stem: w for r, w in zip(rows, builder.group_works(rows))}
    same = [["mz_311_1", "mz_311_2", "mz_311_3"], ["deb_prel", "deb_menu", "deb_clai", "deb_pass"],
            [f"muss_{i}" for i in range(1, 9)], ["schubert_d850_1", "schubert_d850_4"], ["chpn-p1", "chpn-p24"],
            ["ty_januar", "ty_dezember"], ["liz_et1", "liz_et6"], ["rav_ondi", "rav_scarbo"],
            ["god_alb_esp2", "alb_esp1"], ["god_chpn_op10_e01", "chpn_op10_e12"]]  # transcriptions join their originals
    for group in same:
        assert len({work_of[s] for s in group}) == 1, group
    different = [("chpn_op23", "chpn_op53"), ("mz_311_1", "mz_330_1"), ("haydn_7_1", "haydn_8_1"), ("elise", "mond_1")]
    for a, b in different:
        assert work_of[a] != work_of[b], (a, b)


def test_shipped_piano_corpus_splits_by_work_and_carries_velocity(tmp_path):
    notes, meta = load_embedded("embedded")
    assert len(notes) == 332 and sum(map(len, notes)) > 700_000
    split_of_work = defaultdict(set)
    for m in meta:
        split_of_work[m["work"]].add(m["split"])
    assert all(len(s) == 1 for s in split_of_work.values())
    counts = {s: sum(len(n) for n, m in zip(notes, meta) if m["split"] == s) for s in ("train", "validation", "test")}
    assert 0.75 < counts["train"] / sum(counts.values()) < 0.85 and min(counts.values()) > 0
    assert PIANO_PATH.stat().st_size < 5e6
    key_notes, _ = load_embedded("piano", sustain=False)
    assert (notes[0].duration >= key_notes[0].duration).all() and (notes[0].duration > key_notes[0].duration).any()
    cache = prepare(get_config("tiny").data, cache_dir=tmp_path, progress=False)
    assert cache.vocab.fields[-1] == "velocity" and len(np.unique(cache.tokens[:, 3])) >= 8
    assert all(len(cache.piece_indices(s)) for s in ("train", "validation", "test"))
    assert set(cache.composers) >= {"Albeniz"} and cache.piece_composer(0) == cache.composers[0]


def test_chorales_carry_no_dynamics_and_say_so_once(tmp_path, capsys):
    cache = prepare(DataConfig(source="chorales", max_files=30), cache_dir=tmp_path)
    assert cache.vocab.fields == ("pitch", "step", "duration")
    assert capsys.readouterr().out.count("carries no dynamics") == 1
    piano = prepare(DataConfig(source="piano", max_files=6), cache_dir=tmp_path, progress=False)
    assert piano.path != cache.path and piano.path.name.startswith("piano-")


def test_auto_and_embedded_mean_the_piano_corpus_when_maestro_is_absent(tmp_path, monkeypatch):
    from melody_utils.data import corpus

    monkeypatch.setattr(corpus, "find_maestro", lambda root=None: None)
    paths = {src: prepare(DataConfig(source=src, max_files=4), cache_dir=tmp_path, progress=False).path
             for src in ("auto", "embedded", "piano", "chorales")}
    assert paths["auto"] == paths["embedded"] == paths["piano"] != paths["chorales"]
    assert len(list(tmp_path.glob("*.npz"))) == 2


def _csv(path: Path, header: list, rows: list):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@pytest.mark.parametrize("style", ["plain", "maestro"])
def test_metadata_csv_gives_split_and_composer(tmp_path, style, capsys):
    folder = tmp_path / "midi"
    files = write_midi_folder(folder, n_good=5)
    splits = ["train", "train", "validation", "test", "train"]
    names = [p.name for p in files]
    if style == "plain":
        _csv(folder / "metadata.csv", ["path", "split", "composer", "title"],
             [[n, s, f"C{i}", f"T{i}"] for i, (n, s) in enumerate(zip(names, splits))])
    else:
        _csv(folder / "metadata.csv", ["canonical_composer", "canonical_title", "split", "year", "midi_filename"],
             [[f"C{i}", f"T{i}", s, 2000, n] for i, (n, s) in enumerate(zip(names, splits))])
    cache = prepare(DataConfig(source=str(folder)), cache_dir=tmp_path / "c", workers=1)
    assert [p["split"] for p in cache.pieces] == splits
    assert list(cache.composers) == [f"C{i}" for i in range(5)] and cache.pieces[0]["title"] == "T0"
    assert "warning" not in capsys.readouterr().err


def test_a_work_column_splits_by_work(tmp_path, capsys):
    """Several performances of one work (metadata.csv path,work,...): a seeded split of the works."""
    folder = tmp_path / "midi"
    files = write_midi_folder(folder, n_good=12)
    works = [f"W{i // 3}" for i in range(12)]  # four works, three performances each
    _csv(folder / "metadata.csv", ["path", "work", "composer", "title"],
         [[p.name, w, "C", f"T{i}"] for i, (p, w) in enumerate(zip(files, works))])
    cache = prepare(DataConfig(source=str(folder), val_fraction=0.25, test_fraction=0.25), cache_dir=tmp_path / "c", workers=1)
    split_of_work = defaultdict(set)
    for piece, work in zip(cache.pieces, works):
        assert piece["work"] == work
        split_of_work[work].add(piece["split"])
    assert all(len(s) == 1 for s in split_of_work.values())  # a work's performances stay together
    assert sorted(s.pop() for s in split_of_work.values()) == ["test", "train", "train", "validation"]
    assert "warning" not in capsys.readouterr().err


def test_subfolders_give_the_split(tmp_path, capsys):
    for split, n in (("train", 3), ("validation", 1), ("test", 1)):
        for i in range(n):
            notes_to_midi(random_notes(50, seed=i), tmp_path / "midi" / split / f"{split}{i}.mid")
    cache = prepare(DataConfig(source=str(tmp_path / "midi")), cache_dir=tmp_path / "c", workers=1)
    assert {p["name"]: p["split"] for p in cache.pieces} == {
        "train0": "train", "train1": "train", "train2": "train", "validation0": "validation", "test0": "test"}
    assert cache.piece_composer(0) == "" and "warning" not in capsys.readouterr().err


def test_random_file_split_warns_once(tmp_path, capsys):
    folder = tmp_path / "midi"
    write_midi_folder(folder, n_good=5)
    prepare(DataConfig(source=str(folder)), cache_dir=tmp_path / "c", workers=1, progress=False)
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(err) == 1 and "leak" in err[0] and "metadata.csv" in err[0] and "subfolders" in err[0]


def test_bad_metadata_csv_is_named(tmp_path):
    folder = tmp_path / "midi"
    write_midi_folder(folder, n_good=3)
    _csv(folder / "metadata.csv", ["file", "split"], [["piece00.mid", "train"]])
    with pytest.raises(ValueError, match="metadata.csv has no path column"):
        prepare(DataConfig(source=str(folder)), cache_dir=tmp_path / "c", workers=1)
    _csv(folder / "metadata.csv", ["path", "split"], [["piece00.mid", "training"]])
    with pytest.raises(ValueError, match="line 2: split 'training'"):
        prepare(DataConfig(source=str(folder)), cache_dir=tmp_path / "c", workers=1)


def test_maestro_folder_outside_data_is_read_as_maestro(tmp_path, capsys):
    fake = build_fake_maestro(tmp_path / "src")
    (tmp_path / "m.zip").write_bytes(fake.zip_bytes)
    root = maestro.extract(tmp_path / "m.zip", tmp_path / "drive" / "maestro-v3.0.0", progress=False)
    for where in (root, root.parent):  # the folder itself, or the one holding it
        cache = prepare(DataConfig(source=str(where), window=4), cache_dir=tmp_path / "c", workers=1, progress=False)
        assert cache.path.name.startswith("maestro-")
        assert [(p["split"], p["composer"], p["title"]) for p in cache.pieces] == [(s, c, t) for _, s, c, t in PIECES]
    assert "warning" not in capsys.readouterr().err


def test_max_files_keeps_held_out_pieces():
    splits = ["train"] * 20 + ["validation"] * 3 + ["test"] * 3
    picked = [splits[i] for i in spread_first(splits, 10)]
    assert picked.count("validation") == 1 and picked.count("test") == 1 and len(picked) == 10
    picked = [splits[i] for i in spread_first(splits, 12)]  # a tenth, rounded up: 2 held out each
    assert picked.count("validation") == 2 and picked.count("test") == 2 and len(picked) == 12
    assert spread_first(splits, 10) == sorted(spread_first(splits, 10))


def test_velocity_survives_midi_tokens_midi(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    vel = rng.integers(1, 128, n)
    notes = Notes.from_steps(rng.integers(30, 100, n), np.full(n, 0.2), np.full(n, 0.15), vel)
    notes_to_midi(notes, tmp_path / "midi" / "train" / "a.mid")
    notes_to_midi(notes[:60], tmp_path / "midi" / "test" / "b.mid")
    cache = prepare(DataConfig(source=str(tmp_path / "midi"), sustain=False), cache_dir=tmp_path / "c", workers=1, progress=False)
    assert cache.vocab.velocity_bins == DataConfig().velocity_bins > 0
    back = notes_to_midi(cache.notes(cache.find("a")), tmp_path / "out.mid")
    got = midi_to_notes(back).velocity.astype(int)
    width = 127 / cache.vocab.velocity_bins
    assert np.abs(got - vel).max() <= width / 2 + 1  # within half a bin
    assert len(np.unique(got)) >= cache.vocab.velocity_bins - 1  # every bin used: not a constant
