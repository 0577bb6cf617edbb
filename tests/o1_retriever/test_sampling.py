"""Nucleus sampling over the top candidates: the same distribution as transformers' top-p warper."""
import pytest
import torch
from transformers import TemperatureLogitsWarper, TopPLogitsWarper

from o1_retriever.sampling import CANDIDATES, NucleusSampler, nucleus, sample_nucleus


def _scores(rows: int, vocab: int, spread: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, vocab, generator=g) * spread


def _warper_probs(scores, temperature, top_p):
    warped = TopPLogitsWarper(top_p)(None, TemperatureLogitsWarper(temperature)(None, scores.clone()))
    return warped.softmax(-1)


@pytest.mark.parametrize("spread", [8.0, 3.0, 0.3])  # peaked rows, mixed, and flat rows that need the full sort
@pytest.mark.parametrize("top_p", [0.5, 0.9])
def test_nucleus_is_the_top_p_warpers_distribution(spread, top_p):
    scores = _scores(6, 5000, spread)
    weights, ids = nucleus(scores / 0.7, top_p)
    ours = torch.zeros_like(scores).scatter_(1, ids, weights)
    ours = ours / ours.sum(-1, keepdim=True)
    reference = _warper_probs(scores, 0.7, top_p)
    assert torch.equal(ours > 0, reference > 0)  # the same tokens kept
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-6)
    if spread == 0.3:  # a flat distribution: the nucleus is far wider than the candidates, hence the fallback
        assert (reference > 0).sum(-1).min() > CANDIDATES and ids.shape[1] == 5000
    if spread == 8.0:
        assert ids.shape[1] == CANDIDATES  # no full sort


def test_draws_follow_the_nucleus_frequencies():
    scores = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(20000, 1)
    g = torch.Generator().manual_seed(0)
    drawn = sample_nucleus(scores, temperature=1.0, top_p=0.9, generator=g)
    freq = torch.bincount(drawn, minlength=4).float() / len(drawn)
    # top_p=0.9 keeps 0.5, 0.3 and 0.15 (the mass above 0.15 is 0.8 < 0.9), renormalised over 0.95
    expected = torch.tensor([0.5, 0.3, 0.15, 0.0]) / 0.95
    assert freq[3] == 0 and torch.allclose(freq, expected, atol=0.01)
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(sample_nucleus(scores, 1.0, 0.9, generator=g2), drawn)  # seeded: repeatable
    whole = sample_nucleus(scores[:5000], 1.0, 1.0, generator=g)  # top_p=1: the whole vocabulary
    assert set(whole.tolist()) == {0, 1, 2, 3}


def test_processor_leaves_one_finite_score_inside_the_nucleus():
    scores = _scores(8, 3000, 4.0, seed=1)
    torch.manual_seed(0)
    out = NucleusSampler(0.7, 0.9)(None, scores)
    finite = torch.isfinite(out)
    assert finite.sum(-1).tolist() == [1] * 8
    chosen = out.argmax(-1)
    assert bool((_warper_probs(scores, 0.7, 0.9).gather(1, chosen[:, None]) > 0).all())


@pytest.mark.parametrize("temperature, top_p, message", [(0.0, 0.9, "temperature must be > 0"),
                                                         (0.7, 0.0, r"top_p must be in \(0, 1\]"),
                                                         (0.7, 1.2, r"top_p must be in \(0, 1\]")])
def test_bad_sampling_arguments(temperature, top_p, message):
    with pytest.raises(ValueError, match=message):
        sample_nucleus(torch.zeros(1, 4), temperature, top_p)


def test_generate_lays_out_n_samples_per_prompt(tiny_o1_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from o1_retriever.sampling import generate
    tok = AutoTokenizer.from_pretrained(tiny_o1_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_o1_dir).eval()
    batch = tok(["protein folding in cells", "tides"], return_tensors="pt", padding=True)

    def run(temperature, seed=0):
        torch.manual_seed(seed)
        return generate(model, batch["input_ids"], batch["attention_mask"], n=3, temperature=temperature, top_p=0.9,
                        max_new_tokens=6, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)

    out = run(1.0)
    width = batch["input_ids"].shape[1]
    assert out.shape[0] == 6 and torch.equal(out[:, :width], batch["input_ids"].repeat_interleave(3, 0))
    assert torch.equal(run(1.0), out)  # same seed, same samples
    assert len({tuple(r) for r in out[:, width:].tolist()}) > 2  # a random tiny model at T=1: the rows differ
    greedy = run(0.0)[:, width:]
    assert torch.equal(greedy[0], greedy[1]) and torch.equal(greedy[0], greedy[2])  # T=0: one answer per prompt


def test_a_batch_mixing_peaked_and_flat_rows_takes_each_path_correctly():
    scores = torch.cat([_scores(2, 5000, 8.0, seed=2), _scores(2, 5000, 0.3, seed=3)])  # peaked, peaked, flat, flat
    weights, ids = nucleus(scores, 0.9)
    assert ids.shape[1] == 5000  # the flat rows forced the full sort for the batch
    ours = torch.zeros_like(scores).scatter_(1, ids, weights)
    torch.testing.assert_close(ours / ours.sum(-1, keepdim=True), _warper_probs(scores, 1.0, 0.9), rtol=1e-4, atol=1e-6)
    assert (weights[:2, CANDIDATES:] == 0).all()  # the peaked rows keep only their candidates
