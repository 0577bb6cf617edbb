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
