"""A resumed `synthesize` must share the recipe of the records already in its output: another expert, vote, number
of candidates, committee, data, split or negative miners is refused, naming the setting, both values and the way
out, before any model loads or any request is paid for. The expert is the real OpenAI client against the tiny
HTTP server of test_experts."""
import json
import shutil

import pytest

from o1_retriever.cli import main
from o1_retriever_training.arguments import SynthesisArguments
from tests.training.test_experts import FakeServer


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.httpd.shutdown()


def _run(beir, out, server, *extra):
    return main(["synthesize", "--data", str(beir), "--output", str(out), "--expert-url", server.url,
                 "--num-candidates", "2", "--committee", "bm25", "--num-negatives", "2", "--num-shots", "1", *extra])


def _refused(capsys, rc, *words):
    assert rc == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, (word, err)
    assert "another --output" in err and "delete" in err and "mix two recipes" in err


def test_a_resume_under_other_settings_is_refused_before_any_request(server, tiny_beir, tmp_path, capsys,
                                                                     monkeypatch):
    out = tmp_path / "thoughts.jsonl"
    assert _run(tiny_beir, out, server, "--limit", "4") == 0
    before, written, requests = out.read_text(), len(out.read_text().splitlines()), server.requests
    record = json.loads(out.read_text().splitlines()[0])
    assert {k: record[k] for k in ("vote", "num_candidates", "committee", "split", "expert", "expert_model")} == {
        "vote": "soft", "num_candidates": 2, "committee": ["bm25"], "split": "train", "expert": server.url,
        "expert_model": "default"}
    assert record["data"] == str(tiny_beir.resolve())
    other_data = shutil.copytree(tiny_beir, tmp_path / "other_beir")
    shutil.copy(tiny_beir / "qrels" / "train.tsv", tiny_beir / "qrels" / "dev.tsv")
    capsys.readouterr()
    _refused(capsys, _run(tiny_beir, out, server, "--vote", "hard"), "vote='soft'", "vote='hard'")
    _refused(capsys, _run(tiny_beir, out, server, "--num-candidates", "3"), "num_candidates=2", "num_candidates=3")
    _refused(capsys, _run(tiny_beir, out, server, "--committee", "bm25", "minilm"), "committee=['bm25']")
    _refused(capsys, _run(tiny_beir, out, server, "--split", "dev"), "split='train'", "split='dev'")
    _refused(capsys, _run(other_data, out, server), "data=", str(other_data))
    _refused(capsys, _run(tiny_beir, out, server, "--expert-model", "other"), "expert_model='default'")
    _refused(capsys, _run(tiny_beir, out, server, "--negatives"), "negatives=['bm25']", "negatives=[]")
    _refused(capsys, _run(tiny_beir, out, server, "--doc-to-query", "3"), "split='train'", "split=None")
    assert server.requests == requests and out.read_text() == before  # nothing paid for, nothing written
    # The same recipe resumes, the data folder named relatively or absolutely alike; --limit may grow.
    monkeypatch.chdir(tmp_path)
    assert _run(tiny_beir.relative_to(tmp_path), out, server, "--limit", "5") == 0
    assert _run(tiny_beir, out, server, "--limit", "6") == 0
    assert len(out.read_text().splitlines()) == 6 > written


def test_records_from_before_the_recipe_was_stored_are_judged_by_what_they_hold(server, tiny_beir, tmp_path,
                                                                                capsys):
    out = tmp_path / "thoughts.jsonl"
    assert _run(tiny_beir, out, server, "--limit", "3") == 0
    new_fields = ("num_candidates", "committee", "data", "split", "pairs", "negatives", "num_negatives",
                  "expert_model")
    old = [{k: v for k, v in json.loads(line).items() if k not in new_fields} for line in out.read_text().splitlines()]
    out.write_text("".join(json.dumps(r) + "\n" for r in old))
    capsys.readouterr()
    # The candidates' count and the scoring members are in every record, so both are still compared.
    _refused(capsys, _run(tiny_beir, out, server, "--num-candidates", "3"), "num_candidates=2")
    _refused(capsys, _run(tiny_beir, out, server, "--committee", "bm25", "minilm"), "committee=['bm25']")
    assert _run(tiny_beir, out, server, "--limit", "5", "--split", "train") == 0  # what they lack is not guessed
    assert len(out.read_text().splitlines()) == 5


def test_the_bundled_expert_is_the_same_expert_from_any_install(tmp_path):
    from o1_retriever_training.experts import BUNDLED_EXPERT
    from o1_retriever_training.recipe import check_resume, expert_identity, recipe
    args = SynthesisArguments(data=str(tmp_path), committee=["bm25"])
    assert expert_identity(args) == {"expert": BUNDLED_EXPERT}
    now = recipe(args, expert_identity(args))
    # Records written before the label named it by its converted copy under that install's cache.
    for name in (BUNDLED_EXPERT, "/home/someone/.cache/o1_retriever/models/SmolLM2-135M-Instruct"):
        check_resume(tmp_path / "t.jsonl", {"q1": {"expert": name, "vote": "soft"}}, now)
    with pytest.raises(ValueError, match=r"expert='/models/Qwen'.*expert='bundled SmolLM2"):
        check_resume(tmp_path / "t.jsonl", {"q1": {"expert": "/models/Qwen", "vote": "soft"}}, now)


def test_a_folder_of_ones_own_named_like_the_bundled_expert_is_not_the_bundled_expert(tmp_path, monkeypatch):
    from o1_retriever_training.experts import BUNDLED_EXPERT
    from o1_retriever_training.recipe import check_resume, expert_identity, recipe
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path / "cache"))
    own = tmp_path / "me" / "models" / "SmolLM2-135M-Instruct"  # say, another quantization than the bundled one
    own.mkdir(parents=True)
    args = SynthesisArguments(data=str(tmp_path), committee=["bm25"], expert=str(own))
    assert expert_identity(args) == {"expert": str(own.resolve())}
    with pytest.raises(ValueError, match=r"expert='bundled SmolLM2"):
        check_resume(tmp_path / "t.jsonl", {"q1": {"expert": BUNDLED_EXPERT}}, recipe(args, expert_identity(args)))
    # This install's converted copy, named by its path, is the bundled expert.
    bundled = tmp_path / "cache" / "models" / "SmolLM2-135M-Instruct"
    bundled.mkdir(parents=True)
    args.expert = str(bundled)
    assert expert_identity(args) == {"expert": BUNDLED_EXPERT}


def test_pairs_mode_refuses_another_recipe(server, tiny_beir, tmp_path, capsys):
    from o1_retriever_training.titles import main as titles_main
    pairs = tmp_path / "titles.jsonl"
    assert titles_main(["--data", str(tiny_beir), "--num-docs", "4", "--min-title-words", "1",
                        "--num-negatives", "1", "--output", str(pairs)]) == 0
    other_pairs = shutil.copy(pairs, tmp_path / "other_titles.jsonl")
    out = tmp_path / "title_thoughts.jsonl"

    def run(*extra, given=pairs):
        return main(["synthesize", "--pairs", str(given), "--output", str(out), "--expert-url", server.url,
                     "--num-candidates", "2", "--num-shots", "1", "--committee", "bm25", *extra])

    assert run() == 0
    requests, before = server.requests, out.read_text()
    capsys.readouterr()
    _refused(capsys, run("--num-candidates", "3"), "num_candidates=2", "num_candidates=3")
    _refused(capsys, run(given=other_pairs), "pairs=", str(other_pairs))
    _refused(capsys, run("--data", str(tiny_beir)), "data=None")
    assert server.requests == requests and out.read_text() == before
    assert run() == 0 and server.requests == requests  # the same recipe: resumed, nothing left to ask


def test_the_generated_queries_cache_refuses_another_expert(server, tiny_beir, tmp_path, capsys):
    out = tmp_path / "d2q.jsonl"
    assert _run(tiny_beir, out, server, "--doc-to-query", "3") == 0
    cache = tmp_path / "d2q.jsonl.d2q.jsonl"
    assert json.loads(cache.read_text().splitlines()[0])["expert_model"] == "default"
    out.unlink()  # the thoughts are gone, the generated queries stay
    requests = server.requests
    capsys.readouterr()
    rc = _run(tiny_beir, out, server, "--doc-to-query", "3", "--expert-model", "bigger")
    _refused(capsys, rc, str(cache), "expert_model='default'", "expert_model='bigger'")
    assert server.requests == requests and not out.exists()


def test_a_resume_killed_cutting_a_torn_line_keeps_the_records(tmp_path):
    """A resume cuts a torn last line off the output; SIGKILL mid-rewrite left the file empty, every record paid
    for before it lost. Now the file is the old one until the cut one replaces it, and the next resume cuts it."""
    import signal

    from o1_retriever_training.synthesize import read_done
    from tests.fixtures import killed_opening_for_write
    out = tmp_path / "records.jsonl"
    whole = "".join(json.dumps({"query_id": f"q{i}", "thought": "t"}) + "\n" for i in range(3))
    out.write_text(whole + '{"query_id": "q3", "thou')
    done = killed_opening_for_write("records.jsonl", "from o1_retriever_training.synthesize import read_done\n"
                                    "read_done(Path(sys.argv[2]))\n", str(out))
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert out.read_text().startswith(whole)
    with pytest.warns(UserWarning, match="dropping a partly written last line"):
        assert sorted(read_done(out)) == ["q0", "q1", "q2"]
    assert out.read_text() == whole
