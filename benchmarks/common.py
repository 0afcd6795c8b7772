"""Shared header for benchmark output: what ran, where, when, and how busy the machine was."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path


def machine_header(name: str, argv=None) -> str:
    import torch

    try:
        uptime = subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        uptime = "n/a"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    cmd = " ".join(["python", f"benchmarks/{name}.py", *(argv if argv is not None else sys.argv[1:])])
    return "\n".join([
        f"# {name}",
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"command: {cmd}",
        f"machine: {platform.node()} | {cpu} | {os.cpu_count()} cores | GPU: {gpu}",
        f"python {platform.python_version()} | torch {torch.__version__} | torch threads {torch.get_num_threads()}",
        f"load: {uptime}",
    ])


# The corpora the quality benchmarks compare side by side. "performances": real piano performances
# (../shared/corpora/performances beside the checkout, or $MELODY_PERFORMANCES; non-commercial licence:
# development and benchmarks only, never copied into the repository), split by its metadata.csv's work column.
REPO_ROOT = Path(__file__).resolve().parent.parent
PERFORMANCES = Path(os.environ.get("MELODY_PERFORMANCES", REPO_ROOT.parent / "shared" / "corpora" / "performances"))
BOTH_CORPORA = "piano,performances"


def corpus_source(name: str) -> tuple[str | None, str]:
    """A benchmark's corpus name -> (its ``data.source``, or None when absent; a note saying which files)."""
    if name == "performances":
        if not (PERFORMANCES / "metadata.csv").is_file():
            return None, f"performances: skipped, {PERFORMANCES} is absent (set MELODY_PERFORMANCES to its folder)"
        return str(PERFORMANCES), f"performances: {PERFORMANCES}, split by work"
    return name, name


def corpus_names(text: str) -> list[str]:
    """'piano,performances' -> ['piano', 'performances']."""
    return [t.strip() for t in text.split(",") if t.strip()]
