"""One kept-alive HTTP/1.1 connection to the server, for the reference sync client.

Over 2G a new TCP connection costs a round trip before the first byte of a request, so the
client opens one and sends every push, pull and photo chunk over it. Requests may be
pipelined (sent one after another before the answers come back: photo chunks); answers
arrive in order. A request that finds the connection closed by the server while it was idle
is sent again once on a new one: every sync request is safe to repeat (pushes are
idempotent by `op_id`, chunks name their offset, pulls and HEADs only read).
"""

import gzip
import http.client
import json
import select
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

ASSUMED_BYTES_PER_S = 2_000  # 16 kbps: timeouts allow at least this
RETRYABLE = {408, 425, 429, 500, 502, 503, 504}
IDLE_REUSE_S = 4.0  # a connection idle longer may have been closed by the server: open anew


class TransientError(Exception):
    """The network or server failed in a way worth retrying (after `retry_after` seconds)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """The server refused the request itself; retrying the same request will not help."""

    def __init__(self, status: int, body: dict[str, Any]):
        super().__init__(f"HTTP {status}: {body.get('error', body)}")
        self.status = status
        self.body = body

    @property
    def code(self) -> str | None:
        """The error's code in the one error shape (None for a body of another shape)."""
        error = self.body.get("error")
        return error.get("code") if isinstance(error, dict) else None


@dataclass
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    data: bytes  # inflated when it came gzipped


class _KeptReader:
    """The connection's one buffered reader, shared by its answers (an answer must not close
    it, nor throw away the bytes of the next answer that it read ahead)."""

    def __init__(self, raw):
        self._raw = raw

    def __getattr__(self, name: str):
        return getattr(self._raw, name)

    def close(self) -> None:
        pass


class _Socket:
    """What http.client.HTTPResponse needs of a socket: its reader."""

    def __init__(self, reader: _KeptReader):
        self.reader = reader

    def makefile(self, _mode: str) -> _KeptReader:
        return self.reader


class Connection:
    """A kept-alive connection to `base_url` (reopened when the address changes)."""

    def __init__(self, token: str):
        self.token = token
        self.opened = 0  # TCP connections made: one a session when all goes well
        self.requests = 0
        self.exchanges = 0  # round trips: pipelined requests count once
        self.bytes_sent = 0
        self.bytes_received = 0
        self._sock: socket.socket | None = None
        self._reader: _KeptReader | None = None
        self._address: str | None = None
        self._host = ""
        self._last_used = 0.0

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock, self._reader = None, None

    def _open(self, base_url: str, timeout: float) -> bool:
        """Connect unless a live connection to `base_url` is open; True when reused."""
        if self._sock is not None and self._address == base_url and self._alive():
            return True
        self.close()
        parts = urlsplit(base_url)
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        sock = socket.create_connection((parts.hostname, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if secure:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
        self._sock, self._address = sock, base_url
        self._reader = _KeptReader(sock.makefile("rb"))
        self._host = parts.netloc
        self.opened += 1
        return False

    def _alive(self) -> bool:
        """Whether the kept connection can carry another request (not idle too long, and
        the server has not closed it: a closed socket reads as ready)."""
        if time.monotonic() - self._last_used > IDLE_REUSE_S:
            return False
        assert self._sock is not None
        try:
            ready, _, _ = select.select([self._sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not ready

    def _head(self, request: Request) -> bytes:
        lines = [
            f"{request.method} {request.path} HTTP/1.1",
            f"Host: {self._host}",
            f"Authorization: Bearer {self.token}",
            "Accept-Encoding: gzip",
            f"Content-Length: {len(request.body)}",
            *(f"{name}: {value}" for name, value in request.headers.items()),
        ]
        if request.method in ("GET", "HEAD") and not request.body:
            lines.remove("Content-Length: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def exchange(self, base_url: str, requests: list[Request]) -> list[Answer | TransientError]:
        """Send the requests back to back and read their answers in order. An answer that
        never came is a TransientError in its place (and every later one too: a server may
        close the connection after any answer, and the caller goes on from what came)."""
        size = sum(len(r.body) for r in requests)
        timeout = 15 + (size + 20_000 * len(requests)) / ASSUMED_BYTES_PER_S
        for attempt in (1, 2):
            try:
                reused = self._open(base_url, timeout)
            except OSError as error:
                failure = TransientError(f"connect {base_url}: {error}")
                return [failure] * len(requests)
            answers = self._send_and_read(requests, timeout)
            nothing_came = not isinstance(answers[0], Answer)
            if not (reused and nothing_came and attempt == 1):
                return answers
            # The server closed the kept connection as the request went: once more, anew.
        return answers

    def _send_and_read(
        self, requests: list[Request], timeout: float
    ) -> list[Answer | TransientError]:
        assert self._sock is not None and self._reader is not None
        self.exchanges += 1
        answers: list[Answer | TransientError] = []
        try:
            self._sock.settimeout(timeout)
            for request in requests:
                self._sock.sendall(self._head(request) + request.body)
                self.requests += 1
                self.bytes_sent += len(request.body)
            for request in requests:
                answers.append(self._read(request))
        except (OSError, http.client.HTTPException, TransientError) as error:
            self.close()
            failure = error if isinstance(error, TransientError) else None
            while len(answers) < len(requests):
                lost = requests[len(answers)]
                answers.append(failure or TransientError(f"{lost.method} {lost.path}: {error}"))
        self._last_used = time.monotonic()
        return answers

    def _read(self, request: Request) -> Answer:
        if self._reader is None:  # the server closed the connection after an earlier answer
            raise TransientError(f"{request.method} {request.path}: the connection was closed")
        response = http.client.HTTPResponse(_Socket(self._reader), method=request.method)
        response.begin()
        data = response.read()
        headers = dict(response.headers)
        self.bytes_received += len(data)
        if response.will_close:
            self.close()
        expected = headers.get("Content-Length")
        cut = expected is not None and expected.isdigit() and int(expected) != len(data)
        if cut and request.method != "HEAD":
            raise TransientError(f"{request.method} {request.path}: the answer was cut short")
        if headers.get("Content-Encoding") == "gzip":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as error:
                message = f"{request.method} {request.path}: the answer was cut short"
                raise TransientError(message) from error
        return Answer(response.status, headers, data)


def checked(request: Request, answer: Answer | TransientError) -> Answer:
    """The answer of a request that succeeded; TransientError or PermanentError otherwise."""
    if isinstance(answer, TransientError):
        raise answer
    where = f"{request.method} {request.path}"
    if answer.status in RETRYABLE:
        retry_after = answer.headers.get("Retry-After")
        raise TransientError(
            f"{where}: HTTP {answer.status}", float(retry_after) if retry_after else None
        )
    if answer.status >= 400:
        try:
            parsed = json.loads(answer.data)
        except ValueError:
            parsed = {"error": answer.data[:200].decode(errors="replace")}
        raise PermanentError(answer.status, parsed)
    return answer
