"""A Docker engine for the stack test, and the two base images docker-compose.yml names, built from Debian.

No container registry is reachable on the machines the tests run on, so ``postgres:15`` and
``python:3.11-slim`` cannot be pulled: their stand-ins (``deploy/local_bases/``) are built from a Debian root
made by ``debootstrap`` and ``docker import``. Each image is tagged with a hash of the files it is built
from, and is only built when the engine lacks that tag.

A Docker daemon that already answers is used as it is, and left running. Otherwise, as root with Debian's
``docker.io`` installed, one is started with its own socket and exec root, and a data root in the user's
cache folder (``$CHURN_DOCKER_CACHE``, default ``~/.cache/churn_dagster/docker``), so that the images and
build layers survive to the next run; it is stopped afterwards by the pid it was started with. The test
starts it from its own process, so it inherits the test's niceness.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCAL_BASES = REPO / "deploy" / "local_bases"
DEBIAN_SUITE = "bookworm"  # Python 3.11 and PostgreSQL 15, as in python:3.11-slim and postgres:15
DEBIAN_IMAGE = f"churn-stack/debian:{DEBIAN_SUITE}"
MIRROR = os.environ.get("CHURN_DEBIAN_MIRROR", "http://deb.debian.org/debian")
TOOLS = ("docker", "dockerd", "docker-compose", "debootstrap")


@dataclass(frozen=True)
class Engine:
    """A reachable Docker daemon: ``host`` for DOCKER_HOST, ``socket`` its path on this host."""

    host: str
    socket: Path
    started_here: bool

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"}

    def docker(self, *args: str, timeout: float = 600, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        result = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                                check=False, **kwargs)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args[:3])} failed ({result.returncode}): "
                                 f"{(result.stderr or result.stdout).strip()[-3000:]}")
        return result

    def has_image(self, tag: str) -> bool:
        return self.docker("image", "inspect", tag, check=False).returncode == 0


def _answers(host: str) -> bool:
    try:
        return subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                              env={**os.environ, "DOCKER_HOST": host}, timeout=20, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _dockerd_running() -> bool:
    return any(p.read_text().strip() == "dockerd" for p in Path("/proc").glob("[0-9]*/comm") if p.exists())


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "churn_dagster" / "docker"
    return Path(os.environ.get("CHURN_DOCKER_CACHE") or default)


def require_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: apt-get install docker.io docker-compose debootstrap "
                    "(.ci/run does)")


@contextmanager
def engine() -> Iterator[Engine]:
    """The Docker daemon to use: one that answers already, or one started here and stopped afterwards."""
    require_tools()
    existing = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not existing.startswith("unix://"):
        pytest.skip(f"DOCKER_HOST={existing}: the stack test mounts the engine's socket, so it needs a unix:// one")
    if _answers(existing):
        yield Engine(existing, Path(existing.removeprefix("unix://")), started_here=False)
        return
    if _dockerd_running():
        pytest.skip(f"a dockerd is running but does not answer on {existing}: set DOCKER_HOST to its socket")
    if os.geteuid() != 0:
        pytest.skip("no Docker daemon answers and starting dockerd needs root")
    with _own_dockerd() as started:
        yield started


@contextmanager
def _own_dockerd() -> Iterator[Engine]:
    run_dir = Path(tempfile.mkdtemp(prefix="churn-dockerd-"))  # short: socket paths are limited to 107 bytes
    data_root = cache_dir() / "data-root"
    data_root.mkdir(parents=True, exist_ok=True)
    socket = run_dir / "docker.sock"
    had_bridge = Path("/sys/class/net/docker0").exists()
    log = (run_dir / "dockerd.log").open("w")
    proc = subprocess.Popen(
        ["dockerd", "--data-root", str(data_root), "--exec-root", str(run_dir / "exec"),
         "--pidfile", str(run_dir / "dockerd.pid"), "--host", f"unix://{socket}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    started = Engine(f"unix://{socket}", socket, started_here=True)
    try:
        deadline = time.monotonic() + 90
        while not _answers(started.host):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (run_dir / "dockerd.log").read_text().strip().splitlines()[-1:] or ["no output"]
                pytest.skip(f"dockerd did not start ({tail[0][-300:]})")
            time.sleep(1)
        yield started
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        if not had_bridge and Path("/sys/class/net/docker0").exists():  # the bridge this dockerd made
            subprocess.run(["ip", "link", "delete", "docker0"], check=False)
        shutil.rmtree(run_dir, ignore_errors=True)


def _content_tag(name: str, *files: Path) -> str:
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + b"\0" + f.read_bytes())
    return f"churn-stack/{name}-{digest.hexdigest()[:12]}"


def host_ca_bundle() -> Path | None:
    """The CA bundle this host trusts (SSL_CERT_FILE, or OpenSSL's default file): builds behind a proxy
    that re-signs TLS reach PyPI only with it."""
    paths = ssl.get_default_verify_paths()
    for candidate in (os.environ.get("SSL_CERT_FILE"), paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _debian_image(engine: Engine, workdir: Path) -> None:
    """A minimal Debian root (debootstrap --variant=minbase) imported as an image, with the host's CA bundle
    added to the certificates the image's ca-certificates package will trust."""
    root = workdir / "debian-root"
    try:
        done = subprocess.run(["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(root), MIRROR],
                              capture_output=True, text=True, timeout=900, check=False)
        assert done.returncode == 0, f"debootstrap {DEBIAN_SUITE} from {MIRROR} failed: {done.stdout[-2000:]}"
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for f in (root / leftover).glob("*"):
                if f.is_file():
                    f.unlink()
        bundle = host_ca_bundle()
        if bundle:
            extra = root / "usr/local/share/ca-certificates"
            extra.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bundle, extra / "host-bundle.crt")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        engine.docker("import", "--change", 'CMD ["bash"]', "-", DEBIAN_IMAGE, stdin=tar.stdout)
        assert tar.wait() == 0, "tar of the Debian root failed"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def base_images(engine: Engine, workdir: Path) -> dict[str, str]:
    """The stand-ins for python:3.11-slim and postgres:15, built unless the engine has them already, as the
    variables deploy/local_bases/compose.yml reads."""
    python_tag = _content_tag("python", LOCAL_BASES / "python.Dockerfile") + ":3.11-slim"
    postgres_tag = _content_tag("postgres", LOCAL_BASES / "postgres.Dockerfile",
                                LOCAL_BASES / "postgres-entrypoint.sh") + ":15"
    needed = {python_tag: "python.Dockerfile", postgres_tag: "postgres.Dockerfile"}
    needed = {tag: dockerfile for tag, dockerfile in needed.items() if not engine.has_image(tag)}
    if needed and not engine.has_image(DEBIAN_IMAGE):
        _debian_image(engine, workdir)
    for tag, dockerfile in needed.items():
        engine.docker("build", "-q", "-f", str(LOCAL_BASES / dockerfile), "--build-arg",
                      f"DEBIAN_IMAGE={DEBIAN_IMAGE}", "-t", tag, str(LOCAL_BASES), timeout=900)
    return {"LOCAL_PYTHON_IMAGE": python_tag, "LOCAL_POSTGRES_IMAGE": postgres_tag}
