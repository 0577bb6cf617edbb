"""Running work in batches: the default for progress bars, and batches that shrink instead of failing on a
CUDA out-of-memory error. torch is imported on first use, so the Ray driver and the server client stay light."""
from __future__ import annotations

from tqdm.auto import tqdm

from .validation import check_positive_int

PROGRESS_THRESHOLD = 64  # show bars by default only for inputs at least this long


def show_progress(show: bool | None, n: int, threshold: int = PROGRESS_THRESHOLD) -> bool:
    """Whether to draw a bar for `n` items: as asked, else only when there are at least `threshold`."""
    return n >= threshold if show is None else bool(show)


def is_oom(error: BaseException) -> bool:
    """A CUDA out-of-memory error (older torch raises it as a plain RuntimeError)."""
    import torch
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def in_batches(items, batch_size: int, step, desc: str, show_progress_bar: bool) -> list:
    """[step(chunk) for consecutive chunks of items]. Out of GPU memory, the batch halves and the chunk is
    retried: a batch size too large for the device costs retries, not the call."""
    import torch
    check_positive_int(batch_size, "batch_size")  # 0 would step over empty chunks forever
    parts, start = [], 0
    with tqdm(total=len(items), desc=desc, disable=not show_progress_bar) as bar:
        while start < len(items):
            chunk = items[start: start + batch_size]
            try:
                parts.append(step(chunk))
            except (torch.OutOfMemoryError, RuntimeError) as e:
                if not is_oom(e) or batch_size == 1:
                    raise
                batch_size = max(1, batch_size // 2)
                torch.cuda.empty_cache()
                continue
            start += len(chunk)
            bar.update(len(chunk))
    return parts
