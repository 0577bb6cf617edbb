"""The incomplete mark: a collection that a writer (`add_resumable`, `o1-retriever index`, a distributed `load`) has
not finished says so in its metadata, until every writer that marked it has finished.

Each run writes a key of its own (`o1:run:<id>`), so one run finishing leaves another's mark alone, and keeps the one
flag every version reads (`o1:incomplete`) set while any run key is. Chroma's `modify(metadata=...)` replaces the whole
metadata with no compare-and-swap, so updates in one process take turns under a lock, and a run re-sets its key
before each batch it writes: a write by another process that dropped it (a read made before the key was set) costs
at most one batch of a reader seeing the collection complete.

A run that finishes removes its key and the keys of runs that ended without finishing (failed, or killed: their
process is gone); it keeps a key whose process still runs on this host. A run writing from another host (a shared
Chroma server or directory) cannot be checked from here: its key is kept while that run refreshes it (a writing run
stamps it again at most every BEAT_EVERY seconds, before a write), and the finishing run warns, naming that host and
pid. A key of another host not refreshed for STALE_AFTER seconds belongs to a run that died (a container gets a new
host name on every start, so its killed run is never re-run on its host) and is cleared as a dead run's is;
`O1Index.clear_incomplete()` clears every key at once. A key written by a version that kept only the flag, which
names no host, is cleared as a re-run always cleared it.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
import warnings

INCOMPLETE_KEY = "o1:incomplete"
RUN_KEY_PREFIX = "o1:run:"
INCOMPLETE_NOTE = "an `index` run has not finished; re-run it to complete this collection"
BEAT_EVERY = 60.0  # seconds between a writing run's stamps on its key
STALE_AFTER = 1800.0  # seconds without a stamp after which another host's run is taken as dead: far above one batch

_lock = threading.Lock()
_active: set[str] = set()  # keys of this process's runs that are writing now
_HOST = socket.gethostname()


def _process_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a Linux process; None where /proc cannot say."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        return fields[0], fields[19]
    except (OSError, IndexError):
        return None


def _start_of(pid: int) -> str | None:
    stat = _process_stat(pid)
    return stat[1] if stat else None


def _process_runs(pid: int, start: str | None) -> bool:
    """Whether process `pid` of this host still runs, and is the one that started at `start` (not a reused pid)."""
    if os.path.isdir("/proc/self"):
        stat = _process_stat(pid)
        return stat is not None and stat[0] not in ("Z", "X") and (start is None or stat[1] == start)
    if os.name != "posix":  # Windows' os.kill would end the process: cannot tell
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _owner_of(value) -> dict:
    try:
        owner = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def another_host_runs(metadata: dict) -> str:
    """The runs of other hosts that mark `metadata` as still writing, for a message ('' when there are none)."""
    runs = [_owner_of(value) for key, value in metadata.items() if key.startswith(RUN_KEY_PREFIX)]
    return "; ".join(f"host {o['host']!r} pid {o.get('pid')} since {o.get('since')}"
                     for o in runs if o.get("state") == "writing" and o.get("host") not in (None, _HOST))


def incomplete_message(name: str, metadata: dict) -> str | None:
    """What a search warns when the collection `name` is marked incomplete (None when it is not)."""
    if not is_incomplete(metadata):
        return None
    elsewhere = another_host_runs(metadata)
    why = (f"a run writing from another host ({elsewhere}) may still be writing or may have died, which this host "
           f"cannot check; if it no longer runs, a run here clears its mark once it goes {STALE_AFTER / 60:.0f} "
           "minutes unrefreshed, or call O1Index.clear_incomplete()" if elsewhere
           else "a run writing it (`o1-retriever index`, `add_resumable`, a distributed `load`) did not finish; "
           "re-run it (stored documents are kept)")
    return f"collection {name!r} is incomplete, so results may miss documents: {why}"


def still_writing(key: str, value) -> bool:
    """Whether the run that set the mark `key` may still be writing (see the module's docstring)."""
    owner = _owner_of(value)
    if owner.get("state") != "writing" or owner.get("host") is None:
        return False
    if owner["host"] != _HOST:  # its pid names a process of that host: only its stamps say it still writes
        beat = owner.get("beat")
        return not isinstance(beat, (int, float)) or time.time() - beat < STALE_AFTER
    if owner.get("pid") == os.getpid():
        return key in _active
    return isinstance(owner.get("pid"), int) and _process_runs(owner["pid"], owner.get("start"))


def is_incomplete(metadata: dict) -> bool:
    """The flag (all a collection written before the run keys has) or any run's key."""
    return bool(metadata.get(INCOMPLETE_KEY)) or any(key.startswith(RUN_KEY_PREFIX) for key in metadata)


def stored_metadata(client, name: str) -> dict:
    """A collection's metadata as stored now, not as Chroma read it when the collection was opened."""
    return dict(client.get_collection(name, embedding_function=None).metadata or {})


class WriteRun:
    """One run's mark on a collection: `start` sets it, `keep` re-sets it if another process's write dropped it,
    `finish` removes it with the marks of runs that ended, `fail` leaves it for a re-run to clear."""

    def __init__(self, client, collection):
        self.client, self.collection = client, collection
        self.key = RUN_KEY_PREFIX + uuid.uuid4().hex[:16]

    def _owner(self, state: str, **more) -> str:
        pid = os.getpid()  # read now: a forked process is another writer
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return json.dumps({"host": _HOST, "pid": pid, "start": _start_of(pid), "state": state, "since": since,
                           "beat": round(time.time()), **more})

    def _update(self, change) -> None:
        """Apply `change` to the run keys and write the metadata back if it changed, the flag following the keys."""
        with _lock:
            # modify() refuses the hnsw:* keys (the space lives in the configuration)
            old = {k: v for k, v in stored_metadata(self.client, self.collection.name).items()
                   if not k.startswith("hnsw:")}
            runs = change({k: v for k, v in old.items() if k.startswith(RUN_KEY_PREFIX)})
            new = {k: v for k, v in old.items() if not k.startswith(RUN_KEY_PREFIX)} | runs
            # False rather than removed: Chroma refuses an empty metadata dict, and this key may be the only one
            new[INCOMPLETE_KEY] = INCOMPLETE_NOTE if runs else False
            if new != old:
                self.collection.modify(metadata=new)

    def start(self) -> WriteRun:
        _active.add(self.key)  # before the key is written: a run finishing meanwhile must see it alive
        try:
            self._update(lambda runs: {**runs, self.key: self._owner("writing")})
        except BaseException:
            _active.discard(self.key)
            raise
        return self

    def keep(self) -> None:
        """Before a write: one read of the metadata; a write only where another process dropped the key, or to stamp
        it for other hosts (at most every BEAT_EVERY seconds)."""
        owner = self._owner("writing")

        def kept(runs: dict) -> dict:
            beat = _owner_of(runs.get(self.key)).get("beat")
            fresh = isinstance(beat, (int, float)) and time.time() - beat < BEAT_EVERY
            return runs if fresh else {**runs, self.key: owner}
        self._update(kept)

    def finish(self) -> None:
        _active.discard(self.key)
        kept = {}

        def live(runs: dict) -> dict:
            kept.update((k, v) for k, v in runs.items() if k != self.key and still_writing(k, v))
            return kept
        self._update(live)
        if elsewhere := another_host_runs(kept):
            warnings.warn(f"collection {self.collection.name!r} stays marked incomplete: a run writing from another "
                          f"host ({elsewhere}) may still be writing, which this host cannot check. If it no longer "
                          f"runs, a run here clears its mark once it goes {STALE_AFTER / 60:.0f} minutes unrefreshed, "
                          "or call O1Index.clear_incomplete()", stacklevel=2)

    def clear_all(self) -> None:
        """Remove every run's mark, whoever set it: for a run known to be gone that this host cannot check."""
        self._update(lambda runs: {})

    def fail(self, error: BaseException) -> None:
        """Say the run ended unfinished, so that a re-run in another process of this host may clear its mark."""
        _active.discard(self.key)
        try:
            self._update(lambda runs: {**runs, self.key: self._owner("failed", error=repr(error)[:200])})
        except Exception:  # the mark stays as it was, still marking the collection incomplete
            pass
