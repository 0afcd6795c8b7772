"""Generation benchmark: new notes per second (summed over the batch) for each generation path.

Paths: the causal model's numpy stepper (``generate``'s default on CPU), the same model stepped
note by note through ``nn.LSTM`` (``fast=False``), and the seed's re-encoding of the last 50-note
window per note (``MusicLSTM`` / ``MusicLSTM_Advanced``). Two sizes: ~1 M parameters (the default
causal model, the seed's baseline) and the Advanced size (~20 M: a causal LSTM of hidden 1024 x 3
layers, the seed's ``MusicLSTM_Advanced``). Untrained weights: speed does not depend on them.
Every run primes with 50 notes and samples with the default settings (top_p 0.95).

    python benchmarks/bench_generate.py                      # batches 1, 16, 256
    python benchmarks/bench_generate.py --batches 1 --budget 0.5 --sizes small
    python benchmarks/bench_generate.py --threads 1           # one BLAS / torch thread

Each figure is a steady-state rate: ``generate`` is timed for n and 2n notes (n growing until the
longer run lasts ``--budget`` seconds) and the difference is divided into n notes, so per-call
set-up (weight export, priming) is left out. Measure on a quiet
machine: the header prints the load average. Multi-threaded BLAS (numpy's OpenBLAS, torch) is
fastest on idle cores but collapses when other processes hold them (every matmul then waits for
a descheduled thread); on a shared CPU compare with ``--threads 1``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PRIMER_NOTES = 50
MAX_NOTES = 1 << 15  # longest run per measurement


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", default="1,16,256", help="comma-separated batch sizes")
    p.add_argument("--sizes", default="small,advanced", help="'small' (~1 M params), 'advanced' (~20 M), or both")
    p.add_argument("--paths", default="fast,torch,reencode,seed",
                   help="which paths: fast, torch, reencode (a window model through generate), "
                        "seed (benchmarks/seed_reference.seed_generate, the seed's own loop; batch 1 only)")
    p.add_argument("--budget", type=float, default=2.0, help="seconds a timed run should last")
    p.add_argument("--threads", type=int, default=0, help="BLAS and torch threads (0 = library defaults: generate's "
                   "one-thread pin is turned off, as when the table in docs/benchmarks.md was measured)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (the numpy stepper is CPU-only and is skipped on cuda)")
    return p.parse_args(argv)


def notes_per_second(run, batch: int, budget: float) -> tuple[float, int]:
    """Steady-state speed: (notes/s, n) from the time difference between run(2n) and run(n).

    The difference cancels what every call pays once (exporting weights, priming); n doubles
    until the run(2n) lasts >= budget seconds.
    """
    def timed(n):
        t0 = time.perf_counter()
        run(n)
        return time.perf_counter() - t0

    timed(1)  # warm-up: first-call allocations and thread pools are not generation speed
    n = 1
    while True:
        t1, t2 = timed(n), timed(2 * n)
        if t2 >= budget or 2 * n >= MAX_NOTES:
            return n * batch / max(t2 - t1, 1e-9), 2 * n
        n = min(MAX_NOTES // 2, max(2 * n, math.ceil(n * 1.2 * budget / max(t2, 1e-6))))


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:  # before numpy / torch load their thread pools
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    import numpy as np
    import torch

    from benchmarks.common import machine_header
    from benchmarks.seed_reference import seed_generate
    from melody_utils.config import ModelConfig
    from melody_utils.model.lstm import build_model, count_parameters, seed_model_config
    from melody_utils.generate.sample import generate
    from melody_utils.music.tokens import seed_vocab

    if args.threads:
        torch.set_num_threads(args.threads)
    from melody_utils import device

    device.GENERATION_THREADS = args.threads  # generate's own pin: off (0) unless --threads asks (bench_threads.py compares)
    print(machine_header("bench_generate", argv))
    print(f"numpy {np.__version__} | OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}")

    vocab = seed_vocab()
    rng = np.random.default_rng(0)
    primer = np.stack([rng.integers(0, n, PRIMER_NOTES) for n in vocab.sizes], axis=1)  # (50, 3)
    causal_cfg = {
        "small": ModelConfig(),  # the default: hidden 256, 2 layers
        "advanced": ModelConfig(hidden=1024, layers=3, emb_pitch=128, emb_step=64, emb_dur=64),
    }
    window_arch = {"small": "baseline", "advanced": "advanced"}
    batches = [int(b) for b in args.batches.split(",")]
    paths = args.paths.split(",")

    print(f"\n{'path':<34} {'params':>8} {'batch':>6} {'notes/s':>10} {'max n':>7}")
    for size in args.sizes.split(","):
        torch.manual_seed(0)
        causal = build_model(causal_cfg[size], vocab, 64).to(args.device)
        window = build_model(seed_model_config(window_arch[size]), vocab, PRIMER_NOTES).to(args.device)
        cases = {
            "fast": ("causal, numpy stepper", causal, dict(fast=True)),
            "torch": ("causal, nn.LSTM note by note", causal, dict(fast=False)),
            "reencode": (f"seed re-encode, {type(window).__name__}", window, {}),
            "seed": (f"seed's own loop, {type(window).__name__}", window, None),
        }
        for path in paths:
            if path == "fast" and args.device != "cpu":
                continue
            label, model, kw = cases[path]
            for batch in batches:
                if path == "seed" and batch != 1:
                    continue  # the seed generated one piece at a time

                def run(n, model=model, kw=kw, batch=batch):
                    if kw is None:
                        seed_generate(model, primer, n, top_p=0.95, device=args.device)
                    else:
                        generate(model, vocab, n, primer=primer, batch=batch, device=args.device, **kw)
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()

                rate, n = notes_per_second(run, batch, args.budget)
                print(f"{label:<34} {count_parameters(model) / 1e6:>7.2f}M {batch:>6} {rate:>10,.0f} {n:>7}", flush=True)


if __name__ == "__main__":
    main()
