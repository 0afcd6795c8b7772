"""Training on several GPUs (or CPU processes) with DistributedDataParallel.

Launch the usual training command under ``torchrun``; nothing else changes::

    python -m melody_utils prepare --preset colab            # build the token cache once
    torchrun --standalone --nproc_per_node 4 -m melody_utils train --preset colab

``torchrun`` starts one process per GPU and sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``.
:func:`train.train <melody_utils.train.loop.train>` calls :func:`init_from_env`, which joins the
process group (NCCL on CUDA, gloo on the CPU) and pins each process to GPU ``LOCAL_RANK``; in a
plain single-process run it does nothing. Then:

- the model is wrapped in ``DistributedDataParallel`` (:func:`wrap_model`): gradients are
  averaged over processes after every backward pass, so every rank keeps identical weights;
- with ``train.carry_state`` (streams of consecutive windows, :mod:`melody_utils.data.streams`) the
  ``W`` ranks share ``W * batch_size`` streams and each trains on its own ``batch_size`` of them;
- otherwise each rank reads its own shard of the training windows (:class:`EpochShardSampler`): rank ``r``
  of ``W`` takes windows ``r, r + W, r + 2W, ...`` of the single-process epoch order, and
  ``set_epoch`` reshuffles every epoch;
- ``train.batch_size`` is per process: the global batch is ``W * batch_size``. Rank ``r``'s
  batch ``k`` holds global positions ``W * (k * B + j) + r``, so the ``W`` shards of batch ``k``
  are exactly the single-process batch ``k`` of size ``W * B``, and (with dropout 0) training on
  W processes with batch B follows one process with batch ``W * B`` up to the order of float
  additions in the gradient all-reduce (tests/test_distributed.py checks this);
- only rank 0 writes checkpoints and ``history.json`` and prints progress; the training loss in
  the history is averaged over all ranks; validation runs on every rank over the whole
  validation split (identical weights give identical results, and no collective is needed).

Dropout masks are drawn from each rank's own generator, seeded alike; the ranks' masks fall on
different windows, so this costs no correctness, only the exact match with a single process.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from ..data.windows import EpochShuffle
from ..model.lstm import unwrap  # noqa: F401 (distributed.unwrap, used by the training loop)

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")  # set by torchrun for every process


@dataclass
class DistInfo:
    rank: int = 0  # this process, 0..world_size-1
    world_size: int = 1  # number of processes
    local_rank: int = 0  # this process on its machine: the GPU it uses
    backend: str = ""  # "nccl", "gloo", or "" when not distributed


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0, and always in a single-process run: the process that writes files."""
    return rank() == 0


def init_from_env(backend: str | None = None, timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group described by torchrun's ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``.

    Does nothing (and returns rank 0 of 1) when ``WORLD_SIZE`` is unset or 1. Idempotent: a
    group already initialised (e.g. by the caller) is used as it is. ``backend``: default
    ``"nccl"`` when CUDA is available, else ``"gloo"``. On CUDA, selects GPU ``LOCAL_RANK``, so
    ``train.device="auto"``/``"cuda"`` means this process's own GPU.
    """
    if is_initialized():
        return DistInfo(rank(), world_size(), int(os.environ.get("LOCAL_RANK", rank())), dist.get_backend())
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank_ = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", rank_))
    except ValueError:
        raise ValueError(
            f"RANK/WORLD_SIZE/LOCAL_RANK must be integers, got {[os.environ.get(k) for k in ENV_VARS]}; "
            f"start distributed runs with `torchrun --nproc_per_node N -m melody_utils train`"
        ) from None
    if world <= 1:
        return DistInfo()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed; run a single process")
    if not 0 <= rank_ < world:
        raise ValueError(f"RANK={rank_} must lie in 0..WORLD_SIZE-1={world - 1}")
    if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
        raise ValueError("WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set; launch with torchrun, which sets them")
    cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if cuda else "gloo")
    if backend == "nccl":
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local} but this machine has {torch.cuda.device_count()} GPU(s); "
                             f"use --nproc_per_node <= {torch.cuda.device_count()}")
        torch.cuda.set_device(local)  # before init: NCCL binds this process to its own GPU
    dist.init_process_group(backend=backend, rank=rank_, world_size=world, timeout=timedelta(seconds=timeout_s))
    return DistInfo(rank_, world, local, backend)


def cleanup() -> None:
    """Leave the process group (end of a distributed run)."""
    if is_initialized():
        dist.destroy_process_group()


class _LossForward(nn.Module):
    """Makes ``model.loss(batch)`` the forward pass, so DDP can wrap it.

    DDP averages gradients only for backward passes of outputs its own ``forward`` produced
    (it arms its gradient hooks there); calling ``ddp.module.loss`` directly would train each
    rank on its own gradients, silently. Our models' training entry point is ``.loss``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.module = model  # unwrap(): ddp.module.module is the model

    def forward(self, batch: dict, method: str = "loss", **kwargs):
        return getattr(self.module, method)(batch, **kwargs)


def wrap_model(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    """``model`` wrapped for training: ``wrapped(batch)`` returns ``model.loss(batch)`` with gradients averaged."""
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DistributedDataParallel(_LossForward(model), device_ids=ids)


def training_loss(model: nn.Module, batch: dict, method: str = "loss", **kwargs):
    """``model.loss(batch)`` = ``(loss, heads)`` for one training batch, through DDP's forward when
    wrapped; ``method="stream_loss"`` with ``state=...`` (a carried state, ``train.carry_state``)
    returns ``(loss, heads, final state)``."""
    if isinstance(model, DistributedDataParallel):
        return model(batch, method, **kwargs)
    return getattr(model, method)(batch, **kwargs)


def average(value: float) -> float:
    """Mean of a Python number over all ranks (the value itself in a single process)."""
    if not is_initialized():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return float(t.item()) / world_size()


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank: ranks must stop at the same step."""
    if not is_initialized():
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


class EpochShardSampler(DistributedSampler):
    """This rank's share of the single-process epoch order (``data.EpochShuffle``'s permutation).

    As torch's ``DistributedSampler``: the order is padded (by wrapping around) to a multiple of
    ``num_replicas`` so every rank gets the same number of windows, rank ``r`` takes every
    ``num_replicas``-th window from ``r``, and ``set_epoch`` reshuffles. Only the permutation
    differs: it is the one a single process uses, so a W-rank run and a one-process run with a
    W times larger batch see the same global batches.
    """

    def __init__(self, dataset, seed: int = 0, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, sample: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.sample = min(sample, len(dataset)) if sample and shuffle else 0  # an epoch of a sample (train.epoch_windows)
        if self.sample:
            self.num_samples = math.ceil(self.sample / self.num_replicas)
            self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):  # the dataset's per-epoch transpositions
            self.dataset.set_epoch(epoch)

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            order = EpochShuffle(n, self.seed, sample=self.sample)
            order.set_epoch(self.epoch)
            indices = np.fromiter(iter(order), dtype=np.int64, count=len(order))
        else:
            indices = np.arange(n, dtype=np.int64)
        indices = np.resize(indices, self.total_size)  # pad by wrapping around (np.resize repeats)
        return iter(indices[self.rank : self.total_size : self.num_replicas].tolist())


def shard_loader(loader: DataLoader, seed: int, shuffle: bool = True) -> DataLoader:
    """The same loader over this rank's shard (an :class:`EpochShardSampler`), when distributed."""
    if not is_initialized():
        return loader
    sampler = EpochShardSampler(loader.dataset, seed=seed, shuffle=shuffle, sample=getattr(loader.sampler, "sample", 0))
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler, shuffle=False,
                      drop_last=loader.drop_last, num_workers=loader.num_workers, collate_fn=loader.collate_fn)
