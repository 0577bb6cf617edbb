"""Ray itself: the lazy import, connecting (or starting a local Ray), and what each actor asks for."""
from __future__ import annotations

import socket
from contextlib import contextmanager
from dataclasses import dataclass

from ..validation import check_positive_int

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


_START_ONE = "start one with `ray start --head` (then address='auto'), or leave the address out for a local Ray"


def check_address(address: str | None, timeout: float = 5.0) -> None:
    """Refuse, naming it, an address that is not a Ray address or where nothing listens. Ray itself retries an
    unanswered host:port for minutes before a traceback; this tries one TCP connection for `timeout` seconds."""
    if address is None or address in ("auto", "local"):
        return
    if not isinstance(address, str):
        raise TypeError(f"address must be a str such as 'auto', 'host:6379' or 'ray://host:10001', got {address!r}")
    client = address.startswith("ray://")
    host, colon, port = address[len("ray://"):].rpartition(":") if client else address.rpartition(":")
    if client and not colon:  # ray://host: the Ray Client's default port
        host, port = address[len("ray://"):], "10001"
    host = host.strip("[]")  # [IPv6]:port
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address={address!r} is not a Ray address: pass 'auto', host:port (the head's GCS port, "
                         "6379 by default) or ray://host:10001 (Ray Client)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ValueError(f"no Ray cluster answers at address={address!r} ({e}); {_START_ONE}") from None


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
        check_address(address)
        try:
            ray.init(address=address, log_to_driver=True)
        except ConnectionError as e:  # Ray's own names neither the address nor what to do
            raise ValueError(f"no Ray cluster answers at address={address!r} ({e}); {_START_ONE}") from None
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
    return True


@contextmanager
def ray_session(address: str | None = None):
    """Ray for the block: the one this process is connected to, else one joined or started here and shut down at the
    end (its processes and actors do not outlive the call, and a later ray.init(address=...) is not refused as a
    second init)."""
    started = connect(address)
    try:
        yield require_ray()
    finally:
        if started:
            require_ray().shutdown()


def check_actors(actors) -> None:
    """None (a default from the cluster's resources) or a positive int: checked before any input is read."""
    if actors is not None:
        check_positive_int(actors, "actors")


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
    check_actors(actors)
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

