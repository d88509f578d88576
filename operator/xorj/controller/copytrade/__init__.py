"""CopyTrade: its kopf handlers (:mod:`.handlers`) and its reconciler (:mod:`.reconcile`: admission,
the status mirror, the TTL); its status is built by the pure :mod:`xorj.controller.status`."""
