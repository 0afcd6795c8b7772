"""The command line's argument types and which --set settings each command can apply (melody_utils.cli.args)."""

import pytest

from melody_utils.cli.args import COMMAND_SETTINGS, check_settings


@pytest.mark.parametrize("command, key", [
    ("train", "model.hidden"), ("train", "sample.temperature"), ("quickstart", "data.window"),
    ("generate", "sample.memory"), ("generate", "train.device"),
    ("evaluate", "data.source"), ("evaluate", "data.max_files"), ("evaluate", "sample.top_p"),
    ("prepare", "data.source"), ("prepare", "data.n_step_bins"),
])
def test_settings_a_command_reads_are_accepted(command, key):
    check_settings(command, [key])


@pytest.mark.parametrize("command, key", [
    ("evaluate", "model.hidden"), ("evaluate", "data.bins"), ("evaluate", "data.window"), ("evaluate", "sample.output"),
    ("generate", "data.source"), ("generate", "train.lr"), ("prepare", "model.arch"), ("prepare", "data.window"),
])
def test_settings_a_command_cannot_apply_are_named_with_what_it_reads(command, key):
    with pytest.raises(ValueError, match=rf"--set {key} cannot take effect for `{command}`") as err:
        check_settings(command, ["train.device", key] if command != "prepare" else [key])
    assert COMMAND_SETTINGS[command][1] in str(err.value)
