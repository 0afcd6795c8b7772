"""Every benchmark in one command, printing each one's table (with machine, date and load).

    python benchmarks/run_all.py            # a few minutes on a 2-core CPU (shorter budgets)
    python benchmarks/run_all.py --full     # the figures published in docs/benchmarks.md (~25 min)
    python benchmarks/run_all.py --tiny     # seconds: the smoke test CI runs
    python benchmarks/run_all.py --device cuda   # training and generation on the GPU

Measure on a quiet machine (the headers print the load average): timings swing several-fold
when anything else runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import (bench_audio, bench_generate, bench_preprocess, bench_quality, bench_threads,  # noqa: E402
                        bench_train, bench_train_time)

PLANS = {
    "tiny": {
        "preprocess": ["--notes", "3000", "--pretty-midi-files", "5", "--workers", "1"],
        "train": ["--seconds", "0.3", "--skip-advanced"],
        "generate": ["--batches", "1", "--budget", "0.05", "--sizes", "small"],
        "quality": ["--budget", "2", "--epochs", "1", "--only", "batch 64, window 64"],
        "threads": ["--budget", "0.05", "--batches", "1", "--burners", "1", "--primers", "8,16"],
        "audio": ["--seconds", "3", "--pieces", "1"],
        "train_time": ["--preset", "tiny", "--steps", "6", "--epoch-windows", "64"],
    },
    "default": {
        "preprocess": [],
        "train": ["--seconds", "8"],
        "generate": ["--budget", "0.5", "--sizes", "small"],
        "quality": ["--budget", "60", "--epochs", "10", "--only", "batch 64, window 64"],
        "threads": ["--budget", "0.5", "--batches", "1"],
        "audio": ["--seconds", "20"],
        "train_time": ["--steps", "60"],
    },
    "full": {
        "preprocess": [],
        "train": ["--seconds", "20"],
        "generate": ["--budget", "1.0"],
        "quality": ["--budget", "180"],
        "threads": [],
        "audio": [],
        "train_time": ["--steps", "120"],
    },
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--tiny", action="store_true", help="seconds: a smoke test")
    size.add_argument("--full", action="store_true", help="the published budgets")
    ap.add_argument("--device", default="cpu", help="device for the training and generation benchmarks")
    ap.add_argument("--skip", nargs="*", default=[], choices=sorted(PLANS["full"]), help="benchmarks to leave out")
    args = ap.parse_args(argv)
    plan = PLANS["tiny" if args.tiny else "full" if args.full else "default"]
    device = ["--device", args.device]
    runs = {
        "preprocess": lambda a: bench_preprocess.main(a),
        "train": lambda a: bench_train.main(a + device),
        "generate": lambda a: bench_generate.main(a + device),
        "quality": lambda a: bench_quality.main(a),
        "threads": lambda a: bench_threads.main(a),
        "audio": lambda a: bench_audio.main(a),
        "train_time": lambda a: bench_train_time.main(a + device),
    }
    for name, run in runs.items():
        if name in args.skip:
            continue
        run(list(plan[name]))
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
