"""`scripts/train_default.sh` runs every step end to end: synthesis (real SmolLM2 expert, BM25 + MiniLM
committee), hold-out, training (stages 1, 2, 3 and the shipped 6), shipping, the choice of settings on dev data and
the test evaluation, on the shared data. Its knobs shrink the work to minutes (12 queries per dataset, 2 training
steps of 4 queries, 3 + 3 title pairs with thoughts, 40-document corpora, 6 queries per eval, SciFact's test split
only: NFCorpus's judged documents are nearly its whole corpus, which a corpus subsample must keep) and ship to a temp
dir, so the bundled adapter and its training record (benchmarks/default_adapter_training) are never touched."""
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED_LOGS = REPO / "benchmarks" / "default_adapter_training"  # each stage's record of the bundled adapter


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()


def _results(paths) -> list:
    """The eval results JSONs among `paths`, each checked to have its per-query scores file beside it."""
    paths = sorted(paths)
    results = [p for p in paths if not p.name.endswith(".per_query.json")]
    assert [p for p in paths if p not in results] == [p.with_name(p.stem + ".per_query.json") for p in results]
    return results


@pytest.mark.real_model
@pytest.mark.slow
def test_reproduction_script_runs_every_step(shared_data, tmp_path):
    from o1_retriever.evaluation.choose import choose
    shipped_before = _digest(REPO / "o1_retriever" / "default_adapter"), _digest(SHIPPED_LOGS)
    run, adapter, bench = tmp_path / "run", tmp_path / "adapter", tmp_path / "bench"
    logs = bench / "default_adapter_training"  # each stage's record goes beside the results, not into the adapter
    env = os.environ | {"ADAPTER_DIR": str(adapter), "BENCH_DIR": str(bench), "DATA": str(shared_data),
                        "LIMIT": "12", "DEV_QUERIES": "4", "MAX_STEPS": "2", "TRAIN_BATCH": "4",
                        "TITLE_DOCS": "12", "TITLE_DOCS3": "12",
                        "TITLE_DOCS5": "6", "TITLE_DOCS4": "6", "TITLE_THOUGHTS": "3",
                        "EVAL_ARGS": "--max-docs 40 --max-queries 6", "TEST_SETS": "scifact",
                        "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(["bash", "scripts/train_default.sh", str(run)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=3000)
    assert done.returncode == 0, done.stderr[-4000:]

    # held out: 4 labelled SciFact train queries, none of them left in the training records
    dev_qrels = (run / "scifact_dev" / "qrels" / "dev.tsv").read_text().splitlines()[1:]
    held_out = {line.split("\t")[0] for line in dev_qrels}
    trained_on = {str(json.loads(line)["query_id"]) for line in (run / "train_fit.jsonl").read_text().splitlines()}
    assert len(held_out) == 4 and not held_out & trained_on and len(trained_on) == 20  # 2 x 12 synthesized - 4

    # stage 2 continued stage 1's model on its records plus 12 SciFact title pairs
    titles = [json.loads(line) for line in (run / "titles_scifact.jsonl").read_text().splitlines()]
    assert len(titles) == 12 and all(r["query_id"].startswith("title-") and r["thought"] is None for r in titles)
    assert len((run / "train_mix.jsonl").read_text().splitlines()) == 20 + 12
    stage2 = json.loads((logs / "stage2" / "training_args.json").read_text())
    assert stage2["model"]["init_adapter"] == str(run / "model") and stage2["train"]["num_epochs"] == 1
    stage1 = json.loads((logs / "stage1" / "training_args.json").read_text())
    assert stage1["model"]["init_adapter"] is None and stage1["train"]["num_epochs"] == 2
    # stage 3 continued stage 2 on its records plus 12 fresh title pairs, none of stage 2's documents
    fresh = [json.loads(line) for line in (run / "titles3_scifact.jsonl").read_text().splitlines()]
    assert len(fresh) == 12 and not {r["pos_ids"][0] for r in fresh} & {r["pos_ids"][0] for r in titles}
    assert len((run / "train_mix3.jsonl").read_text().splitlines()) == 20 + 12
    stage3 = json.loads((logs / "stage3" / "training_args.json").read_text())
    assert stage3["model"]["init_adapter"] == str(run / "model2") and stage3["train"]["seed"] == 44
    # stage 6 (shipped) continued stage 3 on its records plus 3 + 3 title pairs with thoughts
    stage6 = json.loads((logs / "stage6" / "training_args.json").read_text())
    assert stage6["model"]["init_adapter"] == str(run / "model3") and stage6["train"]["seed"] == 47
    assert len((run / "train_mix6.jsonl").read_text().splitlines()) == 20 + 3 + 3
    assert [s["model"]["lora_r"] for s in (stage1, stage2, stage3, stage6)] == [16] * 4  # the stage-1 adapter's shape
    assert [s["train"]["batch_size"] for s in (stage1, stage2, stage3, stage6)] == [4] * 4  # TRAIN_BATCH

    # each stage trained for the 2 steps asked, then shipped with the settings the dev runs choose
    for n in (1, 2, 3, 6):
        steps = [json.loads(line) for line in (logs / f"stage{n}" / "train_log.jsonl").read_text().splitlines()]
        assert max(s["step"] for s in steps) == 2 and (logs / f"stage{n}" / "losses.png").exists()
    # the shipped form: a PEFT adapter whose new token rows live in it (trainable_token_indices), no embedding/ dir,
    # and nothing that inference does not load
    assert (adapter / "adapter_model.safetensors").exists() and not (adapter / "embedding").exists()
    assert not [p.name for p in adapter.iterdir() if p.is_dir() or p.name in ("train_log.jsonl", "losses.png",
                                                                           "training_args.json")]
    assert json.loads((adapter / "adapter_config.json").read_text())["trainable_token_indices"]
    dev_runs = _results((bench / "default_dev").glob("*.json"))
    assert len(dev_runs) == 8 and (bench / "default_dev" / "choice.png").exists()
    best = choose(dev_runs, k=3).best
    generation = json.loads((adapter / "o1_generation.json").read_text())
    assert generation["max_new_tokens"] == 48 and {k: generation.get(k) for k in best} == best
    # ... then the hybrid dense share, over six shares with those settings
    hybrid_runs = _results((bench / "hybrid_dev").glob("*.json"))
    assert len(hybrid_runs) == 6 and (bench / "hybrid_dev" / "choice.png").exists()
    assert f"'dense_weight': {choose(hybrid_runs, k=3, system='o1+bm25').best['dense_weight']}}}  <- chosen" \
        in done.stdout

    # the test table: the trained model at k=0,1,3,5 beside BM25 and MiniLM, each also fused with BM25; the composite
    assert not (bench / "default_nfcorpus.json").exists()
    for ds in ("scifact",):
        rows = json.loads((bench / f"default_{ds}.json").read_text())["results"]
        assert sorted((r["system"], r["k"] if r["k"] is not None else -1) for r in rows) == \
            [("bm25", -1), ("encoder", -1), ("encoder+bm25", -1), ("o1", 0), ("o1", 1), ("o1", 3), ("o1", 5),
             ("o1+bm25", 0), ("o1+bm25", 1), ("o1+bm25", 3), ("o1+bm25", 5)]
        assert all(0.0 <= r["ndcg@10"] <= 1.0 for r in rows)
        composite = json.loads((bench / f"composite_{ds}.json").read_text())["results"]
        assert [(r["system"], r["k"]) for r in composite] == [("composite", 3)]
    assert "composite" in done.stdout and "bm25" in done.stdout  # the final table
    assert (_digest(REPO / "o1_retriever" / "default_adapter"), _digest(SHIPPED_LOGS)) == shipped_before


@pytest.mark.real_model
@pytest.mark.slow
def test_reproduction_script_trains_stage6_from_a_trained_stage3(shared_data, tmp_path):
    """STAGE3=DIR: stage 6 continues a stage 3 trained before (the shipped adapter's files stand in for one) on the
    records plus fresh SciFact and NFCorpus title pairs, each with a committee-chosen thought; stages 1-3 are not
    trained again, and UNTIL=ship stops once stage 6 is shipped with every earlier stage's record (STAGE3_LOGS: by
    default the bundled adapter's, benchmarks/default_adapter_training)."""
    run, adapter, logs = tmp_path / "run", tmp_path / "adapter", tmp_path / "bench" / "default_adapter_training"
    stage3 = REPO / "o1_retriever" / "default_adapter"
    shipped_before = _digest(stage3), _digest(SHIPPED_LOGS)
    env = os.environ | {"ADAPTER_DIR": str(adapter), "BENCH_DIR": str(tmp_path / "bench"), "DATA": str(shared_data),
                        "LAST_STAGE": "6", "STAGE3": str(stage3), "UNTIL": "ship", "LIMIT": "4", "DEV_QUERIES": "2",
                        "MAX_STEPS": "1", "TRAIN_BATCH": "4", "TITLE_DOCS": "4", "TITLE_DOCS3": "4", "TITLE_DOCS5": "6",
                        "TITLE_DOCS4": "6", "TITLE_THOUGHTS": "3", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(["bash", "scripts/train_default.sh", str(run)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    assert not (run / "model").exists() and not (run / "model2").exists()
    assert _digest(run / "model3") == shipped_before[0]  # copied as it was, not retrained

    # 3 of 6 fresh SciFact titles (none an earlier stage trained on) and 3 of 6 NFCorpus inline titles, with thoughts
    earlier = {json.loads(line)["pos_ids"][0] for name in ("titles_scifact.jsonl", "titles3_scifact.jsonl")
               for line in (run / name).read_text().splitlines()}
    scifact = [json.loads(line) for line in (run / "titles5_scifact_thoughts.jsonl").read_text().splitlines()]
    nfcorpus = [json.loads(line) for line in (run / "titles4_nfcorpus_thoughts.jsonl").read_text().splitlines()]
    assert len(scifact) == len(nfcorpus) == 3 and not {r["pos_ids"][0] for r in scifact} & earlier
    assert all(r["thought"] and r["query_id"].startswith("title-") for r in scifact + nfcorpus)
    drawn = [json.loads(line)["query_id"] for line in (run / "titles4_nfcorpus.jsonl").read_text().splitlines()]
    assert [r["query_id"] for r in nfcorpus] == drawn[:3]  # the first TITLE_THOUGHTS of the draw, in order
    assert len((run / "train_mix6.jsonl").read_text().splitlines()) == (2 * 4 - 2) + 3 + 3

    # shipped: stage 6's adapter; its record and stages 1-3's beside the results; no settings chosen yet
    stage6 = json.loads((logs / "stage6" / "training_args.json").read_text())
    assert stage6["model"]["init_adapter"] == str(run / "model3") and stage6["train"]["seed"] == 47
    assert stage6["train"]["max_steps"] == 1 and stage6["model"]["lora_r"] == 16 and stage6["train"]["batch_size"] == 4
    for n in (1, 2, 3):
        assert (logs / f"stage{n}" / "train_log.jsonl").read_bytes() == \
            (SHIPPED_LOGS / f"stage{n}" / "train_log.jsonl").read_bytes()
    assert json.loads((adapter / "o1_generation.json").read_text()) == {"max_new_tokens": 48}
    assert not (tmp_path / "bench" / "default_dev").exists()
    assert (_digest(stage3), _digest(SHIPPED_LOGS)) == shipped_before
