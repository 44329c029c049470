"""Real servers on loopback for integration tests: a throwaway PostgreSQL cluster and long-running processes
(Dagster webserver, daemon, code server, MLflow) that are stopped, with their children, afterwards.

PostgreSQL refuses to run as root, so the cluster belongs to the ``postgres`` user, in a temporary folder it
owns. Every server binds 127.0.0.1 on a port that was free a moment before.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

DEPLOY_INSTANCE = Path(__file__).resolve().parents[1] / "deploy" / "dagster_home" / "dagster.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass(frozen=True)
class Postgres:
    port: int
    user: str
    password: str

    def url(self, db: str) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{db}"

    def create_database(self, db: str) -> None:
        _as_postgres(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-d", "postgres", "-v", "ON_ERROR_STOP=1",
                      "-c", f"CREATE DATABASE {db} OWNER {self.user}"])

    def env(self, db: str) -> dict[str, str]:
        """The DAGSTER_PG_* variables that the deployment instance (see ``deployment_home``) reads."""
        return {"DAGSTER_PG_USERNAME": self.user, "DAGSTER_PG_PASSWORD": self.password,
                "DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_DB": db}


def deployment_home(folder: Path) -> Path:
    """``folder`` made a DAGSTER_HOME for the deployment instance: a writable copy of
    deploy/dagster_home/dagster.yaml (compute logs are written beside it), storage in PostgreSQL."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEPLOY_INSTANCE, folder / "dagster.yaml")
    return folder


def _as_postgres(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + cmd, check=True, capture_output=True, text=True, **kwargs)


@contextmanager
def postgres_cluster() -> Iterator[Postgres]:
    """initdb + pg_ctl start on a free loopback port; stopped and removed afterwards."""
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    folder = Path(tempfile.mkdtemp(prefix="churn_pg_"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    port = free_port()
    pg = Postgres(port=port, user="churn", password="churn-test-password")
    pwfile = folder / "pw"
    pwfile.write_text(pg.password)
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres", "postgres")
    _as_postgres(["initdb", "-D", str(data), "-U", "postgres", "--auth-local=trust", "--auth-host=trust",
                  "-E", "UTF8", "--no-instructions"])
    _as_postgres(["pg_ctl", "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                  f"-c listen_addresses=127.0.0.1 -c port={port} -k {folder}", "start"])
    try:
        _as_postgres(["psql", "-h", "127.0.0.1", "-p", str(port), "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c",
                      f"CREATE ROLE {pg.user} LOGIN PASSWORD '{pg.password}'"])
        yield pg
    finally:
        _as_postgres(["pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(folder, ignore_errors=True)


class Process:
    """A server started in its own process group, so stopping it also stops what it spawned."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path, log_dir: Path):
        self.name = name
        self.log = log_dir / f"{name}.log"
        self._handle = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=self._handle, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._handle.close()

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def listening_sockets(pids: set[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state owned by one of ``pids`` (from /proc)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:
                address, port = local.split(":")
                found.add((_decode_address(address, width), int(port, 16)))
    return found


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4 loopback address seen through a dual-stack socket (``::ffff:127.0.0.1``)."""
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _decode_address(hex_address: str, width: int) -> str:
    if width == 8:
        return ".".join(str(int(hex_address[i : i + 2], 16)) for i in (6, 4, 2, 0))
    words = [hex_address[i : i + 8] for i in range(0, 32, 8)]
    raw = b"".join(bytes.fromhex(w)[::-1] for w in words)
    return socket.inet_ntop(socket.AF_INET6, raw)


def process_tree(root_pid: int) -> set[int]:
    """``root_pid`` and every descendant (servers fork workers)."""
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        children.setdefault(int(fields["PPid"]), []).append(int(fields["Pid"]))
    tree, todo = set(), [root_pid]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += children.get(pid, [])
    return tree
