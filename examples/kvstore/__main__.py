"""The replicated key-value store demo.

    python -m examples.kvstore

Starts three replicas (each a FIFO-total broadcast member and an rpcx server, on loopback
TCP, in this process), then a client calls different replicas: writes to one are read
from another, concurrent conflicting writes to the same key through different replicas
end with one winner everywhere, and the replicas' digests converge.
"""

from __future__ import annotations

import socket
import sys

import trio

import rpcx
from examples.kvstore.kvstore_rpcx import KvStoreClient, NotFound
from examples.kvstore.replica import open_replica

NAMES = ("r1", "r2", "r3")


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


async def wait_applied(client: KvStoreClient, count: int) -> None:
    """Poll a replica (for at most 5 s) until it has applied ``count`` updates."""
    for _ in range(500):
        if (await client.digest(timeout=5)).applied >= count:
            return
        await trio.sleep(0.01)


async def demo() -> int:
    ports = free_ports(2 * len(NAMES))
    group = {n: f"tcp://127.0.0.1:{p}" for n, p in zip(NAMES, ports, strict=False)}
    api = {n: f"tcp://127.0.0.1:{p}" for n, p in zip(NAMES, ports[len(NAMES):], strict=True)}
    print("Starting 3 replicas (FIFO-total order broadcast over TCP):")
    for name in NAMES:
        print(f"  {name}: group {group[name]}, API {api[name]}")
    async with open_replica("r1", group, api["r1"]), open_replica("r2", group, api["r2"]), \
            open_replica("r3", group, api["r3"]):
        async with rpcx.open_channel(api["r1"]) as c1, rpcx.open_channel(api["r2"]) as c2, \
                rpcx.open_channel(api["r3"]) as c3:
            clients = {"r1": KvStoreClient(c1), "r2": KvStoreClient(c2),
                       "r3": KvStoreClient(c3)}
            index = await clients["r1"].put("colour", "blue", timeout=10)
            print(f"\nput colour=blue via r1 -> applied as update #{index}")
            # r1 replied once *it* applied the write; r3 applies it on its own delivery,
            # a moment later. A reader that needs the write waits for r3's applied count.
            await wait_applied(clients["r3"], index + 1)
            print(f"get colour via r3 (once r3 applied update #{index}) -> "
                  f"{await clients['r3'].get('colour', timeout=5)!r}")

            print("\n30 concurrent writes to key 'x', 10 through each replica ...")
            results: dict[str, int] = {}

            async def writer(name: str, k: int) -> None:
                results[f"{name}-{k}"] = await clients[name].put("x", f"{name}-{k}",
                                                                 timeout=10)

            async with trio.open_nursery() as nursery:
                for name in NAMES:
                    for k in range(10):
                        nursery.start_soon(writer, name, k)
            last = max(results, key=lambda v: results[v])
            print(f"  the group ordered them; the last in the order is {last!r} "
                  f"(update #{results[last]})")
            existed = await clients["r2"].delete("colour", timeout=10)
            print(f"delete colour via r2 -> existed={existed}")
            await wait_applied(clients["r1"], 32)
            try:
                await clients["r1"].get("colour", timeout=5)
            except NotFound as missing:
                print(f"get colour via r1 -> NotFound(key={missing.key!r})")

            for client in clients.values():  # every replica has applied every update
                await wait_applied(client, 32)
            digests = {n: await c.digest(timeout=5) for n, c in clients.items()}
            values = {n: await c.get("x", timeout=5) for n, c in clients.items()}
            print("\nReplica state:")
            for name in NAMES:
                print(f"  {name}: x={values[name]!r}, applied {digests[name].applied} "
                      f"updates, digest {digests[name].sha256}")
            converged = len({(d.applied, d.sha256) for d in digests.values()}) == 1
            same_x = len(set(values.values())) == 1 and values["r1"] == last
            print("Replicas converged: same updates, same order, same state."
                  if converged and same_x else "Replicas DIVERGED")
            return 0 if converged and same_x else 1


def main() -> int:
    return trio.run(demo)


if __name__ == "__main__":
    sys.exit(main())
