"""Training throughput: supervised notes per second for each model, beside the seed-style setup.

"Supervised notes" = next-note targets a step learns from: one per window for the seed's
window->next models, every position for the causal model. All setups train on the chorale
corpus (``source="chorales"``, as the figures in docs/benchmarks.md) with the seed's grid, one
after the other in the same process, each for
``--seconds`` after a short warm-up; the ratio to the seed-style row is the figure that counts.

    python benchmarks/bench_train.py               # CPU, all cores
    python benchmarks/bench_train.py --device cuda
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import machine_header  # noqa: E402
from benchmarks.seed_reference import SEED_LR, seed_loader, seed_train_step  # noqa: E402
from melody_utils.config import DataConfig, ModelConfig  # noqa: E402
from melody_utils.data.corpus import prepare  # noqa: E402
from melody_utils.data.windows import make_loader  # noqa: E402
from melody_utils.model.lstm import build_model, count_parameters, seed_model_config  # noqa: E402
from melody_utils.device import autocast_context, cpu_has_native_bf16  # noqa: E402


def measure(step, batches, notes_per_batch, seconds: float, warmup: int = 3, device="cpu") -> tuple[float, int]:
    """Run ``step(batch)`` over ``batches`` (cycled) for ``seconds``; returns (notes/s, steps)."""
    it = iter(batches)

    def next_batch():
        nonlocal it
        try:
            return next(it)
        except StopIteration:
            it = iter(batches)
            return next(it)

    for _ in range(warmup):
        step(next_batch())
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    sync()
    t0, n, steps = time.perf_counter(), 0, 0
    while time.perf_counter() - t0 < seconds:
        b = next_batch()
        step(b)
        n += notes_per_batch(b)
        steps += 1
    sync()
    return n / (time.perf_counter() - t0), steps


def ours_step(model, device, amp=True, cpu_bf16=False):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ctx, dtype = autocast_context(torch.device(device), amp, cpu_bf16)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)

    def step(batch):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with ctx:
            loss, _ = model.loss(batch)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    return step


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="timed seconds per setup")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-advanced", action="store_true")
    ap.add_argument("--advanced-batches", default="",
                    help="comma-separated batch sizes for MusicLSTM_Advanced (default: 64 on a CPU; 64,512,2048 on a GPU)")
    args = ap.parse_args(argv)
    print(machine_header("bench_train", argv))
    torch.manual_seed(0)
    dev = args.device
    cache = prepare(DataConfig(source="chorales", bins="seed"), progress=False)
    train_pieces = cache.split_tokens("train")
    vocab = cache.vocab
    rows = []

    def add(name, model, step, loader, per_batch, note=""):
        model.train()
        nps, steps = measure(step, loader, per_batch, args.seconds, device=dev)
        rows.append((name, count_parameters(model), nps, steps, note))
        print(f"  {name}: {nps:,.0f} notes/s ({steps} steps)", flush=True)

    # 1. The seed's setup: list-of-tuples dataset, per-sample .to(device), MusicLSTM, batch 64.
    base = build_model(seed_model_config("baseline"), vocab, 50).to(dev)
    opt = torch.optim.Adam(base.parameters(), lr=SEED_LR)
    add("seed-style MusicLSTM (list dataset, window->next, batch 64)", base,
        lambda b: seed_train_step(base, opt, b[0].to(dev), b[1].to(dev)), seed_loader(train_pieces, device=dev),
        lambda b: len(b[1]))

    # 2. The same model on this project's loader (isolates the data pipeline's share).
    base2 = build_model(seed_model_config("baseline"), vocab, 50).to(dev)
    add("MusicLSTM on the array loader (window->next, batch 64)", base2, ours_step(base2, dev),
        make_loader(cache, "train", 50, 1, 64, shuffle=True), lambda b: len(b["next"]))

    # 3. The causal model at about the baseline's size, every position supervised.
    for batch, window in ((64, 64), (128, 128), (256, 128)):
        mc = ModelConfig(arch="causal", hidden=256, layers=2, emb_pitch=64, emb_step=32, emb_dur=32, chained=True, dropout=0.1)
        causal = build_model(mc, vocab, window).to(dev)
        add(f"CausalLSTM 2x256 chained (batch {batch}, window {window})", causal, ours_step(causal, dev),
            make_loader(cache, "train", window, window // 2, batch, shuffle=True), lambda b: b["targets"].shape[0] * b["targets"].shape[1])

    # 3b. The default causal model with bf16 autocast, where the CPU multiplies bf16 natively.
    if dev == "cpu" and cpu_has_native_bf16():
        mc = ModelConfig(arch="causal", hidden=256, layers=2, emb_pitch=64, emb_step=32, emb_dur=32, chained=True, dropout=0.1)
        causal = build_model(mc, vocab, 64).to(dev)
        add("CausalLSTM 2x256 chained (batch 64, window 64), bf16 autocast (train.cpu_bf16)", causal,
            ours_step(causal, dev, cpu_bf16=True), make_loader(cache, "train", 64, 32, 64, shuffle=True),
            lambda b: b["targets"].shape[0] * b["targets"].shape[1])

    # 4. The flagship at the seed's size; on a GPU also at the large batches the colab preset uses
    # (mixed precision comes with ours_step on CUDA).
    batches = args.advanced_batches or ("64,512,2048" if dev.startswith("cuda") else "64")
    for batch in ([] if args.skip_advanced else [int(b) for b in batches.split(",")]):
        adv = build_model(seed_model_config("advanced"), vocab, 50).to(dev)
        add(f"MusicLSTM_Advanced (seed size, window->next, batch {batch})", adv, ours_step(adv, dev),
            make_loader(cache, "train", 50, 1, batch, shuffle=True), lambda b: len(b["next"]))
        del adv

    ref = rows[0][2]
    print()
    print("| setup | parameters | supervised notes/s | steps timed | × seed-style |")
    print("|---|---:|---:|---:|---:|")
    for name, params, nps, steps, _ in rows:
        print(f"| {name} | {params / 1e6:.2f} M | {nps:,.0f} | {steps} | {nps / ref:.1f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
