"""Numbers as people read them: plain digits with units, never 1.23e+03 (the verdict sentences,
the tables and the charts all format through here)."""

from __future__ import annotations

import math
from typing import Optional

Number = Optional[float]


def fmt_num(v: Number) -> str:
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return "n/a"
    a = abs(v)
    if a >= 100 or a == 0:
        return f"{v:,.0f}"
    if a >= 10:
        text = f"{v:.1f}"
    elif a >= 1:
        text = f"{v:.2f}"
    else:
        text = f"{v:.3f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return text or "0"


def fmt_value(v: Number, kind: str) -> str:
    """A table cell: kind is "int", "pct" (a fraction shown in %), "money", "bytes", "bytes/s",
    "rate" (req/s), or else 2 decimals."""
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return "n/a"
    if kind == "int":
        return f"{v:.0f}"
    if kind == "pct":
        return f"{v * 100:.2f}%"
    if kind == "money":
        return f"{v:.4f}"
    if kind in ("bytes", "bytes/s"):
        return fmt_bytes(v) + ("/s" if kind == "bytes/s" else "")
    if kind == "rate":  # req/s as people write them: 691, 24.4, 5.5
        return fmt_num(v)
    return f"{v:.2f}"


def fmt_bytes(v: float) -> str:
    """Bytes in SI units (kB = 1000 bytes, as network rates are told): 0 B, 950 B, 12.3 kB, 4.80 MB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(v) >= size:
            return f"{fmt_num(v / size)} {unit}"
    return f"{v:.0f} B"


def ratio(a: Number, b: Number) -> Number:
    if a is None or b is None or a == 0:
        return None
    return b / a


def fmt_ratio(r: Number) -> str:
    return "n/a" if r is None else f"{r:.2f}x"
