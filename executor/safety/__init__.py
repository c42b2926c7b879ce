"""Safety: the stages an order passes besides its own admission, and what they write down.

* ``risk``: pre-trade limits and the day's counters (RiskGate);
* ``halt``: the account's kill switch (HaltSwitch);
* ``audit``: the audit trail of commands, decisions, replies and broker events (AuditTrail);
* ``auth``: signed commands and the Redis credentials the executor connects with (CommandAuth, AuthPolicy);
* ``stage``: how the engine drives the first three (Safety).

Each module is imported by its own path (``executor.safety.risk`` ...): nothing is re-exported here.
"""
