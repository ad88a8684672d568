"""The real server as a separate process (`sipang serve`), which tests can kill and restart."""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SIPANG = Path(sys.executable).with_name("sipang")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`sipang serve --instance DIR` on a fixed loopback port."""

    def __init__(self, instance: Path, port: int | None = None):
        self.instance, self.port = instance, port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ServerProcess":
        self.process = subprocess.Popen(
            [str(SIPANG), "serve", "--instance", str(self.instance), "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):  # noqa: S310
                    return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("sipang serve exited") from None
                time.sleep(0.1)
        raise RuntimeError("sipang serve did not answer /healthz")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()  # as a crash would: no clean shutdown
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
