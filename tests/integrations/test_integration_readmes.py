"""Each integration README's Python blocks run as written, in order, as one script, in a fresh process (issue 30:
README snippets used undefined names). They load the bundled default model, as a reader's copy would."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "integrations"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
READMES = ["langchain-o1", "llama-index-embeddings-o1", "llama-index-retrievers-o1"]


def readme_script(package: str) -> str:
    blocks = BLOCK.findall((ROOT / package / "README.md").read_text())
    assert blocks, f"{package}/README.md has no python blocks"
    return "\n".join(blocks)


@pytest.mark.parametrize("package", READMES)
def test_readme_blocks_compile(package):
    compile(readme_script(package), f"{package}/README.md", "exec")


@pytest.mark.real_model
@pytest.mark.parametrize("package", READMES)
def test_readme_blocks_run_as_written(package, tmp_path):
    script = tmp_path / "readme.py"
    script.write_text(readme_script(package))
    env = dict(os.environ, HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip(), "the blocks print what they found"
    if package == "llama-index-retrievers-o1":  # the Observability block's handler receives the O1ThoughtsEvent
        assert "thoughts for 'why does bread rise?': [" in done.stdout
    if package == "langchain-o1":  # the callback block's handler receives each query's o1_thoughts event
        assert "thoughts for 'how do solar panels work?': [" in done.stdout
