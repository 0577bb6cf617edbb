"""LangChain: a Chroma vector store embedded by O1Embeddings, an O1Retriever (thoughts in each Document's
metadata), and an LCEL chain that answers from the retrieved passages with the same local model.

    python examples/langchain_rag.py [--persist-dir DIR]
Hits marked * are the passages SciFact judges relevant.
"""
import tempfile

from _scifact import embedder_options, example_args, load_scifact, show_hit, show_thoughts
from langchain_chroma import Chroma
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_o1 import O1Embeddings, O1Retriever

from o1_retriever import O1Embedder

args = example_args(__doc__.splitlines()[0])
passages, queries = load_scifact(args.data, args.docs, args.queries)
embedder = O1Embedder.from_pretrained(**embedder_options(args))  # loaded once, shared below

embeddings = O1Embeddings(embedder=embedder, num_thoughts=args.k)
vectorstore = Chroma.from_texts(
    [p["text"] for p in passages], embedding=embeddings, ids=[p["id"] for p in passages],
    metadatas=[{"corpus_id": p["id"], "title": p["title"]} for p in passages], collection_name="scifact_slice",
    persist_directory=args.persist_dir or tempfile.mkdtemp(prefix="o1_langchain_"),
    collection_metadata={"hnsw:space": "cosine"})
retriever = O1Retriever(vectorstore=vectorstore, k=2)  # uses the store's O1Embeddings: no second model
print(f"indexed {len(passages)} SciFact passages with {embedder}")

for query in queries:
    print(f"\nquery: {query['text']}")
    docs = retriever.invoke(query["text"])
    show_thoughts(docs[0].metadata["o1_thoughts"] if docs else [])
    for rank, doc in enumerate(docs, 1):
        show_hit(rank, doc.metadata["corpus_id"], doc.metadata["title"], None, query["relevant"])


def answer_locally(prompt_value) -> str:
    """The chain's LLM: the embedder's own small instruct model, greedy, a sentence or two."""
    import torch
    model, tokenizer = embedder.thinker.model, embedder.thinker.tokenizer
    messages = [{"role": "user", "content": prompt_value.to_messages()[-1].content}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True).to(model.device)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=48, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


# SciFact queries are claims: ask whether the retrieved passages support the claim.
prompt = ChatPromptTemplate.from_template(
    "Context:\n{context}\n\nUsing only the context, say in one sentence whether this claim is true: {question}")
chain = ({"context": retriever | RunnableLambda(lambda docs: "\n\n".join(d.page_content[:400] for d in docs)),
          "question": RunnablePassthrough()} | prompt | RunnableLambda(answer_locally) | StrOutputParser())
print(f"\nLCEL chain answer to {queries[0]['text']!r}:\n  {chain.invoke(queries[0]['text']).strip()}")
