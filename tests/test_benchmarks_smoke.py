"""The benchmark scripts run end to end at tiny budgets (their figures are not checked: timings
belong in docs/benchmarks.md, never in assertions)."""

import re

from benchmarks import run_all


def test_every_benchmark_prints_its_table(capsys):
    assert run_all.main(["--tiny"]) == 0
    out = capsys.readouterr().out
    for name in ("bench_preprocess", "bench_train", "bench_generate", "bench_quality"):
        assert f"# {name}" in out
    assert re.search(r"\| symusic \| [\d,]+ \| [\d,]+ \|", out)  # preprocessing row with files and notes
    assert re.search(r"\| seed-style MusicLSTM .*\| 1\.0× \|", out)  # training table with its reference row
    assert re.search(r"causal, numpy stepper +1\.05M +1 +[\d,]+", out)  # generation at batch 1
    rows = re.findall(r"\| causal 2x256 chained, batch 64, window 64 \| [\d.]+ M \| \d+ \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", out)
    assert rows and all(float(x) > 0 for x in rows[0])  # held-out nats per head and in total
