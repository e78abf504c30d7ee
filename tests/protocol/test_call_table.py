"""Every (role, state, input) cell of the call table, valid or not."""

from __future__ import annotations

import itertools

import pytest

from rpcx.errors import LocalProtocolError, RemoteProtocolError
from rpcx.protocol.call import (
    TRANSITIONS,
    Call,
    CallInput,
    CallState,
    Role,
    render_mermaid,
    render_table,
)

CELLS = list(itertools.product(Role, CallState, CallInput))
PEER_INPUTS = {CallInput.RECV_REQUEST, CallInput.RECV_ONEWAY, CallInput.RECV_RESPONSE,
               CallInput.RECV_ERROR, CallInput.RECV_CANCEL, CallInput.REPLY_TOO_LARGE}


@pytest.mark.parametrize(("role", "state", "event"), CELLS,
                         ids=[f"{r.value}-{s.name}-{i.name}" for r, s, i in CELLS])
def test_every_cell(role: Role, state: CallState, event: CallInput) -> None:
    call = Call(role, 7, "m", None, state)
    target = TRANSITIONS.get((role, state, event))
    if target is not None:
        assert call.apply(event) is target
        assert call.state is target
        return
    expected = RemoteProtocolError if event in PEER_INPUTS else LocalProtocolError
    with pytest.raises(expected) as info:
        call.apply(event)
    assert str(info.value) == (f"call 7: input {event.name} is not allowed in state "
                               f"{state.name} for the {role.value}")
    assert call.state is state  # a refused input changes nothing


def test_done_is_terminal_and_every_state_is_reachable_and_can_finish() -> None:
    assert not [k for k in TRANSITIONS if k[1] is CallState.DONE]
    for role in Role:
        reachable = {CallState.IDLE}
        frontier = [CallState.IDLE]
        while frontier:
            state = frontier.pop()
            for (r, s, _), t in TRANSITIONS.items():
                if r is role and s is state and t not in reachable:
                    reachable.add(t)
                    frontier.append(t)
        assert CallState.DONE in reachable
        for state in reachable - {CallState.DONE}:
            # wherever a call is, losing the connection must end it
            lost = TRANSITIONS.get((role, state, CallInput.CONNECTION_LOST))
            assert state is CallState.IDLE or lost is CallState.DONE


def test_roles_only_use_their_own_inputs() -> None:
    client_only = {CallInput.SEND_REQUEST, CallInput.SEND_ONEWAY, CallInput.RECV_RESPONSE,
                   CallInput.RECV_ERROR, CallInput.SEND_CANCEL, CallInput.REPLY_TOO_LARGE}
    shared = {CallInput.DEADLINE, CallInput.CONNECTION_LOST}
    for role, _, event in TRANSITIONS:
        if event not in shared:
            assert (event in client_only) == (role is Role.CLIENT), (role, event)


def test_renderings_list_every_transition() -> None:
    table = render_table()
    assert table.count("\n") == len(TRANSITIONS) + 2
    assert "| client | AWAITING_REPLY | DEADLINE | DONE |" in table
    server = render_mermaid(Role.SERVER)
    assert "    RUNNING --> DONE: RECV_CANCEL" in server
    assert "SEND_REQUEST" not in server
