"""Inference settings: how a model thinks (sampling, thought length), how its thought vectors combine, and its token
windows. `InferenceSettings` is the one list of them. Everything that names a setting derives from it:

- `O1Embedder.from_pretrained(**overrides)` and `O1Embedder(..., **overrides)`;
- a model directory's `o1_generation.json` and the settings in a composite's `o1_composite.json` (`read_model_settings`,
  `check_model_settings`): any subset of the fields, the caller's arguments win (`resolve`);
- `emb.inference_settings()`, which a Chroma collection's config and an eval JSON's `meta.generation` record
  (`recorded`: the fields that apply to the model's encoder);
- the `--flags` of `demo`, `index`, `search`, `serve` and `eval` (`add_setting_flags`, one per field, default None:
  the model's own), and the same fields of `EvalConfig` (`SettingOverrides`).
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from .validation import AGGREGATIONS, check_choice, check_positive_int, check_query_weight, read_json_object

SETTINGS_FILE = "o1_generation.json"  # a model directory's own settings
THOUGHT_INPUTS = ("query_and_thought", "thought")
ENCODERS = ("lm", "sentence-transformers")


def _setting(default, help: str, *, part: str, choices=None, encoders=ENCODERS, metavar=None, shown=None):
    """part: "generation" (sampling: part of the thought-cache key) or "embedding". encoders: the encoder kinds the
    setting applies to (a sentence-transformers encoder keeps its own max_seq_length; an O1 model always embeds the
    query with its thought). shown: how help texts name the default, when not by its value."""
    return field(default=default, metadata={"help": help, "part": part, "choices": choices, "encoders": encoders,
                                            "metavar": metavar, "shown": default if shown is None else shown})


@dataclass(frozen=True)
class InferenceSettings:
    """How a model thinks and embeds. Defaults are the official O1 Embedder inference values (FlagEmbedding)."""
    temperature: float = _setting(0.1, "thought sampling temperature (0: greedy)", part="generation")
    top_p: float = _setting(0.9, "nucleus sampling top_p, in (0, 1]", part="generation")
    max_new_tokens: int = _setting(128, "thought length limit in tokens", part="generation", metavar="N")
    min_new_tokens: int = _setting(0, "shortest thought in tokens: the thought's end is not sampled before it (a "
                                      "small thinker asked a question may otherwise stop at 'The answer is:')",
                                   part="generation", metavar="N", shown="0: no minimum")
    prompt_max_length: int = _setting(256, "token window of the thinking prompt; longer queries are cut",
                                      part="generation", metavar="N")
    seed: int | None = _setting(0, "sampling seed, for repeatable thoughts", part="generation",
                                shown="0; None: fresh thoughts every call")
    aggregation: str = _setting("mean", "how the k thought vectors combine into the query vector",
                                part="embedding", choices=AGGREGATIONS)
    query_weight: float | None = _setting(None, "bare query's share of the vector under mean_with_query",
                                          part="embedding", metavar="W", shown="None: an equal share, 1/(k+1)")
    thought_input: str = _setting("query_and_thought", "what a sentence-transformers encoder reads per thought: "
                                                       "query + thought, or the thought alone", part="embedding",
                                  choices=THOUGHT_INPUTS, encoders=("sentence-transformers",))
    # The official meaning of a window: the text is cut to N tokens, then <emb> is appended (N + 1 ids in all).
    query_max_length: int = _setting(512, "token window of an O1 model for query + thought: the text is cut to N "
                                          "tokens, then <emb> is appended", part="embedding",
                                     encoders=("lm",), metavar="N")
    document_max_length: int = _setting(512, "token window of an O1 model for documents: the text is cut to N "
                                             "tokens, then <emb> is appended", part="embedding",
                                        encoders=("lm",), metavar="N")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            check_setting(f.name, getattr(self, f.name))
        # an int weight is recorded as the float it means
        object.__setattr__(self, "query_weight", check_query_weight(self.query_weight, self.aggregation))
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(f"min_new_tokens={self.min_new_tokens} is above max_new_tokens={self.max_new_tokens}; "
                             "the shortest thought must fit the limit")

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def generation(self) -> dict:
        """The sampling settings: what a cached thought depends on (part of its cache key)."""
        return {f.name: getattr(self, f.name) for f in FIELDS if f.metadata["part"] == "generation"
                and not self._added_later_and_unset(f.name)}

    def _added_later_and_unset(self, name: str) -> bool:
        # Left out of cache keys and records at its default, so thoughts cached and collections recorded before the
        # setting existed keep their keys and records.
        return name in ADDED_LATER and getattr(self, name) == ADDED_LATER[name]

    def recorded(self, encoder: str) -> dict:
        """The settings that apply to an encoder of this kind ("lm" or "sentence-transformers"): what an eval JSON
        and a Chroma config record, and what rebuilds the embedder."""
        check_choice(encoder, "encoder", ENCODERS)
        return {f.name: getattr(self, f.name) for f in FIELDS if encoder in f.metadata["encoders"]
                and not self._added_later_and_unset(f.name)}


FIELDS = dataclasses.fields(InferenceSettings)
ADDED_LATER = {"min_new_tokens": 0}  # settings added after records and caches existed, with their neutral value
NAMES = tuple(f.name for f in FIELDS)
# `from_pretrained`'s JSON-serialisable keyword options (how to load, then every setting): what a Chroma config and a
# Ray model spec may carry
LOAD_OPTIONS = ("device", "dtype", "encoder_dtype", "quantization", "share_weights", "prompt_style", "thought_cache",
                "fused") + NAMES
_BY_NAME = {f.name: f for f in FIELDS}


def check_setting(name: str, value):
    """One setting's value on its own (query_weight's tie to the aggregation is checked by `InferenceSettings`)."""
    if name == "temperature":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"temperature must be >= 0, got {value!r}")
        if value == float("inf"):  # it would sample uniformly and write a record no strict JSON reader takes back
            raise ValueError(f"temperature must be finite (0: greedy; 0.1: the official value), got {value!r}")
    elif name == "top_p":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {value!r}")
    elif name == "seed":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"seed must be an int or None, got {value!r}")
    elif name == "query_weight":
        check_query_weight(value, "mean_with_query")
    elif name in ("aggregation", "thought_input"):
        check_choice(value, name, _BY_NAME[name].metadata["choices"])
    elif name == "min_new_tokens":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"min_new_tokens must be an int >= 0 (0: no minimum), got {value!r}")
    elif name in _BY_NAME:  # the token counts
        check_positive_int(value, name)
    else:
        raise TypeError(f"{name!r} is not an inference setting; they are {list(NAMES)}")
    return value


def check_names(values: dict, where: str) -> dict:
    unknown = sorted(set(values) - set(NAMES))
    if unknown:
        raise TypeError(f"{where} got unknown settings {unknown}; the settings are {list(NAMES)}")
    return dict(values)


def check_overrides(values: dict, where: str = "settings") -> dict:
    """Settings chosen over a model's own, each checked on its own. A query_weight without an aggregation beside it
    is checked against mean_with_query (the model's own aggregation must then be that)."""
    for name, value in check_names(values, where).items():
        check_setting(name, value)
    if values.get("query_weight") is not None:
        check_query_weight(values["query_weight"], values.get("aggregation") or "mean_with_query")
    return dict(values)


def check_model_settings(values, where) -> dict:
    """A model's shipped settings (a JSON object, any subset of the fields): valid over the official defaults.
    Errors name `where` (the file)."""
    if not isinstance(values, dict) or set(values) - set(NAMES):
        raise ValueError(f"{where} must be a JSON object with keys among {list(NAMES)}, got {values!r}")
    try:
        InferenceSettings(**values)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{where}: {e}") from None
    return dict(values)


def read_model_settings(directory) -> dict:
    """The settings a model directory ships in `o1_generation.json` (e.g. the thought length it was trained on, or
    the aggregation chosen on held-out data); {} when it ships none."""
    path = Path(str(directory)).expanduser() / SETTINGS_FILE
    values = read_json_object(path)
    return {} if values is None else check_model_settings(values, path)


def resolve(model_defaults: dict, overrides: dict) -> InferenceSettings:
    """A model's shipped settings under the caller's (the caller's win), over the official defaults."""
    defaults = dict(model_defaults)
    if "aggregation" in overrides and "query_weight" not in overrides:
        defaults.pop("query_weight", None)  # the model's weight belongs to its aggregation, not the caller's
    return InferenceSettings(**(defaults | overrides))


# ---- the command line ------------------------------------------------------------------------------------------
def _flag_type(name: str):
    """argparse type of a setting's flag: parsed by the field's type and checked at parse time."""
    kind = {"int": int, "float": float}.get(_BY_NAME[name].type.split("|")[0].strip(), str)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        try:
            return check_setting(name, value)
        except (TypeError, ValueError) as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


CLI_SETTINGS = tuple(n for n in NAMES if n != "seed")  # each CLI has its own --seed, default 0: repeatable thoughts


def add_setting_flags(parser: argparse.ArgumentParser, names=CLI_SETTINGS) -> None:
    """One `--flag` per setting, default None: the model's own (its o1_generation.json or o1_composite.json), else
    the official value shown."""
    for name in names:
        f = _BY_NAME[name]
        choices = f.metadata["choices"]
        parser.add_argument("--" + name.replace("_", "-"), dest=name, default=None, metavar=f.metadata["metavar"],
                            type=None if choices else _flag_type(name), choices=choices,
                            help=f"{f.metadata['help']} (default: the model's, else {f.metadata['shown']})")


def _override_field(f: dataclasses.Field) -> tuple:
    return f.name, f"{f.type} | None", field(default=None, metadata={**f.metadata, "help": f"{f.metadata['help']} "
                                                                                         "(None: the model's own)"})


# The settings as optional overrides (None: the model's own), e.g. the fields of EvalConfig.
SettingOverrides = dataclasses.make_dataclass("SettingOverrides", [_override_field(f) for f in FIELDS], kw_only=True)
SettingOverrides.__doc__ = "Every inference setting as an optional override of the model's own (None keeps it)."


def overrides_of(obj, names=NAMES) -> dict:
    """The settings an object sets (a SettingOverrides, or the namespace of `add_setting_flags`); None ones are left
    out, so the model's own apply."""
    return {name: getattr(obj, name) for name in names if getattr(obj, name, None) is not None}
