"""Reading checkpoints (melody_utils/model/checkpoint.py): a foreign, damaged or crafted file is one
line naming it, and a config that describes an absurd model is refused before anything is allocated;
a checkpoint read back gives the model that was saved."""

import numpy as np
import pytest
import torch

from melody_utils.cli import commands as cli
from melody_utils.model import checkpoint as C, lstm as MD
from melody_utils.train import loop as T

from helpers import make_cache, tiny_cfg

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    T.train(tiny_cfg(**{"train.epochs": 1}), make_cache(), out, progress=False)
    return out / C.CHECKPOINT_LAST


def crafted(trained, path, change):
    ckpt = torch.load(trained, weights_only=True)
    change(ckpt)
    torch.save(ckpt, path)
    return path


def generate_fails(capsys, checkpoint, *needles) -> str:
    """``generate --checkpoint`` ends in exit 1 and one ``error:`` line holding ``needles``."""
    assert cli.main(["generate", "--quiet", "--device", "cpu", "--primer", "none", "--n-notes", "4",
                     "--output", str(checkpoint.parent / "x.mid"), "--checkpoint", str(checkpoint)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert str(needle) in err, err
    return err


@pytest.fixture
def devices(monkeypatch):
    """The device each model build allocates on ("meta": nothing is allocated)."""
    seen = []
    real_build = C.build_from_config

    def spy(cfg, vocab):
        seen.append(torch.empty(0).device.type)
        return real_build(cfg, vocab)

    monkeypatch.setattr(C, "build_from_config", spy)
    return seen


# Within every single setting's own range (melody_utils/checks.py), yet billions of parameters together.
HUGE = {"hidden": 8192, "layers": 16}


def test_a_config_of_an_absurd_model_is_refused_before_allocating(trained, tmp_path, devices, capsys):
    path = crafted(trained, tmp_path / "huge.pt", lambda c: c["config"]["model"].update(HUGE))
    with pytest.raises(ValueError) as info:
        C.load_checkpoint(path)
    msg = str(info.value)
    assert f"checkpoint {path}: a model of" in msg and "model.hidden=8192, model.layers=16" in msg
    assert f"more than the {C.MAX_PARAMETERS:,}" in msg and devices == ["meta"]
    generate_fails(capsys, path, path, "parameters")
    assert devices == ["meta", "meta"]


def test_the_issue_s_crafted_hidden_size_is_one_line_and_allocates_nothing(trained, tmp_path, devices, capsys):
    path = crafted(trained, tmp_path / "crafted.pt", lambda c: c["config"]["model"].update(hidden=300_000))
    generate_fails(capsys, path, path, "300000")  # the size bound, or the setting's own range once it is checked
    assert set(devices) <= {"meta"}


def test_the_same_bound_holds_for_a_run_s_settings(tmp_path):
    cfg = tiny_cfg(**{f"model.{k}": v for k, v in HUGE.items()})
    with pytest.raises(ValueError, match=r"the run's settings: a model of [\d,]+ parameters .*model.layers=16"):
        T.train(cfg, make_cache(), tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("change, needle", [
    (lambda c: c.update(model_state=[1, 2, 3]), "its model_state is a list, not named tensors"),
    (lambda c: c.update(model_state="weights"), "its model_state is a str, not named tensors"),
    (lambda c: c["model_state"].update(extra=[0.5]), "its model_state holds 'extra': a list, not a tensor"),
    (lambda c: c["config"].update(model=7), "its config or vocab is not a dict of settings"),
    (lambda c: c.update(vocab=None), "its config or vocab is not a dict of settings"),
    (lambda c: c["config"]["model"].update(width=3), "holds settings this version cannot use"),
    (lambda c: c["config"]["model"].update(hidden=24), "does not fit the model its config describes"),
])
def test_crafted_checkpoints_are_one_line_naming_the_file(trained, tmp_path, capsys, change, needle):
    path = crafted(trained, tmp_path / "crafted.pt", change)
    with pytest.raises(ValueError, match=needle):
        C.load_checkpoint(path)
    generate_fails(capsys, path, path, needle)


def test_a_foreign_file_a_damaged_one_and_a_folder_are_named_for_what_they_are(trained, tmp_path, capsys):
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    err = generate_fails(capsys, passwd, passwd, "is not a Melody Forge checkpoint (not a file written by torch.save)")
    assert "delete" not in err  # never advise deleting a file that is not ours
    cut = tmp_path / "ckpt_last.pt"
    cut.write_bytes(trained.read_bytes()[: trained.stat().st_size // 2])
    err = generate_fails(capsys, cut, cut, "is damaged", C.CHECKPOINT_BEST)
    assert "delete" not in err
    err = generate_fails(capsys, trained.parent, trained.parent, "is a folder, not a checkpoint",
                         C.default_checkpoint(trained.parent))
    assert "not found" not in err


def test_a_bad_sampling_value_in_a_checkpoint_is_named_with_the_file(trained, tmp_path, capsys):
    path = crafted(trained, tmp_path / "cold.pt", lambda c: c["config"]["sample"].update(temperature=-1.0))
    generate_fails(capsys, path, path, "sample.temperature")


# ---- saved and read back


def test_checkpoint_round_trip_gives_identical_outputs(cache, tmp_path):
    cfg = tiny_cfg()
    torch.manual_seed(0)
    model = MD.build_from_config(cfg, cache.vocab).eval()
    path = C.save_checkpoint(tmp_path / "ck.pt", model, cfg, cache.vocab, epoch=0, step=0)
    loaded, vocab, cfg2, state = C.load_checkpoint(path, device="cpu")
    assert vocab == cache.vocab and cfg2.to_dict() == cfg.to_dict() and state["step"] == 0
    assert not loaded.training and all(p.device.type == "cpu" for p in loaded.parameters())
    x = torch.from_numpy(cache.piece_tokens(0)[None, :20].astype(np.int64))
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x)):
            assert torch.equal(a, b)


def test_missing_and_corrupt_checkpoints_raise_clear_errors(tmp_path):
    missing = tmp_path / "nope" / "ckpt_best.pt"
    with pytest.raises(FileNotFoundError) as err:
        C.load_checkpoint(missing)
    assert str(missing) in str(err.value) and "python -m melody_utils train" in str(err.value)
    bad = tmp_path / "ckpt_last.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="ckpt_last.pt"):
        C.load_checkpoint(bad)
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a Melody Forge checkpoint"):
        C.load_checkpoint(tmp_path / "other.pt")
