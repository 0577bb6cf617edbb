"""`RefusedParameters`: the request fields an OpenAI-compatible server refuses with a 400 but takes in another form,
learned from its first refusal and sent so from then on (`OpenAIThinker` keeps one per endpoint)."""
from __future__ import annotations

import itertools
import re
import threading
import warnings

from .remote_thinking import ThinkerAPIError

# Sampling a server may refuse, as OpenAI's reasoning models (o-series, gpt-5) do: a temperature other than 1
# ("Unsupported value: 'temperature' does not support 0.7 with this model. Only the default (1) value is supported.")
# and any top_p ("Unsupported parameter: 'top_p' is not supported with this model."). Refused once, no longer sent.
ADAPTABLE = ("temperature", "top_p")
MODEL_OWN = "the model's own"  # a refused parameter's value in thought-cache keys
_UNSUPPORTED = re.compile(r"unsupported (?:value|parameter): '(\w+)'", re.IGNORECASE)


class RefusedSamplingWarning(UserWarning):
    """A server refused the embedder's temperature or top_p (OpenAI's reasoning models take only their own); it is no
    longer sent, so thoughts are sampled at the model's own."""


class RefusedParameters:
    """What one server refused so far: max_tokens (it takes max_completion_tokens, as OpenAI's reasoning models do)
    and the sampling parameters (ADAPTABLE) it takes only at the model's own value, which are then no longer sent."""

    def __init__(self):
        self.length_field = "max_tokens"
        self.refused: set[str] = set()
        self.answered = False  # whether a request has succeeded, so `refused` is known
        self._learning = threading.Lock()

    def cache_params(self, params: dict) -> list[dict]:
        """The generation parameters its thoughts are cached under, the current form first: as sent, a refused
        sampling parameter being the model's own. Until a request has succeeded the refusals are unknown, so the
        forms with some refused are looked up too: a new process finds what an earlier one kept from a reasoning
        model without asking it first."""
        sent = params | dict.fromkeys(self.refused, MODEL_OWN)
        if self.answered:
            return [sent]
        return [sent] + [params | dict.fromkeys(names, MODEL_OWN)
                         for n in range(len(ADAPTABLE), 0, -1) for names in itertools.combinations(ADAPTABLE, n)]

    def accepted(self, payload: dict) -> dict:
        """The payload as this server takes it: its length field, no refused sampling parameter."""
        payload = {name: value for name, value in payload.items() if name not in self.refused}
        if self.length_field != "max_tokens" and "max_tokens" in payload:
            payload[self.length_field] = payload.pop("max_tokens")
        return payload

    def sampling(self, config) -> str | None:
        """The sampling thoughts are written with as sent, a refused parameter being the model's own, for the
        repeated-thoughts warning (None: greedy, so identical thoughts are expected)."""
        if config.temperature == 0 and "temperature" not in self.refused:
            return None
        seeds = "no seed" if config.seed is None else "a seed per thought"
        temperature, top_p = (f"the model's own {name}" if name in self.refused else f"{name}={value:g}"
                              for name, value in (("temperature", config.temperature), ("top_p", config.top_p)))
        return f"{temperature}, {top_p} and {seeds}"

    def learn(self, error: ThinkerAPIError, sent: dict, server: str) -> bool:
        """Whether a 400 refused a field of `sent` that can be sent otherwise (then it is, from now on). `server`
        names the endpoint in the warning."""
        if error.status != 400:
            return False
        if "max_tokens" in sent and "max_completion_tokens" in str(error):  # "Use 'max_completion_tokens' instead."
            self.length_field = "max_completion_tokens"
            return True
        named = _UNSUPPORTED.search(str(error))
        name = named.group(1) if named else None
        if name not in ADAPTABLE or name not in sent:
            return False
        with self._learning:
            new = name not in self.refused
            self.refused.add(name)
        if new:
            warnings.warn(f"{server} refuses {name}={sent[name]!r} (as OpenAI's reasoning models, o-series "
                          f"and gpt-5, do): it is no longer sent, so thoughts are sampled at the model's own {name}, "
                          f"and the thought cache keys them so, apart from thoughts sampled at a {name} of your "
                          f"choice. The server: {named.string[named.start():]}", RefusedSamplingWarning, stacklevel=2)
        return True
