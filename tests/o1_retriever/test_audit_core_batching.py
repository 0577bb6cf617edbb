"""batching.in_batches: the loop every model forward runs through."""
import pytest
import torch

from o1_retriever.batching import in_batches


def _step_counting(calls):
    def step(chunk):
        calls.append(list(chunk))
        assert len(calls) < 50, "in_batches kept stepping over empty chunks"
        return list(chunk)
    return step


@pytest.mark.parametrize("size, error", [(0, ValueError), (-2, ValueError), (2.0, TypeError)])
def test_a_batch_size_below_one_is_refused_not_looped_on_forever(size, error):
    calls = []
    with pytest.raises(error, match="batch_size must be"):
        in_batches([1, 2, 3], size, _step_counting(calls), "Embedding", False)
    assert calls == []


def test_out_of_memory_halves_down_to_one_then_raises_and_other_errors_pass_through():
    calls = []

    def step(chunk):
        calls.append(len(chunk))
        if len(chunk) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return chunk[0]
    assert in_batches(list("abcde"), 4, step, "Embedding", False) == list("abcde")
    assert calls[:3] == [4, 2, 1]

    def broken(chunk):
        raise RuntimeError("shape mismatch")
    with pytest.raises(RuntimeError, match="shape mismatch"):
        in_batches([1, 2], 2, broken, "Embedding", False)
    assert in_batches([], 3, broken, "Embedding", False) == []
