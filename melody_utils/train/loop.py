"""The training loop and the loss history.

One function, :func:`train`, one code path for CPU and GPU (as in nanoGPT): on CUDA the
forward pass runs under ``torch.autocast`` (bf16 on GPUs that compute it natively, else fp16 with a gradient
scaler); on the CPU the same lines run in plain fp32 under a ``nullcontext``.

- Optimiser: Adam at ``cfg.train.lr``, linear warm-up (``warmup_steps``, at most a fifth of
  the run) then cosine decay to a tenth of the peak (:mod:`melody_utils.train.schedule`), global grad-norm clipping. With a
  ``time_budget_s`` the cosine ends with the budget too (whichever of steps and seconds is
  further along), so a run stopped by its budget has annealed rather than stopping at the peak.
  Loss: ``model.loss(batch)``, the sum over heads of the mean cross-entropy (nats per note).
- Data: causal models learn from windows of ``cfg.data.window`` notes every ``cfg.data.stride``, or
  from streams carrying their state (``train.carry_state``, :mod:`melody_utils.data.streams`); the seed's
  window->next models from windows of ``cfg.data.seed_window`` notes at stride 1, as the seed did.
- Every epoch: a validation pass and one history entry (``history.json``). ``ckpt_last.pt`` is
  written every ``CHECKPOINT_EVERY_S`` seconds (at an epoch's end or inside one) and at the run's
  end, ``ckpt_best.pt`` (the lowest validation loss, kept in memory until then) just before it
  (:mod:`melody_utils.train.saving`: the writes cost more than the steps of a short epoch on a GPU).
  All files are written to a temp file and renamed, so a run killed at any moment keeps its last
  complete checkpoint, and its best one.
- Early stopping: with ``train.patience`` > 0 the run stops when the validation loss has not
  improved for that many epochs in a row (:func:`evaluations_since_best`); ``ckpt_best.pt`` holds the best.
- Resume: when ``out_dir/ckpt_last.pt`` exists, training continues from it (mid-epoch
  included) and the loss curve goes on exactly as an uninterrupted run's would on a CPU.
  ``time_budget_s`` counts the seconds of every session of a run (the checkpoint keeps them),
  and a budgeted schedule follows the clock: such runs are not reproducible step for step.
- Seeded: torch, numpy, Python's ``random`` and the data order follow ``cfg.train.seed``.

Where a run stands (step, epoch, position in the epoch, best validation loss, history, random
generators' state) is one :class:`TrainState`, saved with every checkpoint
(:mod:`melody_utils.model.checkpoint`); the loop's steps are named functions: :func:`get_lr`,
:func:`train_step`, :func:`estimate_loss`, :func:`should_stop`, :func:`save`. Devices, autocast
and seeding live in :mod:`melody_utils.device`.

Several GPUs: the same function under ``torchrun`` (see :mod:`melody_utils.train.distributed`); writes
(checkpoints, history, progress) happen only where :func:`melody_utils.train.distributed.is_main_process` holds.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..data import windows as data
from . import distributed
from ..data import streams
from ..model.checkpoint import (CHECKPOINT_BEST, CHECKPOINT_LAST, INFERENCE, build_checked, checkpoint_bytes,
                                config_differences, read_checkpoint, save_checkpoint)
from ..config import Config, TrainConfig
from ..data.corpus import TokenCache, resolve_source
from ..data.sources import source_licence
from ..device import autocast_context, resolve_device, rng_state, seed_everything, set_rng_state
from ..files import atomic_write_bytes
from . import lock as locks
from .saving import WRITE_SHARE, Cadence, Snapshot, snapshot
from .schedule import get_lr, make_schedule, projected_steps
from .validation import notes_in, validation_loss
from ..music.tokens import Vocab, vocab_differences

HISTORY_FILE = "history.json"  # per-epoch losses, lr, speed (lists of floats, for plots.plot_history)
CHECKPOINT_EVERY_S = 60.0  # ckpt_last.pt this often (and at the end): a lost runtime loses at most about this much


# ---------------------------------------------------------------- small helpers


def window_and_stride(cfg: Config, causal: bool) -> tuple[int, int]:
    """Training windows: (window, stride) for causal models, (seed_window, 1) for window->next ones."""
    return (cfg.data.window, cfg.data.stride) if causal else (cfg.data.seed_window, 1)


def _write_json(path: Path, obj) -> Path:
    text = json.dumps(obj, indent=1)
    return atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text))


def new_history(fields) -> dict:
    """Empty history: one list per curve, one entry per evaluation (normally per epoch)."""
    keys = ["epoch", "step", "train_loss", "val_loss", *(f"val_{f}" for f in fields), "lr", "notes_per_s", "seconds"]
    return {k: [] for k in keys}


def _new_running() -> dict:
    return {"loss": 0.0, "notes": 0, "seconds": 0.0}


# ---------------------------------------------------------------- training state and steps


@dataclass
class TrainState:
    """Where a run stands. Everything here goes into the checkpoint, under the same names."""

    epoch: int = 0  # epoch in progress (0-based)
    batch_in_epoch: int = 0  # batches of that epoch done: a resumed run skips them
    step: int = 0  # optimizer steps taken
    history: dict = field(default_factory=dict)  # see new_history: one entry per evaluation
    best_val_loss: float = float("inf")  # the lowest validation (else training) loss so far
    running: dict = field(default_factory=_new_running)  # loss, notes and seconds since the last history entry
    trained_s: float = 0.0  # seconds of earlier sessions of this run (time_budget_s counts them); saved by save()

    KEYS = ("epoch", "batch_in_epoch", "step", "history", "best_val_loss", "running")

    def to_checkpoint(self) -> dict:
        """The checkpoint's training-state entries, the random generators' state (``rng``) included."""
        return {**{k: getattr(self, k) for k in self.KEYS}, "rng": rng_state()}

    @classmethod
    def from_checkpoint(cls, ckpt: dict, path) -> "TrainState":
        """The state a checkpoint saved; also restores the random generators."""
        missing = [k for k in (*cls.KEYS, "rng", "optimizer") if ckpt.get(k) is None]
        if missing:
            raise ValueError(f"checkpoint {path} holds no training state ({', '.join(missing)} missing), so training "
                             f"cannot resume from it; pass --no-resume (resume=False) or choose another out_dir")
        set_rng_state(ckpt["rng"])
        return cls(**{k: ckpt[k] for k in cls.KEYS}, trained_s=ckpt.get("trained_s", 0.0))

    def epochs_done(self, n_batches: int) -> float:
        return self.epoch + self.batch_in_epoch / n_batches


@dataclass
class Run:
    """The fixed parts of one training run, built by :func:`_setup`."""

    cfg: Config
    vocab: object
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ctx: object  # autocast context (nullcontext on a plain-fp32 CPU)
    device: torch.device
    train_loader: object
    val_loader: object  # None when no validation piece is long enough
    schedule: dict
    out_dir: Path
    main: bool  # this process writes files (rank 0, or a single process)
    show: bool  # the progress bar and per-epoch lines
    carry: bool = False  # train.carry_state on a causal model: streams, the state carried between batches
    carried: tuple | None = None  # the state the last batch left (None: zero; so after a resume)
    t_start: float = 0.0
    bar: object = None  # one progress bar (tqdm) for the whole run, in optimizer steps; None when not shown
    licence: str = ""  # the training corpus's licence, written into every checkpoint (data.sources.source_licence)
    clock: Callable[[], float] = time.time  # seconds now; tests pass a fake one
    lock: locks.OutDirLock | None = None  # out_dir's lock, held by the main process (lock.py)
    cadence: Cadence | None = None  # when ckpt_last.pt is due (saving.py)
    best: Snapshot | None = None  # the best model since the last write: ckpt_best.pt at the next one

    @property
    def n_batches(self) -> int:
        return len(self.train_loader)


def _make_loaders(cfg: Config, cache: TokenCache, causal: bool, show: bool):
    """(train loader, this rank's share when distributed; validation loader or None)."""
    tc = cfg.train
    window, stride = window_and_stride(cfg, causal)
    if causal and tc.carry_state and cfg.data.perform:
        raise ValueError("data.perform (training windows played like a performer) works with independent windows; "
                         "set train.carry_state=false, or data.perform=0")
    if causal and tc.carry_state:  # this rank's streams
        train_loader = streams.make_stream_loader(cache, "train", window, tc.batch_size, tc.seed, cfg.data.transpose,
                                                  cfg.data.composer_dropout, tc.epoch_windows, distributed.rank(),
                                                  distributed.world_size(), tc.num_workers)
    else:
        train_loader = data.make_loader(cache, "train", window, stride, tc.batch_size, shuffle=True, seed=tc.seed,
                                        num_workers=tc.num_workers, transpose=cfg.data.transpose,
                                        epoch_windows=tc.epoch_windows, composer_dropout=cfg.data.composer_dropout,
                                        perform=cfg.data.perform)
        train_loader = distributed.shard_loader(train_loader, tc.seed)  # this rank's share of each epoch when distributed
    try:
        val_loader = data.make_loader(cache, "validation", window, stride, tc.batch_size, shuffle=False,
                                      num_workers=tc.num_workers)
    except ValueError as exc:  # no validation piece long enough: keep training, judge by the training loss
        val_loader = None
        if show:
            print(f"warning: no validation windows ({exc}); ckpt_best.pt follows the training loss")
    return train_loader, val_loader


def _setup(cfg: Config, cache: TokenCache, out_dir: Path, progress: bool, clock: Callable[[], float]) -> Run:
    """Device, model (seeded: reproducible initial weights), loaders, optimiser and schedule."""
    tc = cfg.train
    if tc.patience < 0:
        raise ValueError(f"train.patience must be >= 0 epochs (0 = no early stopping), got {tc.patience}")
    device = resolve_device(tc.device)
    ctx, amp_dtype = autocast_context(device, tc.amp, tc.cpu_bf16)
    distributed.init_from_env()  # joins the process group under torchrun; no-op in a single process
    main = distributed.is_main_process()
    show = progress and main
    if show and device.type == "cpu" and amp_dtype == torch.bfloat16:
        print(f"bf16 autocast on this CPU (train.cpu_bf16={tc.cpu_bf16!s}; it multiplies bf16 natively); "
              "train.cpu_bf16=false trains in fp32")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # free speed on Ampere+, no effect on the LSTM's accuracy
        torch.backends.cudnn.allow_tf32 = True
    seed_everything(tc.seed)
    model = build_checked(cfg, cache.vocab, "the run's settings").to(device)
    train_loader, val_loader = _make_loaders(cfg, cache, bool(model.causal), show)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)  # bf16 and fp32 need no scaling
    schedule = make_schedule(tc, len(train_loader))
    licence = source_licence(resolve_source(cfg.data))
    size = checkpoint_bytes(model)  # the folder is checked and locked last: nothing after it can fail
    lock = locks.claim(out_dir, {CHECKPOINT_LAST: size, CHECKPOINT_BEST: size, HISTORY_FILE: 0}) if main else None
    return Run(cfg, cache.vocab, model, optimizer, scaler, ctx, device, train_loader, val_loader, schedule, out_dir,
               main, show, tc.carry_state and model.causal, clock=clock, lock=lock, licence=licence)


def _resume(run: Run, path: Path) -> TrainState:
    """Model, optimiser, scaler and state from ``path``; ValueError when it was trained with other settings."""
    ckpt = read_checkpoint(path)
    if ckpt.get("kind") == INFERENCE:
        raise ValueError(f"{path} is an inference checkpoint (weights only, no optimizer state), so training cannot "
                         f"resume from it; to train from its weights pass --init {path} (train(init=...)) with another out_dir")
    diffs = config_differences(ckpt, run.cfg, run.vocab)
    if diffs:
        raise ValueError(
            f"checkpoint {path} was trained with other settings than this run ({'; '.join(diffs)}); "
            f"to start a new run delete it, pass --no-resume (resume=False), or choose another out_dir"
        )
    state = TrainState.from_checkpoint(ckpt, path)
    distributed.unwrap(run.model).load_state_dict(ckpt["model_state"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    if ckpt.get("scaler") and run.scaler.is_enabled():
        run.scaler.load_state_dict(ckpt["scaler"])
    if run.show:
        print(f"resuming from {path} (epoch {state.epochs_done(run.n_batches):.2f}, step {state.step})")
    return state


def _load_init(run: Run, path: Path) -> None:
    """Start from the weights of checkpoint ``path`` (fine-tuning); the optimizer and schedule stay fresh."""
    ckpt = read_checkpoint(path)
    diffs = vocab_differences(Vocab.from_dict(ckpt["vocab"]), run.vocab)
    if diffs:
        raise ValueError(f"init checkpoint {path} has another vocabulary than the corpus ({'; '.join(diffs)}); "
                         f"tokenize the corpus with it: corpus.prepare(cfg.data, vocab=...) (the CLI's --init does)")
    model = distributed.unwrap(run.model)
    weights = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["model_state"].items()}
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise ValueError(f"init checkpoint {path} does not fit this run's model ({str(exc).splitlines()[0]}); "
                         f"take its model settings (checkpoint.init_config)") from None
    if run.show:
        print(f"starting from the weights of {path} (fresh optimizer and schedule)")


def _entries(run: Run, state: TrainState) -> dict:
    """A checkpoint's entries besides the model and optimizer: scaler, training state, seconds trained."""
    return {"scaler": run.scaler.state_dict(), **state.to_checkpoint(), "trained_s": elapsed_s(run, state),
            "licence": run.licence}


def save(run: Run, state: TrainState, path: Path, frozen: Snapshot | None = None) -> None:
    """One checkpoint of the model, optimiser and training state now, or of ``frozen`` (a :func:`snapshot`
    of an earlier moment); only the main process writes."""
    if run.main:
        if run.lock is not None:
            run.lock.refresh()  # still ours: never overwrite the checkpoints of a run that took the folder over
        model, optimizer, entries = ((frozen.model, frozen.optimizer, frozen.entries) if frozen is not None
                                     else (distributed.unwrap(run.model), run.optimizer, _entries(run, state)))
        save_checkpoint(path, model, run.cfg, run.vocab, optimizer, scheduler=run.schedule, device=str(run.device),
                        **entries)


def write_checkpoints(run: Run, state: TrainState) -> None:
    """``ckpt_best.pt`` (when a better model than the one on disk is waiting in memory), then ``ckpt_last.pt``."""
    t0 = run.clock()
    if run.best is not None:
        save(run, state, run.out_dir / CHECKPOINT_BEST, run.best)
        run.best = None
    save(run, state, run.out_dir / CHECKPOINT_LAST)
    run.cadence.wrote(run.clock() - t0)


def evaluations_since_best(history: dict) -> int:
    """History entries after the one with the lowest validation loss (the training loss where validation is NaN)."""
    scores = [v if math.isfinite(v) else t for v, t in zip(history.get("val_loss", []), history.get("train_loss", []))]
    return len(scores) - 1 - min(range(len(scores)), key=scores.__getitem__) if scores else 0


def elapsed_s(run: Run, state: TrainState) -> float:
    """Seconds of training in this run, its earlier sessions included (what time_budget_s counts)."""
    return state.trained_s + run.clock() - run.t_start


def time_fraction(run: Run, state: TrainState) -> float:
    """Share of ``train.time_budget_s`` spent (0 without a budget): the lr schedule follows it too."""
    budget = run.cfg.train.time_budget_s
    return elapsed_s(run, state) / budget if budget else 0.0


def should_stop(tc: TrainConfig, state: TrainState, elapsed: float) -> str | None:
    """The limit the run has reached (``"train.max_steps=60"``) after ``elapsed`` seconds, or None to go on."""
    if tc.max_steps and state.step >= tc.max_steps:
        return f"train.max_steps={tc.max_steps}"
    if tc.time_budget_s and elapsed >= tc.time_budget_s:
        return f"train.time_budget_s={tc.time_budget_s:g}"
    if tc.patience and evaluations_since_best(state.history) >= tc.patience:
        return f"train.patience={tc.patience}"
    return None


def train_step(run: Run, batch: dict, lr: float, step: int) -> float:
    """One optimizer step on ``batch`` at learning rate ``lr``; returns the global batch's loss."""
    tc = run.cfg.train
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    with run.ctx:  # through DDP's forward when distributed
        if run.carry:  # truncated back-propagation: from the state the batch before left (streams.py)
            loss, _, run.carried = distributed.training_loss(run.model, batch, "stream_loss", state=run.carried)
        else:
            loss, _ = distributed.training_loss(run.model, batch)
    loss_value = distributed.average(loss.item())  # the global batch's loss on every rank
    if not math.isfinite(loss_value) and not run.scaler.is_enabled():
        raise ValueError(f"training diverged: loss is {loss_value} at step {step}; lower train.lr (now {tc.lr:g}) "
                         f"or train.grad_clip (now {tc.grad_clip:g})")
    run.scaler.scale(loss).backward()
    if tc.grad_clip:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), tc.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    return loss_value


def estimate_loss(run: Run, state: TrainState) -> tuple[float, dict, float]:
    """(training loss since the last entry, validation loss, its per-head parts) - NaN without validation."""
    train_loss = state.running["loss"] / max(state.running["notes"], 1)
    if run.val_loader is None:
        return train_loss, float("nan"), {}
    val_loss, val_heads = validation_loss(run.model, run.val_loader, run.device, run.ctx)
    return train_loss, val_loss, val_heads


def record(run: Run, state: TrainState, t_eval: float) -> bool:
    """Evaluate, append one history entry, update the best loss; True when this entry is a new best."""
    train_loss, val_loss, val_heads = estimate_loss(run, state)
    run.model.train()
    h, running = state.history, state.running
    h["epoch"].append(state.epochs_done(run.n_batches))
    h["step"].append(state.step)
    h["train_loss"].append(train_loss)
    h["val_loss"].append(val_loss)
    for f in distributed.unwrap(run.model).fields:  # the heads the model has: window models predict no velocity
        h[f"val_{f}"].append(val_heads.get(f, float("nan")))  # NaN without validation
    h["lr"].append(run.optimizer.param_groups[0]["lr"])  # the last step's
    h["notes_per_s"].append(running["notes"] / max(running["seconds"], 1e-9))
    h["seconds"].append(running["seconds"] + run.clock() - t_eval)
    state.running = _new_running()
    score = val_loss if math.isfinite(val_loss) else train_loss
    improved = score < state.best_val_loss
    state.best_val_loss = min(state.best_val_loss, score)
    if run.show:
        heads = "  ".join(f"{f} {v:.3f}" for f, v in val_heads.items())
        (run.bar.write if run.bar is not None else print)(f"epoch {h['epoch'][-1]:.2f}/{run.cfg.train.epochs}  step {state.step}  train {train_loss:.4f}  "
              f"val {val_loss:.4f} ({heads})  lr {h['lr'][-1]:.2e}  "
              f"{h['notes_per_s'][-1]:,.0f} notes/s{'  *best' if improved else ''}")
    return improved


def _end_of_epoch(run: Run, state: TrainState, on_epoch, stop: str | None) -> str | None:
    """Record one history entry, write history.json and, when due or at the run's end, the checkpoints;
    returns the limit that ends the run (``stop``, the epochs, or the patience), if any."""
    improved = record(run, state, run.clock())
    stop = stop or should_stop(run.cfg.train, state, elapsed_s(run, state))
    if improved and run.main:
        run.best = snapshot(distributed.unwrap(run.model), run.optimizer, _entries(run, state))
    if run.main:
        _write_json(run.out_dir / HISTORY_FILE, state.history)
    # ckpt_last.pt goes last: a run killed between the writes resumes from the previous ckpt_last.pt
    # and redoes the epochs since, rewriting ckpt_best.pt and history.json
    if stop or state.epoch >= run.cfg.train.epochs or run.cadence.due(epoch_end=True):
        write_checkpoints(run, state)
    if run.main and on_epoch is not None:
        on_epoch(state.history)
    return stop


def _run_epoch(run: Run, state: TrainState) -> str | None:
    """Train on the rest of the current epoch; returns the limit that stopped it, if any."""
    tc, n_batches, causal = run.cfg.train, run.n_batches, distributed.unwrap(run.model).causal
    run.train_loader.sampler.set_epoch(state.epoch)  # the order depends on (seed, epoch) only: resumable
    t_seg = run.clock()
    bar = run.bar
    if bar is not None:
        bar.set_description(f"epoch {state.epoch + 1}/{tc.epochs}", refresh=False)
    with torch.random.fork_rng(devices=[]):  # iter() draws a loader seed from the global RNG; keep dropout's
        batches = itertools.islice(iter(run.train_loader), state.batch_in_epoch, None)  # stream the same when resuming mid-epoch
    stop = None
    for batch in batches:
        batch = {k: v.to(run.device, non_blocking=True) for k, v in batch.items()}
        lr = get_lr(tc.lr, state.step, run.schedule, time_fraction(run, state))
        loss_value = train_step(run, batch, lr, state.step)
        state.step += 1
        state.batch_in_epoch += 1
        notes = notes_in(batch, causal) * distributed.world_size()  # the global batch's notes
        state.running["loss"] += loss_value * notes
        state.running["notes"] += notes
        if bar is not None:  # counting to whichever ends the run first: its steps or its time budget
            bar.total = projected_steps(run.schedule["total_steps"], state.step, elapsed_s(run, state), tc.time_budget_s)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", refresh=False)
        stop = should_stop(tc, state, elapsed_s(run, state))
        if tc.time_budget_s and distributed.any_rank(stop is not None):  # all ranks stop at the same step
            stop = stop or f"train.time_budget_s={tc.time_budget_s:g}"
        if stop:
            break
        if state.batch_in_epoch < n_batches and run.cadence.due(epoch_end=False):
            state.running["seconds"] += run.clock() - t_seg
            write_checkpoints(run, state)  # mid-epoch: resumes at this batch
            t_seg = run.clock()
    state.running["seconds"] += run.clock() - t_seg
    if state.batch_in_epoch >= n_batches:
        state.epoch, state.batch_in_epoch = state.epoch + 1, 0
    return stop


def train(cfg: Config, cache: TokenCache, out_dir=None, resume: bool = True, progress: bool = True,
          on_epoch: Callable[[dict], None] | None = None, checkpoint_every_s: float | None = None,
          init=None, clock: Callable[[], float] = time.time) -> dict:
    """Train the model ``cfg`` describes on ``cache``; returns the history (see :func:`new_history`).

    Writes ``ckpt_last.pt``, ``ckpt_best.pt`` and ``history.json`` to ``out_dir`` (default
    ``cfg.train.out_dir``). ``resume``: continue from ``out_dir/ckpt_last.pt`` when it exists
    (a checkpoint of other settings raises ``ValueError``). Stops after ``cfg.train.epochs``
    epochs, ``max_steps`` optimizer steps or ``time_budget_s`` seconds, whichever comes first;
    a run stopped mid-epoch records a fractional epoch and resumes where it stopped.
    ``on_epoch(history)`` is called after every history entry (e.g. a live loss plot). ``train.patience``
    > 0 stops it earlier, when the validation loss has not improved for that many epochs.
    ``checkpoint_every_s``: ``ckpt_last.pt`` this often, and at the end (0: at every epoch's end); None
    (the default): every ``CHECKPOINT_EVERY_S`` and at most ``WRITE_SHARE`` of the time (:mod:`melody_utils.train.saving`).
    ``init``: a checkpoint whose weights a new run starts from (fine-tuning; ``cache`` tokenized
    with its vocabulary); a resumed run continues from its own ``ckpt_last.pt`` instead.
    ``clock``: seconds now (tests pass a fake one to run a time budget without waiting).
    """
    run = _setup(cfg, cache, Path(out_dir or cfg.train.out_dir), progress, clock)
    try:
        return _train_run(run, resume, init, on_epoch, checkpoint_every_s, clock)
    finally:
        if run.lock is not None:
            run.lock.release()


def _train_run(run: Run, resume: bool, init, on_epoch, checkpoint_every_s: float, clock) -> dict:
    """:func:`train` once the run is set up (and its folder locked)."""
    tc = run.cfg.train
    last_path = run.out_dir / CHECKPOINT_LAST
    if resume and last_path.is_file():
        state = _resume(run, last_path)
    else:
        state = TrainState(history=new_history(distributed.unwrap(run.model).fields))
        if init is not None:
            _load_init(run, Path(init))
    if distributed.is_initialized():  # after resuming: DDP averages gradients over ranks (see distributed.py)
        run.model = distributed.wrap_model(run.model, run.device)
    run.t_start = clock()
    run.cadence = (Cadence(CHECKPOINT_EVERY_S, clock, WRITE_SHARE) if checkpoint_every_s is None
                   else Cadence(checkpoint_every_s, clock))
    stop = should_stop(tc, state, elapsed_s(run, state))
    if (state.epoch >= tc.epochs or stop) and not state.step:  # a new run: its own settings leave nothing to do
        raise ValueError(f"nothing to train: {stop or f'train.epochs={tc.epochs}'} leaves no step to take; "
                         f"raise it (--epochs, --max-steps, --time-budget)")
    if state.epoch >= tc.epochs or stop:
        if run.show:
            print(f"nothing to train: {last_path} already reached {stop or f'train.epochs={tc.epochs}'}; "
                  f"raise that limit to train on, or pass --no-resume (resume=False) to start over")
        return state.history
    run.model.train()
    if run.show:  # one bar for the whole run, not one per epoch
        run.bar = tqdm(total=run.schedule["total_steps"], initial=state.step, unit="step")
    while state.epoch < tc.epochs and not stop:
        stop = _end_of_epoch(run, state, on_epoch, _run_epoch(run, state))
    if run.bar is not None:
        run.bar.total = run.bar.n  # stopped: the bar ends full, whichever limit stopped it
        run.bar.close()
    if stop and run.show:
        print(_stop_message(stop, state, last_path))
    return state.history


def _stop_message(stop: str, state: TrainState, last_path: Path) -> str:
    if not stop.startswith("train.patience"):
        return f"stopped at {stop}; run again with a higher limit to continue from {last_path}"
    h = state.history
    best = len(h["epoch"]) - 1 - evaluations_since_best(h)
    return (f"early stopping ({stop}): no better validation loss in the last {evaluations_since_best(h)} epochs; "
            f"the best, {state.best_val_loss:.4f} nats/note at epoch {h['epoch'][best]:.2f}, is in {last_path.with_name(CHECKPOINT_BEST)}")
