"""`o1-retriever bench` as a user runs it: flags checked before any timing, the JSON says what was asked."""
import json

import pytest

from o1_retriever.bench import bench_docs_text
from o1_retriever.cli import build_parser, main


@pytest.mark.parametrize("flag, value, message", [
    ("--k", "-1", "--k must be comma-separated ints >= 0"),
    ("--k", "65", "--k takes one int from 0 to 64, got '65'"),
    ("--k", "1,3", "--k takes one int from 0 to 64, got '1,3'"),
    ("--docs", "0", "expected a positive int, got 0"),
    ("--queries", "many", "expected a positive int, got 'many'"),
    ("--one-by-one", "-2", "expected a positive int, got -2"),
    ("--max-new-tokens", "0", "expected a positive int, got 0"),
    ("--paths-repeats", "0", "expected a positive int, got 0"),
    ("--paths-queries", "0", "expected a positive int, got 0"),
])
def test_bad_counts_fail_at_parse_time(flag, value, message, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", flag, value])
    assert message in capsys.readouterr().err


def test_unwritable_output_fails_before_any_timing(tmp_path, capsys):
    """A folder, or a path under a file, was refused only when the JSON was written, after minutes of timing;
    the model here does not exist, so any work before the check would fail with another message."""
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    for output, message in ((tmp_path, "is a folder: name a file"),
                            (not_a_folder / "bench.json", "is a file, not a folder")):
        assert main(["bench", "--model", str(tmp_path / "missing"), "--output", str(output)]) == 2
        assert message in capsys.readouterr().err


def test_docs_is_the_number_of_documents_timed():
    assert [len(bench_docs_text(n)) for n in (1, 5, 33, 100)] == [1, 5, 33, 100]  # were 32, 32, 32, 96
    assert len(set(bench_docs_text(5))) == 5


def test_json_records_every_option(tiny_o1_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "new" / "bench.json"
    assert main(["bench", "--model", str(tiny_o1_dir), "--dtype", "fp32", "--max-new-tokens", "2", "--k", "1",
                 "--queries", "2", "--one-by-one", "1", "--docs", "3", "--batch-size", "2", "--paths-k", "1",
                 "--paths-batch", "1", "--paths-repeats", "1", "--throughput-only", "--output", str(out)]) == 0
    meta = json.loads(out.read_text())["meta"]
    assert meta["documents"] == 3 and meta["queries"] == 2
    options = meta["options"]
    assert options["one_by_one"] == 1 and options["paths_repeats"] == 1 and options["throughput_only"] is True
    assert options["paths_batch"] == [1] and options["docs"] == 3 and "func" not in options
    assert out.with_name("bench_paths.png").read_bytes()[:4] == b"\x89PNG"
