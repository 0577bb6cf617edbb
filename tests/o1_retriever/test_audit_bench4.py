"""Audit of `o1-retriever bench`: every flag refused before the minute of matmul timing and model loading, and the
PNG written all or nothing."""
import argparse
import json
import os
import subprocess
import sys

import pytest

from o1_retriever.cli import build_parser, main


def test_paths_k_above_the_limit_fails_at_parse_time(capsys):
    """--paths-k 65 was accepted and failed only after the matmul timing and the model's load (half a minute)."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--paths-k", "1,65"])
    assert "--paths-k takes ints from 1 to 64, got '1,65'" in capsys.readouterr().err


@pytest.mark.parametrize("field, value, message", [
    ("paths_k", [65], "paths_k values must be ints from 1 to 64, got 65"),
    ("paths_k", [0], "paths_k values must be ints from 1 to 64, got 0"),
    ("paths_batch", [0], "paths_batch must be > 0, got 0"),
])
def test_run_bench_from_python_checks_the_paths_rows_first(tmp_path, field, value, message):
    """The model does not exist: any work before the check would fail with another message (after the timing)."""
    from o1_retriever.bench import run_bench
    args = build_parser().parse_args(["bench", "--model", str(tmp_path / "missing"),
                                      "--output", str(tmp_path / "b.json")])
    setattr(args, field, value)
    with pytest.raises(ValueError, match=message):
        run_bench(args)


@pytest.mark.parametrize("package, message", [
    ("matplotlib", "plots need matplotlib"),              # the _paths.png: the JSON was written, then a traceback
    ("psutil", "the bench's memory rows need psutil"),    # the memory rows: no JSON at all
])
def test_missing_optional_package_fails_before_any_timing(tmp_path, capsys, monkeypatch, package, message):
    """The package was first imported after minutes of timing."""
    monkeypatch.setitem(sys.modules, package, None)  # how Python marks a module that cannot be imported
    assert main(["bench", "--model", str(tmp_path / "missing"), "--output", str(tmp_path / "b.json")]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "TFLOP/s" not in captured.out
    assert not (tmp_path / "b.json").exists()


ROW = {"k": 1, "batch_size": 2, "speedup": 1.5, "reference": {"ms_per_query": 30.0},
       "ours": {"ms_per_query": 20.0, "fraction_of_bound": 0.1}}
META = {"model": "m", "gpu": None, "machine": {"cpu": "cpu", "cpu_count": 2}, "dtype": "fp32", "max_new_tokens": 8}


def test_a_paths_png_cut_short_by_a_kill_leaves_the_previous_one_whole(tmp_path):
    """plot_paths wrote straight into bench_paths.png: a run killed mid-write (here by the kernel, past a file-size
    limit) left a truncated PNG where the last good one was."""
    out = tmp_path / "bench.json"
    code = ("import argparse, resource, sys; from rich.console import Console; from o1_retriever.bench import _finish;"
            f"result = {{'meta': {META!r}, 'paths': [{ROW!r}]}}; args = argparse.Namespace(k=1, output=sys.argv[1]);"
            "_finish(result, args, Console());"                                  # a whole PNG, as a first run leaves
            "resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000));"           # past 2 kB: SIGXFSZ kills
            "_finish(result, args, Console())")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, env=env)
    assert done.returncode != 0, "the file-size limit did not stop the writer"
    png = (tmp_path / "bench_paths.png").read_bytes()
    assert png[:4] == b"\x89PNG" and png.endswith(b"IEND\xaeB`\x82"), "a truncated PNG"
    assert json.loads(out.read_text())["paths"] == [ROW]


def test_a_failed_memory_or_load_process_is_a_row_not_the_end_of_the_bench(tmp_path, capsys):
    """The bf16 memory row and the load times raised CalledProcessError, and a process killed for memory (nothing
    on stderr) made even the 4-bit row's handler raise IndexError: minutes of throughput timing were lost, no JSON.
    Here every process fails: the folder holds no model."""
    from rich.console import Console

    from o1_retriever.bench import _finish, load_and_memory_rows
    (tmp_path / "empty").mkdir()
    load, memory = load_and_memory_rows(str(tmp_path / "empty"))
    assert set(load) == {"error"} and set(memory) == {"bf16", "4bit"}
    assert all(set(row) == {"error"} and row["error"] for row in memory.values())
    out = tmp_path / "bench.json"
    result = {"meta": META, "load_seconds": load, "thinker_memory_mb": memory}
    assert _finish(result, argparse.Namespace(k=1, output=str(out)), Console(width=200)) == 0
    assert json.loads(out.read_text())["thinker_memory_mb"] == memory
    assert "load times" in capsys.readouterr().out


def test_output_with_a_tilde_the_shell_left_goes_home(tmp_path, monkeypatch):
    """--output=~/b.json was checked as ~/b.json, then the JSON and PNG were written under ./~/."""
    from rich.console import Console

    from o1_retriever.bench import _finish
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    result = {"meta": META, "paths": [ROW]}
    assert _finish(result, argparse.Namespace(k=1, output="~/b.json"), Console()) == 0
    assert json.loads((tmp_path / "home" / "b.json").read_text())["paths"] == [ROW]
    assert (tmp_path / "home" / "b_paths.png").read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "~").exists()
