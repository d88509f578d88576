"""TradingStrategy: its kopf handlers (:mod:`.handlers`), its reconciler (:mod:`.reconcile`), the pure
builders of its children, the executor Deployment, ConfigMap, Service and PDB (:mod:`.desired`), and
the pure builder of its status (:mod:`.status`)."""
