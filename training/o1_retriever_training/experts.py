"""LLM experts that write candidate texts from chat messages.

`HFExpert`: a local causal LM, batched sampling, optionally 4-bit. `OpenAIExpert`: any
OpenAI-compatible `/chat/completions` server (vLLM, llama.cpp, Ollama) with a thread pool, retries
and backoff. Both stream results (`generate_stream`) so the caller can write each one at once.
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed

import torch
from tqdm.auto import tqdm

from o1_retriever.sampling import generate

from .arguments import is_finite_number

# The default expert's name in records: its converted copy's path depends on the install, so a label names it.
BUNDLED_EXPERT = "bundled SmolLM2-135M-Instruct"


class ExpertError(RuntimeError):
    """The expert could not answer (a server unreachable or refusing, a reply without candidates): what was written
    before it stays, and the same command resumes."""


def _clean(text: str) -> str:
    return text.strip()


def check_expert_url(base_url) -> None:
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"expert_url={base_url!r} must be an http(s) base URL such as http://127.0.0.1:8000/v1")


def check_sampling(temperature, top_p) -> None:
    if not is_finite_number(temperature) or temperature < 0:
        raise ValueError(f"temperature={temperature!r} must be a finite number >= 0 (0: greedy)")
    if not is_finite_number(top_p) or not 0 < top_p <= 1:
        raise ValueError(f"top_p={top_p!r} must be in (0, 1]")


class HFExpert:
    def __init__(self, model: str | None = None, *, quantization: str | None = None, device=None, dtype="auto",
                 temperature: float = 0.8, top_p: float = 0.95, max_new_tokens: int = 96, batch_size: int = 8,
                 seed: int | None = 0, prompt_max_length: int = 1536):
        from o1_retriever.default_model import smollm2_base_dir
        from o1_retriever.device import resolve_device, resolve_dtype
        from o1_retriever.loading import load_causal_lm

        check_sampling(temperature, top_p)  # before the model loads
        dev = resolve_device(device)
        source = str(smollm2_base_dir()) if model is None else str(model)
        loaded = load_causal_lm(source, device=dev, dtype=resolve_dtype(dtype, dev), quantization=quantization)
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self.name = BUNDLED_EXPERT if model is None else str(model)
        self.temperature, self.top_p, self.max_new_tokens = temperature, top_p, max_new_tokens
        self.batch_size, self.seed, self.prompt_max_length = batch_size, seed, prompt_max_length

    def render(self, messages: list[dict]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages) + "\n"

    @torch.inference_mode()
    def _batch(self, prompts: list[str], n: int) -> list[list[str]]:
        tok = self.tokenizer
        # Keep the end of long prompts: the actual request comes last, after the few-shot turns.
        tok.truncation_side = "left"
        batch = tok(prompts, return_tensors="pt", padding=True, truncation=True,
                    max_length=self.prompt_max_length, add_special_tokens=False).to(self.model.device)
        out = generate(self.model, batch["input_ids"], batch["attention_mask"], n=n, temperature=self.temperature,
                       top_p=self.top_p, max_new_tokens=self.max_new_tokens, pad_token_id=tok.pad_token_id,
                       eos_token_id=tok.eos_token_id)
        texts = tok.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        return [[_clean(t) for t in texts[i * n:(i + 1) * n]] for i in range(len(prompts))]

    def generate_stream(self, conversations: list[list[dict]], n: int = 1, progress: bool = True):
        """Yield (index, [n texts]) as batches finish."""
        prompts = [self.render(c) for c in conversations]
        with torch.random.fork_rng():
            if self.seed is not None:
                torch.manual_seed(self.seed)
            for start in tqdm(range(0, len(prompts), self.batch_size), desc="Expert", disable=not progress):
                for j, texts in enumerate(self._batch(prompts[start:start + self.batch_size], n)):
                    yield start + j, texts

    def generate(self, conversations: list[list[dict]], n: int = 1, progress: bool = False) -> list[list[str]]:
        out = [None] * len(conversations)
        for i, texts in self.generate_stream(conversations, n, progress):
            out[i] = texts
        return out


class OpenAIExpert:
    """Chat completions over HTTP. Servers that ignore `n` (llama.cpp) are asked again until n arrive."""

    def __init__(self, base_url: str, model: str = "default", *, api_key: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 4, retries: int = 3,
                 temperature: float = 0.8, top_p: float = 0.95, max_new_tokens: int = 96,
                 timeout: float = 120.0, backoff: float = 1.0):
        check_expert_url(base_url)
        check_sampling(temperature, top_p)
        if concurrency < 1 or retries < 0:
            raise ValueError(f"concurrency must be >= 1 and retries >= 0, got {concurrency}, {retries}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.name, self.model = base_url, model
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.concurrency, self.retries, self.timeout, self.backoff = concurrency, retries, timeout, backoff
        self.temperature, self.top_p, self.max_new_tokens = temperature, top_p, max_new_tokens

    def _post(self, payload: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, json.dumps(payload).encode(), headers, method="POST")
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as e:
                retryable = e.code == 429 or e.code >= 500
                if not retryable or attempt == self.retries:
                    body = e.read()[:200].decode(errors="replace")
                    raise ExpertError(f"{self.url} answered HTTP {e.code}: {body}") from e
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                if attempt == self.retries:
                    raise ExpertError(f"{self.url} unreachable after {self.retries + 1} tries: {e}") from e
            time.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def complete(self, messages: list[dict], n: int) -> list[str]:
        texts: list[str] = []
        for _ in range(n):  # at most n requests, even for a server that returns one choice each time
            reply = self._post({"model": self.model, "messages": messages, "n": n - len(texts),
                                "temperature": self.temperature, "top_p": self.top_p,
                                "max_tokens": self.max_new_tokens})
            try:
                texts += [_clean(c["message"]["content"] or "") for c in reply["choices"]]
            except (KeyError, TypeError) as e:
                raise ExpertError(f"{self.url} returned no chat choices: {str(reply)[:200]}") from e
            if len(texts) >= n:
                break
        return texts[:n]

    def generate_stream(self, conversations: list[list[dict]], n: int = 1, progress: bool = True):
        pool = ThreadPoolExecutor(self.concurrency)
        try:
            with tqdm(total=len(conversations), desc="Expert", disable=not progress) as bar:
                futures = {pool.submit(self.complete, c, n): i for i, c in enumerate(conversations)}
                error = None
                for future in as_completed(futures):
                    bar.update(1)
                    try:
                        texts = future.result()
                    except ExpertError as e:  # keep what the others paid for; fail after them
                        error = error or e
                        continue
                    yield futures[future], texts
                if error is not None:
                    raise error
        finally:
            # Stopped early (Ctrl-C, the caller failed or stopped reading): the queued requests are dropped, not
            # sent and paid for while nobody waits for them; only those already in flight finish.
            pool.shutdown(wait=False, cancel_futures=True)

    def generate(self, conversations: list[list[dict]], n: int = 1, progress: bool = False) -> list[list[str]]:
        out = [None] * len(conversations)
        for i, texts in self.generate_stream(conversations, n, progress):
            out[i] = texts
        return out
