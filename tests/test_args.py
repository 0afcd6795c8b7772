"""``--set section.field=value`` fuzzed over every field of every config section (melody_utils/cli/args.py
and the settings check in cli.commands.main): a bad value is a usage error, exit code 2 and one
``error:`` line naming the field, before any work; no value ends in a traceback.

The commands themselves are replaced by stubs: what is tested is that the settings are checked
when they are set, so each case takes milliseconds. Slow suite (``-m slow``): a few thousand cases.
Text that is no value of the field's type and unknown keys are refused by the command line's
parsing of ``--set``, ``sample.n_notes`` beyond its bound by the command line; values out of a
field's range (negative sizes, NaN, infinities, a billion, unknown choices) by the config's own
checks when it is built. A flag (``--top-p 1.5``) is checked by its argparse type against the same limit.
"""

import dataclasses
import random

import pytest

from melody_utils.cli import commands as cli
from melody_utils.cli.args import COMMAND_SETTINGS, check_applicable
from melody_utils.config import MEMORY, N_NOTES, SEED, TOP_K, TOP_P, Config
from melody_utils.generate.settings import SECONDS

COMMANDS = ("prepare", "train", "generate", "quickstart", "evaluate")
# Fields whose size must be bounded (memory grows with them): a billion is refused.
SIZES = {"data.n_step_bins", "data.n_dur_bins", "data.velocity_bins", "data.window", "data.seed_window", "data.transpose",
         "model.emb_pitch", "model.emb_step", "model.emb_dur", "model.emb_vel", "model.hidden", "model.layers",
         "model.attn_heads", "model.interval_emb", "train.batch_size", "train.num_workers", "sample.n_notes"}
CHOICES = {"data.bins": "linear", "model.arch": "transformer"}  # a name that is not one of the field's choices
BAD_BY_TYPE = {int: ["abc", "1.5", "", "-1"], float: ["abc", "", "nan", "inf", "-inf", "-1"], bool: ["maybe", "2", ""]}


def fields() -> list[tuple[str, type]]:
    cfg = Config()
    return [(f"{section}.{f.name}", type(getattr(getattr(cfg, section), f.name)))
            for section in ("data", "model", "train", "sample") for f in dataclasses.fields(getattr(cfg, section))]


def bad_cases() -> list[tuple[str, str]]:
    """(key, text) pairs that no config may accept."""
    cases = [(key, text) for key, kind in fields() for text in BAD_BY_TYPE.get(kind, [])]
    cases += [(key, "1000000000") for key in sorted(SIZES)]
    cases += sorted(CHOICES.items())
    cases += [("data.window", "1"), ("model.dropout", "1.0"), ("sample.top_p", "1.5"), ("sample.temperature", "0"),
              ("data.val_fraction", "0.6"), ("train.lr", "0"), ("train.cpu_bf16", "fast")]
    return cases


def random_text(rng: random.Random) -> str:
    pick = rng.randrange(8)
    if pick == 0:
        return str(rng.randint(-10**12, 10**12))
    if pick == 1:
        return repr(rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-300, 300))
    if pick == 2:
        return str(rng.randint(-3, 70000))
    if pick == 3:
        return rng.choice(["true", "false", "None", "[1, 2]", "1e309", "0x10", "1_000", " 3 ", "-0.0", "½", "\x00", "é" * 3])
    if pick == 4:
        return "".join(rng.choice("abc019.-+eE_/ ") for _ in range(rng.randint(0, 12)))
    if pick == 5:
        return "x" * rng.choice([1000, 10000])
    return repr(rng.random())


@pytest.fixture
def stubbed(monkeypatch):
    """Commands that do nothing: a case ends once its settings are checked."""
    for name in ("cmd_prepare", "cmd_train", "cmd_generate", "cmd_quickstart", "cmd_evaluate"):
        monkeypatch.setattr(cli, name, lambda args: 0)


def run(capsys, command: str, item: str) -> tuple[int, str]:
    code = cli.main([command, "--preset", "tiny", "--quiet", "--set", item])  # an exception here fails the test
    return code, capsys.readouterr().err


def one_usage_line(code: int, err: str, key: str) -> bool:
    return code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1 and key in err


@pytest.mark.slow
def test_every_bad_value_of_every_field_is_one_usage_line(stubbed, capsys):
    failures = []
    for i, (key, text) in enumerate(bad_cases()):
        code, err = run(capsys, COMMANDS[i % len(COMMANDS)], f"{key}={text}")
        if not one_usage_line(code, err, key):
            failures.append(f"{key}={text!r}: exit {code}, {err.strip()[:120]!r}")
    assert not failures, f"{len(failures)} bad value(s) not refused in one line:\n" + "\n".join(failures)


@pytest.mark.slow
def test_random_values_never_end_in_a_traceback(stubbed, capsys):
    rng = random.Random(21)
    keys = [key for key, _ in fields()] + ["model.width", "nosuch.key", "data", "sample."]
    outcomes = {0: 0, 2: 0}
    for _ in range(3000):
        key = rng.choice(keys)
        item = f"{key}={random_text(rng)}" if rng.random() > 0.02 else key  # now and then no '=' at all
        code, err = run(capsys, rng.choice(COMMANDS), item)
        assert code in outcomes, (item, code, err)
        outcomes[code] += 1
        if code == 2:
            assert err.startswith("error:") and len(err.strip().splitlines()) == 1, (item, err)
    assert outcomes[0] and outcomes[2]  # both accepted and refused values were tried


def test_the_fuzz_cases_cover_every_field_of_every_section():
    free_text = {"data.source", "train.device", "train.out_dir", "sample.output"}  # names and paths: any text is a value
    uncovered = {key for key, _ in fields()} - {key for key, _ in bad_cases()} - free_text
    assert not uncovered, f"fields without bad values to try (a new field or type?): {sorted(uncovered)}"


def test_type_errors_unknown_keys_and_too_many_notes_are_usage_errors_now(stubbed, capsys):
    for key, text in [("model.hidden", "abc"), ("train.lr", "fast"), ("model.chained", "maybe"), ("sample.n_notes", "10**9"),
                      ("sample.n_notes", "1000000000"), ("nosuch.key", "1")]:
        assert one_usage_line(*run(capsys, "train", f"{key}={text}"), key), (key, text)


@pytest.mark.parametrize("command, key", [
    ("train", "model.hidden"), ("train", "sample.temperature"), ("quickstart", "data.window"),
    ("generate", "sample.memory"), ("generate", "train.device"),
    ("evaluate", "data.source"), ("evaluate", "data.max_files"), ("evaluate", "sample.top_p"),
    ("prepare", "data.source"), ("prepare", "data.n_step_bins"),
])
def test_settings_a_command_reads_are_accepted(command, key):
    check_applicable(command, [key])


@pytest.mark.parametrize("command, key", [
    ("evaluate", "model.hidden"), ("evaluate", "data.bins"), ("evaluate", "data.window"), ("evaluate", "sample.output"),
    ("generate", "data.source"), ("generate", "train.lr"), ("prepare", "model.arch"), ("prepare", "data.window"),
])
def test_settings_a_command_cannot_apply_are_named_with_what_it_reads(command, key):
    with pytest.raises(ValueError, match=rf"--set {key} cannot take effect for `{command}`") as err:
        check_applicable(command, ["train.device", key] if command != "prepare" else [key])
    assert COMMAND_SETTINGS[command][1] in str(err.value)


@pytest.mark.parametrize("command, item", [("evaluate", "model.hidden=8"), ("generate", "data.source=chorales"),
                                           ("prepare", "train.epochs=3")])
def test_a_setting_the_command_cannot_apply_is_a_usage_line_before_any_work(stubbed, capsys, command, item):
    code, err = run(capsys, command, item)
    assert one_usage_line(code, err, f"--set {item.split('=')[0]} cannot take effect for `{command}`")


# ---- flags: each flag's type checks its setting's limit


@pytest.mark.parametrize("argv, name, says", [
    (["generate", "--top-p", "1.5"], "--top-p", f"must be {TOP_P.describe()}, got 1.5"),
    (["generate", "--temperature", "0"], "--temperature", "must be a number > 0 (1.0 = unchanged), got 0"),
    (["generate", "--n-notes", "0"], "--n-notes", f"must be {N_NOTES.describe()}, got 0"),
    (["generate", "--top-k", "-1"], "--top-k", f"must be {TOP_K.describe()}, got -1"),
    (["generate", "--top-k", "2.5"], "--top-k", "expected an integer, got '2.5'"),
    (["generate", "--memory", "5"], "--memory", f"must be {MEMORY.describe()}, got 5"),
    (["generate", "--seconds", "0"], "--seconds", f"must be {SECONDS.describe()}, got 0"),
    (["generate", "--seed", "-1"], "--seed", f"must be {SEED.describe()}, got -1"),
    (["evaluate", "--top-p", "0"], "--top-p", f"must be {TOP_P.describe()}, got 0"),
    (["train", "--epochs", "two"], "--epochs", "expected an integer, got 'two'"),
    (["train", "--arch", "transformer"], "--arch", "invalid choice"),
    (["quickstart", "--preset", "huge"], "--preset", "invalid choice"),
])
def test_bad_values_exit_nonzero_naming_the_parameter(argv, name, says, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and name in err and "Traceback" not in err
    assert f"argument {name}: {says}" in err and len(err.strip().splitlines()) == 1
