"""Test-wide settings: small sizes, and generated files kept out of the user's outputs/."""

import os
import tempfile

# Notebooks executed by nbval and the tests run the tiny preset (seconds on a CPU).
os.environ.setdefault("MELODY_PRESET", "tiny")
# Checkpoints and MIDI written by the notebooks under test go to a scratch folder, never over
# a user's real outputs/ (the notebooks read this variable through melody_utils.config).
os.environ.setdefault("MELODY_OUTPUTS_DIR", tempfile.mkdtemp(prefix="melody-forge-test-outputs-"))
os.environ.setdefault("MPLBACKEND", "Agg")
# Notebook 01 never downloads MAESTRO under test: it shows the embedded corpus instead.
os.environ["MELODY_DOWNLOAD"] = "0"
# Notebook kernels (nbval) import this checkout's melody_utils, installed or not.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(os.path.abspath(__file__)), os.environ.get("PYTHONPATH")]))


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` run only when asked for (``-m slow``), as the marker's description says."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    import pytest

    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
