"""The former name of `o1_retriever.index`: code written against `from o1_retriever.store import O1Index` still runs."""
import sys
from . import index
sys.modules[__name__] = index
