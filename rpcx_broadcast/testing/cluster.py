"""Replica processes on loopback TCP, for demos and tests of a replicated service.

```python
with ProcessCluster("examples.kvstore.store:KvStore", ["r1", "r2", "r3"]) as cluster:
    leader = trio.run(cluster.leader)
    cluster.kill(leader)            # SIGKILL
    cluster.start(leader)           # restarted from its directory: it catches up
```

Each replica is ``python -m rpcx_broadcast.serve SERVICE --name N --members ... --dir D``
with a free port of 127.0.0.1 and a directory of its own under ``directory`` (a temporary
one, removed at the end, when none is given). Leaving the ``with`` block stops every
replica still running (SIGTERM, then SIGKILL after ``grace`` seconds).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import trio

import rpcx
from rpcx.testing.ports import free_ports
from rpcx_broadcast._generated.replicated_rpcx import ReplicaStatus, ReplicationClient

__all__ = ["ProcessCluster", "free_ports"]


def _import_root(service: str) -> str | None:
    """The directory that holds the service's top-level package, for the children's path."""
    spec = importlib.util.find_spec(service.partition(":")[0].split(".")[0])
    if spec is None or spec.origin is None:
        return None
    origin = Path(spec.origin)
    return str(origin.parent.parent if origin.name == "__init__.py" else origin.parent)


class ProcessCluster:
    """The replicas ``names`` of ``service`` (``MODULE:FACTORY``), each its own process."""

    def __init__(self, service: str, names: Sequence[str] = ("r1", "r2", "r3"), *,
                 directory: str | os.PathLike[str] | None = None,
                 election_timeout: float = 1.0, snapshot_every: int = 10_000,
                 grace: float = 5.0) -> None:
        self.service = service
        self.names = tuple(names)
        self.members = {name: f"tcp://127.0.0.1:{port}"
                        for name, port in zip(self.names, free_ports(len(self.names)),
                                              strict=True)}
        """Each replica's rpcx address."""
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.grace = grace
        self._temporary = tempfile.TemporaryDirectory(prefix="replicas-") \
            if directory is None else None
        self.directory = Path(self._temporary.name if self._temporary else directory or ".")
        self._options = ["--election-timeout", repr(election_timeout),
                         "--snapshot-every", str(snapshot_every)]
        root = _import_root(service)
        paths = [root] if root else []
        self._env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [*paths, *filter(None, [os.environ.get("PYTHONPATH")])])}

    @property
    def addresses(self) -> list[str]:
        return list(self.members.values())

    def start(self, *names: str) -> None:
        """Start the named replicas (all of them without names), each from its directory."""
        spec = ",".join(f"{n}={a}" for n, a in self.members.items())
        for name in names or self.names:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "rpcx_broadcast.serve", self.service, "--name", name,
                 "--members", spec, "--dir", str(self.directory / name), *self._options],
                env=self._env, stdout=subprocess.DEVNULL)

    def kill(self, name: str) -> None:
        """SIGKILL replica ``name`` and reap it."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        """SIGTERM every replica still running; SIGKILL those that do not exit in time."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> ProcessCluster:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
        if self._temporary is not None:
            self._temporary.cleanup()

    async def status(self, name: str, timeout: float = 2.0) -> ReplicaStatus | None:
        """What replica ``name`` says about itself; ``None`` if it does not answer."""
        try:
            async with rpcx.open_channel(self.members[name], retry=rpcx.NO_RETRY) as channel:
                return await ReplicationClient(channel).status(timeout=timeout)
        except rpcx.RpcError:
            return None

    async def leader(self, timeout: float = 30.0) -> str:
        """The replica that leads: it says so itself, and a majority of all the replicas
        name it. Waits (an election may be on) up to ``timeout`` seconds."""
        with trio.move_on_after(timeout):
            while True:
                said = [s.leader for s in [await self.status(n) for n in self.names]
                        if s is not None and s.leader]
                for name in set(said):
                    if 2 * said.count(name) > len(self.names):
                        own = await self.status(name)
                        if own is not None and own.leader == name:
                            return name
                await trio.sleep(0.1)
        raise TimeoutError(f"no leader among {', '.join(self.names)} in {timeout:g} s")
