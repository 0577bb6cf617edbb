"""Audit of `o1-retriever bench` as a user comparing models: no progress bars in what is timed (or in a log), load
times measured where the JSON says (the CPU), and the memory rows giving the loading process's own peak."""
import argparse
import json
import os
import sys

from o1_retriever.bench import _finish
from o1_retriever.bench_measures import (_thinker_memory, bench_docs_text, bench_documents, bench_queries_text,
                                         load_times)
from o1_retriever.speed import compare_paths


def test_timed_calls_draw_no_progress_bar(tiny_embedder, capfd):
    """64 documents or queries drew tqdm bars inside the timed region (ours only: the reference path draws none),
    and off a terminal `bench > log 2>&1` filled the log with carriage-return lines."""
    row = bench_documents(tiny_embedder, bench_docs_text(64), peak_tflops=1.0, batch_size=64)
    paths = compare_paths(tiny_embedder, bench_queries_text(64), k=1, batch_size=64, peak_tflops=1.0)
    err = capfd.readouterr().err
    assert "Embedding" not in err and "Thinking" not in err and "%|" not in err, err[-500:]
    assert row["docs_per_s"] > 0 and paths["queries"] == 64


PRETEND_CUDA = "import torch\ntorch.cuda.is_available = lambda: True  # the default device becomes cuda\n"


def test_load_times_are_cpu_figures_on_a_machine_with_a_gpu(tiny_o1_dir, tmp_path, monkeypatch):
    """The meta says load_and_memory_device 'cpu', and --help that load times are CPU figures, but the child loaded
    on the default device: on a GPU machine the load times included CUDA's start-up and the copy to the GPU. Here
    the child believes it has a GPU (this torch has none, so a load there fails outright)."""
    (tmp_path / "sitecustomize.py").write_text(PRETEND_CUDA)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    times = load_times(str(tiny_o1_dir))
    assert set(times) == {"first_run", "later_runs"}
    assert all(row["from_pretrained_s"] > 0 for row in times.values())


def test_memory_rows_give_the_loading_process_peak(tiny_o1_dir, tmp_path, capsys):
    """The memory rows gave only the RSS kept after loading: what loading needs at its peak (weights read, then
    cast) was not measured, and it is what decides whether a model loads on a small machine."""
    row = _thinker_memory(str(tiny_o1_dir), None)
    assert row["peak_rss_growth_mb"] >= row["rss_growth_mb"] > 0
    # a platform without a recorded peak (None) still prints its table and writes the JSON
    meta = {"model": "m", "gpu": None, "machine": {"cpu": "cpu", "cpu_count": 2}, "dtype": "fp32",
            "max_new_tokens": 8}
    memory = {"bf16": {**row, "peak_rss_growth_mb": None}}
    out = tmp_path / "b.json"
    args = argparse.Namespace(k=1, output=str(out))
    assert _finish({"meta": meta, "thinker_memory_mb": memory}, args, _console()) == 0
    assert json.loads(out.read_text())["thinker_memory_mb"] == memory
    assert '"peak_rss_growth_mb": null' in capsys.readouterr().out


def _console():
    from rich.console import Console
    return Console(width=200)


def test_a_model_path_that_does_not_exist_fails_before_any_timing(tmp_path, capsys):
    from o1_retriever.cli import main
    assert main(["bench", "--model", str(tmp_path / "missing"), "--output", str(tmp_path / "b.json")]) == 2
    captured = capsys.readouterr()
    assert "missing' does not exist" in captured.err and "TFLOP/s" not in captured.out
