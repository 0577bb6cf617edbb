"""Tokenization in the official format and the loss masks: labels only on thought tokens + EOS."""
import pytest

from o1_retriever.formatting import EMB, query_embedding_text
from o1_retriever_training.data import TrainRecord
from o1_retriever_training.dataset import IGNORE, TrainCollator, TrainDataset


@pytest.fixture(scope="module")
def tokenizer():
    from tests.fixtures import build_tokenizer
    return build_tokenizer(with_o1_tokens=True)


def test_query_ids_equal_inference_tokenization_and_labels_cover_thought_and_eos(tokenizer):
    collator = TrainCollator(tokenizer)
    query, thought = "insulin and diabetes risk", "patients with diabetes have increased blood glucose"
    ids, labels = collator.query_ids(query, thought)
    expected = tokenizer(query_embedding_text(query, thought, tokenizer.eos_token))["input_ids"] + \
        [tokenizer.convert_tokens_to_ids(EMB)]
    assert ids == expected  # exactly what O1Embedder embeds at inference
    thought_ids = tokenizer(thought, add_special_tokens=False)["input_ids"]
    labelled = [t for t in labels if t != IGNORE]
    assert labelled == thought_ids + [tokenizer.eos_token_id]
    start = len(ids) - len(thought_ids) - 2
    assert labels[:start] == [IGNORE] * start  # query and special tokens: no L_gen
    assert labels[-1] == IGNORE  # <emb> is never predicted
    assert ids[start - 1] == tokenizer.convert_tokens_to_ids("<thought>")


def test_empty_thought_has_no_generation_labels(tokenizer):
    ids, labels = TrainCollator(tokenizer).query_ids("heart disease", "")
    assert set(labels) == {IGNORE}
    assert ids[-2:] == [tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(EMB)]


def test_lengths_are_capped(tokenizer):
    collator = TrainCollator(tokenizer, query_max_length=4, passage_max_length=8, query_thought_max_length=20)
    ids, labels = collator.query_ids(" ".join(["protein"] * 50), " ".join(["cell gene"] * 50))
    assert len(ids) <= 20 and ids[-1] == tokenizer.convert_tokens_to_ids(EMB)
    assert labels[-2] == tokenizer.eos_token_id  # a truncated thought still learns to stop
    p = collator.passage_ids(" ".join(["tumor"] * 100))
    assert len(p) == 8 and p[-1] == tokenizer.convert_tokens_to_ids(EMB)


def test_batch_is_left_padded_with_groups(tokenizer):
    records = [TrainRecord("q one", ["pos a"], ["n1", "n2 longer text here", "n3"], "t a", 1),
               TrainRecord("q two is longer", ["pos b"], ["m1", "m2", "m3"], None, 2)]
    ds = TrainDataset(records, group_size=3, empty_thought_ratio=0.0)
    batch = TrainCollator(tokenizer)([ds[0], ds[1]])
    assert batch["passage_input_ids"].shape[0] == 6
    emb = tokenizer.convert_tokens_to_ids(EMB)
    assert (batch["query_input_ids"][:, -1] == emb).all() and (batch["passage_input_ids"][:, -1] == emb).all()
    assert (batch["query_attention_mask"][:, -1] == 1).all()
    assert batch["query_attention_mask"][:, 0].tolist().count(0) >= 1  # the shorter row is padded on the left
    assert (batch["query_labels"][1] == IGNORE).all()  # record 2 has no thought
    assert ds[0]["passages"][0] == "pos a"


def test_sampling_is_deterministic_and_drops_thoughts_at_the_given_rate():
    records = [TrainRecord(f"q{i}", [f"p{i}"], [f"n{i}-{j}" for j in range(5)], f"t{i}", i) for i in range(400)]
    ds = TrainDataset(records, group_size=4, empty_thought_ratio=0.25, seed=3)
    again = TrainDataset(records, group_size=4, empty_thought_ratio=0.25, seed=3)
    assert [ds[i] for i in range(50)] == [again[i] for i in range(50)]
    empty = sum(ds[i]["thought"] == "" for i in range(400))
    assert 60 < empty < 140  # 25% of 400 = 100
    ds.set_epoch(1)
    assert [ds[i]["passages"] for i in range(20)] != [again[i]["passages"] for i in range(20)]
    assert all(len(set(ds[i]["passages"])) == 4 for i in range(20))


def test_group_size_larger_than_negatives_is_a_clear_error():
    records = [TrainRecord("q", ["p"], ["n1", "n2"], None, 7)]
    with pytest.raises(ValueError, match=r"group_size=16 needs 15 negatives .* 1 of 1 records have fewer "
                                         r"\(first: line 7 has 2\)"):
        TrainDataset(records, group_size=16)
    assert len(TrainDataset(records, group_size=3)) == 1
