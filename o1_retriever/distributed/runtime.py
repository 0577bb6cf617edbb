"""Ray itself: the lazy import, connecting (or starting a local Ray), and what each actor asks for."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from ..validation import check_positive_int
from .address import _started_here, check_address, check_running, no_cluster_at, ray_target, remember_join

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


def check_cluster(address: str | None) -> None:
    """Before any work: the Ray the work would run on is the one asked for (Ray running in this process), or it
    answers (`check_address`)."""
    ray = require_ray()
    if ray.is_initialized():
        check_running(ray, address)
    else:
        check_address(address)


def runs_here(address: str | None) -> bool:
    """Whether a run's actors share this machine's files: its Ray is one started here, not a cluster joined (with no
    address, ray.init() joins the cluster a `ray start` on this machine left, when there is one)."""
    ray = require_ray()
    if ray.is_initialized():
        return _started_here()
    target = ray_target(address)[0]
    return target == "local" or (target is None and _started_cluster() is None)


def _started_cluster() -> str | None:
    """The address of the cluster ray.init() without an address would join (the latest `ray start` here), or None."""
    try:
        from ray._private.services import canonicalize_bootstrap_address
        return canonicalize_bootstrap_address(None)
    except Exception:  # an API of another Ray version: counted as a local start
        return None


def connect(address: str | None = None, num_cpus: int | None = None, checked: bool = False) -> bool:
    """Join the Ray cluster at `address` (or RAY_ADDRESS, when set, as ray.init does), or start a local one (all
    CPUs and GPUs of this machine, or `num_cpus`) when neither is given and none is running in this process. Ray
    already running is used only when `address` names it (or none is given). `checked`: the caller has just run
    `check_cluster(address)`, so the address is not probed again. Returns True when this call started Ray (the
    caller then shuts it down), False when it was already connected."""
    ray = require_ray()
    if ray.is_initialized():
        check_running(ray, address)
        return False
    if not checked:
        check_address(address)
    target, named = ray_target(address)
    if target not in (None, "local") and num_cpus is not None:
        raise ValueError(f"num_cpus sizes a local Ray only; {named} is a cluster with its own resources")
    try:
        if target in (None, "local"):
            ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
        else:
            ray.init(address=address, log_to_driver=True)
    except ConnectionError as e:  # Ray's own names neither the address nor what to do
        raise ValueError(no_cluster_at(named, e)) from None
    remember_join(ray, address)
    return True


@contextmanager
def ray_session(address: str | None = None, checked: bool = False):
    """Ray for the block: the one this process is connected to (when `address` is none or names it), else one
    joined or started here and shut down at the end (its processes and actors do not outlive the call, and a later
    ray.init(address=...) is not refused as a second init). `checked`: as for `connect`."""
    started = connect(address, checked=checked)
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


def check_actors_fit(actors: int | None, use_gpus: bool | None, address: str | None) -> None:
    """Before the input is read: refuse actors the Ray of the run cannot hold, where that is known without starting
    it (the Ray running in this process, or the local one the run would start); a cluster joined is checked once
    joined (`actor_resources`)."""
    ray = require_ray()
    resources = ray.cluster_resources() if ray.is_initialized() else _local_resources() if runs_here(address) else None
    if resources is not None:
        actor_resources(actors, use_gpus, resources=resources)


def _local_resources() -> dict | None:
    """The CPUs and GPUs a local Ray started here finds, counted as Ray counts them (cgroup limits, visible GPUs);
    None where this Ray version counts them otherwise."""
    try:
        from ray._private.accelerators import get_accelerator_manager_for_resource
        from ray._private.utils import get_num_cpus
        return {"CPU": get_num_cpus(),
                "GPU": get_accelerator_manager_for_resource("GPU").get_current_node_num_accelerators()}
    except Exception:
        return None


def actor_resources(actors: int | None, use_gpus: bool | None = None, work: int | None = None,
                    resources: dict | None = None) -> ActorResources:
    """One GPU per actor when the cluster has GPUs (or `use_gpus=True`), else an even share of its CPUs.

    actors=None: one actor per GPU, or two on a CPU-only cluster. More actors than the cluster has GPUs (or CPUs)
    would leave some waiting forever for resources, so that is refused here. `work`: the tasks to run (shards to
    write); no more actors are started than that, since each one loads the model (a resume of one missing shard
    loaded it on every GPU)."""
    resources = require_ray().cluster_resources() if resources is None else resources
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

