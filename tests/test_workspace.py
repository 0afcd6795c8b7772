"""Where files go: nothing changes outside Colab; in Colab (faked) one project folder on "Drive" (a temp folder)."""

import json
import os
import subprocess
import sys

import pytest

from melody_utils import workspace
from melody_utils.config import REPO_ROOT

VARS = (workspace.DATA_DIR_ENV_VAR, workspace.OUTPUTS_DIR_ENV_VAR)


@pytest.fixture
def clean_env(monkeypatch):
    """No folder variables set; the setup under test may set them (monkeypatch restores them)."""
    for var in VARS:
        monkeypatch.delenv(var, raising=False)
    # the in-process config was imported with the test suite's folders: let setup's staleness check pass
    monkeypatch.delitem(sys.modules, "melody_utils.config", raising=False)
    return monkeypatch


def fake_mount(calls):
    def mount(mount_point):
        calls.append(mount_point)
        (mount_point / "MyDrive").mkdir(parents=True)

    return mount


def test_colab_detection_follows_the_override(monkeypatch):
    monkeypatch.setenv(workspace.COLAB_ENV_VAR, "1")
    assert workspace.in_colab()
    monkeypatch.setenv(workspace.COLAB_ENV_VAR, "0")
    assert not workspace.in_colab()


def test_outside_colab_nothing_changes(clean_env, tmp_path):
    clean_env.setenv(workspace.COLAB_ENV_VAR, "0")
    calls = []
    ws = workspace.setup(use_drive=True, mount=fake_mount(calls), mount_point=tmp_path)
    assert calls == [] and not ws.colab and not ws.drive
    assert all(var not in os.environ for var in VARS)
    assert (ws.data_dir, ws.outputs_dir) == (REPO_ROOT / "data", REPO_ROOT / "outputs")
    assert not (tmp_path / "MyDrive").exists()


def test_in_colab_data_and_outputs_go_to_one_drive_folder(clean_env, tmp_path):
    clean_env.setenv(workspace.COLAB_ENV_VAR, "1")
    calls = []
    ws = workspace.setup(use_drive=True, mount=fake_mount(calls), mount_point=tmp_path)
    project = tmp_path / "MyDrive" / "melody-forge"
    assert calls == [tmp_path] and ws.colab and ws.drive
    assert (ws.data_dir, ws.outputs_dir) == (project / "data", project / "outputs")
    assert os.environ[workspace.DATA_DIR_ENV_VAR] == str(project / "data")
    assert os.environ[workspace.OUTPUTS_DIR_ENV_VAR] == str(project / "outputs")
    assert (project / "data").is_dir() and (project / "outputs").is_dir()
    assert "Google Drive" in str(ws)
    # a second setup (re-running the cell) finds Drive mounted and asks nothing
    workspace.setup(use_drive=True, mount=fake_mount(calls), mount_point=tmp_path)
    assert calls == [tmp_path]


def test_in_colab_the_opt_out_keeps_files_in_the_runtime_and_says_so(clean_env, tmp_path):
    clean_env.setenv(workspace.COLAB_ENV_VAR, "1")
    calls = []
    ws = workspace.setup(use_drive=False, mount=fake_mount(calls), mount_point=tmp_path)
    assert calls == [] and ws.colab and not ws.drive
    assert ws.outputs_dir == REPO_ROOT / "outputs"
    assert "USE_DRIVE = True" in str(ws) and "lost" in str(ws)


def test_explicit_folders_win_over_drive(clean_env, tmp_path):
    clean_env.setenv(workspace.COLAB_ENV_VAR, "1")
    clean_env.setenv(workspace.OUTPUTS_DIR_ENV_VAR, str(tmp_path / "mine"))
    ws = workspace.setup(use_drive=True, mount=fake_mount([]), mount_point=tmp_path / "drive")
    assert ws.outputs_dir == tmp_path / "mine"
    assert ws.data_dir == tmp_path / "drive" / "MyDrive" / "melody-forge" / "data"


def test_a_failed_mount_is_named(clean_env, tmp_path):
    clean_env.setenv(workspace.COLAB_ENV_VAR, "1")
    with pytest.raises(FileNotFoundError, match="USE_DRIVE = False"):
        workspace.setup(use_drive=True, mount=lambda mount_point: None, mount_point=tmp_path)


def test_config_imported_with_other_folders_asks_for_a_restart(monkeypatch, tmp_path):
    for var in VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(workspace.COLAB_ENV_VAR, "1")
    import melody_utils.config  # noqa: F401  (imported, with the test suite's folders)

    with pytest.raises(RuntimeError, match="Restart session"):
        workspace.setup(use_drive=True, mount=fake_mount([]), mount_point=tmp_path)


def test_every_package_path_follows_the_variables(tmp_path):
    """A fresh process, as a notebook after setup: the package's folders all come from the variables."""
    code = ("import json; from melody_utils import config; from melody_utils.data import corpus, maestro; "
            "print(json.dumps([str(config.DATA_DIR), str(config.OUTPUTS_DIR), str(corpus.CACHE_DIR), "
            "str(maestro.DEFAULT_ROOT), config.get_config().train.out_dir, config.get_config().sample.output, "
            "str(corpus.PIANO_PATH)]))")
    env = {**os.environ, workspace.DATA_DIR_ENV_VAR: str(tmp_path / "d"), workspace.OUTPUTS_DIR_ENV_VAR: str(tmp_path / "o")}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    data, outputs, cache, maestro_root, out_dir, output, embedded = map(str, json.loads(out.stdout))
    assert (data, outputs, cache, out_dir) == (str(tmp_path / "d"), str(tmp_path / "o"), str(tmp_path / "d" / "cache"), str(tmp_path / "o"))
    assert maestro_root.startswith(str(tmp_path / "d")) and output.startswith(str(tmp_path / "o"))
    assert embedded.startswith(str(REPO_ROOT / "data"))  # shipped with the repository, wherever the data folder is
