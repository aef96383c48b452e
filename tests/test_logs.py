"""The service's log configuration keeps noise out and never hides a real error."""

from __future__ import annotations

import logging

import pytest

from modeldepot.logs import LogLevel, RefusedHandshakeIsNotAnError, log_config


def record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


@pytest.mark.parametrize("level", list(LogLevel))
def test_uvicorns_false_handshake_error_is_dropped_at_every_level(level: LogLevel) -> None:
    handler = log_config(level)["handlers"]["stderr"]
    assert "refused_handshake" in handler["filters"]
    refused = RefusedHandshakeIsNotAnError()
    false_alarm = record("uvicorn.error", logging.ERROR, refused.MESSAGE)
    assert refused.filter(false_alarm) is False
    other = record("uvicorn.error", logging.ERROR, "Exception in ASGI application")
    assert refused.filter(other) is True
    ours = record("modeldepot.api", logging.ERROR, refused.MESSAGE)
    assert refused.filter(ours) is True
