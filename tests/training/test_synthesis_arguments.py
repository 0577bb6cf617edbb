"""`synthesize` refuses counts it cannot honour, by name, before any model loads (a negative --limit sliced
the last queries off: `pairs[:-1]`; --batch-size 0 failed deep in range())."""
import pytest

from o1_retriever_training.arguments import SynthesisArguments
from o1_retriever_training.synthesize import check_synthesis_arguments


@pytest.mark.parametrize("field, value, message", [
    ("limit", -1, r"limit=-1 must be None or >= 1"), ("limit", 0, r"limit=0 must be None or >= 1"),
    ("batch_size", 0, r"batch_size=0 must be >= 1"), ("max_new_tokens", 0, r"max_new_tokens=0 must be >= 1"),
    ("concurrency", 0, r"concurrency=0 must be >= 1"), ("retries", -1, r"retries=-1 must be >= 0"),
])
def test_bad_counts_are_refused_by_name(field, value, message, tiny_beir):
    args = SynthesisArguments(data=str(tiny_beir))
    setattr(args, field, value)
    with pytest.raises(ValueError, match=message):
        check_synthesis_arguments(args)


def test_good_arguments_pass(tiny_beir):
    check_synthesis_arguments(SynthesisArguments(data=str(tiny_beir), limit=3))


def test_a_help_that_names_its_default_says_it_once():
    import argparse

    from o1_retriever_training.arguments import ModelArguments, add_dataclass_arguments
    for cls, flag in ((SynthesisArguments, "--expert"), (ModelArguments, "--base-model")):
        parser = argparse.ArgumentParser()
        add_dataclass_arguments(parser, cls)
        help_text = next(a.help for a in parser._actions if flag in a.option_strings)
        assert help_text.count("(default:") == 1 and "bundled SmolLM2" in help_text  # not "... (default: None)"


def test_qrels_without_a_usable_pair_fail_before_any_model_loads(tiny_beir):
    """Qrels naming only unknown queries and documents: the error comes before the expert (which does not exist
    here) and the committee load, not after a large expert has loaded."""
    from o1_retriever_training.synthesize import synthesize
    (tiny_beir / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq_unknown\td1\t1\nq1\td_unknown\t1\n")
    args = SynthesisArguments(data=str(tiny_beir), expert="/does/not/exist", committee=["bm25"],
                              output=str(tiny_beir.parent / "out.jsonl"))
    with pytest.warns(UserWarning) as warned, \
            pytest.raises(ValueError, match="no usable .query, positive passage. pairs"):
        synthesize(args)
    assert sorted(str(w.message) for w in warned) == [  # each skip is said, naming what it skipped
        "skipped 1 positives whose passage id is not in the corpus: q1->d_unknown",
        "skipped 1 qrels whose query id is not in queries.jsonl: q_unknown",
        "skipped 1 queries without any positive passage in the corpus: q1"]
    assert not (tiny_beir.parent / "out.jsonl").exists()
