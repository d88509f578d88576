"""TraderPool: its kopf handlers (:mod:`.handlers`) and its scorer (:mod:`.reconcile`), around the pure
ranking of :mod:`xorj.domain.trader_pool`, with the pure builder of its status (:mod:`.status`)."""
