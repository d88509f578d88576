"""CopyTrade: its kopf handlers (:mod:`.handlers`), its reconciler (:mod:`.reconcile`: admission,
the status mirror, the TTL) and the pure builder of its status (:mod:`.status`)."""
