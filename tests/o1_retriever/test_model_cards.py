"""The bundled models' cards can be published as they are: Hugging Face front matter that the hub's own parser reads,
and every reported figure traceable to the results JSON it came from."""
import json
import re
from pathlib import Path

import pytest

ModelCard = pytest.importorskip("huggingface_hub").ModelCard

ROOT = Path(__file__).resolve().parents[2]
CARDS = [ROOT / "o1_retriever" / name / "README.md" for name in ("default_adapter", "default_composite", "minilm_composite")]
REQUIRED = ("license", "base_model", "library_name", "pipeline_tag", "tags", "datasets")


@pytest.mark.parametrize("path", CARDS, ids=lambda p: p.parent.name)
def test_card_front_matter_is_complete(path):
    data = ModelCard.load(path).data
    missing = [key for key in REQUIRED if not getattr(data, key, None)]
    assert not missing, f"{path}: front matter lacks {missing}"
    assert data.eval_results, f"{path}: no model-index results"


@pytest.mark.parametrize("path", CARDS, ids=lambda p: p.parent.name)
def test_card_results_match_their_json(path):
    for result in ModelCard.load(path).data.eval_results:
        args = result.metric_args
        rows = json.loads((ROOT / args["results"]).read_text())["results"]
        matching = [row for row in rows if row["system"] == args["system"] and row["k"] == args["k"]]
        assert len(matching) == 1, f"{args}: {len(matching)} rows in {args['results']}"
        metric = {"ndcg_at_10": "ndcg@10", "recall_at_100": "recall@100"}[result.metric_type]
        assert result.metric_value == pytest.approx(matching[0][metric], abs=5e-5), args


@pytest.mark.parametrize("path", CARDS, ids=lambda p: p.parent.name)
def test_card_links_resolve_in_the_repository(path):
    # relative links and images, e.g. the loss plots kept in benchmarks/default_adapter_training
    links = re.findall(r"\]\(([^)\s]+)\)", path.read_text())
    local = [link.split("#")[0] for link in links if not re.match(r"[a-z]+:|#", link)]
    assert local, f"{path}: no relative links"
    missing = [link for link in local if not (path.parent / link).exists()]
    assert not missing, f"{path}: links to nothing: {missing}"
