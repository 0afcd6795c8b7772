"""Each notebook as Colab runs it: its own fresh process, seeing only what the earlier ones left on "Drive".

In Colab every notebook gets its own runtime; what one hands to the next goes through the project
folder on Google Drive (see melody_utils.workspace). Here a temp folder stands in for it: each
notebook runs under nbval in a new process with ``MELODY_DATA_DIR``/``MELODY_OUTPUTS_DIR`` pointing
into that folder, and each must pass holding only what the notebooks before it wrote there (the
suite's own run, ``notebooks/`` in testpaths, runs them in order in one process). Tiny preset,
no download: about a minute on 2 cores.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from melody_utils.workspace import DATA_DIR_ENV_VAR, OUTPUTS_DIR_ENV_VAR

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.notebooks
def test_each_notebook_runs_alone_on_what_the_previous_ones_left_on_drive(tmp_path):
    drive = tmp_path / "MyDrive" / "melody-forge"
    env = {**os.environ, DATA_DIR_ENV_VAR: str(drive / "data"), OUTPUTS_DIR_ENV_VAR: str(drive / "outputs"),
           "MELODY_PRESET": "tiny", "MELODY_DOWNLOAD": "0"}
    seen = []
    for nb in NOTEBOOKS:
        before = files(tmp_path)
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", str(nb)], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, f"{nb.name}, run alone after {seen} on the stand-in Drive, failed:\n{run.stdout[-4000:]}"
        seen.append(nb.stem)
        new = files(tmp_path) - before
        if nb.name.startswith("02"):  # the token cache, for 03
            assert any(f.startswith("MyDrive/melody-forge/data/cache/") for f in new), new
        if nb.name.startswith("03"):  # the checkpoint, for 04
            assert "MyDrive/melody-forge/outputs/ckpt_best.pt" in new, new
        if nb.name.startswith("04"):
            assert "MyDrive/melody-forge/outputs/improved_generated_output.midi" in new, new
    assert len(seen) == 4
