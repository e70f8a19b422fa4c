"""Settings of the Picsart emulator: a validated, immutable pydantic model.

The model is frozen: `PicsartEmulator.reconfigure` swaps in a whole new, validated instance, so a
request handler that took a reference keeps a consistent view for the whole request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ResetTimeFormat = Literal["epoch_ms", "epoch_s", "seconds"]
"""How `X-Picsart-RateLimit-Reset-Time` is written.

- ``epoch_ms``: UTC epoch milliseconds (what Picsart's guide documents; the default),
- ``epoch_s``: UTC epoch seconds,
- ``seconds``: whole seconds from now until the reset, at least 1 (what the TypeScript SDK assumes).
"""

# Values that `from_env` reads as "no seed" rather than as an integer.
_NONE_WORDS = frozenset({"none", "null"})


class EmulatorSettings(BaseModel):
    """Behaviour of the emulator: credentials, limits, answer formats and injected faults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: str = Field(default="local-test-key", min_length=1)
    quota: int = Field(default=500, ge=1, description="Requests per fixed window.")
    window_seconds: float = Field(default=60.0, gt=0.0, description="Length of the quota window.")
    spike_per_second: int = Field(default=300, ge=1, description="Requests per wall-clock second.")
    credits: int = Field(default=1_000_000, ge=0, description="Starting balance; one per successful call.")
    reset_time_format: ResetTimeFormat = "epoch_ms"
    max_input_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    max_upscale_input_pixels: int = Field(default=4_194_304, ge=1)
    latency_ms: float = Field(default=0.0, ge=0.0, description="Added processing time per tool call.")
    latency_spread_ms: float = Field(
        default=0.0, ge=0.0, description="Up to this much more processing time per call, drawn uniformly."
    )
    async_processing_seconds: float = Field(
        default=1.0, ge=0.0, description="How long an asynchronous job (Prefer: respond-async) stays in progress."
    )
    fault_500_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    fault_503_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    drop_connection_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    slow_answer_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    slow_answer_seconds: float = Field(default=35.0, ge=0.0)
    bare_429_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    result_fault_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Share of result downloads answered 503, as a CDN can fail."
    )
    result_lifetime_seconds: float = Field(
        default=86_400.0,
        gt=0.0,
        description="How long a result URL is served: about 24 hours at Picsart (FACTS.md, Responses).",
    )
    seed: int | None = None

    @classmethod
    def from_env(cls, prefix: str = "PICSART_EMULATOR_", environ: Mapping[str, str] | None = None) -> EmulatorSettings:
        """Build settings from environment variables named ``prefix + FIELD_NAME_IN_CAPITALS``.

        Unset or empty variables keep the default. Other variables with the prefix are ignored,
        because neighbouring tools share it (e.g. a URL variable pointing at the emulator).
        Raises `pydantic.ValidationError` on invalid values.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = env.get(prefix + name.upper())
            if raw is None or raw.strip() == "":
                continue
            raw = raw.strip()
            if name == "seed" and raw.lower() in _NONE_WORDS:
                values[name] = None
            else:
                # Strings are coerced by pydantic's lax mode ("500" -> 500, "0.5" -> 0.5).
                values[name] = raw
        return cls.model_validate(values)
