"""Names vulture's dead-code gate (tests/unit/test_static_gates.py) must not report: each is used by
name by a library or a wire format, not by a Python call vulture can see. The gate reads the package
with the tests (a test is a real caller) and the chaos experiments' `func` names; anything else it
finds unused in operator/xorj is dead and goes. Written in vulture's whitelist form (`_.name` is an
attribute or method of any object); never imported."""

# kopf reads these settings by attribute after the startup handler sets them (controller/handlers.py).
_.finalizer
_.progress_storage
_.diffbase_storage
_.request_timeout
_.disabled
_.mandatory

# PyYAML's Dumper calls ignore_aliases by name (controller/crdgen.py).
_.ignore_aliases

# psycopg reads Connection.read_only when the session begins (kubectl/ledger.py).
_.read_only

# pydantic wire models: serialised by alias into the swap API's request, or parsed from its answer
# (chain/jupiter.py); a field the code does not read still belongs to the protocol.
user_public_key
quote_response
wrap_and_unwrap_sol
dynamic_compute_unit_limit
as_legacy_transaction
prioritization_fee_lamports
compute_unit_limit

# Record fields: rows and answers mapped whole into dataclasses, and shown by repr, logs or JSON
# (asdict); a field only written keeps the record complete.
compute_unit_price  # chain/swap_check.py MessageFacts
index_in_block  # devenv/chain/node.py, the simulator's transaction record
dropped_reason  # devenv/chain/node.py SubmitOutcome
old_version  # devenv/toolchain/gomod.py, a go.mod `replace` line parsed whole
price_usd  # domain/leaders.py MarketState
updated_at  # domain/trades.py, ledger/lead_signals.py: row columns
accepted_at  # ledger/lead_signals.py
projected_at  # ledger/lead_signals.py
event_id  # ledger/records.py
delivered_at  # ledger/records.py

# CRD schema members: the models generate the CRDs (controller/crdgen.py), so a status field or enum
# member is part of the published API even where the operator never reads it back.
UNKNOWN  # controller/models.py ConditionStatus, the Kubernetes condition status "Unknown"
ready_replicas  # controller/models.py, the executor Deployment's counts in the CopyTrade status
available_replicas

# Chaos Toolkit passes the experiments' `configuration` keys to chaos/target.py Target by name.
chain_admin_url

# The catalogue of hostile swap answers that devenv/chain/faults.py's docstring points to.
HOSTILE_MODES

# watcher/sources.py: the Protocol a signal source implements (typing only; docs/design.md).
SignalSource
