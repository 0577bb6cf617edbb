"""Encoding on Ray Data: corpus files into Parquet vector shards (resumable), and in-memory texts into vectors.

Ray Data schedules; nothing here does. The shards still to write become a dataset of one row each, mapped by
`map_batches` over a fixed pool of `ShardWriter` actors (one model each; one GPU each where the cluster has GPUs).
An actor that dies is restarted by Ray and its shard retried; since a shard is written whole under its own name,
a retry replaces it rather than adding rows, and a shard that never finished is simply not there for the re-run.
"""
from __future__ import annotations

import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..batching import show_progress
from ..validation import check_choice, check_k, check_positive_int
from .runtime import (actor_resources, check_actors, check_actors_fit, check_cluster, ray_session, require_ray,
                      runs_here)
from .outputs import (MANIFEST, MANIFEST_VERSION, manifest_shards, read_manifest, remove_temporaries, shard_dicts,
                      shard_info, write_manifest)
from .shards import KINDS, plan_shards
from .workers import ModelSpec, RowEncoder, ShardWriter

DEFAULT_SHARD_SIZE = 4096
PROGRESS_THRESHOLD = 256  # rows: smaller runs stay quiet


@dataclass
class EncodeResult:
    output: Path
    shards: int        # shards in the plan
    written: int       # shards this run wrote (0: everything was already there)
    rows: int          # rows across all shards
    dim: int
    fingerprint: str   # of the model that wrote every shard
    seconds: float
    actors: int = 0    # actors this run started (each loads the model; 0: nothing was left to write)


def encode_corpus(corpus, output, model: str | None = None, *, actors: int | None = None,
                  shard_size: int = DEFAULT_SHARD_SIZE, batch_size: int = 32, address: str | None = None,
                  use_gpus: bool | None = None, show_progress_bar: bool | None = None, **options) -> EncodeResult:
    """Embed every document of `corpus` (JSONL or Parquet; a file or a folder; `_id`/`id`, `text`, `title`?) into
    Parquet shards under `output`. A re-run skips the shards already written. `options` go to
    `O1Embedder.from_pretrained` on each actor (dtype, document_max_length, ...)."""
    return encode_files("documents", corpus, output, ModelSpec(model, options), actors=actors, shard_size=shard_size,
                        batch_size=batch_size, address=address, use_gpus=use_gpus,
                        show_progress_bar=show_progress_bar)


def encode_query_file(queries, output, model: str | None = None, *, k: int = 3, actors: int | None = None,
                      shard_size: int = DEFAULT_SHARD_SIZE, batch_size: int = 32, address: str | None = None,
                      use_gpus: bool | None = None, show_progress_bar: bool | None = None,
                      **options) -> EncodeResult:
    """Think k times per query and embed (`encode_queries`) for every query in `queries` (the same formats); the
    shards also hold each query's thoughts. Each actor's embedder keeps its own thought cache (`thought_cache`
    option: True for the worker's default file, a path, or False)."""
    return encode_files("queries", queries, output, ModelSpec(model, options), k=k, actors=actors,
                        shard_size=shard_size, batch_size=batch_size, address=address, use_gpus=use_gpus,
                        show_progress_bar=show_progress_bar)


def _what_decides_the_shards(manifest: dict) -> dict:
    """The parts of a plan that decide the shards' contents (not where each worker keeps its thought cache)."""
    model = dict(manifest.get("model") or {})
    options = {k: v for k, v in (model.get("options") or {}).items() if k != "thought_cache"}
    if isinstance(model.get("model"), str):  # a manifest written when local paths were recorded as given ("./m")
        model["model"] = ModelSpec(model["model"]).model
    return {**{key: manifest.get(key) for key in ("kind", "k", "shard_size", "inputs")},
            "model": {**model, "options": options}}


def _change(key: str, there, now) -> str:
    if key == "inputs":  # possibly thousands of files: name the first that differs
        first = next((i for i, (a, b) in enumerate(zip(there, now)) if a != b), min(len(there), len(now)))
        return (f"inputs differ: {len(there)} file(s) there, {len(now)} now; first difference: "
                f"{there[first] if first < len(there) else None} there, {now[first] if first < len(now) else None} now")
    return f"{key} differ: {there!r} there, {now!r} now"


def _plan(kind: str, source, output: Path, spec: ModelSpec, k: int, shard_size: int) -> dict:
    """The run's manifest. A folder written for other inputs, another model or other settings is refused."""
    inputs, shards = plan_shards(source, shard_size, kind)
    planned = {"version": MANIFEST_VERSION, "kind": kind, "k": k if kind == "queries" else None,
               "source": str(Path(source).expanduser().resolve()), "shard_size": shard_size,
               "model": spec.as_dict(), "inputs": inputs, "shards": shard_dicts(shards),
               "rows": sum(s.rows for s in shards)}
    old = read_manifest(output)
    has_shards = output.is_dir() and any(output.glob("part-*.parquet"))
    if old is None and has_shards:
        raise ValueError(f"{output} holds shards but no {MANIFEST}; encode into an empty or new folder")
    if old is None or not has_shards:  # a run that wrote nothing (a mistyped model, say) binds the folder to nothing
        return planned
    before, now = _what_decides_the_shards(old), _what_decides_the_shards(planned)
    changed = [_change(key, before[key], now[key]) for key in now if before[key] != now[key]]
    if changed:
        raise ValueError(f"{output} was written by another run ({'; '.join(changed)}); encode into a new folder, "
                         "or delete it")
    return {**old, "source": planned["source"], "model": planned["model"], "shards": planned["shards"]}


def encode_files(kind: str, source, output, spec: ModelSpec, *, k: int = 3, actors: int | None = None,
                 shard_size: int = DEFAULT_SHARD_SIZE, batch_size: int = 32, address: str | None = None,
                 use_gpus: bool | None = None, show_progress_bar: bool | None = None) -> EncodeResult:
    check_choice(kind, "kind", KINDS)
    check_k(k)
    check_positive_int(shard_size, "shard_size")
    check_positive_int(batch_size, "batch_size")
    check_actors(actors)
    check_cluster(address)  # before reading a large input: a missing Ray, or a cluster not there, fails now
    spec.check_here(runs_here(address))
    check_actors_fit(actors, use_gpus, address)
    started = time.perf_counter()
    output = Path(output).expanduser()
    if output.exists() and not output.is_dir():
        raise ValueError(f"{str(output)!r} is a file; the output is a folder of Parquet shards")
    inputs = Path(source).expanduser().resolve()
    if inputs.is_dir() and (output.resolve() == inputs or inputs in output.resolve().parents):
        # The next run would read its shards and o1_vectors.json as input (a resume failed on them).
        raise ValueError(f"the output folder {str(output)!r} is inside the input folder {str(source)!r}; pass one "
                         f"outside it, e.g. {str(inputs) + '.o1-vectors'!r}")
    manifest = _plan(kind, source, output, spec, k, shard_size)  # reads and checks the input before Ray starts
    shards = manifest_shards(manifest)
    output.mkdir(parents=True, exist_ok=True)
    remove_temporaries(output)
    write_manifest(output, {**manifest, "complete": False})
    todo = [s for s in shards if shard_info(output / s.name) is None]
    started_actors = _run_shards(todo, kind, spec, k, batch_size, output, actors, address, use_gpus,
                                 show_progress_bar) if todo else 0
    remove_temporaries(output)  # what an actor killed mid-write left; its shard was written again by the retry
    infos = [shard_info(output / s.name) for s in shards]
    missing = [s.name for s, info in zip(shards, infos) if info is None]
    if missing:
        raise RuntimeError(f"{len(missing)} shard(s) were not written ({missing[:3]}...); run the same command "
                           "again to write them")
    fingerprints = sorted({info["fingerprint"] for info in infos})
    if len(fingerprints) > 1:
        raise ValueError(f"the shards in {output} come from {len(fingerprints)} different models ({fingerprints}): "
                         "the model changed between runs; encode into a new folder")
    dim = int(infos[0]["dim"])
    write_manifest(output, {**manifest, "complete": True, "dim": dim, "fingerprint": fingerprints[0],
                            "dtype": infos[0]["dtype"]})
    return EncodeResult(output, len(shards), len(todo), manifest["rows"], dim, fingerprints[0],
                        time.perf_counter() - started, started_actors)


def _run_shards(todo, kind, spec, k, batch_size, output, actors, address, use_gpus, show_progress_bar) -> int:
    """Writes the shards in `todo` on Ray actors; returns how many actors it started."""
    with ray_session(address, checked=True) as ray:  # encode_files probed the address (check_cluster)
        resources = actor_resources(actors, use_gpus, work=len(todo))
        with _progress(ray, sum(s.rows for s in todo), "row", f"Encoding {kind} on {resources.actors} "
                       f"{resources.device} actor(s)", show_progress_bar) as bar:
            dataset = ray.data.from_items(shard_dicts(todo), override_num_blocks=len(todo))  # a block per shard
            written = dataset.map_batches(
                ShardWriter, batch_size=1, **resources.map_options(),
                fn_constructor_kwargs={"spec": spec, "kind": kind, "k": k, "batch_size": batch_size,
                                       "output": str(output.resolve())})  # workers have their own working directory
            for done in written.iter_rows():
                bar.update(int(done["rows"]))
    return resources.actors


USER_ERRORS = (ValueError, TypeError, FileNotFoundError)


def worker_error(error: BaseException | None) -> BaseException | None:
    """The ValueError, TypeError or FileNotFoundError a worker raised, found inside Ray's wrappers, or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, USER_ERRORS) and not type(error).__module__.startswith("ray"):
            return error
        error = getattr(error, "cause", None) or error.__cause__
    return None


@contextmanager
def _progress(ray, total: int, unit: str, desc: str, show_progress_bar: bool | None):
    """One bar of ours (in rows; Ray Data's own bars, several and in blocks, are off meanwhile: create the dataset
    inside this block, as a dataset keeps a copy of the context it was created under; off, they are also not logged
    every few seconds where stdout is not a terminal). A bad input or model met by a worker (a file changed since
    planning, a model that will not load) surfaces as the worker's own exception and message, not wrapped twice in
    Ray's task errors."""
    from ray.util.debug import log_once
    log_once("ray_data_progress_manager_disabled")  # spends Ray's one-time "Progress bars disabled" hint: ours show
    context = ray.data.DataContext.get_current()
    before, context.enable_progress_bars = context.enable_progress_bars, False
    try:
        with tqdm(total=total, unit=unit, desc=desc,
                  disable=not show_progress(show_progress_bar, total, PROGRESS_THRESHOLD)) as bar:
            yield bar
    except BaseException as error:
        found = worker_error(error)
        if found is not None and found is not error:
            raise found from None
        # An actor whose constructor failed (the model did not load) comes back as ActorDiedError holding only the
        # text of the worker's traceback: its last exception line says what went wrong.
        if type(error).__name__ == "ActorDiedError" and "creation task" in str(error):
            last = re.findall(r"^(?:\w+\.)*(\w+(?:Error|Exception)): (.+)$", str(error), re.M)
            if last:
                raise ValueError(f"the actors could not load the model ({last[-1][0]}: {last[-1][1]})") from None
        raise
    finally:
        context.enable_progress_bars = before


def encode_texts(spec: ModelSpec, texts: list[str], *, kind: str = "documents", k: int = 0, batch_size: int = 32,
                 actors: int | None = None, address: str | None = None, use_gpus: bool | None = None,
                 encoder_fingerprint: str | None = None, show_progress_bar: bool | None = None) -> np.ndarray:
    """Vectors for in-memory texts, in their order, encoded by a pool of actors (no files; for evaluation).
    The texts travel through Ray's object store, so the workers need not see the driver's disk."""
    require_ray()
    import pyarrow as pa
    check_choice(kind, "kind", KINDS)
    check_positive_int(batch_size, "batch_size")
    check_actors(actors)
    if not texts:
        raise ValueError("texts is empty: nothing to encode")
    check_cluster(address)
    spec.check_here(runs_here(address))
    check_actors_fit(actors, use_gpus, address)
    table = pa.table({"row": np.arange(len(texts), dtype=np.int64), "text": pa.array(texts, pa.string())})
    per_task = batch_size * 8
    blocks = [table.slice(start, per_task) for start in range(0, len(texts), per_task)]  # a task each
    out, filled = None, np.zeros(len(texts), dtype=bool)
    with ray_session(address, checked=True) as ray:  # probed above
        resources = actor_resources(actors, use_gpus, work=len(blocks))
        with _progress(ray, len(texts), "text", f"Embedding on {resources.actors} {resources.device} actor(s)",
                       show_progress_bar) as bar:
            encoded = ray.data.from_arrow(blocks).map_batches(
                RowEncoder, batch_size=per_task, **resources.map_options(),
                fn_constructor_kwargs={"spec": spec, "kind": kind, "k": k, "batch_size": batch_size,
                                       "encoder_fingerprint": encoder_fingerprint})
            for batch in encoded.iter_batches(batch_format="numpy", batch_size=None):
                rows, vectors = batch["row"], np.asarray(batch["vector"], dtype=np.float32)
                if out is None:
                    out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
                out[rows] = vectors
                filled[rows] = True
                bar.update(len(rows))
    if out is None or not filled.all():
        raise RuntimeError(f"{int((~filled).sum())} of {len(texts)} texts came back without a vector")
    return out
