"""TradingStrategy: its kopf handlers (:mod:`.handlers`), its reconciler (:mod:`.reconcile`) and the
pure builders of its children, the executor Deployment, ConfigMap, Service and PDB (:mod:`.desired`)."""
