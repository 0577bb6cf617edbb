"""Real chat-completions servers on loopback for the remote-thinker tests.

- `transformers_serve`: `transformers serve` (transformers' own OpenAI-compatible server, FastAPI + uvicorn) in a
  subprocess, pinned to a model directory, offline. It answers one choice per request (it ignores `n`), which is
  the llama.cpp behaviour the thinker must cope with, and it honours `seed`.
- `ScriptedProxy`: a stdlib HTTP server that answers the first requests with scripted error statuses (429, 500,
  ...) and forwards the rest to a real upstream server, recording every request body. transformers serve cannot be
  made to fail on demand; this is how a test sees retries, backoff and the requests the thinker sends. With
  `honour_n=True` it answers `n` choices, as vLLM and OpenAI do, by asking upstream n times.
  With `forward_extra` it adds fields to what it forwards: `IGNORE_SAMPLING` makes transformers serve decode
  greedily, ignoring temperature and seed, as it does for a model whose generation_config.json lacks do_sample.
- `ChatStub`: a stdlib chat-completions server whose answers a function writes from each request (error bodies,
  non-JSON, missing choices, slow replies, servers that ignore sampling or refuse `n` as llama.cpp does), for the
  reply shapes no real server here gives on demand; `ignores_sampling` and `llama_cpp_like` are two such functions.
- `LoopbackChatLLM`: a LlamaIndex LLM (a real `CustomLLM` subclass) that chats with such a server through httpx,
  because no LlamaIndex OpenAI LLM package (llama-index-llms-openai / -openai-like) is installed here.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def transformers_serve(model_dir: Path, startup_timeout: float = 180.0):
    """Yield the base URL (…/v1) of `transformers serve MODEL_DIR` on a free loopback port; stop it afterwards."""
    port = free_port()
    cli = Path(sys.executable).with_name("transformers")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.Popen([str(cli), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
                             "--device", "cpu", "--log-level", "warning"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"transformers serve did not answer {root}/health within {startup_timeout:g} s")
            try:
                if httpx.get(root + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield root + "/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class _LoopbackServer:
    """A ThreadingHTTPServer on 127.0.0.1 serving `handler` while in a `with` block."""

    def _listen(self, handler) -> str:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _send(handler, status: int, data: bytes, content_type: str = "application/json", headers: dict | None = None):
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class ScriptedProxy(_LoopbackServer):
    """`with ScriptedProxy(upstream, failures=[429, 500]) as proxy:` proxy.url answers the first requests with those
    statuses (an OpenAI-style error body), then forwards to `upstream` (a …/v1 URL; None: keep failing with the
    last status). `proxy.bodies` holds every request's JSON body, `proxy.statuses` what each got back."""

    def __init__(self, upstream: str | None, failures: list[int] = (), honour_n: bool = False,
                 forward_extra: dict | None = None):
        self.upstream, self.failures, self.honour_n = upstream, list(failures), honour_n
        self.forward_extra = forward_extra or {}
        self.bodies: list[dict] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with proxy._lock:
                    proxy.bodies.append(body)
                    scripted = proxy.failures.pop(0) if proxy.failures else None
                    if scripted is not None and not proxy.failures and proxy.upstream is None:
                        proxy.failures.append(scripted)  # no upstream: the last failure repeats
                if scripted is not None:
                    status, data = scripted, json.dumps({"error": {"message": f"scripted {scripted}"}}).encode()
                elif proxy.honour_n and body.get("n", 1) > 1:
                    status, data = proxy._fan_out(self.path, body)
                else:
                    reply = httpx.post(proxy.upstream + self.path.removeprefix("/v1"), json=body | proxy.forward_extra,
                                       timeout=60)
                    status, data = reply.status_code, reply.content
                with proxy._lock:
                    proxy.statuses.append(status)
                _send(self, status, data)

            def log_message(self, *args):  # quiet test output
                pass

        self.url = self._listen(Handler) + "/v1"

    def _fan_out(self, path: str, body: dict) -> tuple[int, bytes]:
        """n choices from n upstream requests, seeds seed, seed+1, ... (one reply, as a server honouring n sends)."""
        choices = []
        for j in range(body["n"]):
            single = {key: value for key, value in body.items() if key != "n"}
            if "seed" in single:
                single["seed"] += j
            single |= self.forward_extra
            reply = httpx.post(self.upstream + path.removeprefix("/v1"), json=single, timeout=60)
            if reply.status_code != 200:
                return reply.status_code, reply.content
            choices.append(reply.json()["choices"][0] | {"index": j})
        return 200, json.dumps(reply.json() | {"choices": choices}).encode()


# transformers serve's own field: generation settings over the model's; do_sample off is what a model without
# do_sample in its generation config gets, whatever temperature and seed a request sends.
IGNORE_SAMPLING = {"generation_config": json.dumps({"do_sample": False})}


def chat_reply(*texts, **fields) -> dict:
    """An OpenAI chat-completions body with one choice per text."""
    return {"id": "stub", "object": "chat.completion", "model": "stub", **fields,
            "choices": [{"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                        for i, text in enumerate(texts)]}


def ignores_sampling(body: dict):
    """One choice that depends on the prompt only: temperature, top_p, seed and n make no difference."""
    return 200, chat_reply(f"a passage on {body['messages'][-1]['content'][-24:]}"), {}


def llama_cpp_like(body: dict):
    """llama.cpp server: `n` other than 1 is refused with HTTP 500; otherwise one choice that follows the seed."""
    if body.get("n", 1) != 1:
        return 500, {"error": {"code": 500, "message": "Only one completion choice is allowed",
                               "type": "server_error"}}, {}
    return 200, chat_reply(f"thought {body.get('seed')} at {body.get('temperature')}"), {}


class ChatStub(_LoopbackServer):
    """`with ChatStub(answer) as stub:` stub.url (…/v1) answers each POST with `answer(body)`: (status, reply,
    headers), reply a dict (sent as JSON), a str or bytes (sent as they are), after `delay` seconds. `stub.bodies`,
    `stub.headers` and `stub.paths` record every request's JSON body, headers and path (with its query)."""

    def __init__(self, answer, delay: float = 0.0):
        self.answer, self.delay = answer, delay
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with stub._lock:
                    stub.bodies.append(body)
                    stub.headers.append(dict(self.headers))
                    stub.paths.append(self.path)
                status, reply, headers = stub.answer(body)
                data = json.dumps(reply).encode() if isinstance(reply, dict) else (
                    reply.encode() if isinstance(reply, str) else reply)
                time.sleep(stub.delay)
                _send(self, status, data, "application/json" if isinstance(reply, dict) else "text/html", headers)

            def log_message(self, *args):  # quiet test output
                pass

        self.root = self._listen(Handler)
        self.url = self.root + "/v1"


def loopback_chat_llm_class():
    """The LlamaIndex LLM class (built on first use: llama_index is imported only by the tests that need it)."""
    from typing import Any, Sequence

    from llama_index.core.llms import (ChatMessage, ChatResponse, CompletionResponse, CustomLLM, LLMMetadata,
                                       MessageRole)
    from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback

    class LoopbackChatLLM(CustomLLM):
        """Chats with an OpenAI-compatible server (one choice per call)."""
        api_base: str
        model: str
        temperature: float = 0.7
        max_tokens: int = 8
        additional_kwargs: dict = {}  # more request fields, as LlamaIndex's OpenAI LLMs take them (seed, top_p, ...)

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name=self.model, is_chat_model=True, num_output=self.max_tokens)

        def _ask(self, messages: list[dict]) -> str:
            reply = httpx.post(self.api_base + "/chat/completions", timeout=60,
                               json={"model": self.model, "messages": messages, "temperature": self.temperature,
                                     "max_tokens": self.max_tokens, **self.additional_kwargs})
            reply.raise_for_status()
            return reply.json()["choices"][0]["message"]["content"] or ""

        @llm_chat_callback()
        def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
            text = self._ask([{"role": m.role.value, "content": m.content or ""} for m in messages])
            return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            return CompletionResponse(text=self._ask([{"role": "user", "content": prompt}]))

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any):
            raise NotImplementedError("LoopbackChatLLM does not stream")

    return LoopbackChatLLM
