"""Behaviour recorded by scripts/make_golden.py still holds: the same loss curves, the same notes
through every generation path, the same CLI lines (run that script again after a deliberate change)."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("make_golden", ROOT / "scripts" / "make_golden.py")
make_golden = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_golden)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    files = make_golden.record(tmp_path_factory.mktemp("golden"))
    return {name: json.loads(json.dumps(content)) for name, content in files.items()}  # tuples -> lists, as stored


def golden(name: str) -> dict:
    return json.loads((make_golden.GOLDEN_DIR / name).read_text())


@pytest.mark.parametrize("run", ["causal", "window"])
def test_loss_curve_is_unchanged(recorded, run):
    now, then = recorded["loss_history.json"][run], golden("loss_history.json")[run]
    assert now.keys() == then.keys()
    for key in then:
        # the last bits of float sums may differ between CPU models' kernels; nothing more
        assert all(math.isclose(a, b, rel_tol=1e-6)
                   for a, b in zip(now[key], then[key], strict=True)), key


@pytest.mark.parametrize("path", ["causal_numpy", "causal_torch", "window", "no_primer", "widget_fn", "sweep_fn",
                                  "cli_generate", "widget_fn_in_bins"])
def test_generated_notes_are_unchanged(recorded, path):
    assert recorded["generation.json"][path] == golden("generation.json")[path]


def test_evaluation_is_unchanged(recorded):
    now, then = recorded["generation.json"]["evaluate"], golden("generation.json")["evaluate"]
    assert now["sampling"] == then["sampling"] and now["sweep_best"] == then["sweep_best"]
    assert now["degenerate_rate"] == then["degenerate_rate"]
    assert now["nll"] == then["nll"] and now["stats"]["mean_oa"] == then["stats"]["mean_oa"]


@pytest.mark.parametrize("command", ["train", "generate", "errors", "help"])
def test_cli_lines_are_unchanged(recorded, command):
    assert recorded["cli.json"][command] == golden("cli.json")[command]
