"""LangChain: a Chroma vector store embedded by O1Embeddings, an O1Retriever (thoughts in each Document's
metadata), and an LCEL chain that answers from the retrieved passages with the same local model.

    python langchain_rag.py [--persist-dir DIR] [--k 3]
Hits marked * are the passages the demo queries' judgements call relevant.
Needs: pip install o1-retriever langchain-o1 langchain-chroma
"""

import torch
from langchain_chroma import Chroma
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_o1 import O1Embeddings, O1Retriever

from o1_retriever import O1Embedder
from o1_retriever.corpus import DEMO_CORPUS, demo_arguments, demo_queries, read_corpus

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
        print(f"  thought {i}: {thought.strip()}")
    for rank, doc in enumerate(docs, 1):
        mark = "*" if doc.metadata["corpus_id"] in query.relevant else " "
        print(f"  hit {rank}: {mark} [{doc.metadata['corpus_id']}] {doc.metadata['title']}")


def answer_locally(prompt_value) -> str:
    """The chain's LLM: the thinker's own small instruct model, greedy, a sentence or two."""
    model, tokenizer = embedder.thinker.model, embedder.thinker.tokenizer
    messages = [{"role": "user", "content": prompt_value.to_messages()[-1].content}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True).to(model.device)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=48, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


prompt = ChatPromptTemplate.from_template(
    "Context:\n{context}\n\nUsing only the context, answer in one sentence: {question}")
chain = ({"context": retriever | RunnableLambda(lambda docs: "\n\n".join(d.page_content for d in docs)),
          "question": RunnablePassthrough()} | prompt | RunnableLambda(answer_locally) | StrOutputParser())
print(f"\nLCEL chain answer to {queries[0].text!r}:\n  {chain.invoke(queries[0].text).strip()}")
