"""bitsandbytes imported quietly (see `o1_retriever.quiet`): peft's LoRA layers import it in every run, quantized
or not, and its CPU backend's kernel lookup would log two warnings about a kernel no run here needs."""
from o1_retriever.quiet import BITSANDBYTES_LOGGERS as LOGGERS, import_bitsandbytes, preload_bitsandbytes  # noqa: F401
