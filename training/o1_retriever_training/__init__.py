"""Training for o1-retriever: thought synthesis with a retrieval committee, and the joint
think+embed LoRA fine-tune of the O1 Embedder paper (arXiv 2502.07555)."""
from .arguments import DataArguments, ModelArguments, SynthesisArguments, TrainingArguments

__all__ = ["DataArguments", "ModelArguments", "SynthesisArguments", "TrainingArguments"]
