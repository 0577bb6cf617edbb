"""Training groups and their tokenization in the official format.

Query side: `<query>q</query><thought>t{eos}<emb>`; passage side: `passage<emb>`. The labels mark the
thought tokens and the EOS after them (what the model must learn to write); everything else is -100.
Sampling (which positive, which negatives, which queries lose their thought) is a pure function of
(seed, epoch, index), so a resumed run sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import random

import torch
from torch.utils.data import Dataset

from o1_retriever.formatting import EMB, thinking_prompt
from o1_retriever.text_window import read_prefixes

from .data import TrainRecord

IGNORE = -100


class TrainDataset(Dataset):
    def __init__(self, records: list[TrainRecord], group_size: int = 16, empty_thought_ratio: float = 0.1,
                 seed: int = 42, source=None):
        """source: the file the records came from, named in errors beside each record's line."""
        if group_size < 1:
            raise ValueError(f"group_size={group_size} must be >= 1 (1 positive + group_size-1 negatives)")
        short = [r for r in records if len(r.neg) < group_size - 1]
        if short:
            first = short[0]
            where = f"{source}:{first.line}" if source else f"line {first.line}"
            raise ValueError(
                f"group_size={group_size} needs {group_size - 1} negatives per query (field 'neg'), but {len(short)} "
                f"of {len(records)} records have fewer (first: {where} has {len(first.neg)}); lower "
                f"--group-size or mine more negatives (synthesize --num-negatives)")
        self.records, self.group_size = records, group_size
        self.empty_thought_ratio, self.seed, self.epoch = empty_thought_ratio, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        r = self.records[i]
        rng = random.Random(f"{self.seed}/{self.epoch}/{i}")
        thought = r.thought or ""
        if thought and rng.random() < self.empty_thought_ratio:
            thought = ""  # query-only embedding, the k=0 path at inference
        passages = [rng.choice(r.pos)] + rng.sample(r.neg, self.group_size - 1)
        return {"query": r.query, "thought": thought, "passages": passages}


def _left_pad(rows: list[list[int]], pad: int, fill=None) -> torch.Tensor:
    width = max(map(len, rows))
    value = pad if fill is None else fill
    return torch.tensor([[value] * (width - len(x)) + x for x in rows])


class TrainCollator:
    """Tokenizes groups; left padding, so the `<emb>` state is always the last position."""

    def __init__(self, tokenizer, query_max_length: int = 32, passage_max_length: int = 192,
                 query_thought_max_length: int = 256):
        self.tok = tokenizer
        self.emb_id = tokenizer.convert_tokens_to_ids(EMB)
        if self.emb_id is None or self.emb_id == tokenizer.unk_token_id:
            raise ValueError("the tokenizer lacks the <emb> token; call o1_retriever.formatting.add_special_tokens")
        self.eos_id, self.pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
        self.qlen, self.plen, self.qtlen = query_max_length, passage_max_length, query_thought_max_length

    def _ids(self, text: str, special: bool, window: int | None = None) -> list[int]:
        """Ids of `text`, of which only the first `window` (special tokens aside) are used: a huge text is cut first
        to a prefix holding them, as inference does, instead of being tokenized whole at every step."""
        if window is not None:
            text = read_prefixes(self.tok, [text], window)[0]
        return self.tok(text, add_special_tokens=special, verbose=False)["input_ids"]

    def query_ids(self, query: str, thought: str) -> tuple[list[int], list[int]]:
        """Input ids and labels. Pieces split at special tokens, so this equals tokenizing the whole
        `query_embedding_text` (as inference does) and then appending `<emb>`."""
        q = self._ids(query, False, self.qlen)
        if len(q) > self.qlen:
            query = self.tok.decode(q[: self.qlen])
        prefix = self._ids(thinking_prompt(query), True)
        budget = max(0, self.qtlen - len(prefix) - 2)  # room left for the thought after EOS and <emb>
        thought_ids = self._ids(thought, False, budget)[:budget] if thought and budget else []
        ids = prefix + thought_ids + [self.eos_id, self.emb_id]
        # Learn to write the thought and to stop (EOS); with no thought there is nothing to generate.
        labels = [IGNORE] * len(prefix) + (thought_ids + [self.eos_id] if thought_ids else [IGNORE]) + [IGNORE]
        return ids, labels

    def passage_ids(self, passage: str) -> list[int]:
        return self._ids(passage, True, self.plen)[: self.plen - 1] + [self.emb_id]

    def __call__(self, items: list[dict]) -> dict:
        queries = [self.query_ids(it["query"], it["thought"]) for it in items]
        passages = [self.passage_ids(p) for it in items for p in it["passages"]]
        q_ids = [ids for ids, _ in queries]
        return {
            "query_input_ids": _left_pad(q_ids, self.pad_id),
            "query_attention_mask": _left_pad([[1] * len(x) for x in q_ids], 0, 0),
            "query_labels": _left_pad([lab for _, lab in queries], IGNORE, IGNORE),
            "passage_input_ids": _left_pad(passages, self.pad_id),
            "passage_attention_mask": _left_pad([[1] * len(x) for x in passages], 0, 0),
        }
