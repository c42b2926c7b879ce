"""Intake: one stream entry -> a decoded command, or the reason it must not be executed.

Checks, in order: the contract (decode), where the answer may go (reply_to: one of the sender's reply streams), the
account, the strategy named against the stream's owner, the entry id's time against the Redis server clock, the
signature (executor/safety/auth.py, when configured), and the delivery count. Anything refused here is answered
(when it can be) and dead-lettered; nothing of it reaches the broker.
"""

from __future__ import annotations

from executor.config import ExecutorSettings
from executor.jobs import Job, Outcome, dead, error
from executor.safety.auth import CommandAuth
from producer_lib import contract as c

E = c.ErrorCode


class Intake:
    def __init__(self, settings: ExecutorSettings, keys: c.Keys, auth: CommandAuth | None) -> None:
        self.settings = settings
        self.keys = keys
        self.auth = auth

    def decode(self, job: Job) -> Outcome | None:
        """Fill job.env / job.cmd; return an Outcome when the entry must not be executed."""
        entry = job.entry
        try:
            job.env, job.cmd = c.decode_command(entry.fields)
        except c.ContractError as err:
            job.env = _partial_envelope(err)
            return dead(err.code, err.message, details=err.details)
        env = job.env
        keys = self.keys
        owner = entry.owner  # the sender: only its ACL user can write this stream (contract.Keys.command_stream)
        if keys.is_reply_stream(env.reply_to) and not keys.is_reply_stream(env.reply_to, owner):
            # Not answered (Settler.finish): no strategy makes the executor write into another strategy's replies.
            return dead(E.UNAUTHORIZED, f"reply_to {env.reply_to[:120]!r} is not a reply stream of strategy "
                                        f"{owner!r}, whose command stream this is")
        if not keys.is_reply_stream(env.reply_to):
            # Choice: a command whose answer cannot be delivered is not executed (its sender could never learn
            # the outcome); nothing is written to a key that is not one of this account's reply streams.
            return dead(E.INVALID_REQUEST, f"reply_to {env.reply_to[:120]!r} is not a reply stream of account "
                                           f"{keys.account}")
        if env.account != keys.account:
            return dead(E.INVALID_REQUEST, f"command for account {env.account!r} on the stream of "
                                           f"{keys.account!r}; not executed")
        if env.strategy not in ("", owner):
            return dead(E.UNAUTHORIZED, f"the command names strategy {env.strategy[:64]!r} but was written to the "
                                        f"command stream of {owner or 'no strategy'!r}; nothing was done")
        if isinstance(job.cmd, c.PlaceOrder) and job.cmd.strategy != owner:
            job.cmd = job.cmd.model_copy(update={"strategy": owner})  # the risk buckets and fingerprint use it
        if entry.ahead_ms > c.ENTRY_ID_AHEAD_TOLERANCE_MS:
            # The producer chose this id (XADD <id>): its time is no deadline. Never trusted; refused.
            return dead(E.ID_AHEAD, f"stream entry id {entry.stream_id} is {entry.ahead_ms} ms ahead of the Redis "
                                    "server clock: ids are Redis's to give (XADD *); nothing was done",
                        details={"id_ms": entry.id_ms, "server_now_ms": entry.read_ms})
        if self.auth is not None:  # signed commands: refused before anything is done with them
            refusal = self.auth.check(entry.fields, env, entry.stream_id, entry.deliveries, owner=owner)
            if refusal is not None:
                return dead(E.UNAUTHORIZED, refusal)
        if entry.deliveries > self.settings.max_deliveries:
            # Choice: too many deliveries means it crashed or stalled executors before. It is not executed again;
            # for an order that may have been placed by an earlier delivery the answer is outcome_unknown.
            msg = f"delivered {entry.deliveries} times without an answer; not executed again"
            code = E.OUTCOME_UNKNOWN if isinstance(job.cmd, c.PlaceOrder) else E.INTERNAL
            return dead(code, msg + ("; ask with query_outcome" if code is E.OUTCOME_UNKNOWN else ""),
                        reason="max_deliveries")
        return None

    @staticmethod
    def unreadable() -> Outcome:
        """A decoding bug (not a bad entry): the command was not executed."""
        return dead(E.INTERNAL, "the executor failed to read this command; it was not executed")


def _partial_envelope(err: c.ContractError) -> c.Envelope | None:
    """What was readable of a command that failed to decode, so the error reply can be routed."""
    try:
        return c.Envelope(version=c.PROTOCOL_VERSION, type=err.command_type, account="", command_id=err.command_id,
                          client_order_id=err.client_order_id, reply_to=err.reply_to, ttl_ms=0)
    except Exception:
        return None
