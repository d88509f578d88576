"""Strip credentials from URLs inside free text, before the text reaches a log, an Event, a status
message or an alert.

An endpoint URL may carry a secret in two places: its userinfo (``https://user:token@host``) and its
query (``?api-key=...``; the executor adds the RPC API key there). Error texts of HTTP clients quote
the URL they called, so every message built from an exception goes through :func:`redact_urls`.
"""

from __future__ import annotations

import logging
import re

# scheme://authority[path][?query][#fragment], up to the first whitespace or quote-like delimiter
_URL = re.compile(r"""(?P<scheme>[A-Za-z][-+.A-Za-z0-9]*)://(?P<rest>[^\s'"<>`]+)""")
REDACTED = "REDACTED"


def redact_url(url: str) -> str:
    """One URL without its userinfo and with every query value replaced (names kept: they help)."""
    match = _URL.fullmatch(url)
    return _redact(match) if match else url


def _redact(match: re.Match[str]) -> str:
    scheme, rest = match.group("scheme"), match.group("rest")
    fragment = ""
    if "#" in rest:
        rest, _, fragment = rest.partition("#")
        fragment = "#" + REDACTED if fragment else ""
    query = ""
    if "?" in rest:
        rest, _, raw_query = rest.partition("?")
        parts = []
        for item in raw_query.split("&"):
            name, eq, _value = item.partition("=")
            parts.append(f"{name}={REDACTED}" if eq else REDACTED if name else "")
        query = "?" + "&".join(parts)
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = authority.rpartition("@")[2]
    return f"{scheme}://{authority}{slash}{path}{query}{fragment}"


def redact_urls(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url`."""
    return _URL.sub(_redact, text)


# attributes every LogRecord has: the rest are a call's ``extra`` fields
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """A handler filter that passes the formatted message and every string ``extra`` field through
    :func:`redact_urls` (an exception's text is where a URL with its key shows up)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_urls(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        for name, value in list(vars(record).items()):
            if name not in _RECORD_FIELDS and isinstance(value, str):
                setattr(record, name, redact_urls(value))
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = redact_urls(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_urls(record.exc_text)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to every handler of ``logger`` (the root logger by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
