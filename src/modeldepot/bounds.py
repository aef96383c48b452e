"""Ranges a user could mean, for numbers that start-up settings and request bodies share.

Every number modeldepot accepts has a range written next to it (pydantic ``Field`` bounds
plus a ``description`` giving the unit and the range), so a value that passes validation
can never overflow a unit conversion or stall a loop (issue 8: ``1e300`` GB of quota
overflowed into every storage answer, ``1e-300`` MB/s failed every download). Numbers
used in one place keep their bounds there; the ones used by settings *and* requests are
defined once here, and so is the shape "0 means none, else at least *low*"
(:class:`ZeroOrBetween`), which plain ``ge``/``le`` cannot say.

Floats are finite: NaN and infinities (which Python's JSON parser and TOML accept) are
refused by every bound here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, GetCoreSchemaHandler, GetJsonSchemaHandler, Strict
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

MAX_RETRIES = 100
BANDWIDTH_MIN_MBPS = 0.01  # 10 kB/s: below that a 64 KiB read would wait minutes
BANDWIDTH_MAX_MBPS = 100_000  # 800 Gbit/s, beyond any link the machine could have


@dataclass(frozen=True)
class ZeroOrBetween:
    """``Annotated`` marker: the value is 0 (``zero_means``) or within ``[low, high]``.

    Validated after the number itself (so strictness and finiteness still apply) and
    published in the JSON schema as ``minimum 0, maximum high`` with the gap
    ``(0, low)`` excluded, so generated clients and schemathesis know the real range.
    """

    low: float
    high: float
    zero_means: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        inner = handler(source)
        return core_schema.no_info_after_validator_function(self._check, inner)

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.update(
            {
                "minimum": 0,
                "maximum": self.high,
                "not": {"exclusiveMinimum": 0, "exclusiveMaximum": self.low},
            }
        )
        return json_schema

    def _check(self, value: float) -> float:
        if value != 0 and not self.low <= value <= self.high:
            raise ValueError(
                f"must be 0 ({self.zero_means}) or between {_number(self.low)} and "
                f"{_number(self.high)}"
            )
        return value


def _number(value: float) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:g}"


MaxRetries = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_RETRIES,
        description=f"Failed attempts in a row (without new bytes) retried before the "
        f"download fails: 0 to {MAX_RETRIES}",
    ),
]

BandwidthLimitMbps = Annotated[
    float,
    Field(
        allow_inf_nan=False,
        description=f"10^6 bytes/s: 0 (unlimited) or {BANDWIDTH_MIN_MBPS:g} to "
        f"{BANDWIDTH_MAX_MBPS:,}",
    ),
    ZeroOrBetween(low=BANDWIDTH_MIN_MBPS, high=BANDWIDTH_MAX_MBPS, zero_means="unlimited"),
]


def whole_number(value: Any) -> Any:
    """A float with no fraction is that integer: JSON Schema's ``integer`` includes 11.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


StrictFloat = Annotated[float, Strict()]
"""A number in a request body: 11 or 11.5, never "11" or true."""

StrictMaxRetries = Annotated[MaxRetries, Strict(), BeforeValidator(whole_number)]
"""``MaxRetries`` in a request body: a JSON integer (11 or 11.0), never "11", 11.5 or true.
Give other body integers the same shape, their bounds *inside* the ``Annotated`` before
``Strict()`` and ``BeforeValidator(whole_number)`` (outside it, pydantic cannot publish
them as ``minimum``/``maximum``)."""
