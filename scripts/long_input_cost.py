"""Cost of embedding one 1.9M-character document: plain all-MiniLM-L6-v2 (sentence-transformers, which tokenizes it
whole) beside the bundled default (its encoders read only the prefix their window holds). Second call of each timed."""
import time, random
from o1_retriever import O1Embedder
from o1_retriever.default_model import minilm_path
from sentence_transformers import SentenceTransformer
random.seed(0)
words = "the cell protein river ocean music city bread oven planet red virus body".split()
text = " ".join(random.choice(words) for _ in range(350_000))[:1_900_000]
mini = SentenceTransformer(str(minilm_path()), device="cpu")
emb = O1Embedder.from_pretrained(None, device="cpu", dtype="fp32")
for name, f in [("MiniLM (sentence-transformers encode)", lambda: mini.encode([text])),
                ("default composite encode_document", lambda: emb.encode_document(text))]:
    f(); t = time.perf_counter(); f(); print(f"{name}: {time.perf_counter() - t:.2f} s on {len(text):,} chars")
