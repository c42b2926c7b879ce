"""Exceptions of the producer library, grouped by what the caller can do about them.

    XtqueueError                      base of everything a command can end in
    ├── OutcomeUnknown                may or may not have been executed: ask (query_outcome), never resend anew
    │   └── CommandTimeout            no reply within the wait timeout
    ├── Rejected                      nothing was placed / done
    │   ├── Expired                   the deadline passed before the executor reached it
    │   ├── InvalidRequest            malformed or invalid (also unknown_command, unsupported_version)
    │   ├── BrokerRejected            the broker (MiniQMT / counter / exchange) refused it
    │   ├── BrokerUnavailable         MiniQMT is not connected
    │   ├── RiskRejected              a pre-trade risk limit refused it
    │   ├── Halted                    the account's kill switch is on
    │   ├── Unauthorized              signature or Redis permission missing / wrong
    │   ├── Conflict                  client order id reused with different order fields
    │   ├── NotFound                  the order to cancel / query does not exist
    │   ├── ExecutorNotRunning        no executor's heartbeat for the account: nothing was sent (raised locally)
    │   └── RedisUnavailable          Redis could not be connected to: the command never left (raised locally)
    └── ExecutorError                 the executor failed internally; the command was not executed

    ClientClosed (RuntimeError)       misuse: the client was closed (outside the tree)

Every error carries ``command_id``, ``client_order_id``, ``code`` (a ``contract.ErrorCode`` or None for errors
raised locally without one) and ``message``; ``order_id``, ``broker_message``, ``broker_error_id`` and ``details``
are filled where the executor sent them.
"""

from __future__ import annotations

from typing import Any

from .contract import ErrorCode, ErrorInfo


class XtqueueError(Exception):
    """Base of every error a command can end in."""

    def __init__(self, message: str, *, code: ErrorCode | None = None, command_id: str | None = None,
                 client_order_id: str | None = None, order_id: int | None = None,
                 broker_message: str | None = None, broker_error_id: int | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.command_id = command_id
        self.client_order_id = client_order_id
        self.order_id = order_id
        self.broker_message = broker_message
        self.broker_error_id = broker_error_id
        self.details = details or {}

    def __str__(self) -> str:
        parts = [self.message]
        if self.broker_message:
            parts.append(f"broker: {self.broker_message}")
        ids = [f"{name}={value}" for name, value in (("code", self.code.value if self.code else None),
                                                     ("command_id", self.command_id),
                                                     ("client_order_id", self.client_order_id),
                                                     ("order_id", self.order_id)) if value]
        if ids:
            parts.append(f"({', '.join(ids)})")
        return " ".join(parts)


class OutcomeUnknown(XtqueueError):
    """The command may or may not have been executed: ask with query_outcome, never resend with a new id."""


class CommandTimeout(OutcomeUnknown):
    """No reply arrived within the wait timeout; for an order the deadline has passed unless a shorter timeout was given."""


class Rejected(XtqueueError):
    """Nothing was placed or done; the request may be corrected and sent again."""


class Expired(Rejected):
    """The deadline passed before the executor reached the order, so it was not placed."""


class InvalidRequest(Rejected):
    """The request was malformed, failed validation, or is not understood by this executor."""


class BrokerRejected(Rejected):
    """The broker (MiniQMT, the counter or the exchange) refused the request."""


class BrokerUnavailable(Rejected):
    """MiniQMT is not connected, so the executor refused the request without sending it."""


class RiskRejected(Rejected):
    """A pre-trade risk limit refused the order."""


class Halted(Rejected):
    """The account's kill switch is on, so trading commands are refused."""


class Unauthorized(Rejected):
    """The command's signature or the Redis user's permissions were missing or wrong."""


class Conflict(Rejected):
    """The client order id was used before with different order fields; nothing new was placed."""


class NotFound(Rejected):
    """The order to cancel or query does not exist."""


class ExecutorNotRunning(Rejected):
    """No executor's heartbeat was found for the account before sending (``require_executor=True``), so nothing was sent."""


class RedisUnavailable(Rejected):
    """Every attempt failed to open a connection to Redis (refused, unknown host, connect timeout), so nothing was sent."""


class ExecutorError(XtqueueError):
    """The executor failed internally (a bug) and did not execute the command."""


class ClientClosed(RuntimeError):
    """The client was closed: it cannot send commands, and commands still waiting end with this error."""

    def __init__(self, message: str = "the client is closed", *, command_id: str | None = None,
                 client_order_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.command_id = command_id
        self.client_order_id = client_order_id


# Most specific class per code. test_exceptions fails on any ErrorCode missing here.
ERROR_CLASSES: dict[ErrorCode, type[XtqueueError]] = {
    ErrorCode.INVALID_REQUEST: InvalidRequest,
    ErrorCode.UNKNOWN_COMMAND: InvalidRequest,
    ErrorCode.UNSUPPORTED_VERSION: InvalidRequest,
    ErrorCode.ID_AHEAD: InvalidRequest,
    ErrorCode.EXPIRED: Expired,
    ErrorCode.CONFLICT: Conflict,
    ErrorCode.BROKER_REJECTED: BrokerRejected,
    ErrorCode.BROKER_UNAVAILABLE: BrokerUnavailable,
    ErrorCode.OUTCOME_UNKNOWN: OutcomeUnknown,
    ErrorCode.RISK_REJECTED: RiskRejected,
    ErrorCode.HALTED: Halted,
    ErrorCode.UNAUTHORIZED: Unauthorized,
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.INTERNAL: ExecutorError,
}


def error_from_info(info: ErrorInfo, *, command_id: str | None = None,
                    client_order_id: str | None = None) -> XtqueueError:
    """The exception for an error reply. An unmapped code is treated as OutcomeUnknown, the one safe guess."""
    cls = ERROR_CLASSES.get(info.code, OutcomeUnknown)
    return cls(info.message, code=info.code, command_id=command_id, client_order_id=client_order_id or None,
               order_id=info.order_id, broker_message=info.broker_message, broker_error_id=info.broker_error_id,
               details=dict(info.details))
