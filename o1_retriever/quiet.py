"""transformers draws a "Loading weights" bar for every model it loads; ours load from local files in a fraction of
a second, so each bar is noise (the bundled default loads three models: three bars). Loads by this package run
without them; downloads and GGUF conversions, which take long, keep their bars."""
from __future__ import annotations

import functools
import warnings
from contextlib import contextmanager


def _skip_loading_bars(factory, args, kwargs):
    if kwargs.get("desc") == "Loading weights":
        kwargs = {**kwargs, "disable": True}
    return factory(*args, **kwargs)


@contextmanager
def quiet_weight_loading():
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        hf_logging = None
    set_hook = getattr(hf_logging, "set_tqdm_hook", None)  # absent from older transformers: bars stay
    if set_hook is None:
        yield
        return
    previous = set_hook(_skip_loading_bars)
    try:
        yield
    finally:
        set_hook(previous)


def quietly(function):
    """`function` runs inside `quiet_weight_loading`."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with quiet_weight_loading():
            return function(*args, **kwargs)
    return wrapper


@contextmanager
def peft_loading():
    """PEFT reads `model.is_gradient_checkpointing`, which transformers now deprecates with a FutureWarning per load:
    the user can do nothing about it, so a first run of the bundled default printed it for no reason."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)
        yield
