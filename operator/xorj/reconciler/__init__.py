"""Continuous reconciliation of the ledger with the chain: ``xorj reconcile`` and the operator's
periodic reconciler run the same pass (:func:`xorj.reconciler.service.reconcile_pass`)."""
