"""Where the work runs: device choice, autocast (mixed precision), CPU bf16 detection, seeding and
the thread pin of generation.

One code path serves CPU and GPU (as in nanoGPT): :func:`autocast_context` returns a
``nullcontext`` for plain fp32 on the CPU and ``torch.autocast`` on CUDA. Every bf16 check goes
through :func:`cpu_flags`, so a test stands in a CPU without native bf16 by patching that one
function. :func:`seed_everything`, :func:`rng_state` and :func:`set_rng_state` seed and save the
random generators training draws from (Python, numpy, torch, CUDA), so a resumed run goes on
exactly as an uninterrupted one.

:func:`single_threaded` runs generation with one BLAS/OpenMP thread (numpy's and torch's): its
matrix products are tiny (a batch of notes times the LSTM's weights), and two threads splitting
them wait on each other, which on a machine busy with other work made generation many times slower
(docs/benchmarks.md, "Generation on a loaded machine").
"""

from __future__ import annotations

import functools
import random
from contextlib import contextmanager, nullcontext

import numpy as np
import torch

from .config import cpu_bf16_setting


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


def cpu_bf16_wanted(setting) -> bool:
    """``train.cpu_bf16`` -> whether a CPU run trains under bf16 autocast: ``"auto"`` where the CPU multiplies
    bf16 natively (:func:`cpu_has_native_bf16`), True/False (or "true"/"false", as ``--set`` gives them) as said;
    anything else is a ValueError naming the setting (:func:`melody_utils.config.cpu_bf16_setting`)."""
    value = cpu_bf16_setting(setting)
    return cpu_has_native_bf16() if value == "auto" else value


def autocast_context(device: torch.device, amp: bool = True, cpu_bf16: bool | str = False):
    """(context, dtype): autocast on CUDA (bf16 where supported, else fp16); on the CPU plain fp32,
    or bf16 autocast when ``cpu_bf16`` asks for it (:func:`cpu_bf16_wanted`: True, or "auto" on a CPU with
    native bf16); True on a CPU without native bf16 is a ValueError."""
    if device.type == "cpu" and cpu_bf16_wanted(cpu_bf16):
        if not cpu_has_native_bf16():
            raise ValueError("train.cpu_bf16=True needs a CPU with AVX512-BF16 or AMX (not found in /proc/cpuinfo); "
                             "set train.cpu_bf16=false")
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16), torch.bfloat16
    if device.type != "cuda" or not amp:
        return nullcontext(), torch.float32
    dtype = torch.bfloat16 if cuda_has_native_bf16() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype), dtype


def cuda_has_native_bf16() -> bool:
    """True on GPUs that compute in bf16 natively (compute capability 8.0 and later: A100, L4, H100).

    ``torch.cuda.is_bf16_supported()`` also says True where bf16 is only emulated (a Colab T4),
    where bf16 autocast runs slower than fp32; such GPUs train in fp16 with a gradient scaler."""
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch before the argument existed: decide by compute capability
        return torch.cuda.is_available() and torch.cuda.get_device_properties(torch.cuda.current_device()).major >= 8


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state() -> dict:
    """Every global random generator's state, in a form a checkpoint loads with ``weights_only``."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],  # plain lists: loadable with weights_only
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved (CUDA's only on a machine with as many GPUs)."""
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


GENERATION_THREADS = 1  # BLAS/OpenMP threads while generating (docs/benchmarks.md); 0 = the libraries' own counts


@contextmanager
def blas_threads(n: int = GENERATION_THREADS):
    """Inside the block numpy's BLAS, OpenMP and torch use at most ``n`` threads; restored after.

    numpy's BLAS is limited through threadpoolctl (a dependency); where it is missing, torch alone
    is limited."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limits = nullcontext()
    else:
        limits = threadpool_limits(limits=n)
    with limits:  # entered first, so that it restores what it found after torch's own setting is back
        before = torch.get_num_threads()
        torch.set_num_threads(min(n, before))
        try:
            yield
        finally:
            torch.set_num_threads(before)


def single_threaded(fn):
    """Decorator: ``fn`` runs inside :func:`blas_threads` with :data:`GENERATION_THREADS` (generation's pin;
    benchmarks/bench_threads.py sets it to 0 to measure without)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with blas_threads(GENERATION_THREADS) if GENERATION_THREADS else nullcontext():  # read at each call
            return fn(*args, **kwargs)

    return wrapper
