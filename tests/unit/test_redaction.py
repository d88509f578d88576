"""Credentials in URLs never survive into error texts, Events, status or logs."""

from __future__ import annotations

import logging

import pytest

from xorj.redaction import RedactingFilter, redact_url, redact_urls


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("https://user:pa55@rpc.example:8899/v1", "pa55", "https://rpc.example:8899/v1"),
        ("https://rpc.example/?api-key=s3cr3t&commitment=confirmed", "s3cr3t",
         "https://rpc.example/?api-key=REDACTED&commitment=REDACTED"),
        ("http://tok3n@127.0.0.1:8080/swap/v1/quote?inputMint=A", "tok3n", "http://127.0.0.1:8080/swap/v1/quote"),
        ("postgresql://xorj:hunter2@db:5432/xorj?sslmode=verify-full", "hunter2", "postgresql://db:5432/xorj"),
        ("https://h/p#access_token=frag", "frag", "https://h/p#REDACTED"),
    ],
)
def test_redact_url_strips_userinfo_and_query_values(text: str, secret: str, kept: str) -> None:
    out = redact_url(text)
    assert secret not in out
    assert out.startswith(kept)


def test_redact_urls_rewrites_every_url_in_free_text_and_leaves_the_rest() -> None:
    text = ("RPC error calling https://rpc.example/?api-key=K1 (then https://a:K2@swap.example/quote): "
            "HTTP 401 Unauthorized; retry in 2s")
    out = redact_urls(text)
    assert "K1" not in out and "K2" not in out
    assert out == ("RPC error calling https://rpc.example/?api-key=REDACTED (then https://swap.example/quote): "
                   "HTTP 401 Unauthorized; retry in 2s")
    assert redact_urls("no url here: 42 bps") == "no url here: 42 bps"


def test_log_filter_redacts_message_extras_and_tracebacks() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "calling %s failed", ("https://h/?token=T1",), None)
    record.error = "timeout at https://u:T2@h/"
    try:
        raise RuntimeError("boom at https://h/?api-key=T3")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    rendered = logging.Formatter().format(record) + record.error
    for secret in ("T1", "T2", "T3"):
        assert secret not in rendered
