"""Serve the explorer on a loopback address, in the foreground (the CLI) or a thread (the tests)."""

from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass

from werkzeug.serving import BaseWSGIServer, make_server

from interp.errors import InterpError


def check_loopback(host: str) -> str:
    """``host`` if it is a loopback address or ``localhost``; the explorer never listens beyond the machine."""
    if host == "localhost":
        return host
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        try:
            addr = ipaddress.ip_address(socket.gethostbyname(host))
        except (socket.gaierror, ValueError) as exc:
            raise InterpError(f"--host {host!r} is not an address or a resolvable name") from exc
    if not addr.is_loopback:
        raise InterpError(f"--host {host!r} is not a loopback address: the explorer only serves 127.0.0.1 / ::1 "
                          "/ localhost (it runs models on request and has no authentication)")
    return host


@dataclass
class Served:
    """A running explorer server."""

    server: BaseWSGIServer
    """The WSGI server."""
    thread: threading.Thread | None
    """Its thread when started in the background."""

    @property
    def url(self) -> str:
        host = self.server.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        if self.thread is not None:
            self.thread.join(timeout=10)


def make(app, host: str = "127.0.0.1", port: int = 0) -> Served:
    """A threaded server for ``app`` bound to ``host:port`` (``port=0``: a free ephemeral port)."""
    server = make_server(check_loopback(host), port, app.server, threaded=True)
    return Served(server, None)


def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0) -> Served:
    """Start serving in a daemon thread and return at once (for tests and screenshots)."""
    served = make(app, host, port)
    served.thread = threading.Thread(target=served.server.serve_forever, daemon=True, name="interp-explore")
    served.thread.start()
    return served
