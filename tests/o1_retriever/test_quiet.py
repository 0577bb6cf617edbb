from o1_retriever import O1Embedder


def test_loading_a_model_from_python_draws_no_weight_bars_and_leaves_the_hook_as_it_was(tiny_o1_dir, capfd):
    """The CLI hid transformers' per-model "Loading weights" bar, the Python API did not: three bars per load of the
    bundled default. A hook the user installed is theirs again afterwards."""
    from transformers.utils import logging as hf_logging

    def users_hook(factory, args, kwargs):
        return factory(*args, **kwargs)
    hf_logging.set_tqdm_hook(users_hook)
    try:
        O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False)
        assert "Loading weights" not in capfd.readouterr().err
        assert hf_logging.set_tqdm_hook(None) is users_hook
    finally:
        hf_logging.set_tqdm_hook(None)
