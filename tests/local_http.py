"""A file server on 127.0.0.1 for tests that load checkpoints by URL, and a private torch
hub cache, so no test touches the network or the user's real download cache."""
import http.server
import os
import threading
import time
from contextlib import contextmanager
from functools import partial
from typing import Iterator, List

import torch


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    timeout = 10  # seconds a client may stall a request

    def log_message(self, *args) -> None:  # no request lines on stderr
        pass


class LocalFileServer:
    """Serves ``root`` at ``self.url`` (``http://127.0.0.1:<port>``, the port chosen by the
    kernel when the socket is bound). One request at a time, in a daemon thread that stops
    at :meth:`stop` or after ``limit_s`` seconds, whichever comes first. ``self.requests``
    lists the paths asked for."""

    def __init__(self, root: str, limit_s: float = 300.0) -> None:
        self.requests: List[str] = []
        outer = self

        class Handler(_QuietHandler):
            def do_GET(self):  # noqa: N802  (http.server's name)
                outer.requests.append(self.path)
                super().do_GET()

        self._server = http.server.HTTPServer(('127.0.0.1', 0),
                                              partial(Handler, directory=root))
        self._server.timeout = 0.1  # handle_request returns this often to check the stop
        self.url = f'http://127.0.0.1:{self._server.server_address[1]}'
        self._stop = threading.Event()
        self._deadline = time.monotonic() + limit_s
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            self._server.handle_request()
        self._server.server_close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), 'the test HTTP server did not stop'


@contextmanager
def serving(root: str, hub_dir: str, monkeypatch) -> Iterator[LocalFileServer]:
    """Serve ``root`` on 127.0.0.1 with ``hub_dir`` as the torch hub dir (downloads land in
    ``hub_dir/checkpoints``) and no proxy in the way; stopped on exit."""
    for name in ('http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy',
                 'ALL_PROXY'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('no_proxy', '127.0.0.1')
    monkeypatch.setenv('TORCH_HOME', hub_dir)
    monkeypatch.setattr(torch.hub, '_hub_dir', os.path.join(hub_dir, 'hub'))
    server = LocalFileServer(root)
    try:
        yield server
    finally:
        server.stop()
