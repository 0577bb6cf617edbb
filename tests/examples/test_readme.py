"""The main README's Python blocks run as written, in order, as one script in a fresh process and an empty folder:
a newcomer copying them meets no undefined name."""
from __future__ import annotations

import ast
import builtins
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_script() -> str:
    blocks = BLOCK.findall(README.read_text())
    assert len(blocks) >= 2, "README.md: expected the quickstart and integrations blocks"
    return "\n".join(blocks)


def test_readme_blocks_compile():
    compile(readme_script(), "README.md", "exec")


def integration_parts() -> tuple[str, list[str]]:
    """The integrations block as its shared head (the model and texts) and its framework parts, each starting with
    a comment."""
    block = BLOCK.findall(README.read_text())[1]
    shared, *parts = re.split(r"\n(?=# )", block.strip())
    return shared, parts


def free_names(source: str) -> set[str]:
    tree = ast.parse(source)
    bound = {a.asname or a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
             for a in n.names}
    bound |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return used - bound - set(dir(builtins))


def test_each_integration_part_stands_alone():
    """A reader copies one framework's part: it needs only the block's shared head, which loads `emb` itself (the
    block alone used to fail with NameError: name 'emb' is not defined)."""
    shared, parts = integration_parts()
    assert len(parts) == 3, parts
    assert "emb = O1Embedder.from_pretrained()" in shared
    for part in parts:
        assert free_names(shared + "\n" + part) == set(), part.splitlines()[0]


def test_integration_pip_commands_name_real_extras():
    """Each `pip install -e "DIR[extra]"` in the block names a folder with a pyproject that defines that extra."""
    tomllib = pytest.importorskip("tomllib")
    commands = re.findall(r"pip install (.*?)\)$", BLOCK.findall(README.read_text())[1], re.MULTILINE)
    assert commands
    for target in (t.strip('"') for c in commands for t in c.split() if t != "-e"):
        folder, _, extras = target.partition("[")
        project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
        for extra in filter(None, extras.rstrip("]").split(",")):
            assert extra in project.get("optional-dependencies", {}), (target, extra)


@pytest.mark.real_model
def test_readme_blocks_run_as_written(tmp_path):
    script = tmp_path / "readme.py"
    script.write_text(readme_script())
    env = dict(os.environ, HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "Yeast ferments" in out  # the LlamaIndex retriever finds the bread passage
    assert "[['b1']]" in out  # plain Chroma's query_texts finds it too
    assert (tmp_path / "o1-db").is_dir()  # O1Index persisted where the README says


def test_readme_stays_a_short_page():
    """The README is a newcomer's page (what, install, quickstart, links); details live in docs/."""
    assert len(README.read_text().splitlines()) < 150
