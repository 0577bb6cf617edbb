"""`o1-retriever synthesize` and `o1-retriever train`, registered through the entry-point group
`o1_retriever.commands` (see o1_retriever/cli.py for the plug-in contract)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from o1_retriever.display import bars_shown

from .arguments import (DataArguments, ModelArguments, SynthesisArguments, TrainingArguments,
                        add_dataclass_arguments, from_namespace)


def _synthesize(args: argparse.Namespace) -> int:
    from .experts import ExpertError
    from .synthesize import synthesize
    try:
        # a bar redrawn with carriage returns is one unreadable line in a log file
        result = synthesize(from_namespace(SynthesisArguments, args), progress=bars_shown())
    except ExpertError as e:  # a server that failed part-way: what it answered is kept
        print(f"o1-retriever synthesize: error: {e}\n{_records_kept(args.output)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\no1-retriever synthesize: interrupted\n{_records_kept(args.output)}", file=sys.stderr)
        return 130
    print(f"wrote {result.written} records to {result.output} ({result.already_done} already there)")
    return 0


def _records_kept(output: str) -> str:
    path = Path(output)
    lines = path.read_bytes().count(b"\n") if path.is_file() else 0
    return (f"{lines} records are in {output}; run the same command again to resume (records there are kept and "
            f"not synthesized again)")


def _train(args: argparse.Namespace) -> int:
    from .trainer import latest_checkpoint, train
    try:
        result = train(from_namespace(ModelArguments, args), from_namespace(DataArguments, args),
                       from_namespace(TrainingArguments, args))
    except KeyboardInterrupt:
        ckpt = latest_checkpoint(args.output_dir)
        how = (f"the latest checkpoint is {ckpt}: the same command with --resume continues from it" if ckpt else
               f"no checkpoint was saved yet (one every --save-steps {args.save_steps} steps): the same command "
               f"starts over")
        print(f"\no1-retriever train: interrupted; {how}", file=sys.stderr)
        return 130
    if result.already_finished:
        return _report(result, f"--resume: {result.output_dir} holds this run's finished model ({result.steps} "
                               f"steps): nothing to resume. To train again, choose another --output-dir"
                               + "".join(f"\n{note}" for note in result.notes))
    last = result.last
    return _report(result, f"trained {result.steps} steps -> {result.output_dir}"
                   + (f" (loss_emb {last['loss_emb']:.4f}, loss_gen {last['loss_gen']:.4f})" if last else ""))


def _report(result, summary: str) -> int:
    print(summary)
    print(f"log: {result.log_file}" + (f"  plot: {result.plot_file}" if result.plot_file else ""))
    return 0


def _command(subparsers, name: str, func, help: str, description: str, *arguments) -> None:
    """One subcommand whose flags come from the given argument dataclasses."""
    p = subparsers.add_parser(name, help=help, description=description)
    for dataclass_type in arguments:
        add_dataclass_arguments(p, dataclass_type)
    p.set_defaults(func=func)


def register_synthesize(subparsers) -> None:
    _command(subparsers, "synthesize", _synthesize,
             "Write candidate thoughts with an LLM expert and keep the committee's choice",
             "Thought synthesis for O1 training: an LLM expert (local HF model or OpenAI-compatible server) writes N "
             "candidate thoughts per query, a retrieval committee (BM25 + dense encoders) votes for the one closest "
             "to the positive passage; hard negatives are mined. Re-running with the same --output resumes.",
             SynthesisArguments)


def register_train(subparsers) -> None:
    _command(subparsers, "train", _train, "Joint think+embed LoRA fine-tune (L = λ·L_contrastive + (1-λ)·L_gen)",
             "Fine-tune a causal LM into an O1 embedder on JSONL records {query, pos, neg, thought} (e.g. the output "
             "of `synthesize`). Writes a LoRA adapter in the official layout that O1Embedder.from_pretrained loads. "
             "Multi-GPU: `accelerate launch -m o1_retriever.cli train ...`.",
             ModelArguments, DataArguments, TrainingArguments)


def _train_encoder(args: argparse.Namespace) -> int:
    from .encoder import EncoderArguments, train_encoder
    try:
        result = train_encoder(from_namespace(EncoderArguments, args))
    except KeyboardInterrupt:  # no checkpoints to name: say what a re-run costs
        print(f"\no1-retriever train-encoder: interrupted; no model was written to {args.output_dir}: the same "
              f"command trains again from the start (the thoughts already thought are kept in the thought cache)",
              file=sys.stderr)
        return 130
    # The new folder is not self-contained: moving or deleting what it names by path breaks it, which only this says.
    outside = "" if not result.outside else (
        f"\nnot copied: the model names {' and '.join(result.outside)} by path; "
        f"moving or deleting {'that folder' if len(result.outside) == 1 else 'those folders'} breaks this model")
    return _report(result, f"trained the encoder {result.steps} steps on {result.anchors} anchors "
                           f"-> {result.output_dir}{outside}")


def register_train_encoder(subparsers) -> None:
    from .encoder import EncoderArguments
    _command(subparsers, "train-encoder", _train_encoder,
             "Fine-tune a composite model's encoder on its thinker's thoughts (LoRA)",
             "Teach a composite model's sentence-transformers encoder to embed `query + thought` (and bare queries) "
             "close to the positive passage, with sentence-transformers' trainer and MultipleNegativesRankingLoss. "
             "Writes a new composite model: the same thinker, the encoder as a LoRA adapter scaled by "
             "--merge-weight.",
             EncoderArguments)
