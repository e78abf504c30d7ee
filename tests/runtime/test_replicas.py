"""``rpcx.open_channel([addresses])``: a ReplicaChannel moves a call to another replica on
a retryable error (straight to the one a ``leader`` detail names), keeps the call's
idempotency key on every replica, skips replicas that cannot be reached, and gives up at
the deadline."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import rpcx
from tests.runtime.echo_rpcx import EchoClient
from tests.runtime.harness import Echo, mem_address


class Follower(Echo):
    """Refuses every call, naming the leader (as a replica that is not the leader may)."""

    def __init__(self, leader: str) -> None:
        super().__init__()
        self.leader = leader
        self.keys: list[str] = []

    async def context(self) -> dict[str, str]:
        key = rpcx.current_idempotency_key()
        self.keys.append(key.hex() if key else "")
        raise rpcx.Unavailable("not the leader", {"leader": self.leader})


async def test_a_call_follows_the_leader_detail_with_the_same_key(
        autojump_clock: trio.testing.MockClock) -> None:
    leader_address, follower_address = mem_address(), mem_address()
    follower = Follower(leader_address)
    async with rpcx.open_server(leader_address, [Echo()]), \
            rpcx.open_server(follower_address, [follower]):
        # the follower first, then an address nobody serves, then the leader
        addresses = [follower_address, "mem://nobody-serves-this", leader_address]
        async with rpcx.open_channel(addresses, default_timeout=5) as channel:
            seen = await EchoClient(channel).context()
            assert follower.keys == [seen["idempotency-key"]], "one key on every replica"
            assert channel.address == leader_address
            stats = channel.statistics()
            assert (stats.calls, stats.attempts, stats.retries) == (1, 2, 1), \
                "straight to the leader, skipping the dead address"
            await EchoClient(channel).context()
            assert len(follower.keys) == 1, "later calls start at the leader"


async def test_with_no_replica_reachable_the_call_ends_at_its_deadline(
        autojump_clock: trio.testing.MockClock) -> None:
    addresses = ["mem://nobody-a", "mem://nobody-b"]
    async with rpcx.open_channel(addresses) as channel:
        start = trio.current_time()
        with pytest.raises(rpcx.RpcError) as failed:
            await EchoClient(channel).increment(1, timeout=3)
        assert trio.current_time() - start <= 3.0
        assert failed.value.outcome_unknown is False, "nothing was ever sent"
        assert channel.statistics().attempts > 2, "it kept trying, round after round"


def test_a_replica_channel_needs_distinct_addresses() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        trio.run(_open, ["mem://a", "mem://a"])
    with pytest.raises(ValueError, match="at least one"):
        trio.run(_open, [])


async def _open(addresses: list[str]) -> None:
    async with rpcx.open_channel(addresses):
        pass
