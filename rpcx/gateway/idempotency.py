"""``Idempotency-Key`` over HTTP: a retried call executes at most once (``docs/http.md``).

The header follows the IETF httpapi idempotency-key draft: ``Idempotency-Key: "KEY"`` (a
structured-field string; a bare token is accepted too). A call that carries one goes
through a de-duplication cache with the rules of the native protocol (``docs/protocol.md``
§ 11, :class:`rpcx.protocol.dedup.DedupCache`):

- the first request with a key runs the handler, and its reply is kept for the window;
- a retry with the same key and the same body gets that reply again (status and body)
  without running the handler; one arriving while the first still runs waits for it;
- the same key with a different body is refused (``422``) and nothing runs;
- a first execution that ends without a reply (deadline, client gone) is forgotten, so
  a retry runs it.

Keys are scoped by method and by the ``Authorization`` header, so one caller can never
be answered with another caller's reply by guessing its key. Each entry is charged to
the client's host address (its *owner*, see ``DedupCache``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Hashable
from typing import Final

import attrs
import trio

from rpcx.protocol.dedup import (
    DEFAULT_DEDUP_WINDOW,
    DEFAULT_IDEMPOTENCY_QUOTA,
    DEFAULT_MAX_IDEMPOTENCY_BYTES,
    DEFAULT_MAX_IDEMPOTENCY_CACHE,
    DedupCache,
    Execute,
    Overloaded,
    Replay,
    Wait,
)
from rpcx.runtime.dispatch import Failure, Reply, Success
from rpcx.status import Status
from rpcx.text import quote

__all__ = ["IDEMPOTENCY_HEADER", "MAX_KEY_LENGTH", "BadKey", "KeyedCalls", "Mismatch", "parse_key"]

IDEMPOTENCY_HEADER: Final = "idempotency-key"
MAX_KEY_LENGTH: Final = 64
"""Characters in a key, at most: the native protocol's limit (64 bytes), so a handler may
pass the key on to native calls (:func:`rpcx.current_idempotency_key`)."""


class BadKey(ValueError):
    """The header's value is not a usable key; the message says why (plain text)."""


def parse_key(values: list[str]) -> str | None:
    """The key from the request's ``Idempotency-Key`` header values (None without one).

    ``"KEY"`` (the draft's structured-field string) or a bare ``KEY``: 1 to
    :data:`MAX_KEY_LENGTH` printable ASCII characters. Raises :class:`BadKey`."""
    if not values:
        return None
    if len(values) > 1:
        raise BadKey(f"idempotency-key given {len(values)} times; send it once")
    raw = values[0].strip()
    key = raw
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        key = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(" " <= ch <= "~" for ch in key):
        raise BadKey(f"idempotency-key must be 1 to {MAX_KEY_LENGTH} printable ASCII "
                        f"characters, got {quote(raw)}")
    return key


@attrs.frozen
class Mismatch:
    """The key was used before with a different request body: answer 422, run nothing."""

    key: str

    @property
    def message(self) -> str:
        return (f"idempotency-key {quote(self.key)} was already used with a different "
                "request body; use a new key for a new request")


@attrs.frozen
class _Stored:
    fingerprint: bytes
    reply: Reply


def _stored_size(stored: _Stored) -> int:
    reply = stored.reply
    if isinstance(reply, Success):
        return len(reply.payload) + 32
    return len(reply.message) + len(reply.error_payload or b"") + 64 * len(reply.details) + 32


class KeyedCalls:
    """The HTTP face's de-duplication cache (one per :class:`~rpcx.gateway.HttpServer`)."""

    def __init__(self, *, window: float = DEFAULT_DEDUP_WINDOW,
                 max_entries: int = DEFAULT_MAX_IDEMPOTENCY_CACHE,
                 max_bytes: int = DEFAULT_MAX_IDEMPOTENCY_BYTES,
                 quota: int = DEFAULT_IDEMPOTENCY_QUOTA) -> None:
        self._cache: DedupCache[_Stored] = DedupCache(
            max_entries=max_entries, window=window, max_bytes=max_bytes, quota=quota,
            size=_stored_size)
        self._running: dict[tuple[str, bytes], tuple[bytes, trio.Event]] = {}
        self.replayed = 0
        """Retries answered from the cache without running the handler."""

    def __len__(self) -> int:
        return len(self._cache)

    async def run(self, path: str, key: str, authorization: str | None, body: bytes,
                  owner: Hashable, call: Callable[[], Awaitable[Reply]]) -> Reply | Mismatch:
        """``call()`` at most once per (``path``, ``key``, ``authorization``) within the
        window; a retry gets the first reply, or :class:`Mismatch` if its body differs."""
        scope = hashlib.sha256(
            f"{authorization or ''}\n{key}".encode("utf-8", "surrogatepass")).digest()
        fingerprint = hashlib.sha256(body).digest()
        entry = (path, scope)
        while True:
            decision = self._cache.begin(path, scope, trio.current_time(), owner)
            if isinstance(decision, Replay):
                stored: _Stored = decision.reply
                if stored.fingerprint != fingerprint:
                    return Mismatch(key)
                self.replayed += 1
                return stored.reply
            if isinstance(decision, Overloaded):
                return Failure(Status.RESOURCE_EXHAUSTED, decision.reason)
            if isinstance(decision, Wait):
                running_fingerprint, done = self._running[entry]
                if running_fingerprint != fingerprint:
                    return Mismatch(key)
                await done.wait()
                continue
            assert isinstance(decision, Execute)
            done = trio.Event()
            self._running[entry] = (fingerprint, done)
            try:
                reply = await call()
            except BaseException:
                self._cache.abandon(path, scope)  # no reply: a retry may run it
                raise
            else:
                self._cache.complete(path, scope, _Stored(fingerprint, reply),
                                     trio.current_time())
                return reply
            finally:
                del self._running[entry]
                done.set()
