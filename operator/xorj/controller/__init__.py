"""The operator: TradingStrategy and CopyTrade custom resources, reconciled by kopf.

- ``models``    pydantic models of both specs and statuses: the single source of the CRDs and of the
                operator's own validation (CEL rules declared once, enforced by both).
- ``crdgen``    CRD YAML generated from the models (``xorj crds``; ``--check`` fails on drift).
- ``desired``   pure builders of a strategy's executor Deployment, ConfigMap, Service and PDB.
- ``status``    pure computation of both statuses (conditions, trade counts, ledger mirror).
- ``freshness`` watch-freshness tracking behind the liveness probe.
- ``reconcile`` the I/O around the pure modules: apply children, admit trades, mirror statuses.
- ``handlers``  thin kopf registrations (one reconcile routine per kind) and start-up/shut-down.
- ``kube``, ``runtime``, ``settings``, ``metrics``: the API client, shared state, settings, metrics.

Run with ``xorj operator`` (see ``xorj.commands.operator``).
"""
