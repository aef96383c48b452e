"""What ``modeldepot serve`` writes to its log, and how much.

The log is for people. By default (``info``): modeldepot's own messages, uvicorn's start and
stop lines, and one line per request (uvicorn's access log). Library chatter (alembic's
migration steps, httpx's request lines, huggingface_hub, asyncio) shows only at ``warning``
and above unless ``--log-level debug`` asks for everything. ``warning`` also drops the
access log. Every line has the same shape: time, level, logger, message.
"""

from __future__ import annotations

import logging.config
from enum import StrEnum
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Loggers of libraries that speak at INFO about things a user did not ask about.
LIBRARIES = (
    "alembic",
    "asyncio",
    "filelock",
    "httpcore",
    "httpcore2",
    "httpx",
    "httpx2",
    "huggingface_hub",
    "multipart",
    "python_multipart",
    "sqlalchemy",
    "websockets",
)


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class OneLinePerConnection(logging.Filter):
    """uvicorn logs a WebSocket as ``"WebSocket /ws" [accepted]`` and then, separately,
    ``connection open`` / ``connection closed`` without saying which: the first line is
    the one a person needs."""

    ROUTINE = frozenset({"connection open", "connection closed"})

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or record.getMessage() not in self.ROUTINE


class RefusedHandshakeIsNotAnError(logging.Filter):
    """uvicorn 0.54's WebSocket protocol logs "ASGI callable returned without completing
    handshake." as an ERROR even when the app answered the handshake with an HTTP refusal
    (401, 403, 429 through the "websocket.http.response" extension; uvicorn PR #3138):
    any client could write false ERROR lines at will. The refusal itself is in the access
    log; this line is dropped. (``/ws`` itself always completes its handshake.)"""

    MESSAGE = "ASGI callable returned without completing handshake."

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("uvicorn") and record.getMessage() == self.MESSAGE)


def log_config(level: LogLevel) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the service (also given to uvicorn)."""
    ours = level.value.upper()
    libraries = "DEBUG" if level is LogLevel.debug else max(ours, "WARNING", key=_rank)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": FORMAT}},
        "filters": {
            "one_line": {"()": OneLinePerConnection},
            "refused_handshake": {"()": RefusedHandshakeIsNotAnError},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "filters": ["refused_handshake"]
                + ([] if level is LogLevel.debug else ["one_line"]),
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": ours},
        "loggers": {
            "modeldepot": {"level": ours},
            # uvicorn's own loggers carry handlers by default: route them through ours.
            "uvicorn": {"handlers": [], "level": ours, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": ours, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": ours, "propagate": True},
            **{name: {"level": libraries} for name in LIBRARIES},
        },
    }


def configure(level: LogLevel) -> dict[str, Any]:
    """Apply ``log_config(level)`` to this process; returns it (for uvicorn)."""
    config = log_config(level)
    logging.config.dictConfig(config)
    return config


def _rank(name: str) -> int:
    return logging.getLevelNamesMapping()[name]
