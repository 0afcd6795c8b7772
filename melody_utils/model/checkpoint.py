"""Checkpoints: one dict per file (as in nanoGPT), written atomically, read back with clear errors.

A checkpoint holds what :func:`load_checkpoint` needs to rebuild the model alone (``config``,
``vocab``, ``model_class``, ``model_state``; ``memory``, the piece memory fitted for it at the end of
training, :func:`store_memory`) and what resuming training needs (``optimizer``,
``scaler``, ``scheduler`` and the training state: ``epoch``, ``batch_in_epoch``, ``step``,
``history``, ``best_val_loss``, ``running``, ``rng``; see :class:`melody_utils.train.loop.TrainState`).
:func:`config_differences` says in plain words in what a checkpoint differs from a run's settings,
and :func:`default_checkpoint` picks the file to generate from.

The shipped model (:data:`SHIPPED_CHECKPOINT`) is an *inference* checkpoint written by
:func:`export_inference`: fp16 weights, config, vocabulary and a training summary, no optimizer
or random state, so it generates (:func:`generation_checkpoint`) and seeds fine-tuning
(:func:`init_config`, ``train --init``) but cannot be resumed.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import SHIPPED_DATA_DIR, Config
from ..data.corpus import with_corpus_spread
from ..device import resolve_device
from ..files import atomic_write_bytes, check_free_space, starts_with
from .lstm import build_from_config, unwrap
from ..music.tokens import Vocab, vocab_differences

CHECKPOINT_LAST = "ckpt_last.pt"  # written every train.loop.CHECKPOINT_EVERY_S seconds and at the end: resume from here
CHECKPOINT_BEST = "ckpt_best.pt"  # the lowest validation loss so far: generate from here
CHECKPOINT_FORMAT = 1  # bump when the checkpoint layout changes
# Settings a resumed run may change: limits and where it runs. Every other data/model/train
# setting must match the checkpoint's, or the resumed run would silently train something else.
# The model that ships in the checkout (beside the embedded corpus, wherever the data folder is);
# rebuilt by scripts/build_shipped_model.py, described in data/pretrained/README.md.
SHIPPED_CHECKPOINT = SHIPPED_DATA_DIR / "pretrained" / "piano_lstm.pt"
INFERENCE = "inference"  # the ``kind`` of an exported checkpoint: weights to generate from, no training state
# Settings a fine-tuning run takes from its --init checkpoint: the model and what shapes its vocabulary.
VOCAB_SETTINGS = ("data.bins", "data.n_step_bins", "data.n_dur_bins", "data.velocity_bins")
RESUMABLE_SETTINGS = ("train.epochs", "train.max_steps", "train.time_budget_s", "train.patience", "train.device",
                      "train.num_workers", "train.out_dir", "train.amp", "train.cpu_bf16")
# The largest model a config may describe: 4 GB of fp32 weights (12 GB with Adam's state). A config
# beyond it (a damaged or crafted checkpoint, a typo in --set) is refused before anything is allocated.
MAX_PARAMETERS = 1_000_000_000
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
CHECKPOINT_OVERHEAD = 1 << 18  # bytes of a checkpoint beyond its tensors (history, random state, the zip's records)


def default_checkpoint(out_dir) -> Path:
    """OUT_DIR/ckpt_best.pt, or ckpt_last.pt when only that exists."""
    best, last = Path(out_dir) / CHECKPOINT_BEST, Path(out_dir) / CHECKPOINT_LAST
    return last if last.is_file() and not best.is_file() else best


def save_checkpoint(path, model: torch.nn.Module, cfg: Config, vocab: Vocab, optimizer=None, **state) -> Path:
    """Write one checkpoint dict atomically (temp file + rename); returns the path.

    Holds what :func:`load_checkpoint` needs to rebuild the model alone (``config``, ``vocab``,
    ``model_class``, ``model_state``) and what resuming needs (``optimizer`` and the ``state``
    keywords: epoch, step, history, best_val_loss, scheduler, rng, ...).
    """
    model = unwrap(model)  # DistributedDataParallel (and its loss adapter) keep the model in .module
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "model_class": type(model).__name__,
        "model_state": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "config": cfg.to_dict(),
        "vocab": vocab.to_dict(),
        **state,
    }
    check_free_space(path, _tensor_bytes(ckpt) + CHECKPOINT_OVERHEAD, fix="choose another folder (train.out_dir, --out-dir)")
    return atomic_write_bytes(path, lambda tmp: torch.save(ckpt, tmp))


def _tensor_bytes(obj) -> int:
    """Bytes of the tensors in a (nested) checkpoint dict: about the size of its file."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def checkpoint_bytes(model: torch.nn.Module) -> int:
    """About how large a training checkpoint of ``model`` is: its weights and Adam's two moments, and the rest."""
    return 3 * _tensor_bytes(unwrap(model).state_dict()) + CHECKPOINT_OVERHEAD


def parameter_bound(cfg: Config, vocab: Vocab) -> int:
    """A cheap upper bound on the parameters of the model ``cfg`` describes (no model is built): every
    architecture here is a few LSTM layers (both directions at most), attention and heads over them."""
    m = cfg.model
    width = m.hidden + m.emb_pitch + m.emb_step + m.emb_dur + m.emb_vel + m.interval_emb + sum(vocab.sizes) + 64
    return 32 * max(m.layers, 1) * width * width + len(vocab.composers) * width


def _unbuildable(source: str, exc: Exception) -> ValueError:
    return ValueError(f"{source}: its model settings cannot build a model ({str(exc).splitlines()[0]}); "
                      f"check model.* (sizes >= 1, model.hidden divisible by model.attn_heads)")


BUILD_ERRORS = (TypeError, AssertionError, RuntimeError, OverflowError)  # what torch's layers raise on absurd sizes


def check_size(cfg: Config, vocab: Vocab, source: str) -> None:
    """``ValueError`` naming ``source`` ("checkpoint PATH", "the run's settings") when the model ``cfg``
    describes would have more than :data:`MAX_PARAMETERS` parameters; counted on the meta device,
    where nothing is allocated, and only when :func:`parameter_bound` says it might."""
    try:
        if parameter_bound(cfg, vocab) <= MAX_PARAMETERS:
            return
        with torch.device("meta"):
            n = sum(p.numel() for p in build_from_config(cfg, vocab).parameters())
    except BUILD_ERRORS as exc:
        raise _unbuildable(source, exc) from None
    if n > MAX_PARAMETERS:
        m = cfg.model
        raise ValueError(f"{source}: a model of {n:,} parameters (model.hidden={m.hidden}, model.layers={m.layers}, "
                         f"vocabulary sizes {vocab.sizes}), more than the {MAX_PARAMETERS:,} this version builds; "
                         f"lower model.hidden or model.layers")


def build_checked(cfg: Config, vocab: Vocab, source: str) -> torch.nn.Module:
    """:func:`build_from_config` after :func:`check_size`; a model that cannot be built from these
    settings is refused in one line naming ``source``."""
    check_size(cfg, vocab, source)
    try:
        return build_from_config(cfg, vocab)
    except ValueError as exc:  # build_model's own checks name the setting
        raise ValueError(f"{source}: {exc}") from None
    except BUILD_ERRORS as exc:
        raise _unbuildable(source, exc) from None


def read_checkpoint(path) -> dict:
    """The raw checkpoint dict (tensors on the CPU), checked: its settings valid, its model of a bounded
    size, its weights named tensors. Clear errors for a missing, foreign, damaged or crafted file."""
    return _read_checked(Path(path))[0]


def _not_a_checkpoint(path: Path, why: str) -> ValueError:
    return ValueError(f"{path} is not a Melody Forge checkpoint ({why}); pass a ckpt_*.pt written by "
                      f"`python -m melody_utils train`")


def _load_dict(path: Path) -> dict:
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a checkpoint; pass a checkpoint file, e.g. "
                                f"{default_checkpoint(path)}")
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path}; train one first with `python -m melody_utils train` "
            f"(or `python -m melody_utils quickstart`), or pass the right --checkpoint"
        )
    try:
        # weights_only: a checkpoint is data (tensors, dicts, lists, numbers), never code to run.
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if not starts_with(path, (ZIP_MAGIC,)):
            raise _not_a_checkpoint(path, "not a file written by torch.save") from None
        raise ValueError(
            f"checkpoint {path} is damaged ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}): "
            f"cut short or corrupted; use the run's other checkpoint ({CHECKPOINT_BEST} or {CHECKPOINT_LAST}) or train again"
        ) from None
    if not isinstance(ckpt, dict) or "model_state" not in ckpt or "config" not in ckpt:
        raise _not_a_checkpoint(path, "no model_state/config")
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path} has format {ckpt.get('format')}, expected {CHECKPOINT_FORMAT}; train again with this version")
    return ckpt


def _read_checked(path: Path) -> tuple[dict, Config, Vocab]:
    """(checkpoint dict, its Config, its Vocab), each checked (:func:`read_checkpoint`)."""
    ckpt = _load_dict(path)
    state = ckpt["model_state"]
    if not isinstance(state, dict):
        raise _not_a_checkpoint(path, f"its model_state is a {type(state).__name__}, not named tensors")
    for k, v in state.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise _not_a_checkpoint(path, f"its model_state holds {str(k)[:40]!r}: a {type(v).__name__}, not a tensor")
    sections = ckpt["config"]
    if not isinstance(sections, dict) or not all(isinstance(v, dict) for k, v in sections.items() if k != "preset") \
            or not isinstance(ckpt.get("vocab"), dict):
        raise _not_a_checkpoint(path, "its config or vocab is not a dict of settings")
    try:
        cfg = Config.from_dict(sections)
        vocab = Vocab.from_dict(ckpt["vocab"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"checkpoint {path} holds settings this version cannot use ({str(exc).splitlines()[0]}); "
                         f"it was written by another version or edited: train again, or pass another checkpoint") from None
    check_size(cfg, vocab, f"checkpoint {path}")
    return ckpt, cfg, vocab


def load_checkpoint(path, device="cpu") -> tuple[torch.nn.Module, Vocab, Config, dict]:
    """Rebuild a trained model from a checkpoint alone: ``(model in eval mode on device, vocab, cfg, state)``.

    ``state`` is the whole checkpoint dict (epoch, step, history, best_val_loss, ...).
    Works on a CPU-only machine for checkpoints trained on a GPU. A vocabulary saved before
    vocabularies carried their spread inside the bins gets its corpus's when that is the embedded
    piano corpus (:func:`~melody_utils.data.corpus.with_corpus_spread`), else it decodes to bin centres.
    """
    ckpt, cfg, vocab = _read_checked(Path(path))
    vocab = with_corpus_spread(vocab, cfg.data)
    model = build_checked(cfg, vocab, f"checkpoint {path}")
    weights = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["model_state"].items()}  # fp16 exports
    if type(model).__name__ != ckpt.get("model_class", type(model).__name__):
        raise ValueError(f"checkpoint {path} holds a {ckpt['model_class']}, but its config builds a {type(model).__name__}; train again")
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {path} does not fit the model its config describes ({str(exc).splitlines()[0]}); train again") from None
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    model.piece_memory = ckpt.get("memory")  # the memory fitted for this model (generate.memory.model_memory); None: none
    return model.to(dev).eval(), vocab, cfg, ckpt


def store_memory(path, memory: dict) -> Path:
    """Put a model's fitted piece memory (plain numbers: ``MemorySettings.to_dict`` and what the fit
    measured) into checkpoint ``path`` under ``"memory"``, atomically; everything else stays."""
    ckpt = read_checkpoint(path)
    ckpt["memory"] = memory
    return atomic_write_bytes(path, lambda tmp: torch.save(ckpt, tmp))


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(ckpt: dict, cfg: Config, vocab: Vocab) -> list[str]:
    """Settings in which a checkpoint differs from ``cfg``/``vocab`` (those a resume must not change),
    in plain words, the checkpoint's value first: ``"model.hidden: 32 -> 24"``, ``"velocity bins 0 vs 8"``,
    ``"step bins differ: fitted on another corpus"``. A setting the checkpoint's version did not have
    yet counts as its default (what that version did), so a checkpoint stays resumable after an upgrade."""
    saved = Config.from_dict({k: ckpt["config"].get(k, {}) for k in ("data", "model", "train")}).to_dict()
    old = _flatten({k: saved[k] for k in ("data", "model", "train")})
    new = _flatten({k: v for k, v in cfg.to_dict().items() if k in ("data", "model", "train")})
    diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
             if k not in RESUMABLE_SETTINGS and old.get(k) != new.get(k)]
    return diffs + vocab_differences(Vocab.from_dict(ckpt["vocab"]), vocab)



# ---------------------------------------------------------------- inference checkpoints


def training_summary(ckpt: dict, corpus: str | None = None, licence: str = "") -> dict:
    """What a checkpoint's training was: steps, epochs, best validation loss, seconds, device, corpus, licence
    (``licence``, else the one training wrote into the checkpoint: its corpus's, e.g. MAESTRO's non-commercial one)."""
    if ckpt.get("kind") == INFERENCE:
        return dict(ckpt["summary"])
    history = ckpt.get("history") or {}
    return {"steps": int(ckpt.get("step", 0)), "epochs": float((history.get("epoch") or [0])[-1]),
            "best_val_loss": float(ckpt.get("best_val_loss", float("nan"))),
            "train_seconds": float(sum(history.get("seconds") or [])), "device": str(ckpt.get("device", "unknown")),
            "corpus": corpus or ckpt["config"].get("data", {}).get("source", ""), "licence": licence or ckpt.get("licence", "")}


def export_inference(src, dst, corpus: str | None = None, licence: str = "", **extra) -> Path:
    """Write ``src``'s model as an inference checkpoint at ``dst`` (atomically); returns ``dst``.

    Keeps what generation needs: floating weights in fp16 (integer buffers as they are), config,
    vocabulary, the loss history and a ``summary`` (:func:`training_summary`, plus ``extra``
    figures such as held-out nats/note). Drops the optimizer, scaler, schedule and random state:
    a few MB instead of three times the weights in fp32. :func:`load_checkpoint` reads it in fp32.
    """
    ckpt = read_checkpoint(src)
    out = {
        "format": CHECKPOINT_FORMAT, "kind": INFERENCE, "model_class": ckpt["model_class"],
        "model_state": {k: v.half() if v.is_floating_point() else v for k, v in ckpt["model_state"].items()},
        "config": ckpt["config"], "vocab": ckpt["vocab"], "history": ckpt.get("history") or {},
        "step": int(ckpt.get("step", 0)), "best_val_loss": float(ckpt.get("best_val_loss", float("nan"))),
        "summary": {**training_summary(ckpt, corpus, licence), **extra},
        **({"memory": ckpt["memory"]} if ckpt.get("memory") else {}),
    }
    return atomic_write_bytes(dst, lambda tmp: torch.save(out, tmp))


def describe(ckpt: dict) -> str:
    """One phrase: "trained on piano (CC BY-SA 3.0 DE ...), 12000 steps in 300 s on cuda, validation loss 3.21"."""
    s = training_summary(ckpt)
    licence = f" ({s['licence']})" if s.get("licence") else ""
    return (f"trained on {s['corpus'] or 'an unnamed corpus'}{licence}, {s['steps']} steps in {s['train_seconds']:.0f} s "
            f"on {s['device']}, validation loss {s['best_val_loss']:.3f} nats/note")


def shipped_model() -> tuple[Path, str] | None:
    """(:data:`SHIPPED_CHECKPOINT`, a phrase naming it and what it was trained on), or None when it is absent."""
    if not SHIPPED_CHECKPOINT.is_file():
        return None
    return SHIPPED_CHECKPOINT, f"the shipped model {SHIPPED_CHECKPOINT}, {describe(read_checkpoint(SHIPPED_CHECKPOINT))}"


def generation_checkpoint(out_dir) -> tuple[Path, str | None]:
    """The checkpoint to generate from: OUT_DIR's own (:func:`default_checkpoint`), else the shipped
    model with one line saying so, else OUT_DIR's missing path (loading it names what to run)."""
    own = default_checkpoint(out_dir)
    shipped = None if own.is_file() else shipped_model()
    if shipped is None:
        return own, None
    return shipped[0], f"no checkpoint in {out_dir}: using {shipped[1]}"


def init_checkpoint(spec: str) -> Path:
    """``--init`` value -> checkpoint path: "pretrained" is the shipped model."""
    path = SHIPPED_CHECKPOINT if spec == "pretrained" else Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"--init {spec}: checkpoint not found: {path}; pass 'pretrained' (the shipped model, "
                                f"rebuilt by scripts/build_shipped_model.py) or the path of a ckpt_*.pt")
    return path


def init_config(ckpt: dict, cfg: Config, explicit: dict, path) -> Config:
    """The config of a run fine-tuning checkpoint ``path``: ``cfg`` with the checkpoint's model settings
    and the data settings that shape its vocabulary. ``explicit`` (settings the user gave) must agree."""
    old = _flatten({k: ckpt["config"].get(k, {}) for k in ("data", "model")})
    known = _flatten({k: v for k, v in cfg.to_dict().items() if k in ("data", "model")})
    taken = {k: v for k, v in old.items() if k in known and (k.startswith("model.") or k in VOCAB_SETTINGS)}
    taken["data.velocity_bins"] = int(ckpt["vocab"]["velocity_bins"])  # the vocabulary's own, whatever the config asked
    clashes = [f"{k}={explicit[k]!r} but the checkpoint has {v!r}" for k, v in taken.items()
               if k in explicit and explicit[k] != v]
    if clashes:
        raise ValueError(f"--init {path}: fine-tuning keeps the checkpoint's model and vocabulary, and {'; '.join(clashes)}; "
                         f"drop those settings, or train from scratch without --init")
    return cfg.override(**taken)


def composer_names(source) -> list[str]:
    """The composers a model can be asked for (without "any"; empty when it takes no composer).

    ``source``: a model, a checkpoint dict, or a checkpoint's path (e.g. for a notebook dropdown).
    """
    if isinstance(source, (str, Path)):
        source = read_checkpoint(source)
    if isinstance(source, dict):
        on = source.get("config", {}).get("model", {}).get("composers", False)
        return list(source.get("vocab", {}).get("composers", [])) if on else []
    return list(getattr(source, "composer_names", ())) if getattr(source, "n_composer_ids", 0) else []
