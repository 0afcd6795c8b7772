"""Where a training run's wall time goes: optimizer steps, validation, checkpoint writes, the rest.

Runs :func:`melody_utils.train.loop.train` for ``--steps`` optimizer steps and times, from outside the
loop, every optimizer step (batch loading excluded), every validation pass and every checkpoint write
(and the in-memory copy of the best model); "the rest" is what the run's wall time holds besides
(setting up the model and loaders, loading batches, the epoch's start, logging). The share that
counts is steps + validation over the wall time. Two checkpoint cadences, one after the other: at
every epoch's end (what the loop did before: ``checkpoint_every_s=0``) and the default.

    python benchmarks/bench_train_time.py                                   # small preset, piano corpus, CPU
    python benchmarks/bench_train_time.py --device cuda --steps 400 --set data.window=128 --set train.batch_size=256

Short epochs (``--epoch-windows``, a GPU's epoch of a few seconds) are where the per-epoch work shows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine_header  # noqa: E402
from melody_utils.cli.args import parse_setting  # noqa: E402
from melody_utils.config import get_config  # noqa: E402
from melody_utils.data import corpus  # noqa: E402
from melody_utils.train import loop  # noqa: E402

TIMED = {"train_step": "steps", "validation_loss": "validation", "save_checkpoint": "checkpoints", "snapshot": "checkpoints"}


class Timers:
    """Wraps the loop's functions named in TIMED, summing the seconds spent in each kind (and counting calls)."""

    def __init__(self, sync):
        self.seconds = {kind: 0.0 for kind in TIMED.values()}
        self.calls = {kind: 0 for kind in TIMED.values()}
        self.sync, self.real = sync, {}

    def __enter__(self):
        for name, kind in TIMED.items():
            self.real[name] = getattr(loop, name)
            setattr(loop, name, self._timed(self.real[name], kind))
        return self

    def __exit__(self, *exc):
        for name, fn in self.real.items():
            setattr(loop, name, fn)

    def _timed(self, fn, kind):
        def timed(*args, **kwargs):
            self.sync()
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self.sync()
            self.seconds[kind] += time.perf_counter() - t0
            self.calls[kind] += 1
            return out

        return timed


def measure(cfg, cache, checkpoint_every_s) -> dict:
    """One run of ``cfg`` in a fresh folder: {wall, steps, validation, checkpoints, rest} seconds, and call counts."""
    import torch

    sync = torch.cuda.synchronize if cfg.train.device.startswith("cuda") else (lambda: None)
    with tempfile.TemporaryDirectory() as out, Timers(sync) as timers:
        t0 = time.perf_counter()
        loop.train(cfg, cache, out, resume=False, progress=False, checkpoint_every_s=checkpoint_every_s)
        sync()
        wall = time.perf_counter() - t0
    s = dict(timers.seconds, wall=wall)
    s["rest"] = wall - sum(timers.seconds.values())
    s["share"] = (s["steps"] + s["validation"]) / wall
    s["calls"] = timers.calls
    return s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--source", default="piano")
    ap.add_argument("--steps", type=int, default=120, help="optimizer steps per run")
    ap.add_argument("--epoch-windows", type=int, default=1280, help="windows per epoch (0 = every window)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    args = ap.parse_args(argv)
    print(machine_header("bench_train_time", argv))
    cfg = get_config(args.preset, **{"data.source": args.source, "train.max_steps": args.steps,
                                     "train.epoch_windows": args.epoch_windows, "train.device": args.device})
    cfg = cfg.override(**dict(parse_setting(cfg, item) for item in args.set))
    cache = corpus.prepare(cfg.data, cache_dir=args.cache_dir, progress=False)
    loop.train(cfg.override(**{"train.max_steps": 2}), cache, tempfile.mkdtemp(), resume=False, progress=False)  # warm-up
    print(f"\n{args.preset} preset, {args.source}, {cfg.model.arch} {cfg.model.layers}x{cfg.model.hidden}, batch "
          f"{cfg.train.batch_size} x window {cfg.data.window}, {args.steps} steps, epochs of "
          f"{args.epoch_windows or 'all'} windows, on {args.device}\n")
    print("| checkpoints | wall s | steps s | validation s (passes) | checkpoint writes s (writes) | rest s | steps + validation |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, every in (("every epoch's end (before)", 0.0), (f"every {loop.CHECKPOINT_EVERY_S:g} s and at the end", None)):
        s = measure(cfg, cache, every)
        c = s["calls"]
        print(f"| {name} | {s['wall']:.1f} | {s['steps']:.1f} | {s['validation']:.1f} ({c['validation']}) | "
              f"{s['checkpoints']:.2f} ({c['checkpoints']}) | {s['rest']:.1f} | **{100 * s['share']:.1f}%** |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
