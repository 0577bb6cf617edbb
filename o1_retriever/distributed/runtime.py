"""Ray itself: the lazy import, connecting (or starting a local Ray), and what each actor asks for."""
from __future__ import annotations

from dataclasses import dataclass

INSTALL_HINT = 'pip install "o1-retriever[ray]"  (or: pip install "ray[data]>=2.40")'


def require_ray():
    """The `ray` module with Ray Data, or an ImportError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (ray without the [data] extra has no pyarrow/pandas readers)
    except ImportError as e:
        raise ImportError(f"the distributed commands need Ray Data ({e}): {INSTALL_HINT}") from e
    return ray


def require_pyarrow() -> None:
    """Reading shards needs only pyarrow (`load` may run where Ray is not installed): without it, an ImportError that
    says how to install it, before a model loads or a collection is touched."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError as e:
        raise ImportError(f"reading encoded vectors needs pyarrow ({e}): {INSTALL_HINT}, or pip install pyarrow") \
            from e


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at `address`, or start a local one (all CPUs and GPUs of this machine, or `num_cpus`)
    when none is given and none is running in this process. Returns True when this call started Ray (the caller
    then shuts it down), False when it was already connected."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    if address is not None:
        if num_cpus is not None:
            raise ValueError("num_cpus sizes a local Ray only; a cluster at an address has its own resources")
        try:
            ray.init(address=address, log_to_driver=True)
        except ConnectionError as e:  # Ray's own names neither the address nor what to do
            raise ValueError(f"no Ray cluster answers at address={address!r} ({e}); start one with `ray start --head` "
                             "(then address='auto'), or leave the address out for a local Ray") from None
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
    return True


@dataclass(frozen=True)
class ActorResources:
    actors: int
    num_cpus: float
    num_gpus: float

    @property
    def device(self) -> str:
        return "GPU" if self.num_gpus else "CPU"

    def map_options(self) -> dict:
        """`map_batches` options: a fixed pool of `actors` actors (what `concurrency=N` was before Ray 2.51
        deprecated it), each given its resources."""
        ray = require_ray()
        return {"compute": ray.data.ActorPoolStrategy(size=self.actors), "num_cpus": self.num_cpus,
                "num_gpus": self.num_gpus or None}


def actor_resources(actors: int | None, use_gpus: bool | None = None, work: int | None = None) -> ActorResources:
    """One GPU per actor when the cluster has GPUs (or `use_gpus=True`), else an even share of its CPUs.

    actors=None: one actor per GPU, or two on a CPU-only cluster. More actors than the cluster has GPUs (or CPUs)
    would leave some waiting forever for resources, so that is refused here. `work`: the tasks to run (shards to
    write); no more actors are started than that, since each one loads the model (a resume of one missing shard
    loaded it on every GPU)."""
    ray = require_ray()
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    if use_gpus is None:
        use_gpus = gpus > 0
    if use_gpus and gpus == 0:
        raise ValueError("GPU actors were asked for, but this Ray cluster has no GPU (ray.cluster_resources() lists "
                         "none); leave GPUs off to run on CPUs")
    if actors is None:
        actors = gpus if use_gpus else min(2, max(1, cpus))
    if isinstance(actors, bool) or not isinstance(actors, int) or actors < 1:
        raise ValueError(f"actors must be a positive int, got {actors!r}")
    if use_gpus:
        if actors > gpus:
            raise ValueError(f"actors={actors} GPU actors need {actors} GPUs; this Ray cluster has {gpus}. "
                             f"Use at most {gpus} actors (one GPU each)")
        return ActorResources(min(actors, work or actors), 1.0, 1.0)
    if actors > cpus:
        raise ValueError(f"actors={actors} CPU actors need a CPU each; this Ray cluster has {cpus}. "
                         f"Use at most {cpus} actors")
    actors = min(actors, work or actors)
    # An even share, so torch in each actor uses that many threads (Ray sets OMP_NUM_THREADS from it).
    return ActorResources(actors, float(max(1, cpus // actors)), 0.0)

