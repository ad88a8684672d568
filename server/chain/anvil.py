"""A local anvil node (from the `@foundry-rs/anvil` npm package) with its state on disk."""

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
ANVIL_CHAIN_ID = 31337


def anvil_binary() -> str:
    """The anvil binary that `make setup` installs into tools/, else one on PATH.

    The npm package's `.bin/anvil` is a Node wrapper that spawns the platform binary and
    forwards only SIGINT and SIGTERM; the binary itself is used so that a SIGKILL reaches
    the node and not just its wrapper.
    """
    modules = REPO / "tools" / "node_modules"
    for binary in sorted(modules.glob("@foundry-rs/anvil-*/bin/anvil")):
        return str(binary)
    local = modules / ".bin" / "anvil"
    if local.exists():
        return str(local)
    found = shutil.which("anvil")
    if found is None:
        raise FileNotFoundError("anvil is missing: run `make setup`")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AnvilNode:
    """One anvil process on loopback; `state` is the file it loads at start and dumps at exit.

    `state_interval` also dumps every N seconds, so a killed node loses at most that much.
    `automine=False` leaves transactions in the mempool until `mine()`.
    """

    def __init__(
        self,
        state: Path | None = None,
        *,
        port: int | None = None,
        state_interval: int | None = None,
        automine: bool = True,
        block_time: float | None = None,
        preexec_fn=None,
    ):
        self.state = Path(state) if state else None
        self.port = port or free_port()
        self.state_interval = state_interval
        self.automine = automine
        self.block_time = block_time
        self.preexec_fn = preexec_fn
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        args = [anvil_binary(), "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--chain-id", str(ANVIL_CHAIN_ID), "--silent"]
        if self.state is not None:
            self.state.parent.mkdir(parents=True, exist_ok=True)
            args += ["--state", str(self.state)]
        if self.state_interval:
            args += ["--state-interval", str(self.state_interval)]
        if self.block_time:
            args += ["--block-time", str(self.block_time)]
        elif not self.automine:
            args += ["--no-mining"]
        return args

    def start(self, timeout: float = 30) -> str:
        """Start anvil and wait until it answers JSON-RPC; returns its URL."""
        self.process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=self.preexec_fn,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"anvil exited with {self.process.returncode}")
            try:
                self.rpc("eth_chainId")
            except OSError:
                time.sleep(0.05)
                continue
            if self.process.poll() is None:  # ours answered, not a stray node on the port
                return self.url
            raise RuntimeError(f"another process serves port {self.port}")
        self.stop()
        raise TimeoutError("anvil did not start")

    def rpc(self, method: str, params: list | None = None):
        """One JSON-RPC call to the node (no web3 needed)."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
        request = urllib.request.Request(  # noqa: S310 - loopback http only
            self.url, body.encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return json.loads(response.read())["result"]

    def dumped_block(self) -> int | None:
        """The newest block number saved in the state file (None before the first dump)."""
        try:
            return int(json.loads(self.state.read_text())["best_block_number"])
        except (AttributeError, FileNotFoundError, ValueError, KeyError):
            return None

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", [hex(blocks)])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """Stop the node; SIGTERM lets it dump its state file, SIGKILL does not."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "AnvilNode":
        self.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()
