"""Boards in a labgrid farm: reserve and acquire the board's place, read its SSH address, release it.

Why labgrid's own client library (``labgrid.remote.client.ClientSession`` and the coordinator's gRPC
messages): a lab that runs labgrid already decides there who may use which board; a bench that went around
it would measure beside someone's flashing or test run. The order is labgrid's own: a reservation for the
place (``name=PLACE``, so it waits in the coordinator's queue, by priority and age, instead of polling
``acquire``), then ``acquire`` once the reservation is allocated, then the place's ``NetworkService``
(address, username, port) becomes the board's SSH address. On the way out, whatever happened, the place is
released and the reservation cancelled.

The ClientSession's own methods (``_acquire_place`` ...) print to stdout for the ``labgrid-client`` command;
stdout is where ``bench --json`` writes its result, so this module sends the same requests through the
session's stub and waits on ``sync_with_coordinator`` as those methods do, and logs instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from dass_edge.errors import BoardBusyError, MissingDependencyError, RemoteError

if TYPE_CHECKING:
    from dass_edge.bench.board import Board

log = logging.getLogger(__name__)

DEFAULT_COORDINATOR = "127.0.0.1:20408"  # labgrid's own default (LG_COORDINATOR overrides it)
CONNECT_TIMEOUT_S = 15.0
_POLL_S = 0.5


@dataclass(frozen=True)
class PlaceAddress:
    """Where the acquired place's board answers SSH (its NetworkService); never its password."""

    host: str
    user: str | None
    port: int


def _labgrid():  # -> (client module, coordinator protobuf module)
    try:
        from labgrid.remote import client
        from labgrid.remote.generated import labgrid_coordinator_pb2
    except ImportError:
        raise MissingDependencyError("labgrid", "ci") from None
    return client, labgrid_coordinator_pb2


def coordinator_address(given: str | None) -> str:
    return given or os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR


class _Session:
    """A ClientSession on its own event loop, every call bounded by a timeout (a dead coordinator must not
    hang a CI job)."""

    def __init__(self, address: str) -> None:
        client, self.pb2 = _labgrid()
        from labgrid.util.proxy import proxymanager

        self.address = address
        self.loop = client.ensure_event_loop()  # the thread's loop, as start_session uses (gRPC binds to it)
        self.session = client.ClientSession(proxymanager.get_grpc_address(address, default_port=20408), self.loop)
        try:
            self.run(self.session.start(), CONNECT_TIMEOUT_S)
        except Exception as exc:
            self.close()
            raise RemoteError(f"cannot reach the labgrid coordinator at {address}: "
                              f"{str(exc).strip() or type(exc).__name__}") from None

    def run(self, coroutine, timeout_s: float = CONNECT_TIMEOUT_S) -> Any:  # noqa: ANN001
        return self.loop.run_until_complete(asyncio.wait_for(coroutine, timeout_s))

    def call(self, what: str, rpc, request) -> Any:  # noqa: ANN001
        """One coordinator request, then a sync so that the session's view of places is current."""
        import grpc

        try:
            response = self.run(rpc(request))
            self.run(self.session.sync_with_coordinator())
        except grpc.aio.AioRpcError as exc:
            raise RemoteError(f"labgrid coordinator {self.address}: {what}: {exc.details()}") from None
        except (asyncio.TimeoutError, TimeoutError):
            raise RemoteError(f"labgrid coordinator {self.address}: {what}: no answer within "
                              f"{CONNECT_TIMEOUT_S:g} s") from None
        return response

    def place(self, name: str):  # -> labgrid.remote.common.Place
        if name not in self.session.places:
            known = ", ".join(sorted(self.session.places)) or "(none)"
            raise RemoteError(f"labgrid coordinator {self.address} has no place {name!r} (has: {known})")
        return self.session.places[name]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.session.pump_task is not None:
                self.run(self.session.stop(), 5)
            self.run(self.session.close(), 5)


def _reserve(s: _Session, place: str, wait_s: float) -> str:
    """A reservation for ``place``, allocated within ``wait_s``; its token. BoardBusyError otherwise."""
    pb2 = s.pb2
    request = pb2.CreateReservationRequest(filters={"main": pb2.Reservation.Filter(filter={"name": place})},
                                           prio=0.0)
    token = s.call(f"reserving {place}", s.session.stub.CreateReservation, request).reservation.token
    deadline = time.monotonic() + wait_s
    waiting_logged = False
    while True:
        state = s.call(f"polling the reservation of {place}", s.session.stub.PollReservation,
                       pb2.PollReservationRequest(token=token)).reservation.state
        if state in (1, 2):  # ReservationState.allocated, acquired
            return token
        if state != 0:  # expired or invalid (the place was deleted)
            from labgrid.remote.common import ReservationState
            raise RemoteError(f"labgrid reservation for place {place} is {ReservationState(state).name}")
        holder = s.place(place).acquired
        if time.monotonic() >= deadline:
            s.call(f"cancelling the reservation of {place}", s.session.stub.CancelReservation,
                   pb2.CancelReservationRequest(token=token))
            raise BoardBusyError(f"labgrid place {place} is still in use by {holder or 'another reservation'} "
                                 f"after waiting {wait_s:g} s; retry later or raise --wait-board")
        if not waiting_logged:
            log.warning("labgrid place %s is in use by %s; waiting up to %g s", place,
                        holder or "another reservation", wait_s)
            waiting_logged = True
        time.sleep(_POLL_S)


def _network_service(s: _Session, place: str) -> PlaceAddress:
    """The SSH address among the acquired place's resources: its one NetworkService."""
    found = [(name, entry) for (name, cls), entry in s.session.get_target_resources(s.place(place)).items()
             if cls == "NetworkService"]
    if len(found) != 1:
        names = ", ".join(name for name, _ in found) or "none"
        raise RemoteError(f"labgrid place {place} must have exactly one NetworkService resource (has: {names}); "
                          "add a match for the board's SSH service to the place")
    name, entry = found[0]
    if not entry.avail:
        raise RemoteError(f"labgrid place {place}: its NetworkService {name} is not available (is its "
                          "exporter running?)")
    args = entry.args
    return PlaceAddress(host=str(args["address"]), user=args.get("username") or None,
                        port=int(args.get("port") or 22))


def _release(s: _Session, place: str, token: str | None, acquired: bool) -> None:
    """Release the place (if acquired) and cancel the reservation; a failure only logs what to run by hand."""
    pb2 = s.pb2
    steps = [("releasing", s.session.stub.ReleasePlace, pb2.ReleasePlaceRequest(placename=place))] if acquired else []
    if token is not None:
        steps.append(("cancelling the reservation of", s.session.stub.CancelReservation,
                      pb2.CancelReservationRequest(token=token)))
    for what, rpc, request in steps:
        try:
            s.call(f"{what} {place}", rpc, request)
        except RemoteError as exc:
            log.warning("%s; release it with: labgrid-client -x %s -p %s release", exc, s.address, place)


@contextlib.contextmanager
def acquired_place(place: str, coordinator: str | None = None, wait_s: float = 900.0) -> Iterator[PlaceAddress]:
    """Reserve and acquire labgrid place ``place`` (waiting up to ``wait_s``), yield its SSH address, and
    release it on the way out, also when the block raises."""
    s = _Session(coordinator_address(coordinator))
    token, acquired = None, False
    try:
        s.place(place)
        token = _reserve(s, place, wait_s)
        s.call(f"acquiring {place}", s.session.stub.AcquirePlace, s.pb2.AcquirePlaceRequest(placename=place))
        acquired = True
        log.info("acquired labgrid place %s", place)
        yield _network_service(s, place)
    finally:
        _release(s, place, token, acquired)
        s.close()


@contextlib.contextmanager
def reachable(board: Board, wait_s: float) -> Iterator[Board]:
    """``board`` as it is, or, when it names a labgrid place, with the place acquired for the block and its
    NetworkService's address filled in (the inventory's user, if given, wins over the service's)."""
    if not board.place:
        yield board
        return
    with acquired_place(board.place, board.coordinator, wait_s) as address:
        yield replace(board, host=address.host, user=board.user or address.user, port=address.port)


def place_holder(place: str, coordinator: str | None = None) -> dict[str, Any]:
    """Who holds ``place`` in labgrid (``boards who``): ``{"held": bool, "holder": "host/user" | None}``."""
    s = _Session(coordinator_address(coordinator))
    try:
        acquired = s.place(place).acquired
    finally:
        s.close()
    return {"held": acquired is not None, "holder": acquired}
