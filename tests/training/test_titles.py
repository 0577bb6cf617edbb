"""Title-to-abstract pairs on the real SciFact corpus: the title is the query, the text without it the
positive, BM25 hard negatives are other documents' texts (also untitled), and the records train."""
import json

import pytest

from o1_retriever_training.data import load_triplets
from o1_retriever_training.dataset import TrainDataset
from o1_retriever_training.titles import excluded_documents, main, split_inline_title, title_pairs, write_title_dev


@pytest.fixture(scope="module")
def corpus(shared_data):
    rows = [json.loads(line) for line in (shared_data / "scifact" / "corpus.jsonl").open()]
    return {r["_id"]: r for r in rows}


def test_title_pairs_on_scifact(shared_data, corpus):
    records = title_pairs(shared_data / "scifact", num_docs=12, num_negatives=3, seed=5)
    assert len(records) == 12 and len({r["query_id"] for r in records}) == 12
    for r in records:
        doc = corpus[r["pos_ids"][0]]
        assert r["query"] == " ".join(doc["title"].split())
        assert r["pos"] == [" ".join(doc["text"].split())]
        assert r["thought"] is None and len(r["neg"]) == len(r["neg_ids"]) == 3
        assert r["pos_ids"][0] not in r["neg_ids"]
        assert r["neg"] == [" ".join(corpus[n]["text"].split()) for n in r["neg_ids"]]  # no titles there
    # BM25 ranks by the title: the hardest negative shares more of its words than a random document does
    words = lambda s: set(s.lower().split())  # noqa: E731
    shared = sum(len(words(r["query"]) & words(r["neg"][0])) for r in records)
    assert shared > sum(len(words(r["query"]) & words(records[i - 1]["pos"][0])) for i, r in enumerate(records))
    assert title_pairs(shared_data / "scifact", num_docs=12, num_negatives=3, seed=5) == records
    assert title_pairs(shared_data / "scifact", num_docs=12, num_negatives=3, seed=6) != records


def test_written_records_train(shared_data, tmp_path):
    out = tmp_path / "titles.jsonl"
    assert main(["--data", str(shared_data / "scifact"), "--num-docs", "5", "--num-negatives", "2",
                 "--output", str(out)]) == 0
    records = load_triplets(out)
    assert len(records) == 5
    item = TrainDataset(records, group_size=3, empty_thought_ratio=0.0)[0]
    assert item["thought"] == "" and len(item["passages"]) == 3 and item["passages"][0] == records[0].pos[0]


def test_untitled_corpus_and_bad_arguments_are_refused(shared_data):
    with pytest.raises(ValueError, match="no document with a title"):
        title_pairs(shared_data / "nfcorpus", num_docs=5)  # NFCorpus ships its titles inside the text
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="num_docs must be an int >= 1"):
            title_pairs(shared_data / "scifact", num_docs=bad)
    with pytest.raises(ValueError, match="num_negatives"):
        title_pairs(shared_data / "scifact", num_docs=3, num_negatives=-1)


def test_a_later_stage_samples_fresh_titles(shared_data, tmp_path):
    first, second = tmp_path / "stage2.jsonl", tmp_path / "stage3.jsonl"
    args = ["--data", str(shared_data / "scifact"), "--num-negatives", "1"]
    assert main(args + ["--num-docs", "40", "--seed", "0", "--output", str(first)]) == 0
    # the same seed without the exclusion would draw the same documents again
    assert main(args + ["--num-docs", "40", "--seed", "0", "--exclude", str(first), "--output", str(second)]) == 0
    read = lambda path: [json.loads(line)["pos_ids"][0] for line in path.open()]  # noqa: E731
    seen, fresh = set(read(first)), read(second)
    assert len(fresh) == 40 and not seen & set(fresh)
    assert {r["pos_ids"][0] for r in title_pairs(shared_data / "scifact", 40, 1, seed=0)} == seen
    with pytest.raises(ValueError, match="does not exist"):
        excluded_documents([tmp_path / "missing.jsonl"])
    with pytest.raises(TypeError, match="collection of document ids"):
        title_pairs(shared_data / "scifact", 3, exclude="4983")


def test_excluding_every_title_is_refused(shared_data, corpus):
    with pytest.raises(ValueError, match="no fresh title is left"):
        title_pairs(shared_data / "scifact", num_docs=3, exclude=set(corpus))


def test_inline_titles_on_nfcorpus(shared_data):
    """NFCorpus keeps its titles inside the text ('<title> abstract <body>'): split there, the word dropped."""
    texts = {}
    for line in (shared_data / "nfcorpus" / "corpus.jsonl").open():
        row = json.loads(line)
        texts[row["_id"]] = " ".join(row["text"].split())
    records = title_pairs(shared_data / "nfcorpus", num_docs=10, num_negatives=2, seed=0, inline_title="abstract")
    assert len(records) == 10
    for r in records:
        text = texts[r["pos_ids"][0]]
        assert text == f"{r['query']} abstract {r['pos'][0]}"
        assert len(r["query"].split()) >= 3 and "abstract" not in r["query"].split()
        for neg_id, neg in zip(r["neg_ids"], r["neg"]):  # negatives lose their inline titles too
            assert texts[neg_id].endswith(neg) and len(neg) < len(texts[neg_id])
    with pytest.raises(ValueError, match="inline_title must be one word"):
        title_pairs(shared_data / "nfcorpus", num_docs=3, inline_title="the abstract")


def test_split_inline_title_only_near_the_start():
    assert split_inline_title("vitamin d and bone health Abstract we studied", "abstract") == (
        "vitamin d and bone health", "we studied")
    late = " ".join(["word"] * 60) + " abstract tail"
    assert split_inline_title(late, "abstract") == ("", late)  # deep in the text: part of the body
    assert split_inline_title("no marker here", "abstract") == ("", "no marker here")


def test_dev_folder_is_a_held_out_beir_set(shared_data, corpus, tmp_path):
    """`--dev-dir`: titles as queries over untitled texts (positives, their negatives, random fill), which the
    evaluation loader reads and BM25 can search; the JSONL it writes beside excludes those documents later."""
    from o1_retriever.bm25 import BM25Searcher
    from o1_retriever.evaluation.data import load_beir
    from o1_retriever.evaluation.metrics import evaluate_run

    out, dev = tmp_path / "dev_titles.jsonl", tmp_path / "title_dev"
    assert main(["--data", str(shared_data / "scifact"), "--num-docs", "8", "--num-negatives", "3", "--seed", "4",
                 "--output", str(out), "--dev-dir", str(dev), "--dev-corpus-size", "80"]) == 0
    records = [json.loads(line) for line in out.open()]
    data = load_beir(dev, split="dev")
    assert len(data.doc_ids()) == 80 and len(set(data.doc_ids())) == 80
    assert sorted(data.qrels) == sorted(r["query_id"] for r in records)
    for r in records:
        assert data.queries[r["query_id"]] == r["query"] and data.qrels[r["query_id"]] == {r["pos_ids"][0]: 1}
        assert set(r["pos_ids"] + r["neg_ids"]) <= set(data.doc_ids())
    texts = dict(zip(data.doc_ids(), data.doc_texts()))
    for d, text in texts.items():  # every text untitled: the title alone would give the answer away
        assert text == " ".join(corpus[d]["text"].split())
    # titles find their own abstracts among the hard negatives (by meaning, not by copied words)
    ids = list(data.qrels)
    ranked = BM25Searcher(data.doc_ids(), data.doc_texts()).search([data.queries[q] for q in ids], 10)
    run = {q: dict(hits) for q, hits in zip(ids, ranked)}
    assert evaluate_run(data.qrels, run).ndcg_at_10 > 0.5
    # a later stage's draw leaves the dev documents out
    later = tmp_path / "later.jsonl"
    assert main(["--data", str(shared_data / "scifact"), "--num-docs", "30", "--num-negatives", "1", "--seed", "4",
                 "--exclude", str(out), "--output", str(later)]) == 0
    assert not {json.loads(line)["pos_ids"][0] for line in later.open()} & {r["pos_ids"][0] for r in records}


def test_dev_folder_refusals_keep_what_is_there(shared_data, tmp_path):
    records = title_pairs(shared_data / "scifact", num_docs=4, num_negatives=2, seed=1)
    dev = tmp_path / "dev"
    with pytest.raises(ValueError, match="corpus_size 5 is below the 12 positives and negatives"):
        write_title_dev(records, shared_data / "scifact", dev, corpus_size=5)
    for bad in (0, True, 2.5):
        with pytest.raises(ValueError, match="corpus_size must be an int >= 1"):
            write_title_dev(records, shared_data / "scifact", dev, corpus_size=bad)
    with pytest.raises(ValueError, match="have no text in"):
        write_title_dev(records, shared_data / "nfcorpus", dev, corpus_size=100)
    assert write_title_dev(records, shared_data / "scifact", dev, corpus_size=40, seed=3) == 40
    before = (dev / "corpus.jsonl").read_bytes()
    with pytest.raises(ValueError, match="is not empty"):
        write_title_dev(records[:2], shared_data / "scifact", dev, corpus_size=40)
    with pytest.raises(SystemExit):
        main(["--data", str(shared_data / "scifact"), "--num-docs", "2", "--output", str(tmp_path / "x.jsonl"),
              "--dev-dir", str(dev)])
    assert (dev / "corpus.jsonl").read_bytes() == before and not (tmp_path / "x.jsonl").exists()


def test_command_line_errors_are_one_line_before_any_work(tiny_beir, tmp_path, capsys):
    """A missing corpus or untitled documents ended in a traceback; a folder as --output failed only at the write,
    after the BM25 draw (here the untitled corpus would fail first, so the folder is checked before it)."""
    for argv, message in (([str(tmp_path / "nowhere"), "--output", str(tmp_path / "t.jsonl")], "does not exist"),
                          ([str(tiny_beir), "--output", str(tiny_beir)], "--output " + str(tiny_beir) + " is a folder"),
                          ([str(tiny_beir), "--output", str(tmp_path / "t.jsonl")], "has no document with a title")):
        with pytest.raises(SystemExit) as exit_:
            main(["--data", *argv])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and "titles: error: " in err and message in err, err


_KILLED_AT_QUERIES = """
import os, pathlib, signal, sys
real_open = pathlib.Path.open
def open_(self, mode="r", *args, **kwargs):
    if self.name == "queries.jsonl" and "w" in mode:  # the dev corpus is written, its queries not yet
        os.kill(os.getpid(), signal.SIGKILL)
    return real_open(self, mode, *args, **kwargs)
pathlib.Path.open = open_
from o1_retriever_training.titles import main
sys.exit(main(sys.argv[1:]))
"""


def _titled_beir(root):
    """A small BEIR corpus whose titles have the 3 words a title pair needs."""
    import random

    from tests.training.conftest import TOPICS
    rng, topics = random.Random(0), list(TOPICS)
    root.mkdir()
    with (root / "corpus.jsonl").open("w") as f:
        for i in range(40):
            words = TOPICS[topics[i % 6]].split()
            f.write(json.dumps({"_id": f"d{i}", "title": " ".join(rng.sample(words, 3)),
                                "text": " ".join(rng.choice(words) for _ in range(20))}) + "\n")
    return root


def test_a_run_killed_writing_the_dev_folder_leaves_nothing_the_rerun_refuses(tmp_path):
    """SIGKILL while the dev folder was half written left corpus.jsonl and qrels/ there: the re-run refused the
    folder as not empty, and the half set looked like a dev set. Now the folder appears whole or not at all, and
    the same command run again writes it (and removes the killed run's hidden temporary)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from o1_retriever.atomic import leftover_temporaries
    data, out, dev = _titled_beir(tmp_path / "beir"), tmp_path / "pairs.jsonl", tmp_path / "dev"
    args = ["--data", str(data), "--num-docs", "6", "--num-negatives", "2", "--output", str(out),
            "--dev-dir", str(dev), "--dev-corpus-size", "30"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    killed = subprocess.run([sys.executable, "-c", _KILLED_AT_QUERIES, *args], env=env, capture_output=True,
                            text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert not dev.exists() and len(leftover_temporaries(dev)) == 1  # the killed run's, hidden
    assert main(args) == 0
    assert sorted(p.name for p in dev.rglob("*")) == ["corpus.jsonl", "dev.tsv", "qrels", "queries.jsonl"]
    assert len((dev / "queries.jsonl").read_text().splitlines()) == 6 == len(out.read_text().splitlines())
    assert len((dev / "corpus.jsonl").read_text().splitlines()) == 30 and leftover_temporaries(dev) == []
