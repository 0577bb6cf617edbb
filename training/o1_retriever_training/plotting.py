"""The training losses as a PNG beside the JSONL log (train's two, train-encoder's one)."""
from __future__ import annotations

import json
from pathlib import Path

from o1_retriever.atomic import atomic_path

from .atomic_outputs import remove_leftovers


def plot_losses(log_file, png_file) -> Path | None:
    rows = [json.loads(ln) for ln in Path(log_file).read_text().splitlines() if ln.strip()] \
        if Path(log_file).exists() else []
    if not rows:
        return None
    import matplotlib
    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    dots = _markers(len(rows))
    fig, ax1 = plt.subplots(figsize=(7, 4))
    ax1.plot(steps, [r["loss_emb"] for r in rows], color="tab:blue", label="L_contrastive", **dots)
    ax1.set_xlabel("optimizer step")
    ax1.set_ylabel("L_contrastive (InfoNCE)", color="tab:blue")
    ax2 = ax1.twinx()  # the two losses live on different scales
    ax2.plot(steps, [r["loss_gen"] for r in rows], color="tab:orange", label="L_gen", **dots)
    ax2.set_ylabel("L_gen (thought + EOS cross-entropy)", color="tab:orange")
    fig.suptitle("O1 joint training losses")
    fig.tight_layout()
    return _save(fig, png_file)


def plot_encoder_losses(losses: list[dict], png: Path) -> Path | None:
    """train-encoder's loss per step ({step, loss} rows) as a PNG."""
    if not losses:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in losses], [r["loss"] for r in losses], **_markers(len(losses)))
    ax.set_xlabel("step")
    ax.set_ylabel("MultipleNegativesRankingLoss")
    ax.set_title("Composite encoder fine-tune")
    fig.tight_layout()
    return _save(fig, png)


def _markers(points: int) -> dict:
    """A dot per logged step where there are few: a line through one point draws nothing (a one-step check run's plot
    was empty)."""
    return {"marker": "o", "markersize": 3} if points <= 50 else {}


def _save(fig, png) -> Path:
    """All or nothing: a PNG cut short by a kill would pass for the finished run's plot (a resumed finished run
    reports the one it finds, and scripts copy it into the shipped logs)."""
    import matplotlib.pyplot as plt
    try:
        remove_leftovers(png)
        with atomic_path(png) as temporary, open(temporary, "wb") as f:
            fig.savefig(f, format="png", dpi=110)
    finally:  # a failed save too: pyplot keeps every open figure (and warns past 20) until the process ends
        plt.close(fig)
    return Path(png)
