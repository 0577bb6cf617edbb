"""The main README's Python blocks run as written, in order, as one script in a fresh process and an empty folder:
a newcomer copying them meets no undefined name."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_script() -> str:
    blocks = BLOCK.findall(README.read_text())
    assert len(blocks) >= 2, "README.md: expected the quickstart and integrations blocks"
    return "\n".join(blocks)


def test_readme_blocks_compile():
    compile(readme_script(), "README.md", "exec")


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
