"""Fixtures shared by several test files (helpers that are not fixtures are in helpers.py)."""

import numpy as np
import pytest
import torch

from melody_utils.cli import commands as cli
from melody_utils.config import DataConfig, get_config
from melody_utils.data.corpus import TokenCache, prepare
from melody_utils.evaluate import report
from melody_utils.model import checkpoint
from melody_utils.model.lstm import build_from_config
from melody_utils.music.tokens import seed_vocab

from helpers import make_cache


@pytest.fixture(scope="module", params=["causal", "baseline"])
def evaluated(request, tmp_path_factory):
    """An untrained tiny checkpoint of each kind on a synthetic cache, and its evaluation."""
    arch = request.param
    torch.manual_seed(0)
    torch.set_num_threads(1)
    vocab = seed_vocab()
    rng = np.random.default_rng(10)
    pieces = [np.stack([(rng.integers(88) + np.arange(120)) % 88, rng.integers(0, 21, 120), rng.integers(0, 29, 120)], 1) for _ in range(8)]
    splits = ["train"] * 4 + ["validation"] * 2 + ["test"] * 2
    cache = TokenCache.from_pieces(pieces, vocab, splits)
    cfg = get_config("tiny", **{"model.arch": arch, "model.hidden": 16, "data.window": 16, "data.seed_window": 16,
                                "sample.n_notes": 40, "sample.primer_notes": 8})
    model = build_from_config(cfg, vocab)
    path = checkpoint.save_checkpoint(tmp_path_factory.mktemp(arch) / "ckpt.pt", model, cfg, vocab, epoch=1)
    result = report.evaluate_checkpoint(path, cache=cache, n_samples=3, device="cpu", progress=False)
    return {"arch": arch, "path": path, "cache": cache, "cfg": cfg, "model": model, "result": result}


@pytest.fixture(scope="module")
def performed_cache(tmp_path_factory):
    """The first 12 piano pieces with their performed copies (data.perform > 0)."""
    cfg = DataConfig(source="piano", max_files=12, perform=0.5)
    return prepare(cfg, cache_dir=tmp_path_factory.mktemp("performed"), progress=False), cfg


@pytest.fixture
def cache():
    """A fresh synthetic token cache (helpers.make_cache) for each test."""
    return make_cache()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A trained tiny run shared by a file's command-line tests: (common args, out_dir)."""
    root = tmp_path_factory.mktemp("cli")
    common = ["--preset", "tiny", "--cache-dir", str(root / "cache"), "--device", "cpu", "--quiet"]
    out = root / "out"
    assert cli.main(["prepare", *common, "--source", "embedded"]) == 0
    assert cli.main(["train", *common, "--source", "embedded", "--out-dir", str(out), "--max-steps", "4"]) == 0
    return common, out
