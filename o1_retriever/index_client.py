"""Opening the Chroma database an `O1Index` lives in: a directory, a server, or a database of its own in memory."""
from __future__ import annotations

import ipaddress
import os
import re
import uuid
from pathlib import Path

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]")


def _is_ipv4(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
        return True
    except ValueError:
        return False


def check_collection_name(collection) -> str:
    """`collection` if Chroma takes it as a name; else a ValueError saying the rule (Chroma's own refusal is no
    ValueError, and the CLI checks it before a model loads)."""
    if not isinstance(collection, str) or not _NAME.fullmatch(collection) or ".." in collection or _is_ipv4(collection):
        raise ValueError(f"collection={collection!r} is not a valid Chroma name: 3-512 characters from "
                         "[a-zA-Z0-9._-], starting and ending with a letter or digit, no '..', not an IPv4 address")
    return collection


def _client(path, host, port, create: bool):
    import chromadb
    # Chroma's default settings, as a plain chromadb client has: Chroma keeps one instance per database in a process
    # and refuses a second client of it with other settings, so O1Index and the user's own client must agree
    # (telemetry follows $ANONYMIZED_TELEMETRY, as for any Chroma client).
    if host is not None:
        if path is not None:
            raise ValueError(f"pass path= (a local Chroma directory) or host= (a Chroma server), not both: got "
                             f"path={str(path)!r} and host={host!r}")
        try:
            return chromadb.HttpClient(host=host, port=port)
        except Exception as e:  # Chroma's message names neither host nor port
            raise ValueError(f"could not connect to a Chroma server at {host}:{port}: {e} (start one with "
                             "`chroma run --host HOST --port PORT`, or check host= and port=)") from e
    if path is None:
        return chromadb.EphemeralClient()
    path = check_database_path(path)
    if not create and not (path / "chroma.sqlite3").is_file():
        raise FileNotFoundError(f"no Chroma database at {str(path)!r} (expected the directory that "
                                "`o1-retriever index --db` wrote, holding chroma.sqlite3)")
    try:
        return chromadb.PersistentClient(path=str(path))
    except Exception as e:  # chromadb's errors (an InternalError for a folder it cannot write) name no path
        raise ValueError(f"cannot open or create a Chroma database at {str(path)!r} ({e})") from e


def check_database_path(path) -> Path:
    """`path` as a local Chroma database may be made there: an empty path (an unset setting, which would be the
    current directory) and a file in its place are refused."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path={path!r:.80} ({type(path).__name__}) is not a path: pass the Chroma database's "
                        "directory as a str or pathlib.Path")
    if isinstance(path, str) and not path.strip():
        raise ValueError(f"path={path!r} is empty: pass the Chroma database's directory (--db DIR), or no path for "
                         "an index in memory")
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{str(path)!r} is a file; a Chroma database is a directory (pass --db DIR)")
    return path


def _own_memory_database():
    """A client of a new, empty database in this process's in-memory Chroma. Every EphemeralClient in a process
    shares one in-memory Chroma: without a database of its own, a second in-memory index would open the first one's
    collection (and refuse another model). Like any in-memory Chroma data it lasts as long as the process: the index's
    `collection` or `client`, kept after the index is dropped, still reads it."""
    import chromadb
    name = f"o1-{uuid.uuid4().hex}"
    # Settings read now, as EphemeralClient reads them: AdminClient's default was read when chromadb was imported,
    # and Chroma refuses two settings for its one in-memory instance.
    settings = chromadb.Settings(is_persistent=False)
    chromadb.AdminClient(settings).create_database(name)
    return chromadb.EphemeralClient(settings=settings, database=name)


def _check_collection(client, name: str, where) -> None:
    names = sorted(c if isinstance(c, str) else c.name for c in client.list_collections())
    if name not in names:
        raise ValueError(f"no collection {name!r} in {str(where or 'this client')!r}; it has {names}")


def existing_client(path, collection: str):
    """A client for a Chroma database that exists and holds `collection`; creates nothing (for `search`)."""
    client = _client(path, None, 8000, create=False)
    _check_collection(client, collection, path)
    return client


def check_client(client):
    """`client` if it is a chromadb client (what chromadb.PersistentClient, HttpClient or EphemeralClient make)."""
    if not all(hasattr(client, name) for name in ("get_or_create_collection", "list_collections")):
        raise TypeError(f"client={client!r:.80} ({type(client).__name__}) is not a chromadb client: pass one made by "
                        "chromadb.PersistentClient, HttpClient or EphemeralClient, or path= / host= instead")
    return client
