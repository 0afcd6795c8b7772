"""The benchmark scripts run end to end at tiny budgets (their figures are not checked: timings
belong in docs/benchmarks.md, never in assertions), on a CPU with native bf16 and on one without."""

import re

import pytest

from benchmarks import run_all
from melody_utils import device


@pytest.mark.parametrize("native_bf16", [False, None], ids=["bf16-forced-off", "this-cpu"])
def test_every_benchmark_prints_its_table(capsys, monkeypatch, native_bf16):
    if native_bf16 is False:
        monkeypatch.setattr(device, "cpu_flags", lambda: set())  # a CPU without AVX512-BF16/AMX
    elif not device.cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16: the forced-off run already covers it")
    assert run_all.main(["--tiny"]) == 0
    out = capsys.readouterr().out
    for name in ("bench_preprocess", "bench_train", "bench_generate", "bench_quality", "bench_threads", "bench_audio",
                 "bench_train_time"):
        assert f"# {name}" in out
    assert re.search(r"\| \+1 burner \| 1 \| [\d,]+ \| [\d,]+ \| [\d.]+x \|", out)  # generation beside the burner, pin off and on
    assert re.search(r"\| numpy \| [\d,]+x \| 1\.00 \| .* \| 1\.00 \|", out)  # the renderer that always runs, in tune
    assert re.search(r"\| symusic \| [\d,]+ \| [\d,]+ \|", out)  # preprocessing row with files and notes
    assert re.search(r"\| seed-style MusicLSTM .*\| 1\.0× \|", out)  # training table with its reference row
    assert re.search(r"causal, numpy stepper +1\.05M +1 +[\d,]+", out)  # generation at batch 1
    rows = re.findall(r"\| causal 2x256 chained, batch 64, window 64 \| [\d.]+ M \| \d+ \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", out)
    assert rows and all(float(x) > 0 for x in rows[0])  # held-out nats per head and in total
    shares = re.findall(r"\| every [^|]* \| [\d.]+ \| [\d.]+ \| [\d.]+ \((\d+)\) \| [\d.]+ \((\d+)\) \| -?[\d.]+ \| "
                        r"\*\*([\d.]+)%\*\* \|", out)
    assert len(shares) == 2 and all(int(v) >= 1 and int(c) >= 2 and 0 < float(p) <= 100 for v, c, p in shares)
    bf16_rows = re.findall(r"\| [^|]*bf16 autocast[^|]* \|", out)
    if native_bf16 is False:
        assert not bf16_rows and "skipped 'causal 2x256 chained, batch 64, window 64, bf16 autocast'" in out
    else:
        assert bf16_rows  # this CPU has native bf16: the bf16 rows are measured


def test_quality_table_compares_the_seed_fields_and_shows_velocity_apart():
    from benchmarks.bench_quality import format_table

    seed = {"pitch": 3.0, "step": 1.0, "duration": 1.0, "total": 5.0}
    ours = {"pitch": 2.5, "step": 0.5, "duration": 1.0, "velocity": 1.5, "total": 5.5}
    table = format_table([("seed-style MusicLSTM", 1e6, 10, seed), ("causal", 1e6, 10, ours)])
    assert "| seed-style MusicLSTM | 1.00 M | 10 | 3.000 | 1.000 | 1.000 | 5.000 | 100.0% | – |" in table
    assert "| causal | 1.00 M | 10 | 2.500 | 0.500 | 1.000 | 4.000 | 80.0% | 1.500 |" in table  # velocity not in the ratio


def test_memory_timing_benchmark_moves_only_step_and_duration_by_one_bin():
    import numpy as np

    from benchmarks.bench_memory_timing import vary_timing

    rng = np.random.default_rng(0)
    sizes = (88, 32, 32, 16)
    tokens = np.stack([rng.integers(0, s, 4000) for s in sizes], 1)
    tokens[:, 1] = np.clip(tokens[:, 1], 1, 30)  # room to move either way
    moved = vary_timing(tokens, 0.3, sizes, rng)
    assert np.array_equal(moved[:, [0, 3]], tokens[:, [0, 3]])  # pitch and velocity stay
    diff = np.abs(moved[:, 1] - tokens[:, 1])
    assert diff.max() == 1 and 0.25 < diff.mean() < 0.35  # about 30% of the steps moved, by one bin
    assert np.array_equal(vary_timing(tokens, 0.0, sizes, rng), tokens)


def test_the_performances_column_is_skipped_with_a_note_when_the_corpus_is_absent(tmp_path, monkeypatch, capsys):
    from benchmarks import bench_evaluate, bench_memory_timing, bench_quality, bench_tokens, common

    monkeypatch.setattr(common, "PERFORMANCES", tmp_path / "absent")
    assert bench_quality.main(["--source", "performances"]) == 0
    assert bench_memory_timing.main(["--corpora", "performances"]) == 0
    assert bench_tokens.main(["--corpora", "performances", "--work", str(tmp_path / "w")]) == 0
    assert bench_evaluate.main(["--corpora", "performances"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"performances: skipped, {tmp_path / 'absent'} is absent") == 4


def test_corpora_side_by_side_give_each_its_own_ratios():
    from benchmarks.bench_quality import side_by_side

    def rows(seed, gram, ours):
        r = lambda x: {"pitch": x, "step": 0.0, "duration": 0.0, "total": x}  # noqa: E731
        return [("3-gram (count-based)", 0, 0, r(gram)), ("seed-style MusicLSTM", 1e6, 10, r(seed)), ("causal", 1e6, 10, r(ours))]

    table = side_by_side({"piano": rows(5.0, 6.0, 4.0), "performances": rows(8.0, 8.0, 6.0)})
    assert "| causal | 4.000 | 80.0% | 66.7% | 6.000 | 75.0% | 75.0% |" in table
