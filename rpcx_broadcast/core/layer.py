"""The ``Layer`` protocol and ``Stack``, which composes layers (as JGroups does).

A layer is a sans-I/O state machine with four entry points. Each returns actions:

- ``on_broadcast(body, now)``: the layer above (or the application) broadcasts ``body``;
- ``on_receive(src, msg, now)``: a network message of this layer arrived from ``src``;
- ``on_deliver(delivery, now)``: the layer below delivered a message;
- ``on_timer(key, now)``: a timer this layer set has fired.

Layers may also implement the optional protocols ``ViewAware`` (told when the group's
members change), ``FlowControlled`` (say whether a new broadcast is accepted now),
``Introspectable`` (report buffer sizes) and ``Joinable`` (export a starting point at a
running member and start a joiner from it).

``Stack([bottom, ..., top])`` routes between them: ``Down`` goes one layer down, a
``Deliver`` goes one layer up (from the top layer it leaves the stack for the
application), network messages are wrapped in ``Wire(layer_index, msg)`` and timer keys
are prefixed with the layer index. The driver sees only ``Send``, ``Deliver``,
``SetTimer`` and ``CancelTimer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs

from .actions import Action, CancelTimer, Deliver, Down, Send, SetTimer, StartPoint, Wire

__all__ = ["BufferFull", "FlowControlled", "Introspectable", "Joinable", "Layer", "Leaving",
           "ProtocolViolation", "Stack", "ViewAware"]


class BufferFull(RuntimeError):
    """A broadcast was refused because a bounded buffer is full (flow control).

    Wait until ``Stack.writable`` is true again (after more input has been processed).
    """


class ProtocolViolation(ValueError):
    """A peer (or the layer below) sent something this layer cannot accept."""


class Layer(Protocol):
    """A broadcast algorithm as a sans-I/O state machine: events in, actions out."""

    def on_broadcast(self, body: object, now: float) -> list[Action]:
        """Broadcast ``body`` (from the layer above or the application)."""
        ...

    def on_receive(self, src: str, msg: object, now: float) -> list[Action]:
        """Handle a network message of this layer from member ``src``."""
        ...

    def on_deliver(self, delivery: Deliver, now: float) -> list[Action]:
        """Handle a delivery from the layer below."""
        ...

    def on_timer(self, key: str, now: float) -> list[Action]:
        """Handle the expiry of a timer this layer set."""
        ...


@runtime_checkable
class ViewAware(Protocol):
    """A layer that adapts when the group's membership changes."""

    def on_view(self, members: tuple[str, ...], now: float) -> list[Action]:
        """The agreed member list is now ``members``."""
        ...


@runtime_checkable
class Leaving(Protocol):
    """A layer with something to do before its member leaves the group gracefully."""

    def on_leave(self, successor: str, now: float) -> list[Action]:
        """This member will leave; ``successor`` is the next oldest member of the view."""
        ...


@runtime_checkable
class FlowControlled(Protocol):
    """A layer that can refuse new broadcasts while its buffers are full."""

    @property
    def writable(self) -> bool:
        """Whether ``on_broadcast`` would accept a message now."""
        ...


@runtime_checkable
class Introspectable(Protocol):
    """A layer that reports the sizes of its buffers (for tests, stats and caps)."""

    def buffer_sizes(self) -> dict[str, int]:
        """Current number of entries in each bounded buffer, by name."""
        ...


@runtime_checkable
class Joinable(Protocol):
    """A layer a new member can start in the middle of a run (state transfer).

    ``start_point()`` is called at a running member (the coordinator, in the step that
    admits the joiner); ``start_from(point, now)`` once on the joiner's fresh layer,
    before anything else. Afterwards the joiner's layer delivers exactly the messages
    past the starting point, in the layer's order.
    """

    def start_point(self) -> StartPoint:
        """What counts as delivered here now, plus what is held back."""
        ...

    def start_from(self, point: StartPoint, now: float) -> list[Action]:
        """Start this (fresh) layer at ``point``."""
        ...


@attrs.define(eq=False)
class Stack:
    """Layers composed bottom to top. ``layers[0]`` talks to the network only."""

    layers: Sequence[Layer]
    _out: list[Action] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        if not self.layers:
            raise ValueError("a Stack needs at least one layer")

    # -- driver entry points ---------------------------------------------------------

    def on_broadcast(self, payload: bytes, now: float) -> list[Action]:
        """The application broadcasts ``payload``. Raises ``BufferFull`` if not writable."""
        if not isinstance(payload, bytes):
            raise TypeError(f"payload must be bytes, got {type(payload).__name__}")
        if not self.writable:
            raise BufferFull("broadcast refused: a bounded buffer is full, retry later")
        top = len(self.layers) - 1
        return self._run(top, self.layers[top].on_broadcast(payload, now), now)

    def on_receive(self, src: str, msg: object, now: float) -> list[Action]:
        """A network message from ``src`` arrived. It must be a ``Wire`` this stack sent."""
        if not isinstance(msg, Wire) or msg.layer >= len(self.layers):
            raise ProtocolViolation(f"unexpected network message {msg!r} from {src!r}")
        return self._run(msg.layer, self.layers[msg.layer].on_receive(src, msg.msg, now), now)

    def on_timer(self, key: str, now: float) -> list[Action]:
        """Timer ``key`` (as returned in a ``SetTimer``) fired."""
        index_text, _, inner = key.partition("/")
        index = int(index_text)
        return self._run(index, self.layers[index].on_timer(inner, now), now)

    def on_view(self, members: tuple[str, ...], now: float) -> list[Action]:
        """Tell every view-aware layer, bottom first, that the members are now ``members``."""
        out: list[Action] = []
        for index, layer in enumerate(self.layers):
            if isinstance(layer, ViewAware):
                out.extend(self._run(index, layer.on_view(members, now), now))
        return out

    @property
    def joinable(self) -> bool:
        """Whether every layer supports starting a joiner (``Joinable``)."""
        return all(isinstance(layer, Joinable) for layer in self.layers)

    def on_leave(self, successor: str, now: float) -> list[Action]:
        """Tell every ``Leaving`` layer, bottom first, that this member will leave and
        ``successor`` is the next oldest member (the sequencer hands over to it)."""
        out: list[Action] = []
        for index, layer in enumerate(self.layers):
            if isinstance(layer, Leaving):
                out.extend(self._run(index, layer.on_leave(successor, now), now))
        return out

    def start_points(self) -> list[StartPoint]:
        """Every layer's starting point for a joiner, bottom first."""
        points: list[StartPoint] = []
        for layer in self.layers:
            if not isinstance(layer, Joinable):
                raise TypeError(f"{type(layer).__name__} cannot start a joiner")
            points.append(layer.start_point())
        return points

    def start_from(self, points: Sequence[StartPoint], now: float) -> list[Action]:
        """Start a joiner's fresh stack at ``points`` (from ``start_points`` elsewhere)."""
        if len(points) != len(self.layers):
            raise ProtocolViolation(f"{len(points)} starting points for "
                                    f"{len(self.layers)} layers")
        out: list[Action] = []
        for index, (layer, point) in enumerate(zip(self.layers, points, strict=True)):
            if not isinstance(layer, Joinable):
                raise TypeError(f"{type(layer).__name__} cannot start a joiner")
            out.extend(self._run(index, layer.start_from(point, now), now))
        return out

    # -- introspection ---------------------------------------------------------------

    @property
    def writable(self) -> bool:
        """Whether every flow-controlled layer accepts a new broadcast now."""
        return all(layer.writable for layer in self.layers if isinstance(layer, FlowControlled))

    def buffer_sizes(self) -> dict[str, int]:
        """Buffer sizes of every introspectable layer, keyed ``"<index>.<name>"``."""
        sizes: dict[str, int] = {}
        for index, layer in enumerate(self.layers):
            if isinstance(layer, Introspectable):
                for name, size in layer.buffer_sizes().items():
                    sizes[f"{index}.{name}"] = size
        return sizes

    # -- routing ---------------------------------------------------------------------

    def _run(self, index: int, actions: list[Action], now: float) -> list[Action]:
        out: list[Action] = []
        self._route(index, actions, now, out)
        return out

    def _route(self, index: int, actions: list[Action], now: float, out: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                out.append(Send(action.dest, Wire(index, action.msg)))
            elif isinstance(action, Deliver):
                if index == len(self.layers) - 1:
                    out.append(action)
                else:
                    upper = self.layers[index + 1]
                    self._route(index + 1, upper.on_deliver(action, now), now, out)
            elif isinstance(action, Down):
                if index == 0:
                    raise ProtocolViolation("the bottom layer cannot broadcast Down")
                lower = self.layers[index - 1]
                self._route(index - 1, lower.on_broadcast(action.body, now), now, out)
            elif isinstance(action, SetTimer):
                out.append(SetTimer(f"{index}/{action.key}", action.at))
            else:
                out.append(CancelTimer(f"{index}/{action.key}"))
