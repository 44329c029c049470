"""docker-compose.yml driven by Debian's docker-compose (1.29) for the Docker stack test, on the engine and
base images of :mod:`docker_engine`.

The compose files are used as users get them, plus ``deploy/local_bases/compose.yml`` (the base images built
here) and, for the step-container run, ``deploy/compose.step-containers.yml``. The settings go to compose
through an env file of the test's own (ports that were free, a random password, the landing folder it
generated), never through the repository's ``.env``; a project name of its own keeps its containers, network
and volumes apart from anything else on the engine, and ``close`` removes exactly those.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from docker_engine import REPO, Engine
from stack_client import DagsterGraphQL

BASE_FILES = ("docker-compose.yml", "deploy/local_bases/compose.yml")
STEP_CONTAINERS = "deploy/compose.step-containers.yml"
WHEELS = REPO / "deploy" / "wheels"
IMAGE = "churn-stack/churn_dagster:latest"
HEALTHCHECKED = ("postgres", "code", "webserver", "mlflow")
WORKSPACE = """query { workspaceOrError { ... on Workspace { locationEntries {
  name locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
DAEMONS = "query { instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"


def torch_wheel(workdir: Path) -> tuple[Path | None, str]:
    """The CPU wheel of the torch that deploy/Dockerfile pins, placed in deploy/wheels/ for the build: the
    file there already, or one pip finds through this host's own configuration (its indexes and
    find-links) or the PyTorch CPU index. Returns the file to remove afterwards (None when it was there)
    and, when no wheel was found, pip's last line."""
    pin = re.search(r"torch==([0-9.]+)", (REPO / "deploy" / "Dockerfile").read_text()).group(1)
    if any(WHEELS.glob(f"torch-{pin}+cpu-cp311-*.whl")):
        return None, ""
    download = workdir / "wheel"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
         "--implementation", "cp", "--abi", "cp311", "--platform", "manylinux_2_28_x86_64",
         "--extra-index-url", "https://download.pytorch.org/whl/cpu", "--retries", "0", "--timeout", "15",
         "-d", str(download), f"torch=={pin}+cpu"], capture_output=True, text=True, check=False)
    found = sorted(download.glob("torch-*.whl"))
    if done.returncode != 0 or not found:
        return None, f"pip download torch=={pin}+cpu: {(done.stderr or done.stdout).strip().splitlines()[-1:]}"
    placed = WHEELS / found[0].name
    shutil.move(found[0], placed)
    return placed, ""


class ComposeStack:
    """One compose project on ``engine``: ``settings`` are the variables of its env file."""

    def __init__(self, engine: Engine, root: Path, settings: dict[str, str]):
        self.engine, self.root = engine, root
        self.project = settings["COMPOSE_PROJECT_NAME"]
        self.settings = settings
        self.env_file = root / "stack.env"
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        # The variables of the env file win only where the process environment lacks them.
        self.env = {k: v for k, v in engine.env.items() if k not in settings}
        self.files = list(BASE_FILES)
        self.api = DagsterGraphQL(f"http://127.0.0.1:{settings['WEBSERVER_PORT']}", self.logs)

    @classmethod
    def settings_for(cls, engine: Engine, landing: Path, images: dict[str, str], ports: dict[str, int]) -> dict:
        return {
            "COMPOSE_PROJECT_NAME": f"churnstack{secrets.token_hex(4)}",
            "POSTGRES_USER": "churn", "POSTGRES_PASSWORD": secrets.token_hex(16),
            "LANDING_DIR": str(landing), "CHURN_IMAGE": IMAGE, **images,
            **{name: str(port) for name, port in ports.items()},
            "DOCKER_SOCKET": str(engine.socket), "DOCKER_GID": str(engine.socket.stat().st_gid),
        }

    def compose(self, *args: str, timeout: float = 1200, check: bool = True, input: str | None = None) -> str:
        files = [a for f in self.files for a in ("-f", f)]
        done = subprocess.run(["docker-compose", "--env-file", str(self.env_file), "-p", self.project, *files, *args],
                              cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout,
                              input=input, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args[:2])} failed ({done.returncode}): "
                                 f"{(done.stderr or done.stdout).strip()[-4000:]}")
        return done.stdout

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40", check=False)[-8000:]

    def container(self, service: str) -> str:
        ids = self.compose("ps", "-q", service).split()
        assert ids, f"no container for service {service}"
        return ids[0]

    def inspect(self, container: str) -> dict:
        return json.loads(self.engine.docker("inspect", container).stdout)[0]

    def health(self, service: str) -> str:
        state = self.inspect(self.container(service))["State"]
        return state.get("Health", {}).get("Status", "none")

    def wait_until(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} after {timeout:.0f} s\n{self.logs()}")
            time.sleep(2)

    def wait_healthy(self, services=HEALTHCHECKED, timeout: float = 400) -> None:
        self.wait_until(lambda: all(self.health(s) == "healthy" for s in services), timeout,
                        f"not all of {', '.join(services)} healthy")

    def location_loaded(self) -> bool:
        try:
            entries = self.api.query(WORKSPACE)["workspaceOrError"]["locationEntries"]
        except OSError:
            return False
        return any(e["name"] == "churn_dagster" and e["locationOrLoadError"]
                   and e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries)

    def daemons_healthy(self) -> bool:
        statuses = self.api.query(DAEMONS)["instance"]["daemonHealth"]["allDaemonStatuses"]
        return all(s["healthy"] for s in statuses if s["required"])

    def wait_ready(self) -> None:
        self.wait_healthy()
        self.wait_until(self.location_loaded, 300, "the webserver does not list the code location churn_dagster")
        self.wait_until(self.daemons_healthy, 300, "the daemons are not healthy")

    def exec(self, service: str, *command: str, input: str | None = None) -> str:
        return self.compose("exec", "-T", service, *command, input=input)

    def step_containers(self) -> list[dict]:
        ids = self.engine.docker("ps", "-aq", "--filter",
                                 f"label=churn_dagster.step_network={self.project}_default").stdout.split()
        return [self.inspect(i) for i in ids]

    def leftovers(self) -> list[str]:
        """Containers, networks and volumes of this project still on the engine."""
        label = f"label=com.docker.compose.project={self.project}"
        found = []
        for kind in ("container", "network", "volume"):
            listed = self.engine.docker(kind, "ls", *(["-a"] if kind == "container" else []), "-q",
                                        "--filter", label).stdout.split()
            found += [f"{kind} {name}" for name in listed]
        return found + [f"container {c['Id'][:12]}" for c in self.step_containers()]

    def close(self) -> None:
        """Remove what this project created: the step containers, then compose's containers, networks and
        volumes; the images stay, as the cache of the next run."""
        for step in self.step_containers():
            self.engine.docker("rm", "-f", step["Id"], check=False)
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", check=False)
        if self.engine.started_here:  # the engine's cache is ours: drop the layers of superseded builds
            self.engine.docker("image", "prune", "-f", check=False)


def in_data_volume(stack: ComposeStack, script: str, *args: str):
    """The JSON that ``script`` prints, run by the code container's Python (it sees the data volume)."""
    return json.loads(stack.exec("code", "python", "-", *args, input=script))


# Folders written as a whole are links to a versioned sibling under .versions (storage/duck.py): files are
# read through the link, by the path a reader uses, and the versions themselves are not listed.
COHORT_FILES = r"""
import hashlib, json, os, sys
found = {}
for folder, folders, names in os.walk("/data", followlinks=True):
    folders[:] = [f for f in folders if f != ".versions"]
    for name in names:
        path = os.path.join(folder, name)
        if any(f"cohort={c}" in path for c in sys.argv[1:]):
            with open(path, "rb") as f:
                found[path] = [hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime_ns]
print(json.dumps(found))
"""

COMPUTE_LOGS = r"""
import json, os, pathlib, sys
root = pathlib.Path(os.environ["DAGSTER_HOME"]) / "storage"
print(json.dumps({run: any((root / run).rglob("*.out")) for run in sys.argv[1:]}))
"""


def host_addresses() -> list[str]:
    """This host's IPv4 addresses other than loopback."""
    listed = json.loads(subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True,
                                       check=True).stdout)
    return [a["local"] for link in listed for a in link.get("addr_info", [])
            if not a["local"].startswith("127.")]


def free_ports(names: tuple[str, ...]) -> dict[str, int]:
    import socket

    sockets = [socket.socket() for _ in names]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return {name: s.getsockname()[1] for name, s in zip(names, sockets, strict=True)}
    finally:
        for s in sockets:
            s.close()


def ensure_removed(path: Path | None) -> None:
    if path is not None and path.exists():
        os.remove(path)
