"""Choosing inference settings from real dev-set eval runs (tiny model), and handing them to the model."""
import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from beir_fixtures import write_beir  # noqa: E402

from o1_retriever import O1Embedder  # noqa: E402
from o1_retriever.cli import main  # noqa: E402
from o1_retriever.evaluation.choose import choose, main as choose_main  # noqa: E402

SETTINGS = [("0.1", "mean", None), ("0.9", "mean_with_query", None), ("0.9", "mean_with_query", "0.8")]


@pytest.fixture
def dev_runs(tmp_path, monkeypatch, tiny_o1_dir):
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    files = []
    for name in ("alpha", "beta"):
        data = write_beir(tmp_path / name)
        for temperature, aggregation, weight in SETTINGS:
            out = tmp_path / f"{name}_{temperature}_{aggregation}_{weight}.json"
            assert main(["eval", "--dataset", str(data), "--model", str(tiny_o1_dir), "--k", "0,1",
                         "--max-new-tokens", "6", "--temperature", temperature, "--aggregation", aggregation,
                         *(["--query-weight", weight] if weight else []), "--output", str(out)]) == 0
            files.append(out)
    return files


def test_choose_averages_over_datasets_and_writes_the_model_defaults(dev_runs, tiny_o1_dir, tmp_path, capsys,
                                                                     monkeypatch):
    by_setting = {}
    for path in dev_runs:
        data = json.loads(path.read_text())
        g = data["meta"]["generation"]
        row = next(r for r in data["results"] if r["k"] == 1)
        by_setting.setdefault((g["temperature"], g["aggregation"], g["query_weight"]), []).append(row["ndcg@10"])
    expected = max(by_setting, key=lambda s: sum(by_setting[s]) / 2)
    result = choose(dev_runs, k=1)
    best, table = result.best, result.table
    assert (best["temperature"], best["aggregation"], best["query_weight"]) == expected and len(table) == 3
    assert {s["query_weight"] for s, _ in table} == {None, 0.8}
    model = tmp_path / "model"
    shutil.copytree(tiny_o1_dir, model)
    # a stale weight must not survive a winner that uses the equal share (None is written as "absent")
    (model / "o1_generation.json").write_text('{"max_new_tokens": 6, "aggregation": "mean_with_query", '
                                              '"query_weight": 0.3}')
    assert choose_main([*map(str, dev_runs), "--k", "1", "--into", str(model / "o1_generation.json"),
                        "--plot", str(tmp_path / "choice.png")]) == 0
    assert "<- chosen" in capsys.readouterr().out
    assert (tmp_path / "choice.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = json.loads((model / "o1_generation.json").read_text())
    assert written["max_new_tokens"] == 6 and written["aggregation"] == best["aggregation"]
    assert written.get("query_weight") == best["query_weight"]
    emb = O1Embedder.from_pretrained(str(model), device="cpu", dtype="fp32", thought_cache=False)
    assert (emb.settings.temperature, emb.aggregation, emb.query_weight) == \
        (best["temperature"], best["aggregation"], best["query_weight"])
    # `--into '~/…'` (quoted, so no shell expands it) reads and writes the same file in the home directory
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    (home / "g.json").write_text('{"max_new_tokens": 6}')
    assert choose_main([*map(str, dev_runs), "--k", "1", "--into", "~/g.json"]) == 0
    written = json.loads((home / "g.json").read_text())
    assert written["max_new_tokens"] == 6 and written["aggregation"] == best["aggregation"]
    assert not (tmp_path / "~").exists()


def test_choose_refuses_incomplete_or_duplicated_runs(dev_runs):
    with pytest.raises(ValueError, match="needs one o1 row at k=3"):
        choose(dev_runs, k=3)
    with pytest.raises(ValueError, match="a second run of"):
        choose([dev_runs[0], dev_runs[0]], k=1)
    only_one_each = [dev_runs[0], dev_runs[4]]  # alpha with one setting, beta with the other
    with pytest.raises(ValueError, match="no setting was run on every dataset"):
        choose(only_one_each, k=1)


def test_choose_given_a_folder_glob_skips_the_per_query_files(dev_runs):
    """What scripts/train_default.sh passes (runs/dev/*.json) holds each run's per-query scores file too."""
    everything = sorted(dev_runs[0].parent.glob("*.json"))
    assert len(everything) == 2 * len(dev_runs)
    assert choose(everything, k=1) == choose(sorted(dev_runs), k=1)


def test_choose_reads_runs_made_before_query_weight(dev_runs):
    """Older JSONs have no query_weight in meta.generation: they ran with the equal share (None)."""
    for path in dev_runs:
        data = json.loads(path.read_text())
        if data["meta"]["generation"]["query_weight"] is None:
            del data["meta"]["generation"]["query_weight"]
            path.write_text(json.dumps(data))
    assert {s["query_weight"] for s, _ in choose(dev_runs, k=1).table} == {None, 0.8}


def test_choose_picks_the_hybrid_dense_share_from_hybrid_runs(tmp_path, monkeypatch, tiny_o1_dir, capsys):
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    data = write_beir(tmp_path / "toy")
    files, fused = [], {}
    for weight in ("0.2", "0.8"):
        out = tmp_path / f"w{weight}.json"
        assert main(["eval", "--dataset", str(data), "--model", str(tiny_o1_dir), "--k", "0,1", "--baseline", "bm25",
                     "--max-new-tokens", "6", "--hybrid", weight, "--output", str(out)]) == 0
        files.append(out)
        fused[float(weight)] = next(r["ndcg@10"] for r in json.loads(out.read_text())["results"]
                                    if r["system"] == "o1+bm25" and r["k"] == 1)
    result = choose(files, k=1, system="o1+bm25")
    assert result.best["dense_weight"] == max(fused, key=fused.get)  # first listed wins a tie, as max() does
    bm25 = next(r["ndcg@10"] for r in json.loads(files[0].read_text())["results"] if r["system"] == "bm25")
    assert result.no_thinking == bm25  # the bar for a fusion is BM25 alone, not a share-dependent fused k=0
    assert [s["dense_weight"] for s, _ in result.table] == [0.2, 0.8]
    # The plain o1 rows of the same runs are one setting run twice: refused as a duplicate.
    with pytest.raises(ValueError, match="a second run of"):
        choose(files, k=1)
    # A dense share is a search option, never written into a model's o1_generation.json.
    with pytest.raises(SystemExit):
        choose_main([*map(str, files), "--k", "1", "--system", "o1+bm25", "--into", str(tmp_path / "g.json")])
    assert "search option" in capsys.readouterr().err
    assert not (tmp_path / "g.json").exists()


@pytest.mark.filterwarnings("ignore:Some inputs are longer")  # a 4-token window cuts the toy documents, by design
def test_a_document_window_sweep_is_chosen_and_written(tmp_path, monkeypatch, tiny_o1_dir):
    """Runs that differ only in --document-max-length are distinct settings; the winner's window goes into the model."""
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    data = write_beir(tmp_path / "alpha")
    files = []
    for window in ("4", "64"):
        out = tmp_path / f"w{window}.json"
        assert main(["eval", "--dataset", str(data), "--model", str(tiny_o1_dir), "--k", "0,1", "--max-new-tokens",
                     "6", "--document-max-length", window, "--output", str(out)]) == 0
        files.append(out)
    scores = {json.loads(f.read_text())["meta"]["generation"]["document_max_length"]:
              next(r["ndcg@10"] for r in json.loads(f.read_text())["results"] if r["k"] == 1) for f in files}
    result = choose(files, k=1)
    assert len(result.table) == 2 and result.best["document_max_length"] == max(scores, key=scores.get)
    target = tmp_path / "o1_generation.json"
    assert choose_main([*map(str, files), "--k", "1", "--into", str(target)]) == 0
    assert json.loads(target.read_text())["document_max_length"] == result.best["document_max_length"]
