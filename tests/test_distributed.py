"""Data-parallel training: shards, and 2 CPU processes (gloo) against one process on the same global batch."""

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from melody_utils.data import windows as data
from melody_utils.train import distributed, loop as T
from melody_utils.model import checkpoint as C, lstm as MD
from melody_utils import device as D
from melody_utils.config import get_config
from melody_utils.data.corpus import TokenCache
from melody_utils.music.tokens import seed_vocab

torch.set_num_threads(1)

WORLD = 2
PER_RANK_BATCH = 16
# Parameters after training on 2 ranks vs 1 process: equal up to the order of float additions
# (gloo sums two half-batch gradients; one process sums the whole batch). Measured differences
# are ~1e-7; this bound leaves room for that while catching any real divergence (a rank
# training on its own gradients, or on the wrong windows, differs by ~1e-2).
PARAM_ATOL = 1e-5
LOSS_ATOL = 1e-5


def make_cache(n_train: int = 6, length: int = 200, seed: int = 0) -> TokenCache:
    vocab = seed_vocab()
    rng = np.random.default_rng(seed)
    pieces = [np.stack([rng.integers(0, s, length) for s in vocab.sizes], 1) for _ in range(n_train + 1)]
    return TokenCache.from_pieces(pieces, vocab, splits=["train"] * n_train + ["validation"])


def small_cfg(batch_size: int, **overrides):
    base = {
        "model.hidden": 16, "model.emb_pitch": 8, "model.emb_step": 4, "model.emb_dur": 4,
        "model.dropout": 0.0,  # dropout masks are per-rank draws: with them the runs match only in distribution
        "data.window": 16, "data.stride": 8, "data.bins": "seed",
        "train.batch_size": batch_size, "train.epochs": 2, "train.max_steps": 0, "train.warmup_steps": 3,
        "train.lr": 1e-2, "train.device": "cpu", "train.seed": 0,
    }
    base.update(overrides)
    return get_config("tiny", **base)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, cache, cfg_dict: dict, out_root: str) -> None:
    """One torchrun-like process: the env vars torchrun sets, then the ordinary train.train."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from melody_utils.config import Config

    try:
        history = T.train(Config.from_dict(cfg_dict), cache, os.path.join(out_root, f"rank{rank}"), progress=False)
        assert distributed.world_size() == WORLD and distributed.rank() == rank
        with open(os.path.join(out_root, f"history{rank}.json"), "w") as f:
            json.dump(history, f)  # every rank's history, written by the test, not by train
    finally:
        distributed.cleanup()


def test_shards_are_disjoint_cover_the_epoch_and_reshuffle():
    ds = list(range(37))  # odd length: padded to 38 by wrapping around
    order = data.EpochShuffle(37, seed=5)
    shards = [distributed.EpochShardSampler(ds, seed=5, num_replicas=WORLD, rank=r) for r in range(WORLD)]
    for epoch in (0, 1):
        order.set_epoch(epoch)
        for s in shards:
            s.set_epoch(epoch)
        perm = list(order)
        got = [list(s) for s in shards]
        assert [len(g) for g in got] == [19, 19]  # every rank the same number of windows
        assert got[0] == perm[0::2] and got[1] == perm[1::2] + [perm[0]]  # interleaved; the pad wraps around
        assert sorted(got[0] + got[1][:-1]) == list(range(37))
    shards[0].set_epoch(0)
    e0 = list(shards[0])
    shards[0].set_epoch(1)
    assert list(shards[0]) != e0  # set_epoch reshuffles


def test_interleaved_shards_of_batch_b_are_the_single_process_batch_of_2b():
    n, b = 40, 4
    order = data.EpochShuffle(n, seed=0)
    perm = list(order)
    shards = [list(distributed.EpochShardSampler(list(range(n)), seed=0, num_replicas=WORLD, rank=r)) for r in range(WORLD)]
    for k in range(n // (WORLD * b)):
        union = sorted(shards[0][k * b:(k + 1) * b] + shards[1][k * b:(k + 1) * b])
        assert union == sorted(perm[k * WORLD * b:(k + 1) * WORLD * b])


def test_single_process_helpers_are_no_ops(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.init_from_env() == distributed.DistInfo()
    assert not distributed.is_initialized() and distributed.world_size() == 1 and distributed.is_main_process()
    assert distributed.average(2.5) == 2.5 and distributed.any_rank(True) and not distributed.any_rank(False)
    loader = data.make_loader(make_cache(), "train", 16, 8, 4, shuffle=True)
    assert distributed.shard_loader(loader, 0) is loader
    model = torch.nn.Linear(2, 2)
    assert distributed.unwrap(model) is model


def test_bad_launch_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="RANK/WORLD_SIZE/LOCAL_RANK.*torchrun"):
        distributed.init_from_env()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        distributed.init_from_env()
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match="RANK=5"):
        distributed.init_from_env()


@pytest.mark.parametrize("carry", [False, True], ids=["windows", "carried-state streams"])
def test_two_gloo_ranks_match_one_process_with_the_global_batch(tmp_path, carry):
    cache = make_cache()
    n_windows = len(data.MusicDataset(cache, "train", 16, 8))
    assert n_windows % WORLD == 0  # no padding: the last global batch is split evenly too
    # With train.carry_state the ranks train on their halves of the single process's streams, each
    # carrying the state of its own rows.
    single = T.train(small_cfg(WORLD * PER_RANK_BATCH, **{"train.carry_state": carry}), cache, tmp_path / "single",
                     progress=False)

    cfg = small_cfg(PER_RANK_BATCH, **{"train.carry_state": carry})
    mp.start_processes(_rank_main, args=(_free_port(), cache, cfg.to_dict(), str(tmp_path)), nprocs=WORLD,
                       join=True, start_method="spawn")

    assert not (tmp_path / "rank1").exists()  # only rank 0 writes checkpoints and history
    ranks = [json.loads((tmp_path / f"history{r}.json").read_text()) for r in range(WORLD)]
    timing = ("seconds", "notes_per_s")
    curves = [{k: v for k, v in h.items() if k not in timing} for h in ranks]
    assert curves[0] == curves[1]  # identical weights and the averaged loss: every rank logs the same curve
    assert json.loads((tmp_path / "rank0" / T.HISTORY_FILE).read_text()) == ranks[0]
    assert ranks[0]["step"] == single["step"]  # half the batch per rank, the same number of steps
    for k in ("train_loss", "val_loss", "val_pitch", "lr"):
        np.testing.assert_allclose(ranks[0][k], single[k], rtol=0, atol=LOSS_ATOL, err_msg=k)

    a = C.read_checkpoint(tmp_path / "single" / C.CHECKPOINT_LAST)["model_state"]
    b = C.read_checkpoint(tmp_path / "rank0" / C.CHECKPOINT_LAST)["model_state"]
    assert a.keys() == b.keys()  # saved unwrapped: no "module." prefixes, loadable by load_checkpoint
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < PARAM_ATOL, f"parameters differ by {worst:.2e}"
    print(f"max parameter difference 2 ranks vs 1 process: {worst:.2e}")
    D.seed_everything(0)  # the initial weights both runs started from
    init = MD.build_from_config(small_cfg(PER_RANK_BATCH), cache.vocab).state_dict()
    moved = max(float((a[k] - init[k]).abs().max()) for k in a)
    assert moved > 100 * PARAM_ATOL  # training really changed the weights, so the match means something


def test_epoch_of_a_sample_is_sharded_like_the_single_process_sample():
    n, sample = 101, 30
    order = data.EpochShuffle(n, seed=3, sample=sample)
    shards = [distributed.EpochShardSampler(list(range(n)), seed=3, num_replicas=WORLD, rank=r, sample=sample)
              for r in range(WORLD)]
    for epoch in (0, 4):
        order.set_epoch(epoch)
        for s in shards:
            s.set_epoch(epoch)
        got = [list(s) for s in shards]
        assert [len(g) for g in got] == [15, 15] == [len(s) for s in shards]
        assert sorted(got[0] + got[1]) == sorted(order)  # the two ranks share exactly the one-process sample
