"""Issue 32's kept difference 3, measured: queries whose thinking prompt is over 256 tokens embed the whole query
with both markers here, the decoded 256-token prompt in the official code. Prints the cosine between the two query
vectors (same thought, k=1) for every such CISI query, at the authors' 1,024-token BEIR query window.
Usage: HF_HUB_OFFLINE=1 .venv/bin/python scripts/parity_long_queries.py [DATA_DIR] > benchmarks/parity_long_queries.json"""
import json
import sys

from o1_retriever import O1Embedder
from o1_retriever.formatting import query_embedding_text, thinking_prompt

data = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
emb = O1Embedder.from_pretrained("o1-retriever-joint", thought_cache=False, vector_cache=False)
tok = emb.encoder.tokenizer
queries = [json.loads(line)["text"] for line in open(f"{data}/cisi/queries.jsonl", encoding="utf-8")]
long = [q for q in queries if len(tok(thinking_prompt(q))["input_ids"]) > 256]
thoughts = [ts[0] for ts in emb.think(long, k=1)]
ours = [query_embedding_text(q, t, tok.eos_token) for q, t in zip(long, thoughts)]
cut = [tok.decode(tok(thinking_prompt(q), truncation=True, max_length=256)["input_ids"]) for q in long]
official = [c + t + tok.eos_token for c, t in zip(cut, thoughts)]
window = 1024  # at the joint's own 255-token window both texts are cut alike (cosine 1.0)
cosine = (emb.encoder.encode(ours, window) * emb.encoder.encode(official, window)).sum(1)
print(json.dumps({"collection": "cisi", "queries": len(queries), "over_256_prompt_tokens": len(long),
                  "query_window": window, "cosine_ours_vs_official": [round(float(c), 4) for c in cosine]}, indent=1))
