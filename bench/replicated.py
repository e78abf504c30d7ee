"""The replicated key-value store against etcd, in one run (issue 11, item 8).

    PYTHONPATH=. python bench/replicated.py [--seconds 5] [--warmup 1] [--kills 5]
        [--only etcd|rpcx] [--etcd-clients grpc,raw] [--time-limit 600]

Starts two 3-member clusters side by side on loopback, each member a process of
its own keeping its log on disk with fsync, and both with the same failure detection
(heartbeat every 100 ms, election timeout 1 s, randomised up to 2 s):

- **etcd**: Debian's ``etcd`` (``apt-get install -y etcd-server etcd-client``), started
  with ``--heartbeat-interval=100 --election-timeout=1000``; ranges are linearizable
  (etcd's default ``serializable=false``). Requests go to the leader (found
  with ``/v3/maintenance/status``: its ``leader`` field against each member's id), etcd's
  best case: a follower would forward them. ``--etcd-clients`` names the clients measured
  in turn on the same cluster: ``grpc``, etcd's own gRPC API through grpcio (one HTTP/2
  channel, hand-encoded protobuf, as etcd's Go client uses it: the least overhead on
  both sides); ``raw``, its v3 HTTP/JSON gateway (``POST /v3/kv/put``, ``/v3/kv/range``
  with base64 keys) through a minimal HTTP/1.1 keep-alive client on trio written for this
  benchmark (one connection per concurrent client; the gateway costs etcd CPU: it turns
  each request into a gRPC call to itself); ``httpx``, the same gateway through an
  ``httpx.AsyncClient`` pool on trio (anyio): not in the default set, it collapses at 64
  clients on this machine (tens of requests/s), a figure of httpx, not of etcd.
- **rpcx**: the kvstore of ``examples/kvstore`` (``python -m rpcx_broadcast.serve
  examples.kvstore.store:KvStore``: ``serve_replicated`` with a ``FileStorage``, election
  timeout 1.0 s), called through
  ``KvStoreClient`` on one ``rpcx.open_channel([a1, a2, a3])`` shared by all the
  concurrent clients, the leader's address first so that calls go to the leader, as
  etcd's do (a follower takes a call too, and forwards the command: one more hop).
  ``put`` goes through the replicated log; ``get`` is ``@readonly``, linearizable
  (ReadIndex).

In this order, each figure taken for every column (etcd's clients, then rpcx) back to
back, so that the machine's load changes little between the figures compared (the
cluster not measured is idle): writes/s with 1 and with 64 concurrent clients (each a
trio task calling ``put`` back to back on one of 1,000 keys, 32-byte values) with the
p50/p99 latency of those writes; linearizable reads/s with 1 and 64 clients. Then, for
each system in turn, ``--kills`` times: 16 writers put continuously (each call with a
deadline of 0.25-0.48 s, different per writer so that retries do not fall in step;
retried at once on any error, etcd's writers moving to the next member), the leader is
killed with SIGKILL, and the failover time is from the kill to the first acknowledgement of a
write *started after* the kill; the victim is then restarted from its directory and
rejoins before the next kill. Alongside each rate: the CPU time the member processes
used per operation (user + system, all three together, from /proc), and how busy this
client process was (a client at 100 % means the figure is the client's, not the
system's). All clients run in this one process, one column at a time.

Every process started is killed when the run ends, fails, is interrupted (Ctrl-C,
SIGTERM) or passes ``--time-limit``; the members also get SIGKILL from the kernel if this
process dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import trio

import rpcx
from examples.kvstore.kvstore_rpcx import KvStoreClient, NotFound
from rpcx_broadcast import ReplicationClient
from rpcx_broadcast.testing.cluster import free_ports

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("m1", "m2", "m3")
KEYS = 1000
VALUE = "v" * 32
HEARTBEAT_MS = 100
ELECTION_MS = 1000
INSTALL = ("etcd is not installed: on Debian/Ubuntu `apt-get install -y etcd-server "
           "etcd-client` (or put an `etcd` binary on PATH); the etcd half is skipped.")

# -- processes: every one started is registered here and killed on the way out ----------

_PROCESSES: list[subprocess.Popen[bytes]] = []
_LOCK = threading.Lock()


def _die_with_parent() -> None:
    """In the child: SIGKILL when the benchmark process dies, however it dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[
        bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent)
    with _LOCK:
        _PROCESSES.append(proc)
    return proc


def kill_all() -> None:
    with _LOCK:
        procs = list(_PROCESSES)
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.wait(timeout=10)


def sigkill(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (and their reaped children)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / tick
    return total


# -- the two systems, behind one small interface ----------------------------------------

class Client(Protocol):
    async def put(self, key: str, value: str, timeout: float) -> None: ...
    async def get(self, key: str, timeout: float) -> None: ...


class Cluster(Protocol):
    label: str

    def member_pids(self) -> list[int]: ...
    async def start(self) -> None: ...
    async def leader(self) -> str: ...
    def kill(self, name: str) -> None: ...
    async def restart(self, name: str) -> None: ...

    def clients(self, n: int, *, to_leader: str | None,
                spread: bool = False) -> contextlib.AbstractAsyncContextManager[list[Client]]:
        ...


class EtcdError(Exception):
    pass


class RawHttp:
    """One HTTP/1.1 keep-alive connection, just enough for the etcd gateway's JSON."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.stream: trio.SocketStream | None = None
        self.buffer = b""
        self.prefix = (f"Host: {host}:{port}\r\nContent-Type: application/json\r\n"
                       "Content-Length: ").encode()

    async def post(self, path: str, body: bytes) -> bytes:
        try:
            if self.stream is None:
                self.stream = await trio.open_tcp_stream(self.host, self.port)
                self.stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.buffer = b""
            stream = self.stream
            await stream.send_all(b"POST " + path.encode() + b" HTTP/1.1\r\n" + self.prefix
                                  + str(len(body)).encode() + b"\r\n\r\n" + body)
            buffer = self.buffer
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                data = await stream.receive_some(65536)
                if not data:
                    raise EtcdError("connection closed")
                buffer += data
            head = buffer[:end]
            at = head.lower().find(b"content-length:")
            if at < 0:
                raise EtcdError(f"no content-length in {head[:200]!r}")
            length = int(head[at + 15:head.find(b"\r\n", at) if head.find(b"\r\n", at) >= 0
                              else len(head)])
            start = end + 4
            while len(buffer) < start + length:
                data = await stream.receive_some(65536)
                if not data:
                    raise EtcdError("connection closed")
                buffer += data
            self.buffer = buffer[start + length:]
            payload = buffer[start:start + length]
            if head[9:12] != b"200":
                raise EtcdError(f"HTTP {head[9:12].decode()}: {payload[:200]!r}")
            return payload
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                await trio.aclose_forcefully(stream)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _field(number: int, data: bytes) -> bytes:
    """A protobuf length-delimited field."""
    out = bytearray([number << 3 | 2])
    n = len(data)
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + data


class GrpcPool:
    """etcd's own gRPC API (``etcdserverpb.KV``) through grpcio: one channel per member
    (HTTP/2, shared by the concurrent clients, as etcd's Go client does). Requests are
    protobuf encoded by hand (``PutRequest``: key = 1, value = 2; ``RangeRequest``:
    key = 1, serializable = 7 left false); each call is a grpcio future whose completion
    wakes the trio task, so no thread is spent per call."""

    def __init__(self, ports: list[int]) -> None:
        import grpc  # type: ignore[import-untyped]
        self.grpc = grpc
        self.channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for port in ports]
        self.put = [c.unary_unary("/etcdserverpb.KV/Put") for c in self.channels]
        self.range = [c.unary_unary("/etcdserverpb.KV/Range") for c in self.channels]

    async def call(self, method: Any, request: bytes, timeout: float) -> bytes:
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        future = method.future(request, timeout=timeout)
        future.add_done_callback(lambda _: token.run_sync_soon(done.set))
        try:
            await done.wait()
        except BaseException:
            future.cancel()
            raise
        try:
            answer: bytes = future.result()
        except self.grpc.RpcError as error:
            raise EtcdError(f"gRPC {error.code()}: {error.details()}") from None
        return answer

    def close(self) -> None:
        """In a thread of its own: grpcio's close waits for calls being cancelled (an
        interrupted run), and their completion callbacks need this trio thread."""
        def close_all() -> None:
            for channel in self.channels:
                channel.close()

        threading.Thread(target=close_all, daemon=True).start()


class EtcdClient:
    """Calls one member (``move_on`` turns to the next one, for the failover writers)."""

    def __init__(self, ports: list[int], first: int, kind: str,
                 pool: Any = None) -> None:
        self.ports, self.index, self.kind, self.pool = ports, first, kind, pool
        self.http = RawHttp("127.0.0.1", ports[first])

    async def _post(self, path: str, body: dict[str, str], timeout: float) -> bytes:
        data = json.dumps(body).encode()
        with trio.fail_after(timeout):
            if self.kind == "raw":
                return await self.http.post(path, data)
            url = f"http://127.0.0.1:{self.ports[self.index]}{path}"
            response = await self.pool.post(url, content=data,
                                             headers={"content-type": "application/json"})
            if response.status_code != 200:
                raise EtcdError(f"HTTP {response.status_code}: {response.text[:200]}")
            content: bytes = response.content
            return content

    async def put(self, key: str, value: str, timeout: float) -> None:
        if self.kind == "grpc":
            await self.pool.call(self.pool.put[self.index],
                                 _field(1, key.encode()) + _field(2, value.encode()), timeout)
            return
        await self._post("/v3/kv/put", {"key": _b64(key), "value": _b64(value)}, timeout)

    async def get(self, key: str, timeout: float) -> None:
        if self.kind == "grpc":
            await self.pool.call(self.pool.range[self.index], _field(1, key.encode()),
                                 timeout)
            return
        await self._post("/v3/kv/range", {"key": _b64(key)}, timeout)

    async def move_on(self) -> None:
        await self.http.aclose()
        self.index = (self.index + 1) % len(self.ports)
        self.http = RawHttp("127.0.0.1", self.ports[self.index])


class EtcdCluster:
    label = "etcd"

    def __init__(self, binary: str, base: Path, client_kind: str) -> None:
        self.binary, self.base, self.client_kind = binary, base, client_kind
        ports = free_ports(6)
        self.client_ports = dict(zip(NAMES, ports[:3], strict=True))
        self.peer_ports = dict(zip(NAMES, ports[3:], strict=True))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ids: dict[str, str] = {}

    def version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True,
                             check=False).stdout
        return out.splitlines()[0].replace("etcd Version: ", "") if out else "?"

    def member_pids(self) -> list[int]:
        return [p.pid for p in self.procs.values() if p.poll() is None]

    def _spawn(self, name: str) -> None:
        cluster = ",".join(f"{n}=http://127.0.0.1:{self.peer_ports[n]}" for n in NAMES)
        client = f"http://127.0.0.1:{self.client_ports[name]}"
        peer = f"http://127.0.0.1:{self.peer_ports[name]}"
        self.procs[name] = spawn([
            self.binary, "--name", name, "--data-dir", str(self.base / name),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", cluster, "--initial-cluster-state", "new",
            "--initial-cluster-token", "bench",
            f"--heartbeat-interval={HEARTBEAT_MS}", f"--election-timeout={ELECTION_MS}",
            "--log-level", "warn", "--logger", "zap"], self.base / f"{name}.log")

    async def status(self, name: str) -> dict[str, Any]:
        http = RawHttp("127.0.0.1", self.client_ports[name])
        try:
            with trio.fail_after(1.0):
                answer: dict[str, Any] = json.loads(
                    await http.post("/v3/maintenance/status", b"{}"))
                return answer
        finally:
            await http.aclose()

    async def start(self) -> None:
        for name in NAMES:
            self._spawn(name)
        await self.leader(timeout=60)

    async def leader(self, timeout: float = 30) -> str:
        with trio.fail_after(timeout):
            while True:
                seen: dict[str, str] = {}
                for name in NAMES:
                    if self.procs[name].poll() is not None:
                        continue
                    with contextlib.suppress(Exception):
                        status = await self.status(name)
                        self.ids[name] = status["header"]["member_id"]
                        seen[name] = status.get("leader", "0")
                for name, leader in seen.items():
                    if leader != "0" and self.ids.get(name) == leader:
                        return name
                await trio.sleep(0.05)

    def kill(self, name: str) -> None:
        sigkill(self.procs[name])

    async def restart(self, name: str) -> None:
        self._spawn(name)
        with trio.fail_after(60):
            while True:
                with contextlib.suppress(Exception):
                    mine = await self.status(name)
                    leader = await self.status(await self.leader())
                    if mine.get("leader", "0") != "0" \
                            and int(mine["raftAppliedIndex"]) + 10 >= int(leader["raftIndex"]):
                        return
                await trio.sleep(0.1)

    @contextlib.asynccontextmanager
    async def clients(self, n: int, *, to_leader: str | None,
                      spread: bool = False) -> AsyncIterator[list[Client]]:
        ports = [self.client_ports[name] for name in NAMES]
        first = NAMES.index(to_leader) if to_leader is not None else 0
        pool: Any = None
        if self.client_kind == "httpx":
            import httpx
            pool = httpx.AsyncClient(limits=httpx.Limits(
                max_connections=n + 8, max_keepalive_connections=n + 8), timeout=None)
        elif self.client_kind == "grpc":
            pool = GrpcPool(ports)
        made = [EtcdClient(ports, (first + i) % 3 if spread else first, self.client_kind,
                           pool) for i in range(n)]
        try:
            yield list(made)
        finally:
            for client in made:
                await client.http.aclose()
            if isinstance(pool, GrpcPool):
                pool.close()
            elif pool is not None:
                await pool.aclose()


class RpcxClient:
    def __init__(self, store: KvStoreClient) -> None:
        self.store = store

    async def put(self, key: str, value: str, timeout: float) -> None:
        await self.store.put(key, value, timeout=timeout)

    async def get(self, key: str, timeout: float) -> None:
        with contextlib.suppress(NotFound):  # an answer all the same
            await self.store.get(key, timeout=timeout)


class RpcxCluster:
    label = "rpcx"

    def __init__(self, base: Path) -> None:
        self.base = base
        self.members = {n: f"tcp://127.0.0.1:{p}"
                        for n, p in zip(NAMES, free_ports(3), strict=True)}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def member_pids(self) -> list[int]:
        return [p.pid for p in self.procs.values() if p.poll() is None]

    def _spawn(self, name: str) -> None:
        spec = ",".join(f"{n}={a}" for n, a in self.members.items())
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.procs[name] = spawn(
            [sys.executable, "-m", "rpcx_broadcast.serve", "examples.kvstore.store:KvStore",
             "--name", name, "--members", spec, "--dir", str(self.base / name),
             "--election-timeout", str(ELECTION_MS / 1000), "--snapshot-every", "5000"],
            self.base / f"{name}.log", env)

    async def _summary(self, name: str) -> Any:
        async with rpcx.open_channel(self.members[name]) as channel:
            return await KvStoreClient(channel).summary(timeout=1.0)

    async def _leader_of(self, name: str) -> str:
        async with rpcx.open_channel(self.members[name]) as channel:
            return (await ReplicationClient(channel).status(timeout=1.0)).leader

    async def start(self) -> None:
        for name in NAMES:
            self._spawn(name)
        await self.leader(timeout=60)

    async def leader(self, timeout: float = 30) -> str:
        with trio.fail_after(timeout):
            while True:
                for name in NAMES:
                    if self.procs[name].poll() is not None:
                        continue
                    with contextlib.suppress(rpcx.RpcError, OSError):
                        if await self._leader_of(name) == name:
                            return name
                await trio.sleep(0.05)

    def kill(self, name: str) -> None:
        sigkill(self.procs[name])

    async def restart(self, name: str) -> None:
        self._spawn(name)
        with trio.fail_after(60):
            while True:
                with contextlib.suppress(rpcx.RpcError, OSError):
                    mine = await self._summary(name)
                    theirs = await self._summary(await self.leader())
                    if await self._leader_of(name) and mine.revision + 10 >= theirs.revision:
                        return
                await trio.sleep(0.1)

    @contextlib.asynccontextmanager
    async def clients(self, n: int, *, to_leader: str | None,
                      spread: bool = False) -> AsyncIterator[list[Client]]:
        # The leader's address first, as the etcd clients call the leader: a channel
        # starts with its first address, and a follower would take the call too (it
        # forwards the command to the leader: one more hop each way).
        addresses = sorted(self.members.values(),
                           key=lambda a: a != self.members.get(to_leader or ""))
        if spread:
            addresses = list(self.members.values())
        async with rpcx.open_channel(addresses) as channel:
            store = KvStoreClient(channel)
            yield [RpcxClient(store) for _ in range(n)]


# -- measurements -------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def load(cluster: Cluster, n: int, op: str, seconds: float,
               warmup: float) -> dict[str, float]:
    """``n`` clients doing ``op`` back to back; rates and latencies over ``seconds`` after
    ``warmup``."""
    leader = await cluster.leader()
    latencies: list[float] = []
    errors = 0
    async with cluster.clients(n, to_leader=leader) as clients:
        begin = trio.current_time()
        measure_from = begin + warmup
        stop_at = measure_from + seconds
        marks: dict[str, float] = {}

        async def mark() -> None:
            await trio.sleep_until(measure_from)
            marks["cpu"] = cpu_seconds(cluster.member_pids())
            marks["self"] = time.process_time()
            marks["wall"] = time.perf_counter()

        async def one(client: Client, rng: random.Random) -> None:
            nonlocal errors
            now = trio.current_time
            while (started := now()) < stop_at:
                key = f"bench-{rng.randrange(KEYS):04d}"
                try:
                    if op == "put":
                        await client.put(key, VALUE, 10.0)
                    else:
                        await client.get(key, 10.0)
                except (rpcx.RpcError, EtcdError, OSError, trio.TooSlowError):
                    errors += 1
                    await trio.sleep(0.01)
                    continue
                done = now()
                if started >= measure_from and done <= stop_at:
                    latencies.append(done - started)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(mark)
            for i, client in enumerate(clients):
                nursery.start_soon(one, client, random.Random(i))
        wall = time.perf_counter() - marks["wall"]
        server_cpu = cpu_seconds(cluster.member_pids()) - marks["cpu"]
        own_cpu = time.process_time() - marks["self"]
    count = len(latencies)
    return {"rate": count / seconds, "p50": percentile(latencies, 0.5) * 1000,
            "p99": percentile(latencies, 0.99) * 1000, "errors": errors,
            "server_cpu_us": server_cpu / count * 1e6 if count else float("nan"),
            "client_busy": own_cpu / wall * 100}


async def failover(cluster: Cluster, writers: int = 16, settle: float = 1.0,
                   deadline: float = 0.25, limit: float = 30.0) -> float:
    """SIGKILL the leader while ``writers`` put continuously; seconds from the kill to
    the first acknowledgement of a write started after it. Writer ``i`` gives each call
    a deadline of ``deadline * (1 + i / writers)``: a call that went to the dead leader
    (or that a follower forwarded there) hangs until its deadline, and with one deadline
    for all the writers would retry in step, measuring the failover in steps of it."""
    victim = await cluster.leader()
    killed_at = float("inf")
    first_ack = float("inf")
    recovered = trio.Event()
    async with cluster.clients(writers, to_leader=victim, spread=True) as clients:

        async def writer(client: Client, i: int) -> None:
            nonlocal first_ack
            rng = random.Random(1000 + i)
            mine = deadline * (1 + i / writers)
            while not recovered.is_set():
                started = trio.current_time()
                try:
                    await client.put(f"bench-{rng.randrange(KEYS):04d}", VALUE, mine)
                except (rpcx.RpcError, EtcdError, OSError, trio.TooSlowError):
                    if isinstance(client, EtcdClient):
                        await client.move_on()
                    await trio.sleep(0.005)
                    continue
                done = trio.current_time()
                if started >= killed_at:
                    first_ack = min(first_ack, done)
                    recovered.set()

        async with trio.open_nursery() as nursery:
            for i, client in enumerate(clients):
                nursery.start_soon(writer, client, i)
            await trio.sleep(settle)
            cluster.kill(victim)
            killed_at = trio.current_time()
            with trio.move_on_after(limit):
                await recovered.wait()
            nursery.cancel_scope.cancel()
    seconds = first_ack - killed_at
    await cluster.restart(victim)
    await trio.sleep(1.0)
    return seconds


CLIENT_LABELS = {"grpc": "etcd, gRPC", "raw": "etcd, HTTP gateway",
                 "httpx": "etcd, HTTP gateway (httpx)"}


def show(label: str, op: str, n: int, figures: dict[str, float]) -> None:
    print(f"[{label}] {op} x{n}: {figures['rate']:,.0f}/s p50 "
          f"{figures['p50']:.2f} ms p99 {figures['p99']:.2f} ms, members "
          f"{figures['server_cpu_us']:.0f} µs CPU/op, client "
          f"{figures['client_busy']:.0f} % busy, errors {figures['errors']:.0f}",
          flush=True)


async def failovers(cluster: Cluster, label: str, kills: int) -> list[float]:
    times = []
    for k in range(kills):
        seconds = await failover(cluster)
        times.append(seconds)
        print(f"[{label}] kill {k + 1}: first write acknowledged {seconds:.2f} s after the "
              f"SIGKILL of the leader", flush=True)
    return times


async def measure(clusters: list[Cluster],
                  args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Columns of figures: one per etcd client, and rpcx's. Both clusters run side by
    side (the one not measured is idle) and each figure is taken for every column back
    to back, so that a change in the machine's load between two columns is a matter of
    seconds, not of minutes; then each system's failovers, one system at a time."""
    columns: list[tuple[str, Cluster, str]] = []
    for cluster in clusters:
        print(f"\n[{cluster.label}] starting 3 members ...", flush=True)
        await cluster.start()
        print(f"[{cluster.label}] leader: {await cluster.leader()}", flush=True)
        if isinstance(cluster, EtcdCluster):
            columns += [(CLIENT_LABELS[kind], cluster, kind) for kind in args.etcd_clients]
        else:
            columns.append(("rpcx", cluster, ""))
    results: dict[str, dict[str, Any]] = {label: {} for label, _, _ in columns}
    for op in ("put", "get"):
        for n in (1, 64):
            for label, cluster, kind in columns:
                if isinstance(cluster, EtcdCluster):
                    cluster.client_kind = kind
                figures = await load(cluster, n, op, args.seconds, args.warmup)
                results[label][f"{op}{n}"] = figures
                show(label, op, n, figures)
    for cluster in clusters:
        # The failover is etcd's own; its writers use the first client listed.
        label = "rpcx"
        if isinstance(cluster, EtcdCluster):
            cluster.client_kind = args.etcd_clients[0]
            label = CLIENT_LABELS[args.etcd_clients[0]]
        results[label]["failover"] = await failovers(cluster, label, args.kills)
    return results


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, trio {trio.__version__}")


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    ours = results.get("rpcx")
    etcds = [label for label in results if label != "rpcx"]

    def best(key: str, field: str, lower: bool) -> dict[str, Any] | None:
        """The etcd column with the best figure (the one rpcx is compared with)."""
        if not etcds:
            return None
        pick = min if lower else max
        return results[pick(etcds, key=lambda label: results[label][key][field])]

    rows = [("writes/s, 1 client", "put1", "rate", ",.0f", False),
            ("write p50 ms, 1 client", "put1", "p50", ".2f", True),
            ("write p99 ms, 1 client", "put1", "p99", ".2f", True),
            ("**writes/s, 64 clients**", "put64", "rate", ",.0f", False),
            ("write p50 ms, 64 clients", "put64", "p50", ".2f", True),
            ("write p99 ms, 64 clients", "put64", "p99", ".2f", True),
            ("linearizable reads/s, 1 client", "get1", "rate", ",.0f", False),
            ("read p50 ms, 1 client", "get1", "p50", ".2f", True),
            ("linearizable reads/s, 64 clients", "get64", "rate", ",.0f", False),
            ("read p99 ms, 64 clients", "get64", "p99", ".2f", True),
            ("member CPU µs per write, 64 clients", "put64", "server_cpu_us", ".0f", True),
            ("member CPU µs per read, 64 clients", "get64", "server_cpu_us", ".0f", True),
            ("client process busy %, writes x64", "put64", "client_busy", ".0f", None),
            ("client process busy %, reads x64", "get64", "client_busy", ".0f", None)]
    columns = [*etcds, *(["rpcx"] if ours else [])]
    print("\n| measure | " + " | ".join(columns) + " | rpcx vs best etcd |")
    print("| --- |" + " ---: |" * (len(columns) + 1))
    for label, key, field, fmt, lower in rows:
        cells = [format(results[c][key][field], fmt) for c in columns]
        versus = "-"
        if ours and etcds and lower is not None:
            other = best(key, field, lower)
            assert other is not None
            a, b = ours[key][field], other[key][field]
            versus = f"{(b / a if lower else a / b):.2f}x" + (" (etcd/rpcx)" if lower else "")
        print(f"| {label} | " + " | ".join(cells) + f" | {versus} |")

    def kills(label: str) -> str:
        values = results[label].get("failover")
        if not values:
            return "(same cluster)"
        return (f"{statistics.median(values):.2f} s ("
                + ", ".join(f"{v:.2f}" for v in values) + ")")

    etcd_kills = next((results[c]["failover"] for c in etcds if results[c].get("failover")),
                      None)
    versus = "-"
    if ours and ours["failover"] and etcd_kills:
        versus = (f"{statistics.median(ours['failover']) / statistics.median(etcd_kills):.2f}x"
                  " (rpcx/etcd)")
    print("| **failover: SIGKILL of the leader to the next acknowledged write**, median "
          "(each) | " + " | ".join(kills(c) for c in columns) + f" | {versus} |")
    other = best("put64", "rate", False)
    if ours and other:
        w = ours["put64"]["rate"] / other["put64"]["rate"]
        print(f"\nGoal 1, rpcx writes/s >= 0.5x etcd's at 64 clients (best etcd client): "
              f"{w:.2f}x -> " + ("met" if w >= 0.5 else "MISSED"))
    if ours and ours["failover"] and etcd_kills:
        a, b = statistics.median(ours["failover"]), statistics.median(etcd_kills)
        print(f"Goal 2, failover no slower than etcd's (medians): rpcx {a:.2f} s, etcd "
              f"{b:.2f} s -> " + ("met" if a <= b else "MISSED"))
    if not etcds and args.only != "rpcx":
        print("\n" + INSTALL)
    print(f"\nMachine: {machine()}; etcd {args.etcd_version}; {args.seconds:g} s measured "
          f"after {args.warmup:g} s warm-up per figure, {args.kills} kills per system; load "
          f"average before/after: {args.load_before} / "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")


async def main_async(args: argparse.Namespace, base: Path) -> None:
    results: dict[str, dict[str, Any]] = {}
    systems: list[Callable[[], Cluster]] = []
    etcd = shutil.which("etcd")
    if args.only in (None, "etcd"):
        if etcd is None:
            print(INSTALL)
        else:
            def make_etcd() -> Cluster:
                cluster = EtcdCluster(etcd, base / "etcd", args.etcd_clients[0])
                args.etcd_version = cluster.version()
                return cluster
            systems.append(make_etcd)
    if args.only in (None, "rpcx"):
        systems.append(lambda: RpcxCluster(base / "rpcx"))
    terminated = False

    async def on_signal(scope: trio.CancelScope) -> None:
        """Ctrl-C and SIGTERM cancel the run, which then ends as it would at the end:
        every client closed, every process killed (a KeyboardInterrupt raised at a random
        point is no good here: grpcio's callbacks do not survive it)."""
        nonlocal terminated
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                terminated = True
                scope.cancel()

    with trio.fail_after(args.time_limit):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(on_signal, nursery.cancel_scope)
            try:
                results.update(await measure([make() for make in systems], args))
            finally:
                kill_all()
            nursery.cancel_scope.cancel()
    if terminated:
        raise KeyboardInterrupt
    report(results, args)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--only", choices=("etcd", "rpcx"))
    parser.add_argument("--etcd-clients", default="grpc,raw",
                        help="comma-separated, measured in turn on the same etcd cluster "
                        "(grpc, raw, httpx); the first one also runs the failover writers")
    parser.add_argument("--time-limit", type=float, default=600.0,
                        help="seconds; the run is stopped (and cleaned up) past it")
    args = parser.parse_args()
    args.etcd_clients = args.etcd_clients.split(",")
    if not args.etcd_clients or set(args.etcd_clients) - set(CLIENT_LABELS):
        parser.error(f"--etcd-clients: some of {', '.join(CLIENT_LABELS)}")
    args.etcd_version = "-"
    args.load_before = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    # Past the limit with some grace: kill everything even if trio is stuck.
    def give_up() -> None:
        kill_all()
        os._exit(3)

    watchdog = threading.Timer(args.time_limit + 30, give_up)
    watchdog.daemon = True
    watchdog.start()
    # Ctrl-C stops the run (and its processes) even when started in the background by a
    # shell that had SIGINT ignored; in the run, main_async takes SIGINT and SIGTERM.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    base = Path(tempfile.mkdtemp(prefix="bench-replicated-"))
    (base / "etcd").mkdir()
    (base / "rpcx").mkdir()
    try:
        try:
            trio.run(main_async, args, base)
        except BaseExceptionGroup as group:  # from inside a nursery
            interrupt = group.subgroup(KeyboardInterrupt)
            if interrupt is None:
                raise
            raise KeyboardInterrupt from None
        return 0
    except KeyboardInterrupt:
        kill_all()
        print("\ninterrupted: every process started was killed", file=sys.stderr)
        return 130
    except trio.TooSlowError:
        kill_all()
        print(f"\nstopped: past --time-limit {args.time_limit:g} s; every process started "
              f"was killed", file=sys.stderr)
        return 3
    finally:
        kill_all()
        watchdog.cancel()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
