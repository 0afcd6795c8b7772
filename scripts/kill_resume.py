"""Kill a training run with SIGKILL at random moments, resume it, and check nothing was lost.

A worker process trains a small model on a few pieces of the embedded chorales (CPU, one
thread, a checkpoint after every optimizer step so kills often land inside a checkpoint write).
The driver starts it, kills it at a random moment, checks that the newest checkpoint loads
(``checkpoint.load_checkpoint``) and has not gone back in time, starts it again (it resumes from
``ckpt_last.pt``), and so on; after the last kill the run finishes. Its loss curve must equal
that of an uninterrupted run, and its final and best checkpoints must hold the same weights.

    python scripts/kill_resume.py --kills 20           # the recorded run (docs/robustness.md)
    python scripts/kill_resume.py --kills 3 --epochs 2 # quick look

tests/test_kill_resume.py runs a short variant of the same driver in CI.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

N_TRAIN_PIECES = 6  # embedded pieces (~200-340 notes each) to train on, + 1 for validation
LOSS_KEYS = ("epoch", "step", "train_loss", "val_loss", "val_pitch", "val_step", "val_duration", "lr")
READY = "ready"  # the worker prints this line right before training starts


def make_cache():
    """A small real corpus: the first pieces of the embedded corpus, seed vocabulary."""
    from melody_utils.data.corpus import TokenCache, load_embedded
    from melody_utils.music.tokens import seed_vocab

    notes, meta = load_embedded("chorales")
    vocab = seed_vocab()
    pieces = [vocab.encode(n[vocab.in_range(n)]) for n in notes[: N_TRAIN_PIECES + 1]]
    return TokenCache.from_pieces(pieces, vocab, splits=["train"] * N_TRAIN_PIECES + ["validation"],
                                  names=[m["name"] for m in meta[: N_TRAIN_PIECES + 1]])


def make_config(epochs: int = 3):
    from melody_utils.config import get_config

    return get_config("tiny", **{
        "model.hidden": 32, "model.emb_pitch": 16, "model.emb_step": 8, "model.emb_dur": 8, "model.dropout": 0.1,
        "data.window": 32, "data.stride": 16, "data.bins": "seed",
        "train.batch_size": 8, "train.epochs": epochs, "train.max_steps": 0, "train.warmup_steps": 5,
        "train.device": "cpu", "train.seed": 0,
    })


def train_once(out_dir, epochs: int, checkpoint_every_s: float = 1e-9, worker: bool = False) -> dict:
    """The worker's job (also the uninterrupted reference): train, resuming when a checkpoint exists."""
    import torch

    from melody_utils.model import checkpoint as C
    from melody_utils.train import loop as T

    torch.set_num_threads(1)  # the same float reductions in every process
    cache = make_cache()
    if worker:
        print(READY, flush=True)
    return T.train(make_config(epochs), cache, out_dir, progress=False, checkpoint_every_s=checkpoint_every_s)


def check_checkpoints(out_dir: Path, last_step: int) -> tuple[int, int]:
    """The newest checkpoints load and did not go back: returns (step of ckpt_last, files verified)."""
    from melody_utils.model import checkpoint as C
    from melody_utils.train import loop as T

    verified, step = 0, last_step
    for name in (C.CHECKPOINT_LAST, C.CHECKPOINT_BEST):
        path = out_dir / name
        if path.is_file():
            _, _, _, state = C.load_checkpoint(path)  # raises if truncated or unreadable
            verified += 1
            if name == C.CHECKPOINT_LAST:
                if state["step"] < last_step:
                    raise AssertionError(f"{path} went back from step {last_step} to {state['step']}")
                step = state["step"]
    history = out_dir / T.HISTORY_FILE
    if history.is_file():
        json.loads(history.read_text())  # complete JSON, never half-written
    return step, verified


def run_worker(out_dir: Path, epochs: int) -> subprocess.Popen:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(out_dir), "--epochs", str(epochs)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stamp(path: Path):
    try:
        st = path.stat()
        return st.st_ino, st.st_mtime_ns  # a rename gives a new inode: a new checkpoint
    except FileNotFoundError:
        return None


def kill_and_resume(out_dir: Path, kills: int, epochs: int, seed: int = 0, max_delay_s: float = 0.3,
                    early_fraction: float = 0.2, timeout_s: float = 600.0, log=print) -> dict:
    """Kill the worker ``kills`` times at random moments, then let it finish.

    Most kills come a random 0..``max_delay_s`` after the worker wrote its first checkpoint of
    that start (so they land in training steps and checkpoint writes); ``early_fraction`` of
    them come that long after it started training (setup and resume).
    """
    from melody_utils.model import checkpoint as C
    from melody_utils.train import loop as T

    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    last = out_dir / C.CHECKPOINT_LAST
    done_kills, verified, step, attempts, mid_write, seen = 0, 0, 0, 0, 0, set()
    t0 = time.time()
    while True:
        if time.time() - t0 > timeout_s:
            raise TimeoutError(f"kill/resume run did not finish in {timeout_s:g} s")
        attempts += 1
        before = _stamp(last)
        proc = run_worker(out_dir, epochs)
        if done_kills < kills and proc.stdout.readline().strip() == READY:
            if rng.random() >= early_fraction:  # wait for this start's first checkpoint
                while proc.poll() is None and _stamp(last) == before:
                    time.sleep(0.002)
            time.sleep(float(rng.uniform(0, max_delay_s)))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                done_kills += 1
                step, n = check_checkpoints(out_dir, step)
                verified += n
                torn = {p.name for p in out_dir.iterdir() if p.name.endswith(".tmp")} - seen  # new ones only
                seen |= torn
                mid_write += bool(torn)
                log(f"kill {done_kills}: newest checkpoint at step {step} loads" + (f" (killed inside a write: {sorted(torn)})" if torn else ""))
                continue
        _, err = proc.communicate()  # the run finished (after the last kill, or before it came)
        if proc.returncode != 0:
            raise RuntimeError(f"worker failed (exit {proc.returncode}):\n{err[-2000:]}")
        step, n = check_checkpoints(out_dir, step)
        verified += n
        break
    temp_left = sorted(p.name for p in out_dir.iterdir() if p.name.endswith(".tmp"))
    return {"kills": done_kills, "attempts": attempts, "checkpoints_verified": verified, "final_step": step,
            "kills_inside_a_write": mid_write, "temp_files_left": temp_left, "seconds": round(time.time() - t0, 1)}


def compare(out_dir: Path, ref_dir: Path) -> dict:
    """Max deviation of the loss curve and of the final/best weights from the uninterrupted run."""
    from melody_utils.model import checkpoint as C
    from melody_utils.train import loop as T

    h = json.loads((out_dir / T.HISTORY_FILE).read_text())
    ref = json.loads((ref_dir / T.HISTORY_FILE).read_text())
    if [len(h[k]) for k in LOSS_KEYS] != [len(ref[k]) for k in LOSS_KEYS]:
        raise AssertionError(f"history lengths differ: {len(h['epoch'])} vs {len(ref['epoch'])} entries")
    curve = max(float(np.max(np.abs(np.subtract(h[k], ref[k])))) for k in LOSS_KEYS)
    weights = {}
    for name in (C.CHECKPOINT_LAST, C.CHECKPOINT_BEST):
        a = C.read_checkpoint(out_dir / name)["model_state"]
        b = C.read_checkpoint(ref_dir / name)["model_state"]
        weights[name] = max(float((a[k] - b[k]).abs().max()) for k in b) if a.keys() == b.keys() else float("inf")
    return {"max_loss_curve_deviation": curve, "max_weight_deviation": weights, "epochs": len(ref["epoch"])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=40, help="epochs of the training run (12 steps each)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    ap.add_argument("--max-delay", type=float, default=0.3, help="kill up to this many seconds after the first checkpoint")
    ap.add_argument("--out", help="work folder (default: a temporary one)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        train_once(Path(args.worker), args.epochs, worker=True)
        return 0
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        t = time.time()
        train_once(root / "reference", args.epochs)
        ref_s = time.time() - t
        result = kill_and_resume(root / "killed", args.kills, args.epochs, args.seed, args.max_delay)
        result.update(compare(root / "killed", root / "reference"))
    command = "python scripts/kill_resume.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"- date: {datetime.date.today().isoformat()}; machine: {platform.machine()} {platform.system()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"- command: `{command}`")
    print(f"- kills: {result['kills']} (SIGKILL) over {result['attempts']} starts; run of {result['epochs']} epochs, "
          f"{result['final_step']} steps; uninterrupted run {ref_s:.1f} s, killed-and-resumed {result['seconds']} s")
    print(f"- checkpoints verified after kills: {result['checkpoints_verified']} (all loaded, none went back)")
    print(f"- kills that landed inside a checkpoint write (temp file left, the next start removed it): "
          f"{result['kills_inside_a_write']}; temp files left at the end: {len(result['temp_files_left'])}")
    print(f"- max loss-curve deviation from the uninterrupted run: {result['max_loss_curve_deviation']:.3g}")
    print("- max weight deviation: " + ", ".join(f"{k} {v:.3g}" for k, v in result["max_weight_deviation"].items()))
    if result["kills"] < args.kills:
        print(f"- the run finished after {result['kills']} of {args.kills} kills: raise --epochs")
    ok = result["kills"] == args.kills and result["max_loss_curve_deviation"] <= 1e-6 and all(v <= 1e-6 for v in result["max_weight_deviation"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
