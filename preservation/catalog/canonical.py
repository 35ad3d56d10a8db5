"""Canonical JSON: sorted keys, no whitespace, UTF-8 text (not \\u-escaped), no NaN.

The catalogue engine stores every JSON column in this form (``make_engine`` passes
it as the ``json_serializer``), so a JSON value read back as text is already
canonical. The event chain relies on that: ``events.agents``/``events.objects`` are
plain JSON columns on both backends and hashed from their stored text.
"""

from __future__ import annotations

import json
from typing import Any

_encoder = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)


def canonical_json(value: Any) -> str:
    return _encoder.encode(value)
