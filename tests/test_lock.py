"""One training run per output folder (melody_utils/train/lock.py): a second run is refused in one
line, a lock left by a run that is gone is taken over, a run whose lock was taken stops before writing."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from melody_utils.cli import commands as cli
from melody_utils.config import REPO_ROOT
from melody_utils.model import checkpoint as C
from melody_utils.train import lock as L, loop as T
from helpers import make_cache, tiny_cfg

torch.set_num_threads(1)

HOLD = ("import sys, time; from melody_utils.train import lock; lock.acquire(sys.argv[1]); "
        "print('held', flush=True); time.sleep(120)")


@pytest.fixture(scope="module")
def common(tmp_path_factory):
    root = tmp_path_factory.mktemp("lock_cli")
    args = ["--preset", "tiny", "--cache-dir", str(root / "cache"), "--device", "cpu", "--quiet", "--source", "embedded"]
    assert cli.main(["prepare", *args]) == 0
    return args


def hold_in_another_process(out_dir):
    """A live process that holds ``out_dir``'s lock (as a training run there would)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out_dir)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_gets_one_line_and_the_first_runs_files_are_left_alone(common, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    writing = out / ".ckpt_last.pt.abc123.tmp"  # the first run's checkpoint, being written
    writing.write_bytes(b"half a checkpoint")
    first = hold_in_another_process(out)
    try:
        assert cli.main(["train", *common, "--out-dir", str(out), "--max-steps", "2"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert str(out) in err and f"pid {first.pid} on host {socket.gethostname()}" in err and "--out-dir" in err
        assert writing.read_bytes() == b"half a checkpoint" and not (out / C.CHECKPOINT_LAST).exists()
    finally:
        first.send_signal(signal.SIGKILL)  # the first run dies without releasing its lock
        first.wait()
    assert cli.main(["train", *common, "--out-dir", str(out), "--max-steps", "2"]) == 0
    err = capsys.readouterr().err
    assert f"note: taking over {out / L.LOCK_FILE}" in err and f"pid {first.pid} on this host) is gone" in err
    assert not writing.exists()  # its owner is gone: the temp file is cleaned
    assert C.read_checkpoint(out / C.CHECKPOINT_LAST)["step"] == 2
    assert not (out / L.LOCK_FILE).exists()  # released when the run ended


def _write_lock(path, **holder):
    path.write_text(json.dumps({"pid": 1, "host": socket.gethostname(), "token": "other", "started": "then", **holder}))


def test_a_lock_of_another_host_is_stale_only_when_it_was_not_refreshed(tmp_path):
    path = tmp_path / L.LOCK_FILE
    _write_lock(path, host="colab-runtime-1", pid=os.getpid())
    with pytest.raises(L.FolderInUse, match="pid .* on host colab-runtime-1"):
        L.acquire(tmp_path)
    old = time.time() - L.STALE_AFTER_S - 60
    os.utime(path, (old, old))
    notes = []
    lock = L.acquire(tmp_path, note=notes.append)
    assert len(notes) == 1 and "host colab-runtime-1 has not written for 31 minutes" in notes[0]
    assert json.loads(path.read_text())["token"] == lock.owner["token"]
    lock.release()
    assert not path.exists()


def test_locks_left_by_this_process_or_half_written_are_stale(tmp_path):
    path = tmp_path / L.LOCK_FILE
    _write_lock(path, pid=os.getpid())  # an interrupted notebook run in this very kernel
    notes = []
    L.acquire(tmp_path, note=notes.append).release()
    assert "left by this process" in notes[0]
    path.write_text("")  # a start killed between creating the lock and writing it
    with pytest.raises(L.FolderInUse, match="a run that is starting"):
        L.acquire(tmp_path)
    old = time.time() - L.UNWRITTEN_AFTER_S - 1
    os.utime(path, (old, old))
    L.acquire(tmp_path, note=notes.append).release()
    assert "left unfinished" in notes[1]


def test_a_run_whose_lock_was_taken_over_stops_before_writing(tmp_path):
    def take_over(history):  # after the first epoch, another run claims the folder
        _write_lock(tmp_path / L.LOCK_FILE, host="another-runtime", token="theirs")

    cfg = tiny_cfg(**{"train.epochs": 3})
    with pytest.raises(L.FolderInUse, match="taken over by another training run .*another-runtime"):
        T.train(cfg, make_cache(), tmp_path, progress=False, on_epoch=take_over, checkpoint_every_s=0)
    assert C.read_checkpoint(tmp_path / C.CHECKPOINT_LAST)["epoch"] == 1  # the second epoch was not written
    assert json.loads((tmp_path / L.LOCK_FILE).read_text())["token"] == "theirs"  # theirs is kept


def test_the_lock_is_released_when_training_fails(tmp_path, monkeypatch):
    def diverge(*args, **kwargs):
        raise ValueError("training diverged")

    monkeypatch.setattr(T, "train_step", diverge)
    with pytest.raises(ValueError, match="diverged"):
        T.train(tiny_cfg(), make_cache(), tmp_path, progress=False)
    assert not (tmp_path / L.LOCK_FILE).exists()
    monkeypatch.undo()
    T.train(tiny_cfg(**{"train.epochs": 1}), make_cache(), tmp_path, progress=False)  # the folder is free again
