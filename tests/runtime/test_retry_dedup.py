"""Retries that are safe: on a lossy simulated network every non-idempotent call executes
at most once, however often it is retried, and every call ends with its result or a clear
error. Run under the autojump clock: minutes of simulated time take seconds."""

from __future__ import annotations

import decimal
import os

import pytest
import trio
import trio.testing

import rpcx
from examples.payments.payments_rpcx import Card, Currency, PaymentsClient
from examples.payments.service import Ledger, Payments
from rpcx.transport import LinkFaults, SimNetwork
from tests.runtime.echo_rpcx import EchoClient, EchoService
from tests.runtime.harness import Echo, echo_pair, replay_exactly

CARD = Card(card_number="4111 1111 1111 1111", expiry_date="10/2030", cvc="123")
SEED = int(os.environ.get("RPCX_SEED", "2026"))


async def test_a_thousand_payments_over_a_lossy_network_charge_each_exactly_once(
        autojump_clock: trio.testing.MockClock) -> None:
    replay_exactly(SEED)
    # 30% of packets lost in both directions, with jittered delay: requests and replies
    # vanish, connections break (a lost preface), and the channel retries and reconnects.
    net = SimNetwork(seed=SEED, faults=LinkFaults(drop=0.3, delay=(0.02, 0.02)))
    ledger = Ledger()
    policy = rpcx.RetryPolicy(max_attempts=12, initial_backoff=0.05, max_backoff=1.0,
                              attempt_timeout=0.5)
    outcomes: dict[int, str] = {}
    merchants: dict[str, int] = {}

    async with rpcx.open_server("sim://payments", [Payments(ledger)],
                                transport=net.transport("payments")), \
            rpcx.open_channel("sim://payments", transport=net.transport("shop"),
                              retry=policy, default_timeout=30.0, seed=SEED,
                              keepalive_interval=2.0, keepalive_timeout=1.0) as channel:
        payments = PaymentsClient(channel)

        async def pay(i: int) -> None:
            merchant = f"order-{i}"
            try:
                result = await payments.process_payment(CARD, decimal.Decimal("3.99"),
                                                        Currency.GBP, merchant)
            except rpcx.RpcError as error:
                outcomes[i] = f"error {error.code.name}"
            else:
                assert result.payment_id is not None
                merchants[merchant] = merchants.get(merchant, 0) + 1
                outcomes[i] = result.payment_id

        limiter = trio.CapacityLimiter(20)

        async def limited(i: int) -> None:
            async with limiter:
                await pay(i)

        async with trio.open_nursery() as nursery:
            for i in range(1000):
                nursery.start_soon(limited, i)
        stats = channel.statistics()

    charged = [charge[3] for charge in ledger.charges.values()]
    assert len(outcomes) == 1000, "every call ended"
    assert len(set(charged)) == len(charged), (
        f"seed {SEED}: some order was charged twice (replay: RPCX_SEED={SEED})")
    succeeded = {o for o in outcomes.values() if o.startswith("pay_")}
    assert len(succeeded) == sum(merchants.values()), "each success has its own payment"
    # Every success is one charge; a call that failed clearly may or may not have charged.
    assert all(f"order-{i}" in charged for i, o in outcomes.items() if o.startswith("pay_"))
    assert stats.retries > 100, "the network really lost messages"
    failures = [o for o in outcomes.values() if not o.startswith("pay_")]
    print(f"seed {SEED}: {len(succeeded)} paid, {len(failures)} failed clearly, "
          f"{stats.attempts} attempts, {stats.retries} retries, {stats.connects} connections, "
          f"{len(ledger.charges)} charges, {trio.current_time():.0f} s simulated")
    assert len(failures) < 10, f"seed {SEED}: too many calls gave up: {failures[:5]}"


async def test_a_duplicate_of_a_running_call_waits_for_the_first_result(
        autojump_clock: trio.testing.MockClock) -> None:
    """A retry that arrives while the first attempt still runs must not run it again."""
    impl = Echo()
    policy = rpcx.RetryPolicy(max_attempts=5, attempt_timeout=1.0)

    class SlowIncrement(Echo):
        async def increment(self, by: int) -> int:
            await trio.sleep(2.5)  # longer than two attempt timeouts
            return await super().increment(by)

    impl = SlowIncrement()
    async with echo_pair(impl, retry=policy) as (client, _, server, channel):
        assert await client.increment(5, timeout=20.0) == 5
        assert impl.increments == 1, "three attempts, one execution"
        assert channel.statistics().retries >= 2
        assert server.statistics().calls >= 3


async def test_idempotent_methods_are_retried_without_a_key(
        autojump_clock: trio.testing.MockClock) -> None:
    net = SimNetwork(seed=SEED, faults=LinkFaults(drop=0.3, delay=(0.001, 0.01)))
    policy = rpcx.RetryPolicy(max_attempts=25, attempt_timeout=0.2)
    async with rpcx.open_server("sim://echo", [Echo()], transport=net.transport("echo")), \
            rpcx.open_channel("sim://echo", transport=net.transport("c"), retry=policy,
                              default_timeout=20.0) as channel:
        client = EchoClient(channel)
        for i in range(50):
            assert await client.echo(f"m{i}") == f"m{i}"
        assert channel.statistics().retries > 0


async def test_non_retryable_failures_are_not_retried() -> None:
    async with echo_pair() as (client, _, server, channel):
        with pytest.raises(rpcx.RemoteError):
            await client.fail(int(rpcx.Status.INVALID_ARGUMENT), "bad")
        assert channel.statistics().retries == 0 and server.statistics().calls == 1


async def test_retryable_failures_are_retried_until_attempts_run_out(
        autojump_clock: trio.testing.MockClock) -> None:
    async with echo_pair(retry=rpcx.RetryPolicy(max_attempts=3)) as (client, _, server, _):
        with pytest.raises(rpcx.Unavailable):
            await client.fail(int(rpcx.Status.UNAVAILABLE), "try later")
        assert server.statistics().calls == 3


async def test_backoff_never_goes_past_the_deadline(
        autojump_clock: trio.testing.MockClock) -> None:
    policy = rpcx.RetryPolicy(max_attempts=50, initial_backoff=1.0, max_backoff=1.0, jitter=0.0)
    async with echo_pair(retry=policy) as (client, _, server, _):
        start = trio.current_time()
        with pytest.raises(rpcx.Unavailable):
            await client.fail(int(rpcx.Status.UNAVAILABLE), "", timeout=3.5)
        assert trio.current_time() - start <= 3.5
        # Attempts at t=0, 1, 2 and 3; a fifth would start at 4, past the deadline.
        assert server.statistics().calls == 4


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    import random

    policy = rpcx.RetryPolicy(initial_backoff=0.1, multiplier=2.0, max_backoff=1.0, jitter=0.2)
    rng = random.Random(0)
    for attempt, base in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        pause = policy.backoff(attempt, rng)
        assert base * 0.8 <= pause <= base
    with pytest.raises(ValueError, match="max_attempts must be at least 1"):
        rpcx.RetryPolicy(max_attempts=0)


async def test_a_handler_sees_the_idempotency_key_of_the_call_it_runs() -> None:
    async with echo_pair() as (client, _, _, _):
        first = (await client.context())["idempotency-key"]
        second = (await client.context())["idempotency-key"]
        assert len(bytes.fromhex(first)) == 16 and first != second, "one fresh key per call"
        assert rpcx.current_idempotency_key() is None, "none outside a handler"


async def test_an_error_says_whether_the_call_may_have_run(
        autojump_clock: trio.testing.MockClock) -> None:
    net = SimNetwork(seed=1)
    async with rpcx.open_channel("sim://nobody", transport=net.transport("c"),
                                 retry=rpcx.NO_RETRY) as channel:
        with pytest.raises(rpcx.Unavailable) as never_sent:
            await EchoClient(channel).increment(1)
    assert never_sent.value.outcome_unknown is False, "nothing was sent"

    impl = Echo()
    async with rpcx.open_server("sim://echo", [impl], transport=net.transport("echo")), \
            rpcx.open_channel("sim://echo", transport=net.transport("c"),
                              retry=rpcx.NO_RETRY) as channel:
        client = EchoClient(channel)
        with pytest.raises(rpcx.RpcError) as refused:
            await client.fail(int(rpcx.Status.RESOURCE_EXHAUSTED), "busy")
        assert refused.value.outcome_unknown is False, "the server answered"
        with pytest.raises(rpcx.DeadlineExceeded) as late:
            await client.slow(5.0, timeout=1)
        assert late.value.outcome_unknown is True, "the deadline passed while it ran"

        impl.started = trio.Event()

        async def crash_soon() -> None:
            await impl.started.wait()
            net.crash("echo")  # the request is at the server; the answer never comes

        async with trio.open_nursery() as nursery:
            nursery.start_soon(crash_soon)
            with pytest.raises(rpcx.Unavailable) as lost:
                await client.slow(5.0, timeout=10)
        assert lost.value.outcome_unknown is True, "sent, and no answer came back"


async def test_a_server_without_deduplication_runs_every_attempt() -> None:
    from rpcx.runtime.retry import NO_RETRY

    for deduplicate, runs in ((True, 1), (False, 2)):
        impl = Echo()
        async with echo_pair(impl, server_options={"deduplicate": deduplicate}) as (
                _, _, _, channel):
            spec = rpcx.spec_of(EchoService)
            assert isinstance(spec, rpcx.ServiceSpec)
            method = next(m for m in spec.methods if m.name == "increment")
            payload = channel.codec.encode(method.params, (1,))
            for _ in range(2):  # the same key twice: a retry
                await channel._attempt(method, trio.current_time() + 5, {}, payload,
                                       b"k" * 16, NO_RETRY)
        assert impl.increments == runs, deduplicate
