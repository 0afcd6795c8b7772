"""Writes that fail (a full disk above all) end in one line naming the file, and lose nothing
(melody_utils/files.py, and the checkpoints, MIDI, WAV and caches written through it).

Each case runs twice where it can: on a real full disk (a small tmpfs, mounted when this process
may mount one: root on Linux) and with a patched writer that fails as a full disk does (always).
"""

import errno
import shutil
import subprocess
from pathlib import Path

import pretty_midi
import pytest
import torch

from melody_utils import files
from melody_utils.cli import commands as cli
from melody_utils.model import checkpoint as C
from melody_utils.train import loop as T
from helpers import make_cache, tiny_cfg

torch.set_num_threads(1)

ENFORCE_FAIL = "[enforce fail at inline_container.cc:672] . unexpected pos 512 vs 448"  # torch.save on a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs, or a skip where this process cannot mount one."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: the patched-writer tests cover a full disk")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the patched-writer tests cover a full disk")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk: Path, leave: int = 0) -> None:
    """Fill ``disk`` up to ``leave`` free bytes."""
    with open(disk / "filler", "ab") as f:
        while (free := shutil.disk_usage(disk).free) > leave:
            try:
                f.write(b"\0" * min(free - leave, 1 << 16))
                f.flush()
            except OSError:
                break


@pytest.fixture(scope="module")
def common(tmp_path_factory):
    root = tmp_path_factory.mktemp("files_cli")
    args = ["--preset", "tiny", "--cache-dir", str(root / "cache"), "--device", "cpu", "--quiet"]
    assert cli.main(["train", *args, "--source", "embedded", "--out-dir", str(root / "out"), "--max-steps", "2"]) == 0
    return args, root / "out"


def one_error_line(capsys, *needles) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert str(needle) in err, err
    return err


# ---------------------------------------------------------------- the writer itself


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), RuntimeError(ENFORCE_FAIL)])
def test_a_failed_write_names_the_file_and_keeps_the_earlier_one(tmp_path, monkeypatch, failure):
    path = tmp_path / "ckpt_last.pt"
    path.write_bytes(b"the earlier checkpoint")

    def write(tmp):
        Path(tmp).write_bytes(b"half")
        raise failure

    monkeypatch.setattr(files, "free_bytes", lambda folder: 4096)  # as a full disk reports it
    with pytest.raises(OSError) as info:
        files.atomic_write_bytes(path, write)
    msg = str(info.value)
    assert msg.startswith(f"no space left on the disk to write {path}") and "(the earlier ckpt_last.pt is intact)" in msg
    assert "[Errno" not in msg and path.read_bytes() == b"the earlier checkpoint" and sorted(tmp_path.iterdir()) == [path]


def test_a_runtime_error_with_space_left_is_named_as_it_is(tmp_path):
    with pytest.raises(OSError, match=r"could not write .*out.bin \(\[enforce fail"):
        files.atomic_write_bytes(tmp_path / "out.bin", lambda tmp: (_ for _ in ()).throw(RuntimeError(ENFORCE_FAIL)))
    assert list(tmp_path.iterdir()) == []


def test_refuse_foreign_file(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    with pytest.raises(FileExistsError, match=r"--output .*notes.txt exists and is not a MIDI file; .* --force"):
        files.refuse_foreign_file(notes, (b"MThd",), "MIDI file", "--output")
    files.refuse_foreign_file(notes, (b"MThd",), "MIDI file", "--output", force=True)
    files.refuse_foreign_file(tmp_path / "absent.mid", (b"MThd",), "MIDI file", "--output")
    notes.write_bytes(b"MThd\x00\x00\x00\x06")
    files.refuse_foreign_file(notes, (b"MThd",), "MIDI file", "--output")  # an earlier MIDI output may be replaced


# ---------------------------------------------------------------- checkpoints while training


def _fill_after_first_epoch(disk, leave):
    def on_epoch(history):
        if len(history["epoch"]) == 1:
            fill(disk, leave)
    return on_epoch


def _epoch_one_intact(out):
    for name in (C.CHECKPOINT_LAST, C.CHECKPOINT_BEST):
        assert C.load_checkpoint(out / name)[3]["epoch"] == 1
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_training_stops_before_a_checkpoint_that_cannot_fit(small_disk):
    out = small_disk / "out"
    with pytest.raises(OSError, match=rf"not enough space to write {out}/ckpt_\w+.pt: .* MB free; free some space"):
        T.train(tiny_cfg(**{"train.epochs": 3}), make_cache(), out, progress=False, checkpoint_every_s=0,
                on_epoch=_fill_after_first_epoch(small_disk, 64 << 10))
    _epoch_one_intact(out)


def test_torch_save_on_a_full_disk_is_one_line_naming_the_file(small_disk, monkeypatch):
    monkeypatch.setattr(C, "check_free_space", lambda *a, **k: None)  # let the write itself meet the full disk
    out = small_disk / "out"
    with pytest.raises(OSError, match=rf"no space left on the disk to write {out}/ckpt_\w+.pt .*is intact\)$"):
        T.train(tiny_cfg(**{"train.epochs": 3}), make_cache(), out, progress=False, checkpoint_every_s=0,
                on_epoch=_fill_after_first_epoch(small_disk, 16 << 10))
    _epoch_one_intact(out)


def test_torch_save_failing_mid_run_with_a_patched_writer(tmp_path, monkeypatch):
    saves = []
    real_save = torch.save

    def save(obj, f):
        saves.append(f)
        if len(saves) > 2:  # epoch 1 wrote ckpt_best.pt and ckpt_last.pt
            Path(f).write_bytes(b"half")
            raise RuntimeError(ENFORCE_FAIL)
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(files, "free_bytes", lambda folder: None if len(saves) < 3 else 0)
    with pytest.raises(OSError, match=rf"no space left on the disk to write {tmp_path}/ckpt_\w+.pt .*is intact\)$"):
        T.train(tiny_cfg(**{"train.epochs": 3}), make_cache(), tmp_path, progress=False, checkpoint_every_s=0)
    monkeypatch.undo()
    _epoch_one_intact(tmp_path)


def test_the_command_line_checks_the_space_before_training(small_disk, common, capsys):
    args, _ = common
    out = small_disk / "out"
    assert cli.main(["train", *args, "--source", "embedded", "--out-dir", str(out), "--max-steps", "2"]) == 1
    one_error_line(capsys, f"not enough space to write {out / C.CHECKPOINT_LAST}", "MB free", "--out-dir")
    assert not (out / C.CHECKPOINT_LAST).exists()


# ---------------------------------------------------------------- generate, --wav, prepare


def test_generate_wav_and_prepare_on_a_full_disk(small_disk, common, capsys):
    args, trained = common
    fill(small_disk)
    midi, wav = small_disk / "song.mid", small_disk / "song.wav"
    generate = ["generate", *args, "--out-dir", str(trained), "--n-notes", "8", "--primer", "none"]
    assert cli.main([*generate, "--output", str(midi)]) == 1
    one_error_line(capsys, f"no space left on the disk to write {midi}")
    (small_disk / "filler").unlink()
    fill(small_disk, 8 << 10)  # room for the MIDI file, not for the WAV
    assert cli.main([*generate, "--output", str(midi), "--wav", str(wav)]) == 1
    one_error_line(capsys, f"no space left on the disk to write {wav}")
    assert len(pretty_midi.PrettyMIDI(str(midi)).instruments[0].notes) == 8 and not wav.exists()
    cache = small_disk / "cache"
    assert cli.main(["prepare", *args[:2], "--cache-dir", str(cache), "--quiet", "--source", "embedded"]) == 1
    one_error_line(capsys, f"no space left on the disk to write {cache}/")


def test_generate_with_a_patched_writer(common, tmp_path, capsys, monkeypatch):
    args, trained = common
    midi = tmp_path / "song.mid"
    midi.write_bytes(b"MThd earlier")

    def full(self, path):
        Path(path).write_bytes(b"MThd")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pretty_midi.PrettyMIDI, "write", full)
    assert cli.main(["generate", *args, "--out-dir", str(trained), "--n-notes", "8", "--primer", "none",
                     "--output", str(midi)]) == 1
    one_error_line(capsys, f"to write {midi}", "(the earlier song.mid is intact)")
    assert midi.read_bytes() == b"MThd earlier" and sorted(tmp_path.iterdir()) == [midi]
