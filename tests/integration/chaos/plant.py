"""Misbehaviour planted by test experiments (a python provider of their method), in a scratch ledger
named by XORJ_CHAOS_ENV: what a broken executor would leave behind."""

from __future__ import annotations

import uuid

import psycopg

from xorj.chaos.target import resolve


def orphan(configuration=None) -> int:
    """A PENDING trade nobody claimed for five minutes (not one of this run's trades)."""
    target = resolve(configuration)
    with psycopg.connect(target.ledger_dsn, autocommit=True) as conn:
        return conn.execute(
            """INSERT INTO trades (strategy, vault, lead_signature, lead_trader, input_mint, output_mint, amount, created_at)
               VALUES (%s, %s, %s, 'lead', 'in', 'out', 10, now() - interval '5 minutes') RETURNING id""",
            (target.strategy, target.vault, f"planted-{uuid.uuid4().hex}")).fetchone()[0]


def second_landed_attempt(configuration=None) -> int:
    """A trade with two LANDED attempts: the double fill exactly-once forbids."""
    target = resolve(configuration)
    with psycopg.connect(target.ledger_dsn, autocommit=True) as conn:
        trade_id = conn.execute(
            """INSERT INTO trades (strategy, vault, lead_signature, lead_trader, input_mint, output_mint, amount)
               VALUES (%s, %s, %s, 'lead', 'in', 'out', 10) RETURNING id""",
            (target.strategy, target.vault, f"planted-{uuid.uuid4().hex}")).fetchone()[0]
        for n in (1, 2):
            conn.execute("""INSERT INTO attempts (trade_id, attempt_no, signature, raw_tx, last_valid_block_height,
                                                  slippage_bps, outcome, resolved_at)
                            VALUES (%s, %s, %s, 'raw', 100, 50, 'LANDED', now())""",
                         (trade_id, n, f"planted-{uuid.uuid4().hex}"))
        return trade_id
