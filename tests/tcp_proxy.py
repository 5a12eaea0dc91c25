"""A TCP proxy a test can partition: it forwards 127.0.0.1:<free port> to a target, until it is cut.

Two ways to cut, both until :meth:`TcpProxy.heal`:

- ``"blackhole"``, the way a network partition looks: nothing is forwarded in either direction and
  nothing is closed. Open connections stay open but silent: bytes sent either way are held (as TCP
  keeps retransmitting them), and so is a close. New connections are accepted and held the same way,
  never reaching the target. A client sees its commands hang until its own socket timeout. On heal
  the held bytes are delivered late, as a network delivers retransmitted segments, and connections
  carry on (or end, if their client hung up meanwhile).
- ``"refuse"``: every open connection is closed, and each new one as soon as it is accepted, so a
  client's commands fail at once.

Counters give a test its evidence: :attr:`TcpProxy.held` (chunks held by a blackhole) and
:attr:`TcpProxy.hung_up` (connections their client closed during a blackhole: it gave up waiting).

Plain threads: one listener, and one per direction of each connection. A connection opened during a
cut reaches the target with its first bytes after the heal, which suits protocols whose clients
speak first, like Redis's.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Literal

Mode = Literal["blackhole", "refuse"]

_CHUNK = 65536
_TICK = 0.05  # how soon a thread notices a heal, a close, or the listener's end


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target_host:target_port``; :meth:`cut` and :meth:`heal` partition it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_TICK)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open = threading.Event()  # set: forwarding; clear: cut
        self._open.set()
        self._mode: Mode | None = None
        self._closed = False
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self.accepted = 0
        """Connections accepted (and not refused) so far."""
        self.held = 0
        """Chunks of bytes that arrived during a blackhole and were held back."""
        self.hung_up = 0
        """Connections whose client closed them during a blackhole: it gave up waiting (a timeout)."""
        self._start(self._accept_loop, "proxy-accept")

    # -- control -------------------------------------------------------------------------------------

    @property
    def is_cut(self) -> bool:
        return not self._open.is_set()

    def cut(self, mode: Mode = "blackhole") -> None:
        """Partition: hold everything (``blackhole``), or close everything and refuse (``refuse``)."""
        with self._lock:
            self._mode = mode
            self._open.clear()
            doomed = list(self._sockets) if mode == "refuse" else []
        for sock in doomed:
            self._kill(sock)

    def heal(self) -> None:
        """End the partition: held bytes are delivered, and everything forwards again."""
        with self._lock:
            self._mode = None
            self._open.set()

    def close(self) -> None:
        """Stop listening, close every connection, and wait for the threads."""
        with self._lock:
            self._closed = True
            doomed = list(self._sockets)
        for sock in doomed:
            self._kill(sock)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)
        self._listener.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- forwarding ----------------------------------------------------------------------------------

    def _start(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, name=name, args=args, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener is gone
            client.settimeout(None)
            with self._lock:
                refuse = self._mode == "refuse" or self._closed
                if not refuse:
                    self._sockets.add(client)
                    self.accepted += 1
            if refuse:
                self._kill(client)
            else:
                self._start(self._serve, "proxy-serve", client)

    def _serve(self, client: socket.socket) -> None:
        """The client's side of a connection; the target is reached now, or with the first bytes after a cut."""
        link = _Link(client)
        if not self.is_cut:
            try:
                self._reach(link)
            except OSError:
                self._kill(client)
                return
        self._pump(link, from_client=True)

    def _reach(self, link: _Link) -> socket.socket:
        """Connect to the target for ``link`` and start copying the target's bytes back to its client."""
        if link.upstream is None:
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
            with self._lock:
                if self._closed or link.client not in self._sockets:
                    upstream.close()
                    raise OSError("the client's connection is already closed")
                self._sockets.add(upstream)
            link.upstream = upstream
            self._start(self._pump, "proxy-back", link, False)
        return link.upstream

    def _pump(self, link: _Link, from_client: bool) -> None:
        """Copy one direction of ``link``, holding bytes (and the end of the stream) while cut.

        It keeps reading while cut, so that a client hanging up during a partition is seen then.
        """
        source = link.client if from_client else link.upstream
        assert source is not None
        held: list[bytes] = []
        ended = False
        try:
            while not self._closed:
                if not ended and select.select([source], [], [], _TICK)[0]:
                    data = source.recv(_CHUNK)
                    ended = not data
                    if data:
                        held.append(data)
                    if self.is_cut:
                        with self._lock:
                            if data:
                                self.held += 1
                            elif self._mode == "refuse":
                                return  # the proxy closed it
                            elif from_client:
                                self.hung_up += 1
                if self._open.is_set():
                    if held:
                        sink = self._reach(link) if from_client else link.client
                        for chunk in held:
                            sink.sendall(chunk)
                        held.clear()
                    if ended:
                        return
                elif ended:
                    self._open.wait(_TICK)
        except (OSError, ValueError):
            pass  # a socket closed under us (ValueError: select() on a closed socket)
        finally:
            for sock in (link.client, link.upstream):
                if sock is not None:
                    self._kill(sock)

    def _kill(self, sock: socket.socket) -> None:
        """Close a socket; shutdown() first wakes a thread blocked on it (close() alone does not)."""
        with self._lock:
            self._sockets.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


class _Link:
    """One proxied connection: the client's socket and, once reached, the target's."""

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.upstream: socket.socket | None = None
