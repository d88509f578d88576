"""Lead traders' history from the chain (issue 14 section 1): read a wallet's transactions
(:mod:`xorj.traders.history`), judge each (:func:`xorj.domain.trader_history.parse_swap`), value the
swaps (:mod:`xorj.traders.pricing`), store them with a cursor (:mod:`xorj.ledger.trader_swaps`) and turn
them into the Trust Score's ``wallet,timestamp,profit_usd,volume_usd`` rows (:mod:`xorj.traders.backfill`)."""
