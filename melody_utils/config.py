"""One config object for the whole pipeline, with named size presets.

The preset is picked by the ``MELODY_PRESET`` environment variable (or an explicit
argument), so the same notebook or CLI call runs in seconds in CI (``tiny``), in a few
minutes on a laptop CPU (``small``, the default) and for real on a GPU (``colab``,
``full``). Only sizes differ between presets; the code path is the same.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from . import workspace
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


@dataclass
class DataConfig:
    bins: str = "log"  # "log": log-spaced bins fitted to the data, with a 0 step bin; "seed": the seed notebook's linear grid
    n_step_bins: int = 32  # step (inter-onset) bins for "log"; bin 0 is exactly 0 s so chords stay chords
    n_dur_bins: int = 32  # duration bins for "log"
    # Velocity bins (uniform over 1..127); 0 = velocity not modelled (constant in output). A corpus
    # without dynamics gets 0 whatever this says (corpus.NO_DYNAMICS_SHARE). Uniform, not fitted to
    # quantiles: on the piano corpus 16 uniform bins err by 2.0 velocity units on average and 4 at
    # most, below what a listener tells apart; 16 quantile bins err 1.2 on average but up to 44 on
    # the rare fff/ppp notes (crushed into the end bins), and uniform bins keep one vocabulary for
    # every corpus and checkpoint.
    velocity_bins: int = 16
    sustain: bool = True  # extend note durations by the sustain pedal (CC64): performance MIDI needs it
    source: str = "auto"  # "auto": MAESTRO if under data/, else "piano"; "piano" (alias "embedded"), "chorales", "maestro", or a folder (MAESTRO's anywhere)
    window: int = 64  # notes per training window (input length)
    seed_window: int = 50  # window length of the seed-style window->next models
    stride: int = 32  # distance between window starts for causal training (seed-style uses stride 1)
    transpose: int = 6  # training windows shifted by random semitones in [-transpose, transpose] (0 = off)
    val_fraction: float = 0.1  # by-piece split fractions when a corpus carries no official split
    test_fraction: float = 0.1
    split_seed: int = 0  # seed of that by-piece split
    max_files: int = 0  # 0 = all files; otherwise the first N (sorted) files, for quick runs
    composer_dropout: float = 0.2  # with model.composers: share of training windows shown as composer "any" (drawn per epoch)
    # Share of training windows read from a copy of their piece played like a performer (chord asynchrony,
    # tempo drift, dynamics: music/perform.py), drawn per epoch; the copies are made with the token cache. 0 = off.
    perform: float = 0.0


@dataclass
class ModelConfig:
    arch: str = "causal"  # "causal" (stateful LSTM, default), "advanced" (MusicLSTM_Advanced), "baseline" (seed MusicLSTM)
    emb_pitch: int = 64  # embedding width of each token field
    emb_step: int = 32
    emb_dur: int = 32
    emb_vel: int = 16
    hidden: int = 256  # LSTM hidden size (per direction for bidirectional models)
    layers: int = 2  # LSTM layers
    dropout: float = 0.1  # dropout between LSTM layers and before the heads
    attn_heads: int = 4  # self-attention heads (MusicLSTM_Advanced)
    chained: bool = True  # step/duration heads see the pitch just chosen (False: three independent heads, like the seed)
    chain_all: bool = False  # with chained: duration also sees the step, velocity all fields before it (causal model)
    interval_emb: int = 0  # > 0: embed the interval to the previous note's pitch beside the pitch (causal model)
    composers: bool = False  # causal model reads each piece's composer (ids: vocab.composers, 0 = "any"); see composers.py


@dataclass
class TrainConfig:
    batch_size: int = 64  # windows per batch
    lr: float = 2e-3  # peak Adam learning rate
    weight_decay: float = 0.0
    epochs: int = 5  # passes over the training windows
    epoch_windows: int = 0  # 0 = an epoch is every training window; else a fresh random sample of this many per epoch
    # Causal models: the batch is batch_size streams, each reading pieces one after another in consecutive
    # windows of data.window notes (data.stride unused), the LSTM state carried from batch to batch (truncated
    # back-propagation through time; see streams.py). False: independent windows every data.stride notes,
    # each from a zero state. Window models (baseline, advanced) always train on independent windows.
    carry_state: bool = False
    max_steps: int = 0  # 0 = no limit; otherwise stop after this many optimizer steps
    time_budget_s: float = 0.0  # 0 = no limit; else stop after this many seconds (all sessions of a run), the lr cosine ending with them
    patience: int = 0  # early stopping: stop once the validation loss has not improved for this many epochs in a row (0 = off)
    warmup_steps: int = 100  # linear warm-up, then cosine decay to lr/10
    grad_clip: float = 1.0  # max global grad norm (0 = off)
    amp: bool = True  # bf16/fp16 autocast on CUDA; ignored on CPU (plain fp32, same code path)
    cpu_bf16: bool = False  # opt-in bf16 autocast on CPUs with native bf16 (AVX512-BF16/AMX): ~1.5x faster training
    seed: int = 0  # seeds torch, numpy and the data order: CPU runs are reproducible
    num_workers: int = 0  # DataLoader workers (windows are sliced from arrays, so 0 is usually fastest)
    device: str = "auto"  # "auto" (cuda if available), "cpu", "cuda", "cuda:1", ...
    out_dir: str = str(OUTPUTS_DIR)  # checkpoints, loss history and plots go here


@dataclass
class SampleConfig:
    temperature: float = 1.0  # > 0; lower is more conservative
    top_k: int = 0  # 0 = off; 1 = greedy
    top_p: float = 0.95  # nucleus mass in (0, 1]; 1 = off
    n_notes: int = 200  # notes to generate
    seed: int = 0  # random seed for reproducible samples
    keep_primer: bool = False  # include the primer notes in the output MIDI
    primer_notes: int = 32  # notes taken from the primer piece
    memory: float = 2.0  # piece memory (memory.py): 0 = off, 1 = its weights fitted on held-out piano music, up to 4;
    # 2: generated pieces closest to held-out ones without loops (docs/eval/shipped_memory.md)
    output: str = str(OUTPUTS_DIR / DEFAULT_OUTPUT_NAME)  # the generated MIDI file
    bin_centres: bool = False  # play every step, duration and velocity at its bin's centre (the grid); False:
    # drawn inside the bin from the training corpus's own values there (vocab.spread), seeded by seed


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
# piano corpus's held-out pieces (docs/eval/shipped_sweep.md): the best mean overlap with held-out
# statistics (0.73) among the settings with no degenerate piece. The sweep's own pick, 0.85 / 0.9
# (0.76, but 6% of pieces stuck in loops), is within its noise at 16 pieces a setting, and loops
# are what a listener notices first.
_SWEPT_SAMPLING = {"sample.temperature": 1.0, "sample.top_p": 0.9}

# Named presets: only sizes differ. Each entry is a set of dotted overrides of the defaults.
PRESETS: dict[str, dict[str, Any]] = {
    # Seconds on a CPU: CI, tests, notebooks under nbval.
    "tiny": {
        "data.window": 32, "data.stride": 32, "data.max_files": 12,  # 12 piano pieces, ~34 k notes, 2 validation + 2 test
        "model.hidden": 64, "model.layers": 1, "model.emb_pitch": 32, "model.emb_step": 16, "model.emb_dur": 16,
        "train.batch_size": 32, "train.epochs": 2, "train.max_steps": 60, "train.warmup_steps": 10,
        "sample.n_notes": 64,
    },
    # A few minutes on a laptop CPU: the README's main command.
    "small": {
        "train.epochs": 20, "train.batch_size": 64, "train.warmup_steps": 20,
        # peak rate 4e-3: 4.192 pitch+step+duration nats/note after 765 steps on real piano, against 4.441 at
        # 2e-3 and 4.196 at 6e-3 (docs/benchmarks.md)
        "train.lr": 4e-3,
        **_SWEPT_SAMPLING,
        # interval inputs and the full head chain: -0.67 nats/note at 150 fixed steps on real piano (docs/benchmarks.md)
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
# MusicLSTM_Advanced on a GPU: at the seed's batch of 64 it learns from 3,491 windows/s on an H200;
# at 2048 (bf16 autocast) from 41,588 (docs/benchmarks.md). Stride-1 windows make a MAESTRO epoch
# millions of windows, so an epoch is a fresh sample of 409,600 (200 steps, ~10 s on an H200):
# validation, checkpoints and the loss plot come every few seconds, and 30 of them see ~2 passes.
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
