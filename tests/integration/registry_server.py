"""Real registries for the integration tests: Debian's ``docker-registry`` on 127.0.0.1.

:class:`RegistryServer` writes a config (JSON, which is YAML) for a free port, plain
HTTP or TLS with a certificate from a throwaway CA made with the ``openssl`` CLI, and
optionally htpasswd basic auth (``htpasswd -Bbn``) and client certificates signed by a
given CA (``http.tls.clientcas``: the registry then refuses a client without one); it
starts ``docker-registry serve`` and stops it by PID. :class:`ThrottledProxy` relays TCP
to a server slowly, so a test can kill a client in the middle of a transfer.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

TOOLS = ("docker-registry", "openssl", "htpasswd")


def missing_tools() -> list[str]:
    """The tools these servers need that are not installed."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr}")
    return proc.stdout


def make_ca_and_cert(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``host`` signed by it: (ca.crt, server.crt, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    _run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(ca_key), "-out", str(ca_crt), "-subj", "/CN=envkit test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    )  # fmt: skip
    _run(
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(csr), "-subj", f"/CN={host}"]
    )  # fmt: skip
    ext = directory / "ext.cnf"
    ext.write_text(
        f"subjectAltName=IP:{host},DNS:localhost\n"
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    _run(
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext)]
    )  # fmt: skip
    return ca_crt, crt, key


class RegistryServer:
    """``docker-registry serve`` on 127.0.0.1, started by :meth:`start`."""

    def __init__(
        self,
        base: Path,
        *,
        tls: bool = False,
        users: dict[str, str] | None = None,
        client_ca: Path | None = None,
    ) -> None:
        self.base = base
        self.tls = tls or client_ca is not None
        self.client_ca = client_ca
        self.users = users or {}
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.ca: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def _config(self) -> dict[str, object]:
        http: dict[str, object] = {"addr": self.host, "secret": "envkit-test"}
        config: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.base / "data")},
                "delete": {"enabled": True},
            },
            "http": http,
        }
        if self.tls:
            self.ca, crt, key = make_ca_and_cert(self.base / "tls")
            tls: dict[str, object] = {"certificate": str(crt), "key": str(key)}
            if self.client_ca is not None:
                tls["clientcas"] = [str(self.client_ca)]
            http["tls"] = tls
        if self.users:
            lines = [
                _run(["htpasswd", "-Bbn", user, password]).strip()
                for user, password in self.users.items()
            ]
            htpasswd = self.base / "htpasswd"
            htpasswd.write_text("\n".join(lines) + "\n")
            config["auth"] = {"htpasswd": {"realm": "envkit-test", "path": str(htpasswd)}}
        return config

    def start(self) -> RegistryServer:
        self.base.mkdir(parents=True, exist_ok=True)
        config = self.base / "config.yml"
        config.write_text(json.dumps(self._config()))
        log = open(self.base / "registry.log", "wb")  # noqa: SIM115 - child keeps it
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=log, stderr=log
        )
        log.close()
        self._wait_ready()
        return self

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def _wait_ready(self) -> None:
        context = ssl.create_default_context(cafile=str(self.ca)) if self.ca else None
        if context is not None and self.client_ca is not None:
            # Any handshake answer means it is up (it refuses us: no client certificate).
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                log = (self.base / "registry.log").read_text(errors="replace")
                raise RuntimeError(f"docker-registry exited: {log}")
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=1, context=context)
                return
            except urllib.error.HTTPError:
                return  # 401 from an auth-protected registry: it is up
            except (urllib.error.URLError, OSError) as exc:
                if self.client_ca is not None and _refused_handshake(exc):
                    return
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("docker-registry did not answer in 15 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


def _refused_handshake(exc: BaseException) -> bool:
    """Whether ``exc`` is a server's refusal of a TLS client (it answered: it is up)."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, (ssl.SSLError, ConnectionResetError))


class ThrottledProxy:
    """A TCP relay on 127.0.0.1 that sends the server's bytes on at ``rate`` bytes/s."""

    def __init__(self, target_port: int, rate: int = 8 << 20) -> None:
        self.target_port = target_port
        self.rate = rate
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.host = f"127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._sockets: list[socket.socket] = []
        self._pumps: list[threading.Thread] = []

    def __enter__(self) -> ThrottledProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        for pump in self._pumps:
            pump.join(timeout=5)
        for s in self._sockets:
            s.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, server]
            for args in ((client, server, 0), (server, client, self.rate)):
                pump = threading.Thread(target=self._pump, args=args, daemon=True)
                self._pumps.append(pump)
                pump.start()

    def _pump(self, src: socket.socket, dst: socket.socket, rate: int) -> None:
        chunk = 64 * 1024
        with contextlib.suppress(OSError):
            while not self._stop.is_set():
                data = src.recv(chunk)
                if not data:
                    break
                dst.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
