"""transformers' own progress bars ('Writing model shards' on every save_pretrained, a GGUF base's conversion, a merged
copy) follow the package's bars: off a terminal a bar redrawn with carriage returns is one unreadable line in a log."""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def transformers_bars(show: bool):
    """Inside the block transformers draws its bars only when `show`; the setting before it is restored after."""
    from transformers.utils import logging as hf_logging
    hide = not show and hf_logging.is_progress_bar_enabled()
    if hide:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if hide:
            hf_logging.enable_progress_bar()
