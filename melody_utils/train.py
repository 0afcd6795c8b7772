"""Training loop, checkpoints and the loss history.

One function, :func:`train`, one code path for CPU and GPU (as in nanoGPT): on CUDA the
forward pass runs under ``torch.autocast`` (bf16 where supported, else fp16 with a gradient
scaler); on the CPU the same lines run in plain fp32 under a ``nullcontext``.

- Optimiser: Adam at ``cfg.train.lr``, linear warm-up (``warmup_steps``, at most a fifth of
  the run) then cosine decay to a tenth of the peak, global grad-norm clipping. Loss: ``model.loss(batch)``, the sum over heads of the mean
  cross-entropy (nats per note).
- Data: causal models learn from windows of ``cfg.data.window`` notes every
  ``cfg.data.stride``; the seed's window->next models (``baseline``/``advanced``) from windows
  of ``cfg.data.seed_window`` notes at stride 1, as the seed did.
- Every epoch: a validation pass, one history entry (``history.json``), ``ckpt_last.pt`` and,
  at a new best validation loss, ``ckpt_best.pt``. Long epochs also save ``ckpt_last.pt``
  every ``CHECKPOINT_EVERY_S`` seconds. All files are written to a temp file and renamed,
  so a run killed at any moment keeps its last complete checkpoint.
- Resume: when ``out_dir/ckpt_last.pt`` exists, training continues from it (mid-epoch
  included) and the loss curve goes on exactly as an uninterrupted run's would on a CPU.
- Seeded: torch, numpy, Python's ``random`` and the data order follow ``cfg.train.seed``.

Several GPUs: the same function under ``torchrun`` (see :mod:`melody_utils.distributed`); writes
(checkpoints, history, progress) happen only where :func:`is_main_process` holds.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import data, distributed
from .config import Config
from .corpus import TokenCache
from .midi import atomic_write_bytes
from .model import build_model
from .tokens import Vocab

CHECKPOINT_LAST = "ckpt_last.pt"  # written every epoch (and every CHECKPOINT_EVERY_S): resume from here
CHECKPOINT_BEST = "ckpt_best.pt"  # the lowest validation loss so far: generate from here
HISTORY_FILE = "history.json"  # per-epoch losses, lr, speed (lists of floats, for plots.plot_history)
CHECKPOINT_FORMAT = 1  # bump when the checkpoint layout changes
CHECKPOINT_EVERY_S = 600.0  # also save ckpt_last.pt mid-epoch this often: a lost runtime loses at most this much
MIN_LR_FRACTION = 0.1  # the cosine schedule ends at lr * MIN_LR_FRACTION
MAX_WARMUP_FRACTION = 0.2  # warm-up takes at most this share of the run, so short runs still decay
WINDOW_ARCHS = ("baseline", "advanced")  # the seed's window->next models
# Settings a resumed run may change: limits and where it runs. Every other data/model/train
# setting must match the checkpoint's, or the resumed run would silently train something else.
RESUMABLE_SETTINGS = ("train.epochs", "train.max_steps", "train.time_budget_s", "train.device",
                      "train.num_workers", "train.out_dir", "train.amp", "train.cpu_bf16")


# ---------------------------------------------------------------- small helpers


def is_main_process() -> bool:
    """True on rank 0 of a distributed run, and always in a single-process run.

    The one place to look when adding DistributedDataParallel: only the main process writes
    checkpoints and history and shows progress.
    """
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {name!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N' (set --device / train.device)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here; use device 'cpu' or 'auto'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def window_and_stride(cfg: Config, causal: bool) -> tuple[int, int]:
    """Training windows: (window, stride) for causal models, (seed_window, 1) for window->next ones."""
    return (cfg.data.window, cfg.data.stride) if causal else (cfg.data.seed_window, 1)


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the peak lr at ``step``: linear warm-up, then cosine down to MIN_LR_FRACTION."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return MIN_LR_FRACTION + (1 - MIN_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress))


def cpu_flags() -> set[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where it cannot be read). Every bf16 check goes
    through here, so a test can stand in a CPU without native bf16 by patching this one function."""
    try:
        with open("/proc/cpuinfo") as f:
            return set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        return set()


def cpu_has_native_bf16() -> bool:
    """True when the CPU multiplies bf16 in hardware (AVX512-BF16 or AMX): bf16 autocast then pays."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def autocast_context(device: torch.device, amp: bool = True, cpu_bf16: bool = False):
    """(context, dtype): autocast on CUDA (bf16 where supported, else fp16); on the CPU plain fp32,
    or bf16 autocast when ``cpu_bf16`` is asked for and the CPU has native bf16 (else a ValueError)."""
    if device.type == "cpu" and cpu_bf16:
        if not cpu_has_native_bf16():
            raise ValueError("train.cpu_bf16=True needs a CPU with AVX512-BF16 or AMX (not found in /proc/cpuinfo); "
                             "set train.cpu_bf16=false")
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16), torch.bfloat16
    if device.type != "cuda" or not amp:
        return nullcontext(), torch.float32
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype), dtype


def build_from_config(cfg: Config, vocab: Vocab) -> torch.nn.Module:
    """The model ``cfg.model`` describes, for ``vocab``; window models see ``cfg.data.seed_window`` notes."""
    window = cfg.data.seed_window if cfg.model.arch in WINDOW_ARCHS else cfg.data.window
    return build_model(cfg.model, vocab, window)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return distributed.unwrap(model)  # DistributedDataParallel (and its loss adapter) keep the model in .module


def _notes_in(batch: dict, causal: bool) -> int:
    """Supervised notes in a batch: every position for causal models, one per window otherwise."""
    b, t = batch["targets"].shape[:2]
    return b * t if causal else b


def _write_json(path: Path, obj) -> Path:
    text = json.dumps(obj, indent=1)
    return atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text))


def new_history(fields) -> dict:
    """Empty history: one list per curve, one entry per evaluation (normally per epoch)."""
    keys = ["epoch", "step", "train_loss", "val_loss", *(f"val_{f}" for f in fields), "lr", "notes_per_s", "seconds"]
    return {k: [] for k in keys}


# ---------------------------------------------------------------- checkpoints


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],  # plain lists: loadable with weights_only
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, model: torch.nn.Module, cfg: Config, vocab: Vocab, optimizer=None, **state) -> Path:
    """Write one checkpoint dict atomically (temp file + rename); returns the path.

    Holds what :func:`load_checkpoint` needs to rebuild the model alone (``config``, ``vocab``,
    ``model_class``, ``model_state``) and what resuming needs (``optimizer`` and the ``state``
    keywords: epoch, step, history, best_val_loss, scheduler, rng, ...).
    """
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "model_class": type(_unwrap(model)).__name__,
        "model_state": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "config": cfg.to_dict(),
        "vocab": vocab.to_dict(),
        **state,
    }
    return atomic_write_bytes(path, lambda tmp: torch.save(ckpt, tmp))


def read_checkpoint(path) -> dict:
    """The raw checkpoint dict (tensors on the CPU). Clear errors for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path}; train one first with `python -m melody_utils train` "
            f"(or `python -m melody_utils quickstart`), or pass the right --checkpoint"
        )
    try:
        # weights_only: a checkpoint is data (tensors, dicts, lists, numbers), never code to run.
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"checkpoint {path} is unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            f"it is truncated or not a Melody Forge checkpoint: delete it and train again"
        ) from None
    if not isinstance(ckpt, dict) or "model_state" not in ckpt or "config" not in ckpt:
        raise ValueError(f"{path} is not a Melody Forge checkpoint (no model_state/config); point to a ckpt_*.pt written by training")
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path} has format {ckpt.get('format')}, expected {CHECKPOINT_FORMAT}; train again with this version")
    return ckpt


def load_checkpoint(path, device="cpu") -> tuple[torch.nn.Module, Vocab, Config, dict]:
    """Rebuild a trained model from a checkpoint alone: ``(model in eval mode on device, vocab, cfg, state)``.

    ``state`` is the whole checkpoint dict (epoch, step, history, best_val_loss, ...).
    Works on a CPU-only machine for checkpoints trained on a GPU.
    """
    ckpt = read_checkpoint(path)
    try:
        cfg = Config.from_dict(ckpt["config"])
        vocab = Vocab.from_dict(ckpt["vocab"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"checkpoint {path} has a config this version cannot read ({exc}); train again with this version") from None
    model = build_from_config(cfg, vocab)
    if type(model).__name__ != ckpt.get("model_class", type(model).__name__):
        raise ValueError(f"checkpoint {path} holds a {ckpt['model_class']}, but its config builds a {type(model).__name__}; train again")
    try:
        model.load_state_dict(ckpt["model_state"])
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {path} does not fit the model its config describes ({str(exc).splitlines()[0]}); train again") from None
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    return model.to(dev).eval(), vocab, cfg, ckpt


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(ckpt: dict, cfg: Config, vocab: Vocab) -> list[str]:
    """Settings in which a checkpoint differs from ``cfg``/``vocab`` (those a resume must not change)."""
    old = _flatten({k: ckpt["config"].get(k, {}) for k in ("data", "model", "train")})
    new = _flatten({k: v for k, v in cfg.to_dict().items() if k in ("data", "model", "train")})
    diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
             if k not in RESUMABLE_SETTINGS and old.get(k) != new.get(k)]
    old_vocab = Vocab.from_dict(ckpt["vocab"])
    if old_vocab != vocab:
        if old_vocab.sizes != vocab.sizes:
            diffs.append(f"vocab sizes {old_vocab.sizes} ({old_vocab.name} bins) -> {vocab.sizes} ({vocab.name} bins)")
        else:
            diffs.append(f"vocab time bins differ ({old_vocab.name} -> {vocab.name}; fitted on other data)")
    return diffs


# ---------------------------------------------------------------- evaluation


def evaluate(model: torch.nn.Module, loader, device: torch.device, ctx=None) -> tuple[float, dict]:
    """Mean loss (nats per note, summed over heads) and per-head nats over a loader."""
    loss, heads, _ = evaluate_counted(model, loader, device, ctx)
    return loss, heads


@torch.no_grad()
def evaluate_counted(model: torch.nn.Module, loader, device: torch.device, ctx=None) -> tuple[float, dict, int]:
    """:func:`evaluate`, plus the number of supervised notes it averaged over."""
    ctx = ctx or nullcontext()
    causal = _unwrap(model).causal
    was_training = model.training
    model.eval()
    total, parts, n = 0.0, {}, 0
    for batch in loader:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with ctx:
            loss, heads = _unwrap(model).loss(batch)
        w = _notes_in(batch, causal)
        total += float(loss) * w
        for f, v in heads.items():
            parts[f] = parts.get(f, 0.0) + float(v) * w
        n += w
    model.train(was_training)
    if n == 0:
        return float("nan"), {}, 0
    return total / n, {f: v / n for f, v in parts.items()}, n


# ---------------------------------------------------------------- training


def train(cfg: Config, cache: TokenCache, out_dir=None, resume: bool = True, progress: bool = True,
          on_epoch: Callable[[dict], None] | None = None, checkpoint_every_s: float = CHECKPOINT_EVERY_S) -> dict:
    """Train the model ``cfg`` describes on ``cache``; returns the history (see :func:`new_history`).

    Writes ``ckpt_last.pt``, ``ckpt_best.pt`` and ``history.json`` to ``out_dir`` (default
    ``cfg.train.out_dir``). ``resume``: continue from ``out_dir/ckpt_last.pt`` when it exists
    (a checkpoint of other settings raises ``ValueError``). Stops after ``cfg.train.epochs``
    epochs, ``max_steps`` optimizer steps or ``time_budget_s`` seconds, whichever comes first;
    a run stopped mid-epoch records a fractional epoch and resumes where it stopped.
    ``on_epoch(history)`` is called after every history entry (e.g. a live loss plot).
    """
    tc = cfg.train
    out_dir = Path(out_dir or tc.out_dir)
    device = resolve_device(tc.device)
    ctx, amp_dtype = autocast_context(device, tc.amp, tc.cpu_bf16)
    distributed.init_from_env()  # joins the process group under torchrun; no-op in a single process
    main = is_main_process()
    if main:  # fail now, not after the first epoch, when checkpoints cannot be written
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=out_dir).close()
        except OSError as exc:
            raise PermissionError(f"cannot write checkpoints to {out_dir} ({exc.strerror}); "
                                  f"set train.out_dir (--out-dir) to a writable folder") from None
        for stale in [*out_dir.glob(".ckpt_*.pt.*.tmp"), *out_dir.glob(f".{HISTORY_FILE}.*.tmp")]:
            stale.unlink(missing_ok=True)  # left by a run killed inside an atomic write; never read
    show = progress and main
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # free speed on Ampere+, no effect on the LSTM's accuracy
        torch.backends.cudnn.allow_tf32 = True
    vocab = cache.vocab

    # Model, data, optimiser. Seeding first makes the initial weights reproducible.
    seed_everything(tc.seed)
    model = build_from_config(cfg, vocab).to(device)
    causal = bool(model.causal)
    window, stride = window_and_stride(cfg, causal)
    train_loader = data.make_loader(cache, "train", window, stride, tc.batch_size, shuffle=True, seed=tc.seed,
                                    num_workers=tc.num_workers, transpose=cfg.data.transpose)
    train_loader = distributed.shard_loader(train_loader, tc.seed)  # this rank's share of each epoch when distributed
    try:
        val_loader = data.make_loader(cache, "validation", window, stride, tc.batch_size, shuffle=False,
                                      num_workers=tc.num_workers)
    except ValueError as exc:  # no validation piece long enough: keep training, judge by the training loss
        val_loader = None
        if show:
            print(f"warning: no validation windows ({exc}); ckpt_best.pt follows the training loss")
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)  # bf16 and fp32 need no scaling
    n_batches = len(train_loader)
    total_steps = tc.epochs * n_batches if not tc.max_steps else min(tc.epochs * n_batches, tc.max_steps)
    warmup_steps = min(tc.warmup_steps, int(MAX_WARMUP_FRACTION * total_steps))
    schedule = {"kind": "warmup_cosine", "warmup_steps": warmup_steps, "total_steps": total_steps,
                "min_lr_fraction": MIN_LR_FRACTION}

    # Training state; everything in it goes into the checkpoint.
    epoch, batch_in_epoch, step = 0, 0, 0  # epoch in progress (0-based), batches of it done, optimizer steps
    history = new_history(vocab.fields)
    best_val_loss = float("inf")
    running = {"loss": 0.0, "notes": 0, "seconds": 0.0}  # since the last history entry
    last_path, best_path = out_dir / CHECKPOINT_LAST, out_dir / CHECKPOINT_BEST

    if resume and last_path.is_file():
        ckpt = read_checkpoint(last_path)
        diffs = config_differences(ckpt, cfg, vocab)
        if diffs:
            raise ValueError(
                f"checkpoint {last_path} was trained with other settings than this run ({'; '.join(diffs)}); "
                f"to start a new run delete it, pass --no-resume (resume=False), or choose another out_dir"
            )
        _unwrap(model).load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(ckpt["scaler"])
        epoch, batch_in_epoch, step = ckpt["epoch"], ckpt["batch_in_epoch"], ckpt["step"]
        history, best_val_loss, running = ckpt["history"], ckpt["best_val_loss"], ckpt["running"]
        _set_rng_state(ckpt["rng"])
        if show:
            print(f"resuming from {last_path} (epoch {epoch + batch_in_epoch / n_batches:.2f}, step {step})")

    def checkpoint(path: Path) -> None:
        if main:
            save_checkpoint(path, model, cfg, vocab, optimizer, scaler=scaler.state_dict(), scheduler=schedule,
                            epoch=epoch, batch_in_epoch=batch_in_epoch, step=step, history=history,
                            best_val_loss=best_val_loss, running=running, rng=_rng_state())

    def limit_reached() -> str | None:
        if tc.max_steps and step >= tc.max_steps:
            return f"train.max_steps={tc.max_steps}"
        if tc.time_budget_s and time.time() - t_start >= tc.time_budget_s:
            return f"train.time_budget_s={tc.time_budget_s:g}"
        return None

    if distributed.is_initialized():  # after resuming: DDP averages gradients over ranks (see distributed.py)
        model = distributed.wrap_model(model, device)
    t_start = time.time()
    stop = limit_reached()
    if epoch >= tc.epochs or stop:
        if show:
            print(f"nothing to train: {last_path} already reached {stop or f'train.epochs={tc.epochs}'}; "
                  f"raise that limit to train on, or pass --no-resume (resume=False) to start over")
        return history
    model.train()
    last_save = time.time()
    while epoch < tc.epochs and not stop:
        train_loader.sampler.set_epoch(epoch)  # the order depends on (seed, epoch) only: resumable
        t_seg = time.time()
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_batches, initial=batch_in_epoch, desc=f"epoch {epoch + 1}/{tc.epochs}", unit="batch", leave=False)
        with torch.random.fork_rng(devices=[]):  # iter() draws a loader seed from the global RNG; keep dropout's
            batches = itertools.islice(iter(train_loader), batch_in_epoch, None)  # stream the same when resuming mid-epoch
        for batch in batches:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            lr = tc.lr * lr_factor(step, warmup_steps, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with ctx:
                loss, _ = distributed.training_loss(model, batch)  # through DDP's forward when distributed
            loss_value = distributed.average(loss.item())  # the global batch's loss on every rank
            if not math.isfinite(loss_value) and not scaler.is_enabled():
                raise ValueError(f"training diverged: loss is {loss_value} at step {step}; lower train.lr (now {tc.lr:g}) "
                                 f"or train.grad_clip (now {tc.grad_clip:g})")
            scaler.scale(loss).backward()
            if tc.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)

            step += 1
            batch_in_epoch += 1
            notes = _notes_in(batch, causal) * distributed.world_size()  # the global batch's notes
            running["loss"] += loss_value * notes
            running["notes"] += notes
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", refresh=False)
            stop = limit_reached()
            if tc.time_budget_s and distributed.any_rank(stop is not None):  # all ranks stop at the same step
                stop = stop or f"train.time_budget_s={tc.time_budget_s:g}"
            if stop:
                break
            if checkpoint_every_s and time.time() - last_save >= checkpoint_every_s and batch_in_epoch < n_batches:
                running["seconds"] += time.time() - t_seg
                t_seg = time.time()
                checkpoint(last_path)  # mid-epoch: resumes at this batch
                last_save = time.time()
        if bar is not None:
            bar.close()
        running["seconds"] += time.time() - t_seg
        if batch_in_epoch >= n_batches:
            epoch, batch_in_epoch = epoch + 1, 0

        # Evaluate, record one history entry, save.
        t_eval = time.time()
        train_loss = running["loss"] / max(running["notes"], 1)
        val_loss, val_heads = evaluate(model, val_loader, device, ctx) if val_loader is not None else (float("nan"), {})
        model.train()
        history["epoch"].append(epoch + batch_in_epoch / n_batches)
        history["step"].append(step)
        history["train_loss"].append(train_loss)
        history["val_loss"].append(val_loss)
        for f in vocab.fields:
            history[f"val_{f}"].append(val_heads.get(f, float("nan")))
        history["lr"].append(tc.lr * lr_factor(max(step - 1, 0), warmup_steps, total_steps))
        history["notes_per_s"].append(running["notes"] / max(running["seconds"], 1e-9))
        history["seconds"].append(running["seconds"] + time.time() - t_eval)
        running = {"loss": 0.0, "notes": 0, "seconds": 0.0}
        score = val_loss if math.isfinite(val_loss) else train_loss
        improved = score < best_val_loss
        best_val_loss = min(best_val_loss, score)
        # ckpt_last.pt goes last: a run killed between these writes resumes from the previous
        # ckpt_last.pt and redoes this epoch, rewriting ckpt_best.pt and history.json (else a kill
        # right after ckpt_last.pt would lose this epoch's best checkpoint and history entry).
        if improved:
            checkpoint(best_path)
        if main:
            _write_json(out_dir / HISTORY_FILE, history)
        checkpoint(last_path)
        last_save = time.time()
        if main:
            if show:
                heads = "  ".join(f"{f} {v:.3f}" for f, v in val_heads.items())
                print(f"epoch {history['epoch'][-1]:.2f}/{tc.epochs}  step {step}  train {train_loss:.4f}  "
                      f"val {val_loss:.4f} ({heads})  lr {history['lr'][-1]:.2e}  "
                      f"{history['notes_per_s'][-1]:,.0f} notes/s{'  *best' if improved else ''}")
            if on_epoch is not None:
                on_epoch(history)
    if stop and show:
        print(f"stopped at {stop}; run again with a higher limit to continue from {last_path}")
    return history
