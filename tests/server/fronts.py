"""`Front`: a real HTTP front (a proxy, a gateway, a server restarting) on a loopback port before an upstream server.

Each new connection takes the next step of `plan`:
- "pipe": passed through to the upstream server (also every connection past the plan);
- "drop": the request is read, then the connection closed without an answer (a restart, a reset);
- "hang": the request is read and never answered;
- a status, or (status, headers): answered by the front itself, then closed. `headers` may be a callable, called at
  that moment (a Retry-After date from then on).
`connections` counts connections and `times` holds when each arrived (time.monotonic)."""
from __future__ import annotations

import socket
import threading
import time


class Front:
    def __init__(self, upstream: str, plan: list):
        self.upstream = upstream.split("://", 1)[1].split(":")
        self.plan, self.connections, self.times = list(plan), 0, []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed: the test is over
                return
            self.connections += 1
            self.times.append(time.monotonic())
            step = self.plan.pop(0) if self.plan else "pipe"
            if step == "pipe":
                up = socket.create_connection((self.upstream[0], int(self.upstream[1])))
                for a, b in ((conn, up), (up, conn)):
                    threading.Thread(target=self._copy, args=(a, b), daemon=True).start()
                continue
            self._read_request(conn)
            if step == "hang":
                continue
            if step != "drop":
                status, headers = step if isinstance(step, tuple) else (step, "")
                headers = headers() if callable(headers) else headers
                body = b'{"error": {"message": "from the front", "type": "x", "param": null, "code": null}}'
                conn.sendall(f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                             f"content-length: {len(body)}\r\nconnection: close\r\n{headers}\r\n".encode() + body)
            conn.close()

    @staticmethod
    def _read_request(conn):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return
            body += chunk

    @staticmethod
    def _copy(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def close(self):
        self.sock.close()
