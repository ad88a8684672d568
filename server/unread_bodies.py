"""A request whose body the app answered without reading whole ends its connection.

A phone on 2G may be sending a 200 KB push or a 128 KB photo chunk that the app refuses from
its headers alone (a 401, a 409, a 413). Keeping the connection for the next request would mean
first reading the rest of that body, a worker thread held while it trickles in; closing it
costs the phone one new connection, which its retry needs anyway.
"""

from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable], Iterable[bytes]]


class CountingInput:
    """`wsgi.input` that counts the bytes the app read and whether it reached the end."""

    def __init__(self, stream: Any):
        self.stream, self.read_bytes, self.ended = stream, 0, False

    def read(self, size: int | None = None) -> bytes:
        data = self.stream.read() if size is None else self.stream.read(size)
        self.read_bytes += len(data)
        self.ended = self.ended or not data or size is None or size < 0
        return data

    def readline(self, size: int | None = None) -> bytes:
        data = self.stream.readline(size)
        self.read_bytes += len(data)
        self.ended = self.ended or not data
        return data

    def readlines(self, hint: int | None = None) -> list[bytes]:
        lines = self.stream.readlines(hint)
        self.read_bytes += sum(len(line) for line in lines)
        self.ended = self.ended or not hint
        return lines

    def __iter__(self):
        while line := self.readline():
            yield line


def unread(environ: dict[str, Any], counted: CountingInput) -> bool:
    """Whether the request declared a body the app did not read to its end."""
    if counted.ended:
        return False
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return True
    try:
        declared = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return True
    return counted.read_bytes < declared


def close_unread(app: WSGIApp) -> WSGIApp:
    """Wrap a WSGI app so gunicorn closes a connection whose request body was left unread."""

    def wrapped(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        counted = CountingInput(environ["wsgi.input"])
        environ["wsgi.input"] = counted
        body = app(environ, start_response)
        if unread(environ, counted):
            # gunicorn's start_response is its Response's method; headers go out at the first
            # write, so "Connection: close" is still announced and no drain follows.
            response = getattr(start_response, "__self__", None)
            if response is not None and hasattr(response, "force_close"):
                response.force_close()
        return body

    return wrapped
