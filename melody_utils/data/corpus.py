"""Corpora -> one compact token cache.

Sources (see :mod:`melody_utils.data.sources`): the embedded piano corpus (``"piano"``, alias
``"embedded"``; used whenever MAESTRO is absent, so everything runs offline), the embedded
chorales (``"chorales"``), MAESTRO (under ``data/`` or any folder holding its CSV), or any folder
of MIDI files.

:func:`prepare` parses the pieces (in parallel, with a progress bar; a file that fails is
skipped, named and counted, never fatal), splits them by piece (the split the source gives:
the piano corpus's split by work, MAESTRO's official one, a folder's metadata.csv (its split
column, or a seeded split by its work column) or subfolders; else a seeded random one), fits the time bins on the training split, encodes
tokens and writes one ``.npz`` (integer arrays + per-piece offsets + metadata, composer
included) keyed by the source and every setting that shaped it, so a second call reloads it in
well under a second.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import multiprocessing as mp
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..config import DATA_DIR, SPLITS, DataConfig
from .maestro import find_maestro
from ..files import atomic_write_bytes
from ..music.midi import MidiError, Notes, midi_to_notes
from ..music.perform import perform
from ..music.quantize import fit_log_bins, seed_duration_bins, seed_step_bins
from .sources import (EMBEDDED, PIANO_PATH, FolderCorpus, embedded_name, folder_corpus, list_midi_files,  # noqa: F401
                      load_embedded, warn_random_split)
from .composers import piece_composer_ids, with_composers
from ..music.tokens import Vocab

CACHE_DIR = DATA_DIR / "cache"
CACHE_FORMAT = 4  # bump when the cache layout changes (4: the vocabulary carries its spread inside the bins)
# A corpus whose most common velocity covers this share of the training notes carries no
# dynamics (score renderings: the chorales play 92 % of their notes at velocity 90): its
# vocabulary gets no velocity field, and the output plays one constant velocity.
NO_DYNAMICS_SHARE = 0.9
PERFORMED_COPIES = 2  # with data.perform > 0 the cache holds this many performed copies of every piece


@dataclass
class ParseReport:
    files: int = 0  # files (or pieces) offered
    pieces: int = 0  # pieces kept
    notes: int = 0  # notes kept
    dropped_out_of_range: int = 0  # notes outside the vocabulary's pitch range
    skipped: list = field(default_factory=list)  # [(path, reason)]

    def summary(self) -> str:
        s = f"{self.pieces} of {self.files} pieces, {self.notes:,} notes"
        if self.dropped_out_of_range:
            s += f", {self.dropped_out_of_range} notes outside the piano range dropped"
        if self.skipped:
            s += f"; skipped {len(self.skipped)} file(s):\n" + "\n".join(f"  {p}: {r}" for p, r in self.skipped)
        return s


@dataclass
class TokenCache:
    """All pieces' tokens concatenated, with offsets and per-piece metadata."""

    tokens: np.ndarray  # (N, F) int16
    offsets: np.ndarray  # (P + 1,) int64; piece i is tokens[offsets[i]:offsets[i+1]]
    pieces: list  # P dicts: name, composer, title, split, path/source
    vocab: Vocab
    report: ParseReport = field(default_factory=ParseReport)
    path: Path | None = None  # where it was loaded from / saved to
    # (K, N, F) int16 or None: the tokens of K copies of every piece played like a performer (music/perform.py),
    # note for note as long as the piece (data.perform reads training windows from them)
    variants: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.pieces)

    def piece_indices(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        return np.array([i for i, p in enumerate(self.pieces) if p["split"] == split], dtype=np.int64)

    @property
    def composers(self) -> np.ndarray:
        """(P,) str: each piece's composer ("" when the source does not say)."""
        return np.array([p.get("composer", "") for p in self.pieces], dtype=str)

    def piece_composer(self, i: int) -> str:
        return self.pieces[i].get("composer", "")

    @property
    def composer_ids(self) -> np.ndarray:
        """(P,) int64 composer id of each piece (``vocab.composers``; 0 = "any", see composers.py)."""
        return piece_composer_ids(self.pieces, self.vocab.composers)

    def piece_tokens(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def split_tokens(self, split: str) -> list[np.ndarray]:
        return [self.piece_tokens(i) for i in self.piece_indices(split)]

    def notes(self, i: int) -> Notes:
        """Piece ``i`` decoded from its tokens (quantized timing)."""
        return self.vocab.decode(self.piece_tokens(i))

    def held_out_piece(self) -> int:
        """Index of the first test piece (the first validation piece when there is no test split)."""
        for split in ("test", "validation"):
            idx = self.piece_indices(split)
            if len(idx):
                return int(idx[0])
        raise ValueError("the corpus has no test or validation piece (too few pieces to split); "
                         "add pieces, or prime with a MIDI file or none")

    def find(self, name: str) -> int:
        for i, p in enumerate(self.pieces):
            if p["name"] == name:
                return i
        raise KeyError(f"no piece named {name!r} in the cache")

    @classmethod
    def from_pieces(cls, token_arrays, vocab: Vocab, splits=None, names=None, composers=None) -> "TokenCache":
        """Build a cache from per-piece (N_i, F) token arrays (tests, tools); with ``composers`` (one
        name per piece) the vocabulary carries the training pieces' composers."""
        arrays = [np.asarray(t, dtype=np.int16).reshape(-1, len(vocab.sizes)) for t in token_arrays]
        splits = splits or ["train"] * len(arrays)
        names = names or [f"piece{i}" for i in range(len(arrays))]
        offsets = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int64)
        composers = composers or [""] * len(arrays)
        pieces = [{"name": n, "split": s, "composer": c, "title": n} for n, s, c in zip(names, splits, composers)]
        vocab = with_composers(vocab, pieces) if any(composers) else vocab
        tokens = np.concatenate(arrays) if arrays else np.zeros((0, len(vocab.sizes)), np.int16)
        vocab.check(tokens)
        return cls(tokens, offsets, pieces, vocab)

    def save(self, path: str | os.PathLike, key: dict | None = None) -> Path:
        meta = {"format": CACHE_FORMAT, "pieces": self.pieces, "vocab": self.vocab.to_dict(), "report": asdict(self.report), "key": key or {}}

        def write(tmp):
            with open(tmp, "wb") as f:  # uncompressed: reload is a memory copy
                extra = {} if self.variants is None else {"variants": self.variants}
                np.savez(f, tokens=self.tokens, offsets=self.offsets, meta=np.array(json.dumps(meta)), **extra)

        self.path = atomic_write_bytes(path, write)
        return self.path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TokenCache":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"token cache not found: {path}; build it with `python -m melody_utils prepare`")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                tokens, offsets = z["tokens"], z["offsets"]
                variants = z["variants"] if "variants" in z.files else None
        except Exception as exc:
            raise ValueError(f"token cache {path} is unreadable ({exc}); delete it and run `python -m melody_utils prepare` again") from None
        if meta.get("format") != CACHE_FORMAT:
            raise ValueError(f"token cache {path} has format {meta.get('format')}, expected {CACHE_FORMAT}; delete it and prepare again")
        report = ParseReport(**{**meta["report"], "skipped": [tuple(s) for s in meta["report"]["skipped"]]})
        return cls(tokens, offsets, meta["pieces"], Vocab.from_dict(meta["vocab"]), report, path, variants)


# ---------------------------------------------------------------- sources


def _parse_one(args) -> tuple[str, tuple | None, str]:
    path, sustain, backend = args
    try:
        n = midi_to_notes(path, sustain=sustain, backend=backend)
    except MidiError as exc:
        return str(path), None, str(exc)
    except Exception as exc:  # a parser bug must not abort a corpus build
        return str(path), None, f"{type(exc).__name__}: {exc}"
    return str(path), (n.pitch, n.start, n.duration, n.velocity), ""


READER_CRASHED = "the MIDI reader crashed on this file (its process died); remove the file, or try backend='pretty_midi'"


def _parse_in_processes(jobs, workers: int, advance) -> list:
    """``_parse_one`` over ``jobs`` in ``workers`` processes, results in job order.

    A C++ reader can crash (segfault) on a malformed file. In a ``multiprocessing.Pool`` that
    would hang the build forever (the dead worker's task never returns); here the pool reports
    itself broken, and the files not finished yet are parsed again one process each, so the one
    that crashes is skipped and named like any unreadable file (tests/test_fuzz.py).
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    results = [None] * len(jobs)
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            futures = {pool.submit(_parse_one, job): i for i, job in enumerate(jobs)}
            for f in as_completed(futures):
                results[futures[f]] = f.result()
                advance(1)
    except BrokenProcessPool:
        for i, job in enumerate(jobs):
            if results[i] is None:
                try:
                    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                        results[i] = pool.submit(_parse_one, job).result()
                except BrokenProcessPool:
                    results[i] = (str(job[0]), None, READER_CRASHED)
                advance(1)
    return results


def parse_files(paths, sustain: bool = True, backend: str = "auto", workers: int | None = None, progress: bool = True):
    """Parse MIDI files in parallel. Returns (notes list, kept paths, skipped [(path, reason)])."""
    from tqdm.auto import tqdm

    paths = [Path(p) for p in paths]
    jobs = [(p, sustain, backend) for p in paths]
    workers = workers or min(os.cpu_count() or 1, max(1, len(paths) // 8))
    bar = dict(total=len(jobs), desc="parsing MIDI", unit="file", disable=not progress)
    if workers > 1:
        with tqdm(**bar) as t:
            results = _parse_in_processes(jobs, workers, t.update)
    else:
        results = [_parse_one(j) for j in tqdm(jobs, **bar)]
    notes, kept, skipped = [], [], []
    for path, arrays, err in results:
        if arrays is None:
            skipped.append((path, err))
        else:
            notes.append(Notes(*arrays))
            kept.append(path)
    return notes, kept, skipped


def split_by_piece(n: int, val_fraction: float, test_fraction: float, seed: int) -> list[str]:
    """Seeded random split of ``n`` pieces; validation and test get at least one piece when n >= 3."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * val_fraction)) if n >= 3 and val_fraction > 0 else 0
    n_test = max(1, round(n * test_fraction)) if n >= 3 and test_fraction > 0 else 0
    split = np.array(["train"] * n, dtype=object)
    split[order[:n_val]] = "validation"
    split[order[n_val : n_val + n_test]] = "test"
    return list(split)


def split_by_work(works: list[str], val_fraction: float, test_fraction: float, seed: int) -> list[str]:
    """:func:`split_by_piece` over the distinct ``works`` (sorted), each file taking its work's split."""
    names = sorted(set(works))
    split_of = dict(zip(names, split_by_piece(len(names), val_fraction, test_fraction, seed)))
    return [split_of[w] for w in works]


def make_vocab(cfg: DataConfig, train_notes: list[Notes]) -> Vocab:
    """The vocabulary: the seed's grid, or log bins fitted to the training pieces; with the spread of
    the training pieces' values inside its bins (what ``decode(tokens, seed=...)`` draws from)."""
    if cfg.bins == "seed":
        return Vocab(seed_step_bins(), seed_duration_bins(), cfg.velocity_bins, name="seed").with_spread(train_notes)
    if cfg.bins != "log":
        raise ValueError(f"data.bins must be 'log' or 'seed', not {cfg.bins!r}")
    steps = np.concatenate([n.step[1:] for n in train_notes]) if train_notes else np.zeros(0)
    durs = np.concatenate([n.duration for n in train_notes]) if train_notes else np.zeros(0)
    vocab = Vocab(fit_log_bins(steps, cfg.n_step_bins, zero=True), fit_log_bins(durs, cfg.n_dur_bins, zero=False),
                  cfg.velocity_bins, name="log")
    return vocab.with_spread(train_notes)


def with_corpus_spread(vocab: Vocab, cfg: DataConfig) -> Vocab:
    """``vocab`` as it is when it carries its spread (or ``cfg`` names a corpus other than the embedded
    piano corpus: it then decodes to the bin centres); a vocabulary saved before spreads were stored,
    of a model trained on the piano corpus (the shipped model of earlier versions), gets the spread of
    that corpus's training pieces in its bins (with ``cfg.sustain``'s durations)."""
    if vocab.spread or embedded_name(resolve_source(cfg)) != "piano" or not PIANO_PATH.is_file():
        return vocab
    return dataclasses.replace(vocab, spread=_piano_spread(vocab, bool(cfg.sustain)))


@functools.lru_cache(maxsize=4)
def _piano_spread(vocab: Vocab, sustain: bool) -> tuple:
    notes, meta = load_embedded("piano", sustain=sustain)
    train = [n[vocab.in_range(n)] for n, m in zip(notes, meta) if m.get("split", "train") == "train"]
    return vocab.with_spread(train).spread


def encode_pieces(notes: list[Notes], meta: list[dict], vocab: Vocab, report: ParseReport, copies: int = 0,
                  seed: int = 0) -> TokenCache:
    """The pieces' tokens (notes outside the vocabulary's pitches dropped and counted); with ``copies``,
    the tokens of that many copies of each piece played like a performer (seeded by ``seed``, copy, piece)."""
    arrays, kept, performed = [], [], [[] for _ in range(copies)]
    for i, (n, m) in enumerate(zip(notes, meta)):
        mask = vocab.in_range(n)
        report.dropped_out_of_range += int((~mask).sum())
        n = n[mask]
        if len(n) < 2:
            report.skipped.append((m.get("path", m["name"]), "fewer than 2 notes in the piano range"))
            continue
        arrays.append(vocab.encode(n))
        kept.append(m)
        for k in range(copies):
            performed[k].append(vocab.encode(perform(n, np.random.default_rng([seed, k, i]))))
    report.pieces, report.notes = len(kept), int(sum(len(a) for a in arrays))
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int64)
    empty = np.zeros((0, len(vocab.sizes)), np.int16)
    tokens = np.concatenate(arrays) if arrays else empty
    variants = np.stack([np.concatenate(p) if p else empty for p in performed]) if copies else None
    return TokenCache(tokens, offsets, kept, vocab, report, variants=variants)


def resolve_source(cfg: DataConfig) -> str:
    """'auto' -> 'maestro' when MAESTRO is under data/, else 'piano'; 'embedded' -> 'piano'."""
    if cfg.source == "auto":
        return "maestro" if find_maestro() is not None else "piano"
    return embedded_name(cfg.source) or cfg.source


def _source_fingerprint(name: str | None, files: list[Path] | None) -> str:
    h = hashlib.sha1()
    if files is None:
        h.update(name.encode() + EMBEDDED[name].read_bytes())  # a few MB: milliseconds
    else:
        for p in files:
            st = p.stat()
            h.update(f"{p}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:12]


def spread_first(splits: list[str], n: int) -> list[int]:
    """Indices of ``n`` items: the first ones of each split, validation and test a tenth each
    (rounded up), so a quick run on ``max_files`` pieces still has held-out pieces."""
    by_split = {s: [i for i, x in enumerate(splits) if x == s] for s in SPLITS}
    held = {s: min(len(by_split[s]), -(-n // 10)) for s in ("validation", "test")}
    take = {"train": max(0, n - sum(held.values())), **held}
    return sorted(i for s in SPLITS for i in by_split[s][: take[s]])


def _folder_source(source: str) -> FolderCorpus:
    if source == "maestro":
        root = find_maestro()
        if root is None:
            raise FileNotFoundError("MAESTRO not found under data/; download it (notebook 01, or maestro.ensure_maestro()), "
                                    "name its folder as the source, or use source='piano'")
        return folder_corpus(root)
    return folder_corpus(source)


def _drop_no_dynamics(cfg: DataConfig, notes: list[Notes], splits: list[str], source: str, progress: bool) -> DataConfig:
    """``cfg`` without a velocity field when the training pieces carry no dynamics (said once)."""
    if not cfg.velocity_bins:
        return cfg
    v = np.concatenate([n.velocity for n, s in zip(notes, splits) if s == "train"] or [np.zeros(0, np.int16)])
    top = np.bincount(v.astype(np.int64)).max() / len(v) if len(v) else 1.0
    if top < NO_DYNAMICS_SHARE:
        return cfg
    if progress:
        print(f"note: {source} carries no dynamics ({top:.0%} of its notes share one velocity): "
              "velocity is not modelled, the output plays one constant velocity")
    return DataConfig(**{**asdict(cfg), "velocity_bins": 0})


def _gather(cfg: DataConfig, source: str):
    """(embedded name or None, files or None, split_of, meta_of, how) of a source, cut to max_files."""
    name = embedded_name(source)
    if name is not None:
        if not EMBEDDED[name].is_file():
            load_embedded(name)  # raises FileNotFoundError naming the file and how to rebuild it
        return name, None, {}, {}, "embedded"
    fc = _folder_source(source)
    files = fc.files
    if cfg.max_files and len(files) > cfg.max_files:
        files = ([files[i] for i in spread_first([fc.split_of[str(p)] for p in files], cfg.max_files)]
                 if fc.split_of else files[: cfg.max_files])
    return None, files, fc.split_of, fc.meta_of, fc.how


def _load_pieces(cfg, name, files, meta_of, source, report, backend, workers, progress):
    """(notes, metadata) of every piece, from the embedded file or by parsing ``files``."""
    if name is not None:
        notes, meta = load_embedded(name, sustain=cfg.sustain)
        if cfg.max_files and len(notes) > cfg.max_files:
            keep = (spread_first([m["split"] for m in meta], cfg.max_files) if all("split" in m for m in meta)
                    else range(cfg.max_files))
            notes, meta = [notes[i] for i in keep], [meta[i] for i in keep]
        report.files = len(notes)
        return notes, meta
    if not files:
        raise FileNotFoundError(f"no MIDI files (.mid/.midi) found in {source}")
    report.files = len(files)
    notes, kept, report.skipped = parse_files(files, cfg.sustain, backend, workers, progress)
    meta = [{"name": Path(p).stem, "path": str(p), "composer": "", "title": Path(p).stem, **meta_of.get(p, {})} for p in kept]
    return notes, meta


def _reload(paths, vocab: Vocab | None) -> TokenCache | None:
    """The first readable cache among ``paths`` (None entries skipped) whose vocabulary is ``vocab`` (any when None)."""
    for path in paths:
        if path is not None and path.is_file():
            try:
                cache = TokenCache.load(path)
            except ValueError:
                continue  # unreadable or old format: rebuilt by the caller
            if vocab is None or cache.vocab == vocab:
                return cache
    return None


def _cache_paths(cfg: DataConfig, cache_dir, vocab: Vocab | None):
    """Where the cache of ``cfg`` lives: (gathered source, key, path, path under ``vocab`` or None, label)."""
    source = resolve_source(cfg)
    gathered = _gather(cfg, source)
    name, files, how = gathered[0], gathered[1], gathered[4]
    settings = {k: v for k, v in asdict(cfg).items()
                if k not in ("window", "seed_window", "stride", "source", "composer_dropout", "perform")}
    settings["performed_copies"] = PERFORMED_COPIES if cfg.perform else 0
    key = {"source": name or ("maestro" if how == "maestro" else str(source)), "fingerprint": _source_fingerprint(name, files),
           "settings": settings, "format": CACHE_FORMAT}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    label = name or ("maestro" if how == "maestro" else Path(source).name or "midi")
    path = Path(cache_dir or CACHE_DIR) / f"{label}-{cfg.bins}-{digest}.npz"
    given_path = None
    if vocab is not None:
        vocab_digest = hashlib.sha1(json.dumps(vocab.on_grid().to_dict(), sort_keys=True).encode()).hexdigest()[:8]
        given_path = path.with_name(f"{path.stem}-vocab{vocab_digest}.npz")
    return (source, gathered), key, path, given_path, label


def find_cache(cfg: DataConfig | None = None, cache_dir: str | os.PathLike | None = None,
               vocab: Vocab | None = None) -> TokenCache | None:
    """The token cache :func:`prepare` would reload for these arguments, or None when there is none
    (or its source is gone). Reads only: nothing is parsed or written."""
    try:
        _, _, path, given_path, _ = _cache_paths(cfg or DataConfig(), cache_dir, vocab)
    except (FileNotFoundError, ValueError):
        return None
    return _reload((path, given_path), vocab)


def prepare(cfg: DataConfig | None = None, cache_dir: str | os.PathLike | None = None, progress: bool = True,
            workers: int | None = None, rebuild: bool = False, backend: str = "auto", vocab: Vocab | None = None) -> TokenCache:
    """Build (or reload) the token cache for ``cfg`` (see module docstring).

    ``vocab``: tokenize with this vocabulary (a checkpoint's, to fine-tune or evaluate it) instead of
    bins fitted to the corpus; its spread inside the bins is this corpus's (fitted on its training
    pieces: a model fine-tuned on it plays as it does). When it differs from the fitted one, the
    cache file's name carries its digest, so caches of one corpus under two vocabularies live side by side.
    """
    cfg = cfg or DataConfig()
    (source, (name, files, split_of, meta_of, how)), key, path, given_path, label = _cache_paths(cfg, cache_dir, vocab)
    copies = key["settings"]["performed_copies"]
    cached = None if rebuild else _reload((path, given_path), vocab)
    if cached is not None:
        return cached

    report = ParseReport()
    notes, meta = _load_pieces(cfg, name, files, meta_of, source, report, backend, workers, progress)
    if split_of:
        splits = [split_of.get(m["path"], "train") for m in meta]
    elif all("split" in m for m in meta):
        splits = [m["split"] for m in meta]
    elif how == "work":
        splits = split_by_work([m["work"] for m in meta], cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
    else:
        splits = split_by_piece(len(meta), cfg.val_fraction, cfg.test_fraction, cfg.split_seed)
        if how == "random":
            warn_random_split(source, len(meta))
    for m, s in zip(meta, splits):
        m["split"] = s
    vocab_cfg = _drop_no_dynamics(cfg, notes, splits, label, progress and vocab is None)
    fitted = with_composers(make_vocab(vocab_cfg, [n for n, s in zip(notes, splits) if s == "train"]), meta)
    if vocab is not None:
        vocab = vocab.with_spread([n[vocab.in_range(n)] for n, s in zip(notes, splits) if s == "train"])
    if vocab is not None and vocab != fitted:
        path, key = given_path, {**key, "vocab": vocab.on_grid().to_dict()}
    cache = encode_pieces(notes, meta, vocab or fitted, report, copies, cfg.split_seed)
    if len(cache) == 0 and vocab is not None:
        raise ValueError(f"no piece of {source} can be encoded with the checkpoint's vocabulary (pitches "
                         f"{vocab.min_pitch}-{vocab.max_pitch}): {report.summary()}; choose a piano corpus or train without --init")
    if len(cache) == 0:
        raise ValueError(f"no usable pieces in {source}: {report.summary()}")
    cache.save(path, key)
    if progress:
        print(f"token cache: {report.summary()} -> {path}")
    return cache
