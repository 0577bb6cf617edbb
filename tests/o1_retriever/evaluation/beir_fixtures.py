"""A tiny BEIR dataset written to disk, shared by the evaluation tests."""
import json
from pathlib import Path

DOCS = {
    "d1": ("Insulin and diabetes", "insulin therapy lowers blood sugar in diabetes patients"),
    "d2": ("Vaccines", "the vaccine trains the immune system against the virus"),
    "d3": ("Tumors in mice", "tumor growth in mice was reduced by the protein treatment"),
    "d4": ("Heart disease", "heart disease risk increased with blood pressure"),
    "d5": ("Solar energy", "solar energy plants convert light into electricity"),
    "d6": ("Rivers", "the river carries water from the mountains to the ocean"),
    "d7": ("Brain", "the brain network changes with language learning"),
    "d8": ("Climate", "climate change warms the ocean and the city"),
    "d9": ("Music history", "music history of the war years in the city"),
    "d10": ("Gene expression", "gene expression in cancer cells was increased"),
    "d11": ("Food", "plant food for the animal in winter"),
    "d12": ("Computers", "a computer network for document search and retrieval"),
}
QUERIES = {"q1": "does insulin lower blood sugar in diabetes", "q2": "vaccine and the immune system",
           "q3": "protein treatment reduces tumor growth in mice", "q4": "gene expression in cancer",
           "q5": "an unjudged query about rivers"}
QRELS = [("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d3", 1), ("q3", "d10", 1), ("q4", "d10", 2)]


def write_beir(root: Path, docs=DOCS, queries=QUERIES, qrels=QRELS, split="test") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir(exist_ok=True)
    with open(root / "corpus.jsonl", "w") as f:
        for i, (title, text) in docs.items():
            f.write(json.dumps({"_id": i, "title": title, "text": text}) + "\n")
    with open(root / "queries.jsonl", "w") as f:
        for i, text in queries.items():
            f.write(json.dumps({"_id": i, "text": text, "metadata": {}}) + "\n")
    with open(root / "qrels" / f"{split}.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, d, s in qrels:
            f.write(f"{q}\t{d}\t{s}\n")
    return root
