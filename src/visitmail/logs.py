"""Structured logging (structlog over the standard library) that never prints a secret.

Two guards: values under secret-looking keys are replaced, and token-shaped strings inside
any message are masked. Library logs (uvicorn, SQLAlchemy) pass through the same chain.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"pass|secret|token|authorization|cookie|api[_-]?key|credential", re.I)
_TOKEN_TEXT = re.compile(r"vm_[0-9a-f]{8}_[A-Za-z0-9_\-]+")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")
# Unsubscribe links are capabilities (and in their first format carried the address):
# the access log keeps the path, not the token.
_UNSUBSCRIBE_PATH = re.compile(r"(/api/v1/unsubscribe/)[^\s\"?#]+")
# A relay webhook's URL token names the organization's endpoint: kept out of the access log.
_RELAY_WEBHOOK_PATH = re.compile(r"(/api/v1/relay-webhooks/[A-Za-z0-9_-]{1,40}/)[^\s\"?#]+")
# The OAuth sign-in's callback carries the authorization code and the state in its query.
_OAUTH_CALLBACK_QUERY = re.compile(r"(/settings/smtp/oauth/callback\?)[^\s\"#]+")


def scrub_text(text: str) -> str:
    """Mask API tokens, bearer credentials, unsubscribe and relay webhook tokens and the
    OAuth callback's code and state inside free text."""
    text = _UNSUBSCRIBE_PATH.sub(r"\1" + REDACTED, text)
    text = _RELAY_WEBHOOK_PATH.sub(r"\1" + REDACTED, text)
    text = _OAUTH_CALLBACK_QUERY.sub(r"\1" + REDACTED, text)
    return _BEARER.sub(r"\1" + REDACTED, _TOKEN_TEXT.sub(REDACTED, text))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {
            k: (REDACTED if _SECRET_KEY.search(str(k)) else _scrub(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: redact by key name and by token shape."""
    for key in list(event_dict):
        if key == "event":
            event_dict[key] = _scrub(event_dict[key])
        elif _SECRET_KEY.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def _drop_color_message(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """uvicorn adds an ANSI-coloured duplicate of its message; keep logs plain."""
    event_dict.pop("color_message", None)
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    """Route structlog and stdlib logging through one redacting chain to stderr."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    # aiosmtpd (dev inbox) logs every command it reads; that is neither useful nor safe.
    logging.getLogger("mail.log").setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
