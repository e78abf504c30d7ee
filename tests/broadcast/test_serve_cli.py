"""``python -m rpcx_broadcast.serve``: bad arguments get a message naming what is wrong (the
replica processes themselves run in test_replicated_processes.py and the kvstore demo)."""

from __future__ import annotations

import pytest

from examples.kvstore.store import KvStore
from rpcx_broadcast.serve import load_factory, main, parse_members


def test_members_are_name_equals_address_pairs() -> None:
    assert parse_members("a=tcp://h:1, b=unix:///tmp/b") == {"a": "tcp://h:1",
                                                             "b": "unix:///tmp/b"}
    with pytest.raises(ValueError, match="expected name=address, got 'tcp://h:1'"):
        parse_members("a=tcp://h:0,tcp://h:1")
    with pytest.raises(ValueError, match="'a' is named twice"):
        parse_members("a=tcp://h:0,a=tcp://h:1")


def test_the_service_is_found_by_module_and_name() -> None:
    assert load_factory("examples.kvstore.store:KvStore") is KvStore
    with pytest.raises(ValueError, match="expected MODULE:FACTORY"):
        load_factory("examples.kvstore.store")
    with pytest.raises(ValueError, match=r"cannot import 'examples\.nothing'"):
        load_factory("examples.nothing:X")
    with pytest.raises(ValueError, match="no callable 'Nothing'"):
        load_factory("examples.kvstore.store:Nothing")


@pytest.mark.parametrize(("argv", "message"), [
    (["examples.kvstore.store:KvStore", "--name", "d", "--members", "a=tcp://h:1"],
     "--name 'd' is not one of --members (a)"),
    (["examples.kvstore.store:Nothing", "--name", "a", "--members", "a=tcp://h:1"],
     "no callable 'Nothing'"),
    (["examples.kvstore.store:KvStore", "--name", "a", "--members", "a"],
     "expected name=address, got 'a'"),
])
def test_bad_arguments_exit_with_status_2_and_say_why(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
