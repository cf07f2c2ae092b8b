"""A notification subscriber that survives broken streams.

``Subscriber.run(handler)`` subscribes, calls ``handler(event)`` for each event in
order (a ``Notification`` message, or an ``int`` progress sequence), and remembers
the last sequence handled (its cursor). When the stream breaks (the service
restarts, the network drops) it waits (0.1 s, doubling up to ``max_backoff``) and
subscribes again after that cursor, so nothing handled is handed over twice and
nothing is skipped. It stops when the handler raises, when ``stop`` is set, when the
service refuses the subscription for good (``Refused``), or when the cursor fell
behind retention (``OutOfRange``, carrying the oldest sequence still available).

A durable subscriber (``start=Durable("name")``) acknowledges each notification and
progress after the handler returned; an acknowledgement that fails is sent again
before the next subscription.
"""

import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional, Union

import grpc
from google.rpc import error_details_pb2, status_pb2

from assignment.v1 import notifications_pb2, notifications_pb2_grpc

_PERMANENT = {
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNIMPLEMENTED,
}


@dataclass(frozen=True)
class Durable:
    """Start after the acknowledged cursor of the durable subscriber ``name``."""

    name: str


class OutOfRange(Exception):
    """The cursor is behind retention: what lay between is gone."""

    def __init__(self, cursor: Optional[int], oldest: int):
        super().__init__(f"cursor {cursor} is behind retention; the oldest available is {oldest}")
        self.cursor = cursor
        self.oldest = oldest


class Refused(Exception):
    """The service refused the subscription for a reason retrying cannot fix."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


Event = Union[notifications_pb2.Notification, int]
Start = Union[str, int, Durable]


class Subscriber:
    """A resumable subscription; see the module documentation.

    ``start``: ``"oldest"`` (default), ``"head"``, an ``int`` (after that
    sequence) or ``Durable(name)``. ``token``: bearer token, if the service
    requires one. ``channel``: an existing channel instead of ``target``.
    """

    def __init__(
        self,
        target: str,
        *,
        start: Start = "oldest",
        token: Optional[str] = None,
        credentials: Optional[grpc.ChannelCredentials] = None,
        notification_filter: Optional[notifications_pb2.NotificationFilter] = None,
        max_backoff: float = 10.0,
    ):
        if credentials is not None:
            self._channel = grpc.secure_channel(target, credentials)
        else:
            self._channel = grpc.insecure_channel(target)
        self._stub = notifications_pb2_grpc.NotificationServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._start = start
        self._filter = notification_filter
        self._max_backoff = max_backoff
        self._unacknowledged: Optional[int] = None
        self._call = None
        self.cursor: Optional[int] = None
        self.subscriptions = 0

    def close(self) -> None:
        """Ends a running ``run`` (from another thread) and the channel."""
        call = self._call
        if call is not None:
            call.cancel()
        self._channel.close()

    def run(self, handler: Callable[[Event], None], stop: Optional[threading.Event] = None) -> None:
        backoff = 0.1
        while stop is None or not stop.is_set():
            progressed = self._follow(handler, stop)
            if progressed:
                backoff = 0.1
            if stop is not None and stop.wait(backoff):
                return
            if stop is None:
                time.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    def _request(self) -> notifications_pb2.SubscribeRequest:
        request = notifications_pb2.SubscribeRequest(filter=self._filter)
        if self.cursor is not None:
            request.after_sequence = self.cursor
        elif isinstance(self._start, Durable):
            request.subscriber_name = self._start.name
        elif self._start == "head":
            request.start_at_head = True
        elif isinstance(self._start, int):
            request.after_sequence = self._start
        return request

    def _follow(self, handler, stop) -> bool:
        """One subscription; True when it handed anything over."""
        try:
            self._flush_acknowledgement()
        except grpc.RpcError:
            return False
        progressed = False
        self.subscriptions += 1
        self._call = self._stub.Subscribe(self._request(), metadata=self._metadata)
        try:
            for message in self._call:
                if stop is not None and stop.is_set():
                    self._call.cancel()
                    return progressed
                kind = message.WhichOneof("event")
                if kind == "notification":
                    event, sequence = message.notification, message.notification.sequence
                elif kind == "progress":
                    sequence = message.progress.sequence
                    if self.cursor is not None and self.cursor >= sequence:
                        continue
                    event = sequence
                else:
                    continue
                handler(event)
                self.cursor = sequence
                progressed = True
                if isinstance(self._start, Durable):
                    self._unacknowledged = sequence
                    self._flush_acknowledgement()
        except grpc.RpcError as error:
            self._raise_if_final(error)
        return progressed

    def _flush_acknowledgement(self) -> None:
        if not isinstance(self._start, Durable) or self._unacknowledged is None:
            return
        self._stub.AcknowledgeNotifications(
            notifications_pb2.AcknowledgeNotificationsRequest(
                subscriber_name=self._start.name, sequence=self._unacknowledged
            ),
            metadata=self._metadata,
        )
        self._unacknowledged = None

    def _raise_if_final(self, error: grpc.RpcError) -> None:
        code = error.code()
        if code == grpc.StatusCode.OUT_OF_RANGE:
            oldest = _oldest_available(error)
            if oldest is not None:
                raise OutOfRange(self.cursor, oldest) from error
            raise Refused(code, error.details()) from error
        if code in _PERMANENT:
            raise Refused(code, error.details()) from error
        # Anything else (UNAVAILABLE, CANCELLED by a restart, …): subscribe again.


def _oldest_available(error: grpc.RpcError) -> Optional[int]:
    """``oldest_available_sequence`` from the status's ErrorInfo, if any."""
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info) and "oldest_available_sequence" in info.metadata:
                return int(info.metadata["oldest_available_sequence"])
    return None
