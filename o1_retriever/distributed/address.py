"""Ray addresses: what ray.init would join (an address, else RAY_ADDRESS), whether anything answers there, and
whether the Ray already running in this process is the one an address names."""
from __future__ import annotations

import ipaddress
import os
import socket

_START_ONE = "start one with `ray start --head` (then address='auto'), or leave the address out for a local Ray"
_UNSET_ENV = "start one with `ray start --head`, or unset RAY_ADDRESS for a local Ray"
# The address each call of `connect` joined, as given, and the cluster it led to: a nested call with the same
# spelling ('auto', a ray:// address) is that cluster, without resolving it again.
_joined: dict[str, str | None] = {}


def ray_target(address: str | None) -> tuple[str | None, str]:
    """(the address ray.init uses, how to name it): Ray takes RAY_ADDRESS, when set, for no address or 'auto'."""
    env = os.environ.get("RAY_ADDRESS")
    if env and address in (None, "auto"):
        return env, f"RAY_ADDRESS={env!r}" + (" (which address='auto' uses)" if address else "")
    return address, f"address={address!r}"


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of host:port or ray://host[:port] (10001, the Ray Client's default); None if neither."""
    client = address.startswith("ray://")
    host, colon, port = address[len("ray://"):].rpartition(":") if client else address.rpartition(":")
    if client and not colon:
        host, port = address[len("ray://"):], "10001"
    host = host.strip("[]")  # [IPv6]:port
    return (host, int(port)) if host and port.isdigit() and 0 < int(port) < 65536 else None


def no_cluster_at(named: str, error) -> str:
    return (f"no Ray cluster answers at {named} ({error}); "
            f"{_START_ONE if named.startswith('address') else _UNSET_ENV}")


def _checked(address) -> None:
    if address is not None and not isinstance(address, str):
        raise TypeError(f"address must be a str such as 'auto', 'host:6379' or 'ray://host:10001', got {address!r}")


def _place(target: str, named: str) -> tuple[str, int]:
    place = _host_port(target)
    if place is None:
        raise ValueError(f"{named} is not a Ray address: pass 'auto', host:port (the head's GCS port, "
                         "6379 by default) or ray://host:10001 (Ray Client)")
    return place


def check_address(address: str | None, timeout: float = 5.0) -> None:
    """Refuse, naming it, an address that is not a Ray address or where nothing listens; with no address (or
    'auto'), the same for RAY_ADDRESS when it is set, as ray.init would use it. Ray itself retries an unanswered
    host:port for minutes before a traceback; this tries one TCP connection for `timeout` seconds."""
    _checked(address)
    target, named = ray_target(address)
    if target is None or target in ("auto", "local"):
        return
    place = _place(target, named)
    try:
        socket.create_connection(place, timeout=timeout).close()
    except OSError as e:
        raise ValueError(no_cluster_at(named, e)) from None


def _this_machine(ip: str) -> bool:
    """A loopback address or one of this machine's own (only those can be bound)."""
    if ipaddress.ip_address(ip.split("%")[0]).is_loopback:
        return True
    try:
        with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET) as s:
            s.bind((ip, 0))
        return True
    except OSError:
        return False


def _same_place(one: str, other: str) -> bool:
    """Two host:port addresses of one server: the same port, and hosts resolving to a shared IP (every address of
    this machine counts as one, as a head listens on all of them)."""
    a, b = _host_port(one), _host_port(other)
    if a is None or b is None or a[1] != b[1] or one.startswith("ray://") != other.startswith("ray://"):
        return False

    def ips(host: str) -> set[str]:
        try:
            found = {info[4][0] for info in socket.getaddrinfo(host, None)}
        except OSError:
            return {host}
        return {"this machine" if _this_machine(ip) else ip for ip in found}
    return bool(ips(a[0]) & ips(b[0]))


def _running_cluster(ray) -> str | None:
    """Where this process's Ray is: its GCS host:port, or ray://host:port through Ray Client (None: unknown)."""
    try:
        from ray.util.client import ray as client
        if client.is_connected():
            conn = getattr(client.get_context().client_worker, "_conn_str", None)
            return f"ray://{conn}" if conn else None
        return ray.get_runtime_context().gcs_address
    except Exception:  # an API of another Ray version: the cluster is then unknown, and only a same spelling joins
        return None


def _started_here() -> bool:
    """Whether this process's Ray is one it started (ray.init() without an address), not one it joined."""
    try:
        from ray._private import worker
        return bool(worker._global_node is not None and worker._global_node.is_head())
    except Exception:
        return False


def _resolve_auto() -> str | None:
    """The cluster ray.init(address='auto') would join: RAY_ADDRESS, else the latest `ray start` on this machine."""
    target, _ = ray_target("auto")
    if target != "auto":
        return target
    try:
        from ray._private.services import canonicalize_bootstrap_address
        return canonicalize_bootstrap_address("auto")
    except Exception:  # none found (or an API of another Ray version): not known to be the running one
        return None


def check_running(ray, address: str | None) -> None:
    """With Ray already running in this process, refuse an address that names another cluster (ray.init cannot
    join a second one, and the work would run on the first without a word). No address: the running Ray serves."""
    _checked(address)
    if address is None:
        return
    running = _running_cluster(ray)
    if address in _joined and _joined[address] == running:
        return
    if address == "local":
        if _started_here():
            return
        wanted = "a new local Ray"
    else:
        wanted = _resolve_auto() if address == "auto" else address
        if address != "auto":
            _place(address, f"address={address!r}")
        if wanted and running and (wanted == running or _same_place(wanted, running)):
            return
    shown = repr(address) + ("" if wanted == address else f" ({wanted or 'no cluster found'})")
    what = (f"connected to {running}; address={shown} names another cluster" if running else
            f"and Ray does not tell its address, so address={shown} cannot be told to name it")
    raise ValueError(f"Ray is already running in this process, {what}. Call ray.shutdown() first to join it, or "
                     "leave the address out to use the running Ray")


def remember_join(ray, address: str | None) -> None:
    """After `connect` joined `address`: a later call naming it the same way is the same cluster."""
    if address is not None:
        _joined[address] = _running_cluster(ray)
