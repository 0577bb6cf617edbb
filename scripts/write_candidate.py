"""Write a candidate composite: a thinker and an encoder with the shipped default's inference settings, as the
shipped `o1_composite.json` words them (a hub id stays a hub id; read_composite would resolve it to a local path).

    python scripts/write_candidate.py OUT [--thinker thinker] [--encoder HUB_ID_OR_PATH [HUB_ID_OR_PATH ...]]
"""
import argparse
import json
from pathlib import Path

from o1_retriever.composite import write_composite

SHIPPED = Path(__file__).resolve().parents[1] / "o1_retriever" / "default_composite" / "o1_composite.json"

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("output", help="the candidate's directory")
p.add_argument("--thinker", default="thinker", help="path relative to OUTPUT, or absolute (default: OUTPUT/thinker)")
p.add_argument("--encoder", nargs="+", default=None,
               help="hub id or path; several make an ensemble (default: the shipped encoder)")
args = p.parse_args()
spec = json.loads(SHIPPED.read_text())
settings = {k: v for k, v in spec.items() if k not in ("thinker", "encoder")}
encoder = args.encoder[0] if args.encoder and len(args.encoder) == 1 else args.encoder
print(write_composite(args.output, args.thinker, encoder or spec["encoder"], **settings))
