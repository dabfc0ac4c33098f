"""uvicorn's HTTP/1.1 protocol with a header-read timeout, for `APIApp.run`.

uvicorn times out idle keep-alive connections but not a client that opens a connection and
sends its request headers slowly (or never finishes them): such a connection stays open, and
enough of them exhaust the server. `header_timeout_protocol` subclasses uvicorn's h11
protocol (public as ``uvicorn.protocols.http.h11_impl.H11Protocol``, selected with
``uvicorn.run(..., http=...)``) and closes a connection whose next request's headers are not
complete within the timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from ktlite.arguments import check_positive_float


class _HeaderTimeoutH11Protocol(H11Protocol):
    """Closes the connection if a request's headers take longer than `header_timeout_s`.

    The timer starts when the connection opens and again when the first bytes of a later
    request arrive; it stops once a request's headers are complete (uvicorn then starts a
    request cycle).
    """

    header_timeout_s: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._between_requests():
            self._arm_header_timer()
        super().data_received(data)
        if not self._between_requests():
            self._disarm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._on_timeout)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _on_timeout(self) -> None:
        self._header_timer = None
        if self._between_requests() and not self.transport.is_closing():
            self.logger.info("Closing a connection whose request headers were not complete.")
            self.transport.close()


def header_timeout_protocol(header_timeout_s: float) -> type[H11Protocol]:
    """Returns uvicorn's h11 protocol class that closes slow-header connections.

    Args:
        header_timeout_s: seconds a connection may take to send a request's headers.

    Returns:
        A subclass of uvicorn's `H11Protocol`, for ``uvicorn.run(app, http=...)``.

    Raises:
        TypeError: if `header_timeout_s` is not a number (`"10"`, `True`).
        ValueError: if `header_timeout_s` is not a positive finite number.

    Example:
        >>> uvicorn.run(app, http=header_timeout_protocol(10.0))
    """
    header_timeout_s = check_positive_float(header_timeout_s, "header_timeout_s")
    return type(
        "HeaderTimeoutH11Protocol", (_HeaderTimeoutH11Protocol,),
        {"header_timeout_s": header_timeout_s},
    )
