"""Audit of `o1-retriever eval`'s flags and outputs: failures that came only after the work, outputs written where the
user did not mean."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from beir_fixtures import write_beir  # noqa: E402

from o1_retriever.cli import main  # noqa: E402


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    return write_beir(tmp_path / "toy")


@pytest.mark.parametrize("flags, name", [
    (["--no-model", "--baseline-encoder", "{tmp}/no-encoder"], "baseline_encoder (--baseline-encoder)"),
    (["--no-model", "--composite", "--composite-thinker", "{tmp}/no-thinker"], "composite_thinker"),
    (["--no-model", "--composite", "--composite-encoder", "{tmp}/no-encoder"], "composite_encoder"),
    (["--model", "{tmp}/model.gguf"], "model (--model)"),
])
def test_a_model_path_that_does_not_exist_fails_before_any_work(toy, tmp_path, capsys, flags, name):
    """A typo in --baseline-encoder (or a composite part) surfaced only once BM25 and every system before it had run:
    hours into a k sweep."""
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    assert main(["eval", "--dataset", str(toy), "--baseline", "bm25", *flags]) == 2
    err = capsys.readouterr().err
    assert f"{name}" in err and "does not exist" in err and "BM25 ..." not in err


def test_a_hub_id_or_an_unused_model_is_not_checked_as_a_path(toy, tmp_path):
    from o1_retriever.evaluation.config import EvalConfig
    EvalConfig(dataset=str(toy), run_model=False, baselines=["bm25"], model=str(tmp_path / "unused"))
    EvalConfig(dataset=str(toy), run_model=False, baseline_encoder="sentence-transformers/all-MiniLM-L6-v2")


@pytest.mark.parametrize("flags, message", [
    (["--composite-thinker", "{tmp}"], "composite_thinker (--composite-thinker) '{tmp}' is given but composite is off "
                                       "(add --composite)"),
    (["--composite-encoder", "{tmp}"], "composite_encoder (--composite-encoder) '{tmp}' is given but composite is off"),
])
def test_a_composite_part_without_composite_is_refused(toy, tmp_path, capsys, flags, message):
    """--composite-thinker without --composite was ignored: the run came back without the composite row."""
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    assert main(["eval", "--dataset", str(toy), "--no-model", "--baseline", "bm25", *flags]) == 2
    assert message.replace("{tmp}", str(tmp_path)) in capsys.readouterr().err


def test_an_output_ending_in_a_slash_is_refused_as_a_folder(toy, tmp_path, capsys):
    """--output out/ wrote the results to a file named out (and out.per_query.json, out.png)."""
    out = tmp_path / "out"
    assert main(["eval", "--dataset", str(toy), "--no-model", "--baseline", "bm25", "--output", f"{out}/"]) == 2
    err = capsys.readouterr().err
    assert f"--output {out}/ names a folder: name a file, e.g. {out / 'results.json'}" in err and "BM25" not in err
    assert not out.exists()


def test_rows_finished_before_a_failure_are_kept(toy, tiny_o1_dir, tmp_path, capsys):
    """A system that failed after others had run (here an encoder folder holding no model, after BM25 and the model's
    k sweep) lost every finished row: hours of evaluation, nothing written. They are now shown and kept in
    r.partial.json, which a later complete run removes."""
    import json
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    out = tmp_path / "r.json"
    argv = ["eval", "--dataset", str(toy), "--model", str(tiny_o1_dir), "--k", "0,1", "--max-new-tokens", "4",
            "--baseline", "bm25", "--output", str(out)]
    assert main([*argv, "--baseline-encoder", str(empty)]) == 2
    captured = capsys.readouterr()
    assert f"its 3 finished rows are in {tmp_path / 'r.partial.json'}" in captured.err
    assert "nDCG@10" in captured.out  # the finished rows' table
    assert not out.exists()
    kept = json.loads((tmp_path / "r.partial.json").read_text())
    assert [(r["system"], r["k"]) for r in kept["results"]] == [("bm25", None), ("o1", 0), ("o1", 1)]
    assert kept["meta"]["incomplete"].startswith("ValueError: ") and str(empty) in kept["meta"]["incomplete"]
    assert [s["baseline"]["k"] for s in kept["results"][2]["significance"]] == [None, 0]
    assert kept["meta"]["per_query"] == "r.partial.per_query.json"
    assert len(json.loads((tmp_path / "r.partial.per_query.json").read_text())["rows"]) == 3
    assert main(argv) == 0  # the complete run: its own files, and the partial ones are gone
    assert out.exists() and not (tmp_path / "r.partial.json").exists()
    assert not (tmp_path / "r.partial.per_query.json").exists()


def test_a_k_that_fails_leaves_the_rows_of_the_ks_before_it(toy, tiny_embedder):
    """Within one system's sweep too: k=0 finished, then the next k failed (here refused as k=-1, as CUDA running out
    of memory at k=5 would fail) and took the k=0 row with it."""
    from o1_retriever.evaluation.config import EvalConfig
    from o1_retriever.evaluation.data import load_beir
    from o1_retriever.evaluation.runner import evaluate_dense
    dataset = load_beir(toy)
    finished = []
    with pytest.raises(ValueError, match="k must be") as failed:
        evaluate_dense(tiny_embedder, "o1", "tiny", [0, -1], dataset, EvalConfig(dataset=str(toy), k=[0]),
                       finished=finished)
    assert [(r.system, r.k) for r in finished] == [("o1", 0)] and finished[0].per_query
    assert failed.value.partial_system.fingerprint == tiny_embedder.fingerprint  # what the row came from


def test_outputs_named_with_a_dot_but_not_json_keep_their_files_apart(toy, tmp_path, capsys):
    """--output runs/t0.7 and --output runs/t0.5 (a settings sweep) both put their beside-files at runs/t0.* (the
    sweep PNG, the per-query scores): the second run overwrote the first's."""
    import json
    from o1_retriever.evaluation.report import beside, partial_path, per_query_path
    for name in ("t0.7", "t0.5"):
        assert main(["eval", "--dataset", str(toy), "--no-model", "--baseline", "bm25", "--max-queries",
                     name[-1], "--output", str(tmp_path / name)]) == 0
    assert json.loads((tmp_path / "t0.7.per_query.json").read_text())["results"] == "t0.7"
    assert json.loads((tmp_path / "t0.5.per_query.json").read_text())["results"] == "t0.5"
    assert (beside(tmp_path / "t0.7", ".png"), partial_path(tmp_path / "t0.7")) == \
        (tmp_path / "t0.7.png", tmp_path / "t0.7.partial.json")
    assert per_query_path(tmp_path / "r.JSON") == tmp_path / "r.per_query.json"  # .json itself is replaced


def test_a_folder_of_beir_datasets_names_the_ones_inside(tmp_path):
    """--dataset datasets/ (where BEIR's download_and_unzip puts datasets/scifact) said only that corpus.jsonl was
    missing; it now names the dataset folders inside."""
    from o1_retriever.evaluation.data import load_beir
    write_beir(tmp_path / "datasets" / "toy")
    with pytest.raises(FileNotFoundError, match=r"corpus.jsonl is missing: .*the BEIR folders in it: \['toy'\], "
                                                 rf"e.g. {tmp_path / 'datasets' / 'toy'}"):
        load_beir(tmp_path / "datasets")


def test_a_failure_keeping_the_finished_rows_does_not_hide_the_evaluations_own_error(toy, tiny_o1_dir, tmp_path,
                                                                                    capsys, monkeypatch):
    """Fault injection (a table that cannot be printed, e.g. to a closed or non-UTF-8 stdout): the report names the
    encoder folder that failed the run, not the printing error."""
    from o1_retriever.evaluation import report

    def unprintable(outcome):
        raise UnicodeEncodeError("ascii", "ü", 0, 1, "stdout takes ASCII only")

    monkeypatch.setattr(report, "print_table", unprintable)
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    argv = ["eval", "--dataset", str(toy), "--model", str(tiny_o1_dir), "--k", "0", "--max-new-tokens", "4",
            "--baseline", "bm25", "--baseline-encoder", str(empty)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "could not keep the finished rows: UnicodeEncodeError" in err
    assert str(empty) in err.splitlines()[-1]  # the error reported last is the evaluation's own
