"""Tests of melody_utils.evaluate.report: a checkpoint evaluated (likelihoods and baselines, statistics
of generated against held-out pieces, the piece memory, a sweep at its setting) and the report's text.
The ``evaluated`` fixture (conftest.py) evaluates an untrained tiny checkpoint of each kind."""

import json

import numpy as np
import pytest

from melody_utils.evaluate import report as M
from melody_utils.music.tokens import seed_vocab


def test_evaluate_scores_the_model_and_its_baselines(evaluated):
    nll = evaluated["result"]["nll"]
    assert list(nll) == ["model", "uniform", "1-gram", "2-gram", "3-gram"]
    assert set(nll["model"]["nats"]) == {"pitch", "step", "duration", "total"}
    # an untrained model is about as good as uniform; the cycle makes the 2-gram far better
    assert abs(nll["model"]["nats"]["total"] - nll["uniform"]["nats"]["total"]) < 1.0
    assert nll["2-gram"]["nats"]["pitch"] < nll["1-gram"]["nats"]["pitch"] - 2
    test_notes = 2 * 120
    assert nll["model"]["n_notes"] >= (test_notes - 2 * 17 if evaluated["arch"] == "causal" else 2 * (120 - 16))


def test_evaluate_compares_generated_with_held_out_pieces(evaluated):
    result = evaluated["result"]
    assert result["split"] == "test" and result["stats"]["n_generated"] == 3 and result["stats"]["n_reference"] == 2
    assert 0.0 <= result["degenerate_rate"] <= 1.0
    assert [len(result["piece_stats"][k]) for k in ("generated", "reference")] == [3, 2]
    assert "sweep" not in result


def test_evaluate_sweep_row_at_the_evaluated_setting_reproduces_the_evaluation(evaluated):
    # the sweep reuses the evaluation's primers, seeds and excerpts
    cfg, s = evaluated["cfg"], evaluated["cfg"].sample
    quick = M.evaluate_checkpoint(evaluated["path"], cache=evaluated["cache"], n_samples=2, sampling={"n_notes": 24},
                                  device="cpu", progress=False, likelihood=False,
                                  sweep={"temperatures": [s.temperature], "top_ps": [s.top_p, 0.5]})
    assert quick["nll"] == {} and "log-likelihood" not in M.format_report(quick)
    assert quick["sampling"]["n_notes"] == 24 and quick["stats"]["n_generated"] == 2
    sweep = quick["sweep"]
    assert [(r["temperature"], r["top_p"]) for r in sweep["rows"]] == [(s.temperature, s.top_p), (s.temperature, 0.5)]
    assert (sweep["n_pieces"], sweep["n_notes"], sweep["top_k"]) == (2, 24, cfg.sample.top_k)
    assert sweep["rows"][0]["mean_oa"] == pytest.approx(quick["stats"]["mean_oa"])
    assert sweep["rows"][0]["degenerate_rate"] == quick["degenerate_rate"]
    assert sweep["reference_degenerate_rate"] == quick["reference_degenerate_rate"]
    assert sweep["best"]["top_p"] in (s.top_p, 0.5)
    json.dumps(quick, allow_nan=False)


def test_evaluate_checkpoint_generates_with_the_sampling_changes_and_refuses_bad_ones(evaluated, monkeypatch):
    from melody_utils.generate.settings import SamplingSettings

    cfg, used = evaluated["cfg"], []
    real = M.model_generate_fn
    monkeypatch.setattr(M, "model_generate_fn", lambda model, vocab, settings=None, **kw: used.append(settings)
                        or real(model, vocab, settings, **kw))
    changes = {"temperature": 0.5, "top_k": 3, "n_notes": 20, "memory": 1.5}
    result = M.evaluate_checkpoint(evaluated["path"], cache=evaluated["cache"], n_samples=2, sampling=changes,
                                   device="cpu", progress=False, likelihood=False)
    assert used == [SamplingSettings.from_config(cfg.sample, **changes)]  # the checkpoint's sample section + the changes
    assert used[0].top_p == cfg.sample.top_p  # what is not given stays the checkpoint's
    s = result["sampling"]
    assert (s["temperature"], s["top_k"], s["top_p"], s["n_notes"]) == (0.5, 3, cfg.sample.top_p, 20)
    assert result["memory"]["strength"] == 1.5
    for bad, says in (({"top_p": 1.5}, r"^top_p must be a number in \(0, 1\]"), ({"memory": -1.0}, "^memory must be"),
                      ({"n_notes": 0}, "^n_notes must be"), ({"temp": 0.9}, "unknown sampling setting")):
        with pytest.raises(ValueError, match=says):
            M.evaluate_checkpoint(evaluated["path"], cache=evaluated["cache"], n_samples=2, sampling=bad, device="cpu",
                                  progress=False, likelihood=False)
    assert len(used) == 1  # refused before any piece is generated


def test_format_report_has_the_likelihood_and_statistics_tables(evaluated):
    result = evaluated["result"]
    report = M.format_report(result)
    assert "| 3-gram |" in report and "| pitch_range |" in report and f"model ({evaluated['arch']})" in report
    assert "Sampling sweep" not in report
    json.dumps(result, allow_nan=False)  # JSON-ready: the CLI writes it


def test_evaluate_scores_the_piece_memory_with_its_weights_and_refitted_on_the_corpus(evaluated):
    mem, nll = evaluated["result"]["memory"], evaluated["result"]["nll"]
    if evaluated["arch"] != "causal":
        assert set(mem) == {"strength"}  # the memory's likelihood is scored for causal models only
        return
    from melody_utils.generate.memory import MEMORY

    assert mem["nll"]["n_notes"] == mem["nll_refit"]["n_notes"] == nll["model"]["n_notes"]  # the same notes
    # every piece here climbs the keyboard by semitones, so pitches repeat 88 notes later: the validation
    # pieces call for other weights than the piano corpus's, and the refit finds them
    refit = mem["refit"]
    assert len(refit["weights"]) == MEMORY.order and tuple(refit["weights"]) != MEMORY.weights
    assert mem["settings"] == MEMORY.to_dict()  # a checkpoint without a fitted memory plays the piano corpus's
    # its steps and durations do not repeat with the pitches: the piano weights mislead, the refitted ones less
    assert mem["nll_refit"]["nats"]["total"] < mem["nll"]["nats"]["total"]
    report = M.format_report(evaluated["result"])
    assert "| model + memory |" in report and "| model + memory refitted |" in report


def test_evaluate_rejects_a_cache_of_another_vocabulary(tmp_path):
    from melody_utils.model.checkpoint import save_checkpoint
    from melody_utils.config import get_config
    from melody_utils.data.corpus import TokenCache
    from melody_utils.model.lstm import build_from_config

    cfg = get_config("tiny", **{"model.hidden": 8})
    path = save_checkpoint(tmp_path / "ckpt.pt", build_from_config(cfg, seed_vocab()), cfg, seed_vocab())
    other = seed_vocab(velocity_bins=4)
    cache = TokenCache.from_pieces([np.zeros((40, 4), int)] * 4, other, ["train", "train", "test", "test"])
    with pytest.raises(ValueError, match="another vocabulary than the token cache's .velocity bins 0 vs 4"):
        M.evaluate_checkpoint(path, cache=cache, n_samples=2, progress=False)


@pytest.mark.parametrize("context", [20, 30])
def test_context_scores_exactly_the_notes_with_that_many_before_them(evaluated, context):
    import torch
    import torch.nn.functional as F

    model, cfg, cache = evaluated["model"].eval(), evaluated["cfg"], evaluated["cache"]
    pieces = cache.split_tokens("test")
    got = M.context_nll(model, cfg, cache.vocab, pieces, context=context)
    # reference: every note i >= context of every piece, one at a time, from what the model reads before it
    total, n = 0.0, 0
    with torch.no_grad():
        for t in (torch.as_tensor(p.astype(np.int64)) for p in pieces):
            for i in range(context, len(t)):
                if model.causal:
                    logits = [lg[0, -1] for lg in model(t[None, :i], next_pitch=t[None, 1: i + 1, 0])]
                else:
                    logits = [lg[0] for lg in model(t[None, i - model.window: i])]
                total += sum(float(F.cross_entropy(lg[None], t[i, f][None])) for f, lg in enumerate(logits))
                n += 1
    assert got["n_notes"] == n == sum(len(p) - context for p in pieces)
    assert got["nats"]["total"] == pytest.approx(total / n, rel=1e-4)


def test_context_shorter_than_a_window_models_window_is_refused(evaluated):
    if evaluated["model"].causal:
        pytest.skip("causal models score any context")
    with pytest.raises(ValueError, match="context=8 is shorter than the window model's 16 notes"):
        M.context_nll(evaluated["model"], evaluated["cfg"], evaluated["cache"].vocab, evaluated["cache"].split_tokens("test"), 8)
