"""The wire contract between strategies (producer_lib) and the executor: one package, imported by both sides.

Everything that crosses Redis is defined here: stream keys, the protocol version, envelope field names, every
command / reply / event model, and the one encode/decode pair for each direction. The executor imports this
package; it imports nothing from the executor and nothing from xtquant.

Layout of one account's keys (all share the hash tag ``{ACCOUNT}`` so they live in one Redis Cluster slot)::

    xtq:{ACCOUNT}:cmd:{STRATEGY}    stream   commands of one strategy (consumer group "executors"); only that
                                             strategy's ACL user may XADD to it, so the key names the sender
    xtq:{ACCOUNT}:cmd               stream   commands of clients without a strategy name (deployments without
                                             ACL users; no strategy's ACL user may write it)
    xtq:{ACCOUNT}:reply:{CLIENT}    stream   replies to one client instance (bounded, expiring); a client of a
                                             strategy is named "{STRATEGY}.{random}" (see new_client_id), so
                                             Redis ACLs can give each strategy its own reply streams
    xtq:{ACCOUNT}:events            stream   every broker callback and executor event, with a per-account seq
    xtq:{ACCOUNT}:dead              stream   commands that could not be processed, with the reason
    xtq:{ACCOUNT}:heartbeat         string   executor health (JSON), refreshed every second, expires
    xtq:{ACCOUNT}:lease             string   fencing lease of the active executor
    xtq:{ACCOUNT}:halt              stream   kill switch: its latest entry is the state (halted 1/0, reason);
                                             the entry id, assigned by Redis, is the state's version
    xtq:{ACCOUNT}:audit             stream   audit trail: every command, decision and broker result (long)

An entry's routing fields are plain text, so ``redis-cli XRANGE`` alone tells an operator what it is; its ``body``
field is msgpack. Field names are the constants of ``_keys`` (``F_*``). See docs/protocol.md for redis-cli sessions.
"""

# The contract is one package of one concept per module; this face re-exports every name, so callers keep
# writing ``contract.X``. Private helpers (``_field``, ``_text``, ...) are re-exported for the executor's use.
from producer_lib.contract._keys import (  # noqa: F401
    _ACCOUNT_RE, AUDIT_STREAM_MAXLEN, _CLIENT_ID_RE, CLIENT_ORDER_ID_MAX_BYTES, _COID_RE, COMMAND_GROUP,
    COMMAND_STREAM_MAXLEN, DEAD_LETTER_MAXLEN, DEFAULT_COMMAND_TTL_MS, DEFAULT_ORDER_TTL_MS,
    ENTRY_ID_AHEAD_TOLERANCE_MS, _ENVELOPE_NAMES, EVENT_STREAM_MAXLEN, F_ACCOUNT, F_BODY, F_CMD, F_COID, F_ERROR,
    F_ID, F_JSON_PREFIX, F_OK, F_ORDER_ID, F_REPLY_TO, F_SCALAR_PREFIX, F_SENT_MS, F_SEQ, F_SIG, F_STRATEGY, F_TS_MS,
    F_TTL_MS, F_TYPE, F_VERSION, HEARTBEAT_TTL_S, KEY_PREFIX, Keys, MAX_BODY_NESTING, MAX_ENTRY_BYTES,
    MAX_ENTRY_FIELDS, MAX_TTL_MS, new_client_id, new_client_order_id, new_command_id, now_ms, PROTOCOL_VERSION,
    REPLY_STREAM_MAXLEN, REPLY_STREAM_TTL_S, strategy_of_client_id, STRATEGY_PREFIX_RE, stream_id_ms,
    SUPPORTED_VERSIONS, validate_account, validate_client_order_id, XT_TEXT_MAX_CHARS,
)
from producer_lib.contract._enums import (  # noqa: F401
    _BUY_SIDES, _DEBT_SIDES, _DIRECT_SIDES, ErrorCode, FINAL_ORDER_STATUSES, FINAL_RANK, _HOLDING_SIDES, is_ahead,
    Market, order_rank, OrderStatus, OutcomeState, PRICE_TYPE_MARKETS, PriceType, Side, _SIDE_VALUES, STATUS_RANK,
    _TextEnum,
)
from producer_lib.contract._normalize import (  # noqa: F401
    normalize_code, normalize_side,
)
from producer_lib.contract._models import (  # noqa: F401
    AccountStatusResult, AssetReport, CancelAck, CancelOrder, ClientOrderId, Command, COMMAND_TYPES, ErrorInfo,
    _Model, OrderAck, OrderReport, OrdersResult, OutcomeResult, Ping, PingResult, PlaceOrder, PositionReport,
    PositionsResult, QueryAccountStatus, QueryAsset, QueryOrders, QueryOutcome, QueryPositions, QueryTrades,
    RESULT_TYPES, StockCode, TradeReport, TradesResult,
)
from producer_lib.contract._credit import (  # noqa: F401
    AssureReport, AssuresResult, CompactReport, CompactsResult, CREDIT_QUERY_TYPES, CreditDetailReport,
    CreditDetailResult, CreditSubjectReport, CreditSubjectsResult, QueryCreditAssure, QueryCreditDetail,
    QueryCreditSloCode, QueryCreditSubjects, QueryStkCompacts, SloCodeReport, SloCodesResult,
)
from producer_lib.contract._events import (  # noqa: F401
    AccountHalted, AccountResumed, AccountStatusChanged, AssetUpdated, BrokerConnected, BrokerDisconnected,
    CancelRejected, CancelResponded, Event, EVENT_TYPES, ExecutorStarted, ExecutorStopped, OrderFilled,
    OrderRejected, OrderResponded, OrderUpdated, PositionUpdated,
)
from producer_lib.contract._wire import (  # noqa: F401
    body_bytes, BodyTooDeep, bounded_fields, ContractError, decode_command, decode_envelope, decode_event,
    decode_reply, encode_command, encode_event, encode_reply, entry_size, EntryTooLarge, Envelope, EventMessage,
    _field, _json_text, _NESTED, _nested_fields, NestingTooDeep, pack, _path_of, _PATHS, _PATHS_MAX, _put_body,
    read_body, Reply, _scalar_text, _size, _text, unpack, unpack_body, _validation_message,
)
from producer_lib.contract._halt import (  # noqa: F401
    halt_entry, HALT_F_HALTED, HALT_F_REASON, HALT_MAXLEN, halt_state,
)
from producer_lib.contract._heartbeat import (  # noqa: F401
    decode_heartbeat, Heartbeat,
)
from producer_lib.ashare import CODE_RE  # noqa: F401  (the one definition of a code's shape: contract.CODE_RE)
