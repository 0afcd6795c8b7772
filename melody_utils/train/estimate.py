"""Training time to expect, from measured throughput (docs/benchmarks.md, docs/raw/).

:data:`MEASURED` records supervised notes per second of real training runs: a 2-core CPU, an
H100 and an H200. :func:`training_estimate` counts the notes a config will train on (steps x
batch x window, from the token cache) and divides by the measurement closest to the config's
model and batch size (a GPU's throughput grows several-fold with the batch) on the detected
kind of device (the measured GPUs count as one kind, the detected one first), scaled by parameter
count when the model sizes differ (training is compute-bound on both). The estimate names the
detected device; for a GPU that was not measured (a Colab T4, say) it says plainly that the figure
is extrapolated: the closest measured GPU's time, which a slower GPU exceeds.

:func:`preset_for` picks the preset that fits the device (notebook 03): ``colab`` on a GPU,
``small`` on a CPU, unless one is asked for (``PRESET``, ``$MELODY_PRESET``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from ..config import PRESET_ENV_VAR, PRESETS, Config
from ..data.corpus import TokenCache
from ..data.windows import window_starts
from ..data.streams import piece_windows
from ..model.lstm import build_from_config
from .loop import window_and_stride


@dataclass(frozen=True)
class Measurement:
    arch: str  # model.arch
    device: str  # "cpu" (2 cores), "h100" or "h200"
    parameters: int  # of the model measured
    batch: int  # windows per batch of the measurement
    notes_per_s: float  # supervised notes per second while training
    source: str  # where the figure comes from


_H200 = "bench_train --device cuda; docs/raw/bench_train_cuda_h200.txt"
MEASURED = (
    Measurement("causal", "cpu", 1_050_000, 64, 20_108, "bench_train, small preset; docs/benchmarks.md"),
    Measurement("causal", "h100", 1_050_000, 64, 243_007, "bench_train, small preset; docs/benchmarks.md"),
    Measurement("causal", "h100", 6_249_248, 128, 600_000, "notebook 03, colab preset; docs/raw/notebook03_colab_h100.txt"),
    Measurement("causal", "h200", 1_050_000, 64, 335_192, _H200),
    Measurement("causal", "h200", 1_050_000, 256, 1_973_127, _H200),
    Measurement("baseline", "cpu", 1_000_000, 64, 441, "bench_train, MusicLSTM on the array loader; docs/benchmarks.md"),
    Measurement("baseline", "h100", 1_000_000, 64, 4_199, "bench_train, MusicLSTM on the array loader; docs/benchmarks.md"),
    Measurement("baseline", "h200", 1_000_000, 64, 5_881, _H200),
    Measurement("advanced", "cpu", 20_640_000, 64, 26, "bench_train, MusicLSTM_Advanced; docs/benchmarks.md"),
    Measurement("advanced", "h100", 20_640_000, 64, 2_230, "bench_train, MusicLSTM_Advanced; docs/benchmarks.md"),
    Measurement("advanced", "h200", 20_640_000, 64, 3_491, _H200),
    Measurement("advanced", "h200", 20_640_000, 512, 21_193, _H200),
    Measurement("advanced", "h200", 20_640_000, 2048, 41_588, _H200),
)
MEASURED_CPU_CORES = 2  # the CPU figures' machine
GPUS = ("h100", "h200")  # the GPUs measured
SCALE_TOLERANCE = 0.15  # a model within 15% of a measured one's size uses its figure as is
MEASURED_ON = {"cpu": f"a {MEASURED_CPU_CORES}-core CPU", "h100": "an H100", "h200": "an H200"}  # in words
PRESET_FOR_DEVICE = {"cuda": "colab", "cpu": "small"}  # what notebook 03 trains when no preset is asked for


@dataclass(frozen=True)
class Device:
    kind: str  # "cuda" or "cpu"
    name: str  # the GPU's name, or "a N-core CPU"
    cpu_cores: int


def detect_device() -> Device:
    """The GPU torch sees, else the CPU with its core count."""
    cores = os.cpu_count() or 1
    if torch.cuda.is_available():
        return Device("cuda", torch.cuda.get_device_name(0), cores)
    return Device("cpu", f"a {cores}-core CPU", cores)


def preset_for(device: Device, preset: str | None = None) -> tuple[str, str]:
    """(the preset to train, why, in words): ``preset`` when given, else ``$MELODY_PRESET`` when set, else
    the device's (:data:`PRESET_FOR_DEVICE`: ``colab`` on a GPU, ``small`` on a CPU)."""
    if preset:
        if preset not in PRESETS:
            raise ValueError(f"PRESET = {preset!r} is not a preset; choose one of {sorted(PRESETS)} (or None: by device)")
        return preset, "PRESET as set"
    env = os.environ.get(PRESET_ENV_VAR, "").strip()
    if env:
        return env, f"from ${PRESET_ENV_VAR}"
    chosen = PRESET_FOR_DEVICE[device.kind]
    return chosen, f"picked for {device.name}; set PRESET to override"


def supervised_notes(cfg: Config, cache: TokenCache) -> tuple[int, int]:
    """(optimizer steps, supervised notes) the config trains for on this cache's training split."""
    causal = cfg.model.arch == "causal"
    window, stride = window_and_stride(cfg, causal)
    n_windows = len(window_starts(cache.offsets, cache.piece_indices("train"), window, stride))
    if causal and cfg.train.carry_state:  # streams: consecutive windows, whole batches only
        n_all = int(piece_windows(np.diff(cache.offsets)[cache.piece_indices("train")], window).sum())
        n_windows = n_all - n_all % cfg.train.batch_size
    elif cfg.train.epoch_windows:  # an epoch is a random sample of this many windows
        n_windows = min(n_windows, cfg.train.epoch_windows)
    steps = cfg.train.epochs * math.ceil(n_windows / cfg.train.batch_size)
    steps = min(steps, cfg.train.max_steps) if cfg.train.max_steps else steps
    notes = min(steps * cfg.train.batch_size, cfg.train.epochs * n_windows) * (window if causal else 1)
    return steps, notes


def _closest(arch: str, devices: tuple[str, ...], parameters: int, batch: int) -> Measurement:
    """The measurement on one of ``devices`` nearest in model size and batch (log distances; the
    devices' order breaks ties, so the detected GPU's own figures come first)."""
    options = [m for d in devices for m in MEASURED if m.arch == arch and m.device == d]
    if not options:
        raise ValueError(f"no measured training speed for model.arch={arch!r} on {' or '.join(devices)}; "
                         "see docs/benchmarks.md")
    return min(options, key=lambda m: abs(np.log(m.parameters / parameters)) + abs(np.log(m.batch / batch)))


def format_duration(seconds: float) -> str:
    """Seconds as a rounded human figure: '40 s', '12 min', '3.5 h'."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class Estimate:
    seconds: float  # expected training time on the measured device
    steps: int
    notes: int  # supervised notes
    measurement: Measurement
    scaled: bool  # the measured model's size differed: its figure was scaled by parameter count
    device: str  # what was detected, in words
    note: str  # how the figure applies to the detected device ("" when it was measured on such a device)
    extrapolated: bool = False  # the detected GPU was not measured: the time is another GPU's

    def __str__(self) -> str:
        m = self.measurement
        basis = (f"{m.notes_per_s:,.0f} notes/s measured on {MEASURED_ON[m.device]} for a {m.parameters / 1e6:.2f} M-parameter "
                 f"model at batch {m.batch}" + (", scaled by model size" if self.scaled else "") + f"; {m.source}")
        about = "extrapolated, at least" if self.extrapolated else "about"
        return (f"expected training time on {self.device}: {about} {format_duration(self.seconds)} "
                f"({self.steps:,} steps, {self.notes:,} notes at {basis})." + (f" {self.note}" if self.note else ""))


def training_estimate(cfg: Config, cache: TokenCache, device: Device | None = None) -> Estimate:
    """How long ``cfg`` should train on ``cache`` on ``device`` (default: :func:`detect_device`)."""
    device = device or detect_device()
    kind, name = device.kind, device.name
    parameters = sum(p.numel() for p in build_from_config(cfg, cache.vocab).parameters())
    steps, notes = supervised_notes(cfg, cache)
    own = [g for g in GPUS if g in name.lower().replace(" ", "")]  # the detected GPU, when it was measured
    devices = ("cpu",) if kind == "cpu" else tuple(own) + tuple(g for g in GPUS if g not in own)
    m = _closest(cfg.model.arch, devices, parameters, cfg.train.batch_size)
    scaled = abs(m.parameters / parameters - 1) > SCALE_TOLERANCE
    rate = m.notes_per_s * (m.parameters / parameters if scaled else 1.0)
    seconds = notes / rate
    if kind == "cpu":
        note = f"With {device.cpu_cores} cores expect it sooner." if device.cpu_cores > MEASURED_CPU_CORES else ""
    elif own:
        note = ""
    else:  # not measured: another GPU's time, said so in the headline and here
        note = (f"Extrapolated: {name} was not measured; the time is what {MEASURED_ON[m.device]} takes, and a "
                f"slower GPU (a T4 is) takes longer. The progress bar shows the real pace once training runs.")
    return Estimate(seconds, steps, notes, m, scaled, name, note, extrapolated=kind == "cuda" and not own)
