"""One config object for the whole pipeline, with named size presets.

The preset is picked by the ``MELODY_PRESET`` environment variable (or an explicit
argument), so the same notebook or CLI call runs in seconds in CI (``tiny``), in a few
minutes on a laptop CPU (``small``, the default) and for real on a GPU (``colab``,
``full``). Only sizes differ between presets; the code path is the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from . import workspace
from .checks import Limit, check_fields, is_flag, setting
from .workspace import REPO_ROOT, SHIPPED_DATA_DIR  # noqa: F401 (re-exported)

PRESET_ENV_VAR = "MELODY_PRESET"
DEFAULT_PRESET = "small"

# Where downloads and caches (DATA_DIR) and checkpoints and generated music (OUTPUTS_DIR) go:
# data/ and outputs/ of the checkout, or $MELODY_DATA_DIR and $MELODY_OUTPUTS_DIR (set by the test
# suite, and in Colab by workspace.setup to a folder on Google Drive). Read once, at import.
DATA_DIR = workspace.data_dir()
OUTPUTS_DIR = workspace.outputs_dir()
DEFAULT_OUTPUT_NAME = "improved_generated_output.midi"  # the generated MIDI's file name (the seed's)
SPLITS = ("train", "validation", "test")  # pieces are split by piece, never by window (MAESTRO's official split)


# What the settings may hold (checked when a config is built or overridden, and by the flags).
FLAG = Limit("bool")
SEED = Limit("int", "an integer >= 0", 0)
FRACTION = Limit("float", "in [0, 0.5] (a share of the pieces)", 0.0, 0.5)
WIDTH = Limit("int", "an integer in [1, 4096]", 1, 4096)
MAX_MEMORY = 4.0  # strongest piece-memory setting: odds of the fitted weights times 4 (docs/eval/shipped_memory.md)
TEMPERATURE = Limit("float", "a number > 0 (1.0 = unchanged)", 0.0, lo_open=True)
TOP_K = Limit("int", "an integer >= 0 (0 = off, 1 = greedy)", 0)
TOP_P = Limit("float", "a number in (0, 1] (1 = off)", 0.0, 1.0, lo_open=True)
# Longest piece one call generates: 100,000 notes are hours of piano music and a few MB of memory;
# the output is allocated before the first note, so 10^9 notes would need tens of GB.
MAX_N_NOTES = 100_000
N_NOTES = Limit("int", f"an integer in [1, {MAX_N_NOTES:,}]", 1, MAX_N_NOTES)
MEMORY = Limit("float", f"a number in [0, {MAX_MEMORY:g}] (0 = off, 1 = the fitted piece memory)", 0.0, MAX_MEMORY)
CPU_BF16 = Limit("any", "'auto', true or false")  # normalised by cpu_bf16_setting


def cpu_bf16_setting(value) -> bool | str:
    """``train.cpu_bf16`` normalised: "auto", True or False (the text --set gives too); ValueError naming it otherwise."""
    if is_flag(value):
        return bool(value)
    if isinstance(value, str):
        if value.strip().lower() == "auto":
            return "auto"
        with contextlib.suppress(ValueError):
            return FLAG.parse(value.strip())
    raise ValueError(f"train.cpu_bf16 must be {CPU_BF16.describe()}, got {value!r}")


@dataclass
class DataConfig:
    bins: str = setting("log", Limit("str", choices=("log", "seed")))  # "log": log-spaced bins fitted to the data, with a 0 step bin; "seed": the seed notebook's linear grid
    n_step_bins: int = setting(32, Limit("int", "an integer in [2, 1024]", 2, 1024))  # step (inter-onset) bins for "log"; bin 0 is exactly 0 s so chords stay chords
    n_dur_bins: int = setting(32, Limit("int", "an integer in [2, 1024]", 2, 1024))  # duration bins for "log"
    # Velocity bins (uniform over 1..127); 0 = velocity not modelled (constant in output). A corpus
    # without dynamics gets 0 whatever this says (corpus.NO_DYNAMICS_SHARE). Uniform, not fitted to
    # quantiles: quantile bins crush the rare fff/ppp notes into the end bins, and uniform bins keep
    # one vocabulary for every corpus and checkpoint (errors of both measured in docs/benchmarks.md).
    velocity_bins: int = setting(16, Limit("int", "an integer in [0, 127] (0 = velocity not modelled)", 0, 127))
    sustain: bool = setting(True, FLAG)  # extend note durations by the sustain pedal (CC64): performance MIDI needs it
    source: str = setting("auto", Limit("str", "a source name or a folder"))  # "auto": MAESTRO if under data/, else "piano"; "piano" (alias "embedded"), "chorales", "maestro", or a folder (MAESTRO's anywhere)
    window: int = setting(64, Limit("int", "an integer in [2, 65536] (notes of context)", 2, 65536))  # notes per training window (input length)
    seed_window: int = setting(50, Limit("int", "an integer in [2, 65536]", 2, 65536))  # window length of the seed-style window->next models
    stride: int = setting(32, Limit("int", "an integer >= 1", 1))  # distance between window starts for causal training (seed-style uses stride 1)
    transpose: int = setting(6, Limit("int", "an integer in [0, 24] semitones", 0, 24))  # training windows shifted by random semitones in [-transpose, transpose] (0 = off)
    val_fraction: float = setting(0.1, FRACTION)  # by-piece split fractions when a corpus carries no official split
    test_fraction: float = setting(0.1, FRACTION)
    split_seed: int = setting(0, SEED)  # seed of that by-piece split
    max_files: int = setting(0, Limit("int", "an integer >= 0 (0 = all files)", 0))  # 0 = all files; otherwise the first N (sorted) files, for quick runs
    composer_dropout: float = setting(0.2, Limit("float", "in [0, 1] (a share of windows)", 0.0, 1.0))  # with model.composers: share of training windows shown as composer "any" (drawn per epoch)
    # Share of training windows read from a copy of their piece played like a performer (chord asynchrony,
    # tempo drift, dynamics: music/perform.py), drawn per epoch; the copies are made with the token cache. 0 = off.
    perform: float = setting(0.0, Limit("float", "in [0, 1] (a share of windows; 0 = off)", 0.0, 1.0))

    def __post_init__(self):
        check_fields(self, "data.")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(f"data.val_fraction + data.test_fraction must be < 1 (the rest trains), "
                             f"got {self.val_fraction} + {self.test_fraction}")


@dataclass
class ModelConfig:
    arch: str = setting("causal", Limit("str", choices=("causal", "advanced", "baseline")))  # "causal" (stateful LSTM, default), "advanced" (MusicLSTM_Advanced), "baseline" (seed MusicLSTM)
    emb_pitch: int = setting(64, WIDTH)  # embedding width of each token field
    emb_step: int = setting(32, WIDTH)
    emb_dur: int = setting(32, WIDTH)
    emb_vel: int = setting(16, WIDTH)
    hidden: int = setting(256, Limit("int", "an integer in [1, 8192]", 1, 8192))  # LSTM hidden size (per direction for bidirectional models)
    layers: int = setting(2, Limit("int", "an integer in [1, 16]", 1, 16))  # LSTM layers
    dropout: float = setting(0.1, Limit("float", "in [0, 1)", 0.0, 1.0, hi_open=True))  # dropout between LSTM layers and before the heads
    attn_heads: int = setting(4, Limit("int", "an integer in [1, 64]", 1, 64))  # self-attention heads (MusicLSTM_Advanced)
    chained: bool = setting(True, FLAG)  # step/duration heads see the pitch just chosen (False: three independent heads, like the seed)
    chain_all: bool = setting(False, FLAG)  # with chained: duration also sees the step, velocity all fields before it (causal model)
    interval_emb: int = setting(0, Limit("int", "an integer in [0, 4096] (0 = off)", 0, 4096))  # > 0: embed the interval to the previous note's pitch beside the pitch (causal model)
    composers: bool = setting(False, FLAG)  # causal model reads each piece's composer (ids: vocab.composers, 0 = "any"); see composers.py

    def __post_init__(self):
        check_fields(self, "model.")


@dataclass
class TrainConfig:
    batch_size: int = setting(64, Limit("int", "an integer in [1, 65536]", 1, 65536))  # windows per batch
    lr: float = setting(2e-3, Limit("float", "in (0, 1]", 0.0, 1.0, lo_open=True))  # peak Adam learning rate
    weight_decay: float = setting(0.0, Limit("float", ">= 0", 0.0))
    epochs: int = setting(5, Limit("int", "an integer >= 1", 1))  # passes over the training windows
    epoch_windows: int = setting(0, Limit("int", "an integer >= 0 (0 = every window)", 0))  # 0 = an epoch is every training window; else a fresh random sample of this many per epoch
    # Causal models: the batch is batch_size streams, each reading pieces one after another in consecutive
    # windows of data.window notes (data.stride unused), the LSTM state carried from batch to batch (truncated
    # back-propagation through time; see streams.py). False: independent windows every data.stride notes,
    # each from a zero state. Window models (baseline, advanced) always train on independent windows.
    carry_state: bool = setting(False, FLAG)
    max_steps: int = setting(0, Limit("int", "an integer >= 0 (0 = no limit)", 0))  # 0 = no limit; otherwise stop after this many optimizer steps
    time_budget_s: float = setting(0.0, Limit("float", ">= 0 seconds (0 = no limit)", 0.0))  # 0 = no limit; else stop after this many seconds (all sessions of a run), the lr cosine ending with them
    # early stopping: stop once the validation loss has not improved for this many epochs in a row (0 = off)
    patience: int = setting(0, Limit("int", "an integer >= 0 epochs (0 = off)", 0))
    warmup_steps: int = setting(100, Limit("int", "an integer >= 0", 0))  # linear warm-up, then cosine decay to lr/10
    grad_clip: float = setting(1.0, Limit("float", ">= 0 (0 = off)", 0.0))  # max global grad norm (0 = off)
    amp: bool = setting(True, FLAG)  # bf16/fp16 autocast on CUDA; ignored on CPU (fp32, or bf16 by cpu_bf16; same code path)
    # bf16 autocast on the CPU: "auto" = on CPUs that multiply bf16 natively (AVX512-BF16/AMX; ~1.5x the steps, a
    # lower loss in the same time, docs/benchmarks.md), fp32 elsewhere; true / false to force it (true needs such a CPU)
    cpu_bf16: bool | str = setting("auto", CPU_BF16)
    seed: int = setting(0, SEED)  # seeds torch, numpy and the data order: CPU runs are reproducible
    num_workers: int = setting(0, Limit("int", "an integer in [0, 256]", 0, 256))  # DataLoader workers (windows are sliced from arrays, so 0 is usually fastest)
    device: str = setting("auto", Limit("str", "a device name such as auto, cpu, cuda, cuda:1"))  # "auto" (cuda if available), "cpu", "cuda", "cuda:1", ...
    out_dir: str = setting(str(OUTPUTS_DIR), Limit("str", "a folder"))  # checkpoints, loss history and plots go here

    def __post_init__(self):
        check_fields(self, "train.")
        object.__setattr__(self, "cpu_bf16", cpu_bf16_setting(self.cpu_bf16))


@dataclass
class SampleConfig:
    temperature: float = setting(1.0, TEMPERATURE)  # > 0; lower is more conservative
    top_k: int = setting(0, TOP_K)  # 0 = off; 1 = greedy
    top_p: float = setting(0.95, TOP_P)  # nucleus mass in (0, 1]; 1 = off
    n_notes: int = setting(200, N_NOTES)  # notes to generate
    seed: int = setting(0, SEED)  # random seed for reproducible samples
    keep_primer: bool = setting(False, FLAG)  # include the primer notes in the output MIDI
    # play every step, duration and velocity at its bin's centre (the grid); False: drawn inside the bin
    # from the training corpus's own values there (vocab.spread), seeded by seed
    bin_centres: bool = setting(False, FLAG)
    primer_notes: int = setting(32, Limit("int", "an integer >= 1", 1))  # notes taken from the primer piece
    # piece memory (generate/memory.py): 0 = off, 1 = the model's own fitted memory, up to MAX_MEMORY. 2 was
    # chosen for the previous shipped file (docs/eval/shipped_memory.md) and stays for `tiny` (golden files);
    # the small, colab and full presets sample at 1 (_SWEPT_SAMPLING below)
    memory: float = setting(2.0, MEMORY)
    output: str = setting(str(OUTPUTS_DIR / DEFAULT_OUTPUT_NAME), Limit("str", "a file path"))  # the generated MIDI file

    def __post_init__(self):
        check_fields(self, "sample.")


@dataclass
class Config:
    preset: str = DEFAULT_PRESET
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        def build(kind, values):
            names = {f.name for f in dataclasses.fields(kind)}
            unknown = set(values) - names
            if unknown:
                raise ValueError(f"unknown {kind.__name__} field(s) {sorted(unknown)}; known: {sorted(names)}")
            return kind(**values)

        return cls(
            preset=d.get("preset", DEFAULT_PRESET),
            data=build(DataConfig, d.get("data", {})),
            model=build(ModelConfig, d.get("model", {})),
            train=build(TrainConfig, d.get("train", {})),
            sample=build(SampleConfig, d.get("sample", {})),
        )

    def override(self, **changes: Any) -> "Config":
        """Return a copy with dotted overrides applied, e.g. ``override(**{"train.epochs": 3})``."""
        d = self.to_dict()
        for key, value in changes.items():
            section, _, name = key.partition(".")
            if section not in d or not isinstance(d[section], dict) or name not in d[section]:
                raise ValueError(f"unknown config key {key!r}; use section.field, e.g. 'train.epochs'")
            d[section][name] = value
        return Config.from_dict(d)


# Sampling defaults of the real presets, from the sampling sweep of the shipped model on the
# piano corpus's held-out pieces (docs/eval/shipped_sweep.md): the setting closest to held-out
# statistics among those with no degenerate piece (loops are what a listener notices first).
# The piece memory at 1, its fitted strength (every causal model's memory is fitted at the end of training):
# on the shipped model 2 doubled the generated repeats (docs/benchmarks.md, "The shipped model").
_SWEPT_SAMPLING = {"sample.temperature": 1.0, "sample.top_p": 0.9, "sample.memory": 1.0}

# Named presets: only sizes differ. Each entry is a set of dotted overrides of the defaults.
PRESETS: dict[str, dict[str, Any]] = {
    # Seconds on a CPU: CI, tests, notebooks under nbval.
    "tiny": {
        "data.window": 32, "data.stride": 32, "data.max_files": 12,  # 12 piano pieces, ~34 k notes, 2 validation + 2 test
        "model.hidden": 64, "model.layers": 1, "model.emb_pitch": 32, "model.emb_step": 16, "model.emb_dur": 16,
        "train.batch_size": 32, "train.epochs": 2, "train.max_steps": 60, "train.warmup_steps": 10,
        "sample.n_notes": 64,
        # fp32 on every CPU: tests and golden files must give the same numbers with and without native bf16
        "train.cpu_bf16": False,
    },
    # A few minutes on a laptop CPU: the README's main command.
    "small": {
        "train.epochs": 20, "train.batch_size": 64, "train.warmup_steps": 20,
        # the peak rate and the inputs below won the fixed-step comparisons in docs/benchmarks.md
        "train.lr": 4e-3,
        **_SWEPT_SAMPLING,
        "model.interval_emb": 16, "model.chain_all": True,
    },
    # A Colab GPU runtime (T4 or better): MAESTRO, bigger model, ~30 min.
    "colab": {
        **_SWEPT_SAMPLING,
        "data.window": 128, "data.stride": 64,
        "model.hidden": 512, "model.layers": 3, "model.emb_pitch": 128, "model.emb_step": 64, "model.emb_dur": 64,
        "model.dropout": 0.2,
        "train.batch_size": 128, "train.epochs": 20, "train.lr": 1e-3, "train.warmup_steps": 500,
    },
    # Long GPU run on full MAESTRO.
    "full": {
        **_SWEPT_SAMPLING,
        "data.window": 256, "data.stride": 128,
        "model.hidden": 1024, "model.layers": 3, "model.emb_pitch": 128, "model.emb_step": 64, "model.emb_dur": 64,
        "model.dropout": 0.2,
        "train.batch_size": 128, "train.epochs": 50, "train.lr": 8e-4, "train.warmup_steps": 1000,
    },
}


# The seed's window models have their own sizes. On a GPU (colab, full) they are the seed
# notebook's (MusicLSTM ~1.0 M, MusicLSTM_Advanced ~20.6 M parameters); on a CPU (tiny, small)
# the same architectures, scaled down so that they train in the preset's time.
_SEED_BASELINE = {"model.emb_pitch": 64, "model.emb_step": 64, "model.emb_dur": 64, "model.hidden": 256,
                  "model.layers": 1, "model.dropout": 0.3}
_SEED_ADVANCED = {"model.emb_pitch": 128, "model.emb_step": 128, "model.emb_dur": 128, "model.hidden": 512,
                  "model.layers": 3, "model.dropout": 0.3, "model.attn_heads": 4}
# MusicLSTM_Advanced on a GPU: a batch of 2048 keeps a large GPU busy where the seed's 64 does not
# (throughput in docs/benchmarks.md). Stride-1 windows make a MAESTRO epoch millions of windows, so
# an epoch is a fresh sample of 409,600 (200 steps): validation, checkpoints and the loss plot come
# often, and 30 of them see about two passes.
_ADVANCED_ON_A_GPU = {"train.batch_size": 2048, "train.epoch_windows": 409_600, "train.epochs": 30,
                      "train.lr": 2e-3, "train.warmup_steps": 300}
WINDOW_ARCH_SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "baseline": {"model.emb_pitch": 32, "model.emb_step": 16, "model.emb_dur": 16, "model.hidden": 64, "model.layers": 1},
        "advanced": {"model.emb_pitch": 32, "model.emb_step": 16, "model.emb_dur": 16, "model.hidden": 64, "model.layers": 2},
    },
    "small": {
        "baseline": _SEED_BASELINE,
        "advanced": {"model.emb_pitch": 64, "model.emb_step": 64, "model.emb_dur": 64, "model.hidden": 256,
                     "model.layers": 2, "model.dropout": 0.3},
    },
    "colab": {"baseline": _SEED_BASELINE, "advanced": {**_SEED_ADVANCED, **_ADVANCED_ON_A_GPU}},
    "full": {"baseline": _SEED_BASELINE, "advanced": {**_SEED_ADVANCED, **_ADVANCED_ON_A_GPU}},
}


def get_config(preset: str | None = None, **overrides: Any) -> Config:
    """Build the config for ``preset`` (default: ``$MELODY_PRESET`` or ``small``), then apply overrides.

    When the overrides pick a window model (``model.arch`` "baseline" or "advanced"), that
    model's sizes for the preset (:data:`WINDOW_ARCH_SIZES`) replace the causal model's, and
    explicit ``model.*`` overrides still win.
    """
    name = preset or os.environ.get(PRESET_ENV_VAR) or DEFAULT_PRESET
    if name not in PRESETS:
        raise ValueError(
            f"unknown preset {name!r} (from {'argument' if preset else PRESET_ENV_VAR}); choose one of {sorted(PRESETS)}"
        )
    cfg = Config(preset=name).override(**PRESETS[name])
    cfg = cfg.override(**overrides) if overrides else cfg
    sizes = WINDOW_ARCH_SIZES[name].get(cfg.model.arch)
    if sizes:
        explicit = {k: v for k, v in overrides.items() if k.startswith("model.") or k in sizes}
        cfg = cfg.override(**{**sizes, "model.chained": False, **explicit})
    return cfg
