"""Fine-tune a composite model's encoder on its own thinker's thoughts (`o1-retriever train-encoder`).

The composite model (o1_retriever/composite.py) embeds `query + " " + thought` with a sentence-transformers
encoder that never saw such inputs. This teaches it to, with sentence-transformers' own trainer and
MultipleNegativesRankingLoss (in-batch negatives + one BM25 hard negative), on (query + thought -> passage)
pairs with bare queries mixed in. The thoughts come from the model's own thinker at its inference settings
(through the thought cache, so a re-run does not think again): the encoder learns the thoughts it will see.

The encoder is trained as a LoRA adapter and written as one (a few MB, over base weights that come from
elsewhere). `merge_weight` scales the adapter's update on load (weight-space interpolation with the
original encoder, WiSE-FT): the encoder was trained on a billion pairs and our few thousand should nudge it,
not replace it. The output directory is a composite model: the same thinker, the new encoder (the thinker and the
encoder's base are named, not copied: by path when they are folders, the bundled thinker and hub ids by name).
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from o1_retriever.display import bars_shown

from .arguments import _f, check_no_other_model, check_output_path, is_finite_number
from .bars import transformers_bars
from .encoder_data import FolderPairs, read_folder
from .plotting import plot_encoder_losses

LORA_TARGETS_BERT = ("query", "key", "value", "dense")


@dataclass
class EncoderArguments:
    # Not the bundled default: its encoder is an ensemble, which this does not train.
    model: str = _f("o1-retriever-minilm", "Composite model directory (o1_composite.json) whose thinker writes the "
                                           "thoughts and whose single encoder is fine-tuned; o1-retriever-minilm is "
                                           "the bundled thinker with all-MiniLM-L6-v2")
    data: list = _f([], "BEIR folders to train on, each as DIR or DIR:SPLIT (default split: train)")
    exclude_dir: list = _f([], "BEIR folders whose queries are held out (e.g. a dev set made by "
                               "o1_retriever_training.holdout): never trained on")
    output_dir: str = _f("o1-composite-trained", "Where the new composite model goes (encoder/ + o1_composite.json)")
    thoughts_per_query: int = _f(2, "Thoughts sampled per query; each gives one (query + thought) anchor")
    bare_query_ratio: float = _f(0.5, "Per positive pair, chance of one more anchor with the bare query (k=0 "
                                      "and the bare-query share of mean_with_query use it)")
    num_negatives: int = _f(1, "BM25 hard negatives per anchor (0: in-batch negatives only)")
    lora_r: int = _f(16, "LoRA rank of the encoder adapter")
    lora_alpha: int = _f(32, "LoRA alpha (scale = alpha / r) while training")
    merge_weight: float = _f(0.5, "Share of the trained update kept on load, in (0, 1]: 1 is the fine-tuned "
                                  "encoder, smaller interpolates towards the original (guards generalisation)")
    learning_rate: float = _f(1e-4, "Peak learning rate")
    num_epochs: int = _f(1, "Passes over the anchors")
    max_steps: int = _f(-1, "Stop after this many steps (-1: num_epochs decides)")
    batch_size: int = _f(32, "Anchors per step (their positives and negatives are the in-batch negatives)")
    scale: float = _f(20.0, "MultipleNegativesRankingLoss scale (1 / temperature)")
    max_queries: int = _f(None, "Train on a seeded sample of at most this many queries per dataset (quick runs)")
    seed: int = _f(42, "Seed for anchors, data order and the bare-query draw")


@dataclass
class EncoderResult:
    output_dir: Path
    anchors: int
    steps: int
    log_file: Path
    plot_file: Path | None = None
    losses: list = field(default_factory=list)
    outside: list = field(default_factory=list)  # folders the new model names by path and does not copy


def check_encoder_arguments(args: EncoderArguments) -> None:
    if not args.data:
        raise ValueError("train-encoder needs at least one --data BEIR folder (DIR or DIR:SPLIT)")
    if not 0.0 < args.merge_weight <= 1.0:
        raise ValueError(f"merge_weight={args.merge_weight!r} must be in (0, 1]")
    if not 0.0 <= args.bare_query_ratio <= 1.0:
        raise ValueError(f"bare_query_ratio={args.bare_query_ratio!r} must be in [0, 1]")
    for name in ("thoughts_per_query", "lora_r", "batch_size", "num_epochs"):
        if getattr(args, name) < 1:
            raise ValueError(f"{name}={getattr(args, name)!r} must be >= 1")
    if args.num_negatives < 0:
        raise ValueError(f"num_negatives={args.num_negatives!r} must be >= 0")
    if args.batch_size == 1 and args.num_negatives == 0:  # in-batch negatives need a batch
        raise ValueError("batch_size=1 with num_negatives=0 leaves each anchor one passage to choose: the loss is always "
                         "0 and nothing trains; raise --batch-size or --num-negatives")
    if args.max_steps != -1 and args.max_steps < 1:
        raise ValueError(f"max_steps={args.max_steps!r} must be -1 (num_epochs decides) or >= 1")
    if args.max_queries is not None and args.max_queries < 1:
        raise ValueError(f"max_queries={args.max_queries!r} must be None or >= 1")
    # checked here, not by the trainer: that is after the thinker has thought for every query
    for name in ("learning_rate", "lora_alpha", "scale"):
        value = getattr(args, name)
        if not is_finite_number(value) or not value > 0:
            raise ValueError(f"{name}={value!r} must be a finite number > 0")
    out = check_output_path(args.output_dir, "--output-dir", folder=True)
    from o1_retriever.composite import COMPOSITE_FILE
    if (out / COMPOSITE_FILE).exists():  # an earlier result, or the --model itself: its encoder would be overwritten
        raise ValueError(f"output_dir={args.output_dir!r} already holds a composite model ({COMPOSITE_FILE}); choose "
                         f"another --output-dir, or delete that folder to train there again")
    check_no_other_model(out, "--output-dir", ("adapter_config.json", "config.json"))  # e.g. a `train` result
    _check_folders(args)


def _check_folders(args: EncoderArguments) -> None:
    """Every --data folder and split exists, before the thinker loads and thinks for the folders before it."""
    from o1_retriever.evaluation.data import beir_files
    for spec in args.data:
        folder, _, split = spec.partition(":")
        beir_files(folder, split or "train")
    for folder in args.exclude_dir:
        if not (Path(folder) / "queries.jsonl").is_file():
            raise ValueError(f"--exclude-dir {folder!r}: {Path(folder) / 'queries.jsonl'} does not exist")


def _dataset_rows(pairs: FolderPairs, emb, args: EncoderArguments, rng: random.Random) -> list[dict]:
    """Anchor/positive(/negative) rows for one BEIR folder's pairs, thought by `emb`'s thinker."""
    from .members import BM25Member
    from .negatives import mine_negatives
    texts, positives, docs = pairs.texts, pairs.positives, pairs.docs
    thoughts = emb.think(list(texts), k=args.thoughts_per_query, show_progress_bar=bars_shown()) if texts else []
    doc_ids = list(docs)
    negatives = mine_negatives(list(texts), [set(p) for p in positives], doc_ids, [docs[d] for d in doc_ids],
                               [BM25Member([docs[d] for d in doc_ids])], args.num_negatives) \
        if args.num_negatives else [[] for _ in texts]
    rows = []
    for text, pos, negs, ts in zip(texts, positives, negatives, thoughts):
        for doc in sorted(pos):
            anchors = [f"{text} {t}".strip() for t in ts]
            if rng.random() < args.bare_query_ratio:
                anchors.append(text)
            for anchor in anchors:
                row = {"anchor": anchor, "positive": docs[doc]}
                for i in range(args.num_negatives):
                    row[f"negative_{i}"] = docs[negs[i % len(negs)]] if negs else docs[doc]
                rows.append(row)
    return rows


def train_encoder(args: EncoderArguments, log=print) -> EncoderResult:
    check_encoder_arguments(args)
    # a bar redrawn with carriage returns is one unreadable line in a log: transformers' too (the thinker's merge)
    with transformers_bars(bars_shown()):
        return _train_encoder(args, log)


def _train_encoder(args: EncoderArguments, log) -> EncoderResult:
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from sentence_transformers import (SentenceTransformer, SentenceTransformerTrainer,
                                       SentenceTransformerTrainingArguments)
    try:  # sentence-transformers 6 moved them: the old paths warn, and are to go
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
        from sentence_transformers.sentence_transformer.training_args import BatchSamplers
    except ImportError:  # sentence-transformers 3 to 5
        from sentence_transformers.losses import MultipleNegativesRankingLoss
        from sentence_transformers.training_args import BatchSamplers

    from o1_retriever import O1Embedder
    from o1_retriever.composite import COMPOSITE_FILE, read_composite
    from o1_retriever.default_model import bundled_model_path
    from o1_retriever.evaluation.data import read_beir_jsonl
    from o1_retriever.quiet import peft_loading

    source = bundled_model_path(args.model) or Path(args.model)
    spec = read_composite(source)
    if spec is None:
        raise ValueError(f"{source} is not a composite model directory (no {COMPOSITE_FILE})")
    written = json.loads((Path(source) / COMPOSITE_FILE).read_text(encoding="utf-8"))
    if isinstance(spec.encoder, tuple):
        raise ValueError(f"{source}'s encoder is an ensemble of {len(spec.encoder)} models; train-encoder fine-tunes "
                         "one: start from a composite with a single encoder, such as --model o1-retriever-minilm")
    if (Path(spec.encoder) / "adapter_config.json").exists():
        raise ValueError(f"{source}'s encoder is already an adapter ({spec.encoder}); start from a composite whose "
                         "encoder is a full sentence-transformers model")
    excluded = {q["_id"] for d in args.exclude_dir
                for q in read_beir_jsonl(Path(d) / "queries.jsonl", "query", ("_id", "text"))}
    rng = random.Random(args.seed)
    folders = [read_folder(spec_, excluded, args.max_queries, rng) for spec_ in args.data]  # before the thinker loads
    if not any(f.texts for f in folders):
        raise ValueError(f"no training pairs in {args.data} (after excluding {len(excluded)} held-out queries)")
    emb = O1Embedder.from_pretrained(str(source))
    rows = [row for folder in folders for row in _dataset_rows(folder, emb, args, rng)]
    del emb
    log(f"{len(rows)} anchors from {args.data}")

    out = Path(args.output_dir)
    model = SentenceTransformer(spec.encoder, device="cpu")
    lora = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.1,
                      target_modules=list(LORA_TARGETS_BERT), task_type="FEATURE_EXTRACTION")
    with peft_loading():  # PEFT's own deprecated call warned on every run
        peft_model = get_peft_model(model[0].auto_model, lora)
    model[0].auto_model = peft_model
    # No model card is written (the adapter is saved alone): a widget set here spares the trainer choosing examples
    # for one, under a bar of its own.
    model.model_card_data.widget = [{"text": "unused"}]
    # 10% warmup counted as `train` counts it, rounded down: the trainer rounds a share up to at least one step, and
    # the first warmup step's learning rate is 0, so a one-step run (a quick check) trained nothing.
    steps = args.max_steps if args.max_steps > 0 else math.ceil(len(rows) / args.batch_size) * args.num_epochs
    warmup = int(0.1 * steps)
    targs = SentenceTransformerTrainingArguments(
        output_dir=str(out / "trainer"), num_train_epochs=args.num_epochs, max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate, warmup_steps=warmup,
        dataloader_pin_memory=torch.cuda.is_available(),
        batch_sampler=BatchSamplers.NO_DUPLICATES, seed=args.seed, logging_steps=1, save_strategy="no", report_to=[],
        disable_tqdm=not bars_shown())
    trainer = SentenceTransformerTrainer(model=model, args=targs, train_dataset=Dataset.from_list(rows),
                                         loss=MultipleNegativesRankingLoss(model, scale=args.scale))
    trainer.train()
    try:  # it saves nothing (save_strategy "no"): an empty folder left in the model would only puzzle
        (out / "trainer").rmdir()
    except OSError:
        pass

    # The adapter alone, its alpha scaled by merge_weight: loading it *is* the interpolated encoder.
    encoder_dir = out / "encoder"
    peft_model.save_pretrained(str(encoder_dir))  # the trainer may unwrap auto_model; this writes the adapter
    config_file = encoder_dir / "adapter_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    # A hub id stays one (it resolves to the offline package copy when installed); a path is made absolute.
    is_path = (Path(source) / written["encoder"]).exists()
    config["base_model_name_or_path"] = spec.encoder if is_path else written["encoder"]
    config["lora_alpha"] = args.lora_alpha * args.merge_weight
    config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    losses = [{"step": r["step"], "loss": r["loss"]} for r in trainer.state.log_history if "loss" in r]
    log_file = out / "encoder_train_log.jsonl"
    log_file.write_text("".join(json.dumps(r) + "\n" for r in losses), encoding="utf-8")
    (out / "encoder_training_args.json").write_text(json.dumps(vars(args), indent=2) + "\n", encoding="utf-8")
    settings = {k: v for k, v in written.items() if k not in ("thinker", "encoder")}
    from o1_retriever.composite import write_composite
    thinker = portable_thinker(spec.thinker)
    write_composite(out, thinker, "encoder", **settings)
    outside = [p for p in (thinker, config["base_model_name_or_path"]) if Path(p).is_absolute()]
    return EncoderResult(out, len(rows), trainer.state.global_step, log_file,
                         plot_encoder_losses(losses, out / "encoder_losses.png"), losses, outside)


def portable_thinker(path: str) -> str:
    """The thinker as the new model records it: the bundled one by name (its path is the install's, which a new
    venv or a copy to another machine changes), any other as given."""
    from o1_retriever.default_model import JOINT_NAME, joint_model_path
    return JOINT_NAME if Path(path).resolve() == joint_model_path().resolve() else path
