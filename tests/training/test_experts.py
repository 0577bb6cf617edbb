"""The OpenAI-compatible expert against a tiny real HTTP server on 127.0.0.1.

No real LLM server (vLLM, llama.cpp) can run here, so the server answers /v1/chat/completions with
canned text derived from the request; everything on the client side (HTTP, JSON, retries, n,
concurrency, resume, doc-to-query) is the real code path."""
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from o1_retriever.cli import main
from o1_retriever_training.arguments import SynthesisArguments
from o1_retriever_training.experts import OpenAIExpert
from o1_retriever_training.synthesize import QUERY_SYSTEM, synthesize


class FakeServer:
    """Behaviour knobs: honour_n (else one choice per request, like llama.cpp), fail_first (HTTP 500
    for the first N requests), broken (substring of a query answered with HTTP 500 forever),
    status (a fixed error code for every request)."""

    def __init__(self):
        self.honour_n, self.fail_first, self.broken, self.status = True, 0, None, None
        self.requests, self.per_query, self.lock = 0, Counter(), threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests += 1
                    count = server.requests
                    last = body["messages"][-1]["content"]
                    server.per_query[last] += 1
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": "not found"})
                if server.status or count <= server.fail_first or (server.broken and server.broken in last):
                    return self._send(server.status or 500, {"error": "boom"})
                n = body.get("n", 1) if server.honour_n else 1
                if body["messages"][0]["content"] == QUERY_SYSTEM:
                    words = last.split()[1:4]
                    texts = ["Query: " + " ".join(words)] * n
                else:
                    texts = [f"{last.removeprefix('Query: ')} variant {server.per_query[last]}-{i}" for i in range(n)]
                self._send(200, {"choices": [{"index": i, "message": {"role": "assistant", "content": t}}
                                             for i, t in enumerate(texts)]})

            def _send(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.httpd.shutdown()


def test_n_candidates_from_a_server_that_ignores_n_and_retries(server):
    server.honour_n, server.fail_first = False, 2
    expert = OpenAIExpert(server.url, retries=2, backoff=0.01)
    texts = expert.complete([{"role": "user", "content": "Query: heart"}], 3)
    assert texts == ["heart variant 3-0", "heart variant 4-0", "heart variant 5-0"]  # requests 1-2 failed
    assert server.requests == 5  # 2 failures retried, then one request per candidate


def test_errors_are_clear(server):
    server.status = 400
    with pytest.raises(RuntimeError, match="HTTP 400"):
        OpenAIExpert(server.url, retries=3, backoff=0.01).complete([{"role": "user", "content": "x"}], 2)
    assert server.requests == 1  # a client error is not retried
    with pytest.raises(ValueError, match="must be an http"):
        OpenAIExpert("localhost:8000")


def _args(beir, out, url, **kw):
    return SynthesisArguments(data=str(beir), output=str(out), expert_url=url, committee=["bm25"],
                              negatives=["bm25"], num_negatives=2, num_candidates=2, concurrency=3, **kw)


def test_crash_then_resume_pays_for_no_query_twice(server, tiny_beir, tmp_path):
    out = tmp_path / "thoughts.jsonl"
    query5 = json.loads((tiny_beir / "queries.jsonl").read_text().splitlines()[5])["text"]
    server.broken = query5
    with pytest.raises(RuntimeError, match="HTTP 500"):
        synthesize(_args(tiny_beir, out, server.url), expert=OpenAIExpert(server.url, retries=0, concurrency=3),
                   progress=False)
    done = [json.loads(line)["query_id"] for line in out.read_text().splitlines()]
    assert sorted(done, key=lambda q: int(q[1:])) == [f"q{i}" for i in range(12) if i != 5]
    server.broken = None
    paid = dict(server.per_query)
    result = synthesize(_args(tiny_beir, out, server.url), expert=OpenAIExpert(server.url), progress=False)
    assert (result.written, result.already_done) == (1, 11)
    again = {q: c - paid.get(q, 0) for q, c in server.per_query.items() if c - paid.get(q, 0)}
    assert list(again) == [f"Query: {query5}"]  # only the failed query was asked again
    record = json.loads(out.read_text().splitlines()[-1])
    assert record["query_id"] == "q5" and record["thought"] in record["candidates"]


def test_doc_to_query_via_cli(server, tiny_beir, tmp_path, capsys):
    out = tmp_path / "d2q.jsonl"
    args = ["synthesize", "--data", str(tiny_beir), "--output", str(out), "--expert-url", server.url,
            "--doc-to-query", "5", "--num-candidates", "2", "--committee", "bm25", "--num-negatives", "2"]
    assert main(args) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 5 and all(r["query_id"] == "d2q-" + r["pos_ids"][0] for r in records)
    assert all(not r["query"].lower().startswith("query") and r["query"] for r in records)
    assert all(r["pos_ids"][0] not in r["neg_ids"] for r in records)
    before = server.requests
    assert main(args) == 0  # generated queries and thoughts are both resumed: no new requests
    assert server.requests == before
    assert len((tmp_path / "d2q.jsonl.d2q.jsonl").read_text().splitlines()) == 5


def test_thoughts_for_title_pairs_via_cli(server, tiny_beir, tmp_path):
    from o1_retriever_training.titles import main as titles_main
    pairs = tmp_path / "titles.jsonl"
    assert titles_main(["--data", str(tiny_beir), "--num-docs", "6", "--min-title-words", "1",
                        "--num-negatives", "2", "--output", str(pairs)]) == 0
    given = [json.loads(line) for line in pairs.read_text().splitlines()]
    out = tmp_path / "title_thoughts.jsonl"
    args = ["synthesize", "--pairs", str(pairs), "--data", str(tiny_beir), "--output", str(out),
            "--expert-url", server.url, "--num-candidates", "3", "--num-shots", "1", "--committee", "bm25"]
    assert main(args) == 0
    written = {r["query_id"]: r for r in map(json.loads, out.read_text().splitlines())}  # in finishing order
    assert sorted(written) == sorted(g["query_id"] for g in given)
    for g in given:
        r = written[g["query_id"]]
        # the pair is passed on untouched (its positive, without the title, is in no corpus row)...
        assert {k: r[k] for k in g if k != "thought"} == {k: v for k, v in g.items() if k != "thought"}
        # ...with the committee's pick among three candidates, scored by BM25 against that positive
        assert len(r["candidates"]) == 3 and r["thought"] == r["candidates"][r["chosen"]]
        assert len(r["scores"]["bm25"]) == 3
    before = server.requests
    assert main(args) == 0  # resumed by query_id: nothing asked twice
    assert server.requests == before and len(out.read_text().splitlines()) == len(given)


def test_pairs_input_is_checked(tmp_path):
    twice = tmp_path / "twice.jsonl"
    twice.write_text('{"query_id": "a", "query": "x", "pos": "p"}\n{"query_id": "a", "query": "y", "pos": "q"}\n')
    with pytest.raises(ValueError, match="query_id must be unique.*'a'"):
        synthesize(SynthesisArguments(pairs=str(twice), committee=["bm25"], output=str(tmp_path / "o.jsonl")),
                   expert=object(), progress=False)
    with pytest.raises(ValueError, match="pairs=.*doc_to_query=3"):
        synthesize(SynthesisArguments(pairs=str(twice), doc_to_query=3), expert=object(), progress=False)
    with pytest.raises(ValueError, match="data is required.*or pairs"):
        synthesize(SynthesisArguments(), expert=object(), progress=False)
    assert not (tmp_path / "o.jsonl").exists()  # refused before anything was written


def test_the_training_expert_reads_each_prompt_once_and_samples_the_same(tiny_o1_dir, monkeypatch):
    """Synthesis asks the expert for n candidates per prompt (a query with its passage: long): generate read every
    prompt n times."""
    import functools

    from o1_retriever.sampling import generate
    from o1_retriever_training import experts
    topics = ("protein folding", "solar energy", "why rivers flood in spring")
    conversations = [[{"role": "user", "content": f"Write a passage about {topic}."}] for topic in topics]

    def run():
        expert = experts.HFExpert(str(tiny_o1_dir), device="cpu", dtype="fp32", max_new_tokens=6, temperature=1.0,
                                  seed=5)
        seen = []
        hook = expert.model.register_forward_pre_hook(
            lambda module, args, kwargs: seen.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)
        try:
            return expert.generate(conversations, n=3), seen
        finally:
            hook.remove()

    shared, seen = run()
    assert seen[0][0] == len(conversations) and all(rows == 3 * len(conversations) and n == 1 for rows, n in seen[1:])
    monkeypatch.setattr(experts, "generate", functools.partial(generate, share_prompt=False))  # n copies read
    copies, _ = run()
    assert shared == copies and len({t for texts in shared for t in texts}) > len(conversations)
