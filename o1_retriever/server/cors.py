"""`--cors-allow-origin`: which web pages may call the server from a browser. Checked without importing FastAPI, so
a bad value fails before the model loads; the headers themselves are Starlette's CORSMiddleware's."""
from __future__ import annotations

from urllib.parse import urlsplit

# A browser's Origin header: scheme://host[:port], nothing after it. "http://localhost:3000/" would never match one.
EXAMPLE = "expected '*' or an origin such as 'http://localhost:3000' (scheme://host[:port], no path)"


def check_origin(value: str) -> str:
    """One allowed origin, lower-cased as browsers send it; '*' allows every page."""
    if not isinstance(value, str):
        raise ValueError(f"a CORS origin must be a str, got {type(value).__name__}; {EXAMPLE}")
    origin = value.strip()
    if origin == "*":
        return origin
    try:
        parts = urlsplit(origin)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # a port that is not a number, or past 65535
        parts, port_ok = None, False
    if (parts is None or not port_ok or parts.scheme not in ("http", "https") or not parts.hostname
            or parts.path or parts.query or parts.fragment or parts.username or parts.password or "," in origin):
        raise ValueError(f"CORS origin {value!r} is not an origin: {EXAMPLE}; give each origin its own "
                         "--cors-allow-origin")
    return origin.lower()


def check_origins(values) -> list[str]:
    """The allowed origins, each checked; '*' only alone (it already allows every origin)."""
    if isinstance(values, str):
        values = [values]
    origins = [check_origin(value) for value in values or ()]
    if "*" in origins and len(origins) > 1:
        raise ValueError(f"CORS origins {list(values)!r}: '*' allows every origin, so give it alone")
    return list(dict.fromkeys(origins))


def add_cors(app, origins: list[str]) -> None:
    """Answer browsers' preflights for `origins`, and mark answers to them as readable there. Added last, so it runs
    first: a preflight (OPTIONS, which carries no key) is answered before the key check; the request itself still
    needs the key. Bearer keys, not cookies: no credentials mode."""
    if not origins:
        return  # no CORS headers at all, as a server without the flag always answered
    from starlette.middleware.cors import CORSMiddleware
    app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "HEAD", "POST"],
                       allow_headers=["*"],  # Authorization, Content-Type, and the openai client's X-Stainless-*
                       expose_headers=["Retry-After"])  # so a page can honour a 429's wait
