"""Shared header for benchmark output: what ran, where, when, and how busy the machine was."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys


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
