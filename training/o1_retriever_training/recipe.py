"""What a synthesis run's records are made with (expert, vote, candidates, committee, data, negative miners), so that
a resume under another recipe is refused instead of mixing two in one file."""
from __future__ import annotations

import json
from pathlib import Path

from .arguments import SynthesisArguments


def _path_key(value):
    """A local path in its resolved form (the same folder named relatively or absolutely is one), else as is."""
    if isinstance(value, str) and value and Path(value).expanduser().exists():
        return str(Path(value).expanduser().resolve())
    return value


def _bundled_expert_dir() -> Path:
    """Where this install keeps the bundled expert's converted copy (default_model.smollm2_base_dir), named without
    converting it."""
    from o1_retriever.default_model import cache_dir
    return cache_dir() / "models" / "SmolLM2-135M-Instruct"


def _expert_key(name):
    """The expert of this run: the bundled one only when none is given or the path is this install's copy of it; a
    folder of one's own with the same name may hold other weights."""
    from .experts import BUNDLED_EXPERT
    key = _path_key(name)
    if name is None or key == BUNDLED_EXPERT or key == str(_bundled_expert_dir().resolve()):
        return BUNDLED_EXPERT
    return key


def _stored_expert_key(name):
    """The expert a stored record names. Records from before the label named the bundled expert by its converted
    copy, which on another install lies under that install's cache (<cache>/o1_retriever/models/...)."""
    from .experts import BUNDLED_EXPERT
    if isinstance(name, str) and Path(name).parts[-3:] == ("o1_retriever", "models", "SmolLM2-135M-Instruct"):
        return BUNDLED_EXPERT
    return _expert_key(name)


def doc_to_query_recipe(args: SynthesisArguments, expert=None) -> dict:
    """What the doc-to-query cache's records are made with: the expert and the corpus."""
    return {**expert_identity(args, expert), "data": _path_key(args.data)}


def _member_name(spec: str) -> str:
    """The name a committee member scores under (members.load_member)."""
    return spec if spec in ("bm25", "minilm") else Path(spec).name


def expert_identity(args: SynthesisArguments, expert=None) -> dict:
    """How records name the expert: the model given (the bundled one by a label) or the server's URL and model
    name. From the arguments before it loads, or from `expert` itself."""
    if expert is not None:
        model = getattr(expert, "model", None)  # a server's model name; a local expert's is its network
        return {"expert": _expert_key(getattr(expert, "name", "")),
                **({"expert_model": model} if isinstance(model, str) else {})}
    if args.expert_url:
        return {"expert": args.expert_url, "expert_model": args.expert_model}
    return {"expert": _expert_key(None if args.expert is None else str(args.expert))}


def recipe(args: SynthesisArguments, expert_fields: dict) -> dict:
    """The settings every record stores and a resume must share."""
    fields = {**expert_fields, "vote": args.vote, "num_candidates": args.num_candidates,
              "committee": [_path_key(spec) for spec in args.committee], "data": _path_key(args.data)}
    # Where the queries come from: a qrels split, else (None) the expert (doc-to-query) or a pairs file.
    fields["split"] = None if args.pairs or args.doc_to_query else args.split
    fields["pairs"] = _path_key(args.pairs)
    # Mined negatives (a pairs file brings its own).
    fields["negatives"] = None if args.pairs else [_path_key(spec) for spec in args.negatives]
    fields["num_negatives"] = None if args.pairs else args.num_negatives
    return fields


def _comparable(setting: str, value, stored: bool = False):
    if setting == "expert":
        return _stored_expert_key(value) if stored else _expert_key(value)
    if setting in ("committee", "negatives") and value is not None:  # the members' order changes nothing
        return sorted(_path_key(spec) for spec in value)
    return _path_key(value) if setting in ("data", "pairs") else value


def check_resume(path: Path, done: dict[str, dict], now: dict) -> None:
    """Refuse to append records made under `now` to a file whose records were made otherwise. A setting that
    older records did not store is taken from what they hold (candidates, scores) or else not compared."""
    checked = set()  # (setting, value there): each distinct value is compared once, not once per record
    for key, record in done.items():
        for setting, value in now.items():
            if setting in record:
                then = record[setting]
            elif setting == "num_candidates" and "candidates" in record:
                then = len(record["candidates"])
            elif setting == "committee" and "scores" in record:  # older records: the members' names
                then, value = sorted(record["scores"]), sorted(_member_name(spec) for spec in value)
            else:
                continue
            seen = (setting, json.dumps(then, sort_keys=True))
            if seen in checked:
                continue
            checked.add(seen)
            if _comparable(setting, then, stored=True) != _comparable(setting, value):
                raise ValueError(
                    f"{path} holds records made with {setting}={then!r} (e.g. {key}), but this run has "
                    f"{setting}={value!r}; resuming would mix two recipes in one file. Write to another --output, "
                    f"or delete {path} to start over (or rerun with the settings it was made with)")
