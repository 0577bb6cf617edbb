"""Title-to-abstract pairs on the real SciFact corpus: the title is the query, the text without it the
positive, BM25 hard negatives are other documents' texts (also untitled), and the records train."""
import json

import pytest

from o1_retriever_training.data import load_triplets
from o1_retriever_training.dataset import TrainDataset
from o1_retriever_training.titles import main, split_inline_title, title_pairs


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
        main(args + ["--exclude", str(tmp_path / "missing.jsonl"), "--output", str(second)])
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
