"""Generation on a loaded machine: notes/s with and without the one-thread pin, idle and beside a CPU burner.

Generation's matrix products are tiny (a batch of notes times the LSTM's weights). With numpy's
BLAS and torch on their default thread counts, each product is split between threads; when another
process holds one of the cores, every product waits for a descheduled thread. ``generate`` therefore
runs with one BLAS/OpenMP thread (``melody_utils.device.GENERATION_THREADS``); this script measures
what that does, in one run, side by side:

- pin **off** (``GENERATION_THREADS = 0``: the libraries' defaults) and **on** (1 thread),
- on the machine as it is (**as found**; the header's load average says how busy) and beside
  ``--burners`` processes that spin a core each (**+N burners**, a controlled load this script starts
  and stops),

for the shipped model as ``generate`` runs it (numpy stepper, piece memory on), at each ``--batches``.
A last table times a long primer: the one-time cost of feeding it and the notes/s after it.

    python benchmarks/bench_threads.py                     # ~2 minutes on 2 cores
    python benchmarks/bench_threads.py --budget 0.3 --batches 1 --burners 1

Each rate is (n - 1) notes a row over the time of run(n) minus run(1), n growing until run(n) lasts
``--budget`` seconds: the primer's cost cancels, and one long run is robust where a loaded machine makes
shorter runs' timings swing.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", default="1,16", help="comma-separated batch sizes")
    p.add_argument("--budget", type=float, default=1.5, help="seconds a timed run should last")
    p.add_argument("--burners", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                   help="processes spinning a core each for the loaded runs (default: all cores but one)")
    p.add_argument("--primers", default="32,2048", help="primer lengths (notes) of the long-primer table")
    return p.parse_args(argv)


def _spin(stop) -> None:
    """Burn one core until ``stop`` is set (pure Python: no BLAS threads of its own)."""
    x = 0
    while not stop.is_set():
        for _ in range(10_000):
            x = (x * 1103515245 + 12345) & 0xFFFFFFFF


class Load:
    """``with Load(n):`` n processes spinning a core each, stopped at the end of the block."""

    def __init__(self, n: int):
        self.n, self.stop, self.procs = n, mp.Event(), []

    def __enter__(self):
        self.procs = [mp.Process(target=_spin, args=(self.stop,), daemon=True) for _ in range(self.n)]
        for p in self.procs:
            p.start()
        time.sleep(0.5)  # let them reach their cores
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for p in self.procs:
            p.join(timeout=5)


def notes_per_second(run, batch: int, budget: float) -> tuple[float, int]:
    """(notes/s summed over the batch, n): (n - 1) * batch over time(run(n)) - time(run(1)), see the docstring."""
    def timed(n):
        t0 = time.perf_counter()
        run(n)
        return time.perf_counter() - t0

    timed(1)  # warm-up: first-call allocations
    t1, n = timed(1), 8
    while True:
        tn = timed(n)
        if tn >= budget or n >= 1 << 14:
            return (n - 1) * batch / max(tn - t1, tn / 2), n
        n = min(1 << 14, max(2 * n, int(n * 1.2 * budget / max(tn, 1e-6))))


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np

    from benchmarks.common import machine_header
    from melody_utils import device
    from melody_utils.generate.sample import generate
    from melody_utils.model.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint

    print(machine_header("bench_threads", argv))
    try:
        import threadpoolctl

        pools = ", ".join(f"{d['internal_api']} {d['num_threads']} threads" for d in threadpoolctl.threadpool_info())
    except ImportError:
        pools = "threadpoolctl missing: the pin limits torch only"
    print(f"numpy {np.__version__} | thread pools without the pin: {pools} | burners: {args.burners}")
    model, vocab, _, _ = load_checkpoint(SHIPPED_CHECKPOINT)
    rng = np.random.default_rng(0)
    primer = np.stack([rng.integers(0, n, 32) for n in vocab.sizes], axis=1)
    batches = [int(b) for b in args.batches.split(",")]
    rates = {}
    loads = ("as found", f"+{args.burners} burner{'s' * (args.burners > 1)}")
    for load in loads:
        with Load(args.burners if load != "as found" else 0):
            for batch in batches:
                for pin in (0, 1):
                    device.GENERATION_THREADS = pin
                    run = lambda n, batch=batch: generate(model, vocab, n, primer, batch=batch, memory=2.0)  # noqa: E731
                    rates[load, batch, pin] = notes_per_second(run, batch, args.budget)[0]
    device.GENERATION_THREADS = 1
    print("\n| machine | batch | pin off (library threads) notes/s | pin on (1 thread) notes/s | on / off |")
    print("|---|--:|--:|--:|--:|")
    for load in loads:
        for batch in batches:
            off, on = rates[load, batch, 0], rates[load, batch, 1]
            print(f"| {load} | {batch} | {off:,.0f} | {on:,.0f} | {on / off:.2f}x |")
    for batch in batches:
        print(f"batch {batch}: {loads[1]} / as found, pin off {rates[loads[1], batch, 0] / rates[loads[0], batch, 0]:.2f}x, "
              f"pin on {rates[loads[1], batch, 1] / rates[loads[0], batch, 1]:.2f}x")
    _long_primer(model, vocab, [int(p) for p in args.primers.split(",")], args.budget)
    return 0


def _long_primer(model, vocab, lengths, budget) -> None:
    """Feeding a primer once, then notes/s after it (batch 1, pinned, piece memory on: its matches span the primer)."""
    import numpy as np

    from melody_utils.generate.sample import generate

    print("\n| primer notes | feeding it once (s) | notes/s after it |\n|--:|--:|--:|")
    rng = np.random.default_rng(1)
    for n in lengths:
        primer = np.stack([rng.integers(0, s, n) for s in vocab.sizes], axis=1)
        t0 = time.perf_counter()
        generate(model, vocab, 1, primer, memory=2.0)
        fed = time.perf_counter() - t0
        rate = notes_per_second(lambda k, primer=primer: generate(model, vocab, k, primer, memory=2.0), 1, budget)[0]
        print(f"| {n:,} | {fed:.3f} | {rate:,.0f} |")


if __name__ == "__main__":
    sys.exit(main())
