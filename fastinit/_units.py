"""Sizes on command lines and in specs: byte counts and element counts, parsed once."""

from __future__ import annotations

import math
import re

__all__ = ["parse_bytes", "parse_count"]

_BYTE_UNITS: dict[str, int] = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}
_LIMIT = 1 << 62  # no tensor, file or run is larger


def parse_bytes(value: int | str, name: str = "size") -> int:
    """A positive number of bytes from an int or a string such as ``"5GB"`` or ``"512MiB"``.

    Examples
    --------
    >>> parse_bytes("5GB"), parse_bytes("1.5 GiB"), parse_bytes(1024)
    (5000000000, 1610612736, 1024)
    """
    size: int | None
    if isinstance(value, bool):
        size = None
    elif isinstance(value, int):
        size = value
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(value))
        unit = m.group(2).upper() if m else None
        size = int(float(m.group(1)) * _BYTE_UNITS[unit]) if m and unit in _BYTE_UNITS else None
    if size is None:
        raise ValueError(f"{name} is a number of bytes or a string like '5GB'. "
                         f"Received: {name}={value!r}")
    if not 0 < size < _LIMIT:
        raise ValueError(f"{name} must be positive and below 2**62 bytes. "
                         f"Received: {name}={value!r}")
    return size


def parse_count(text: str | int, name: str = "size") -> int:
    """A positive element count from ``"100000000"``, ``"1e8"``, ``"100_000_000"`` or ``"2**20"``.

    Examples
    --------
    >>> parse_count("1e8"), parse_count("2**20"), parse_count("1_000")
    (100000000, 1048576, 1000)
    """
    s = str(text).strip().replace("_", "").replace(",", "")
    value = None
    if re.fullmatch(r"[0-9]+\*\*[0-9]+", s):
        base, exp = (int(p) for p in s.split("**"))
        if base <= 1 or exp * math.log2(base) < 62:  # never compute a huge power
            value = base ** exp
        else:
            value = _LIMIT
    elif re.fullmatch(r"[0-9]+", s):
        value = int(s) if len(s) < 20 else _LIMIT
    elif re.fullmatch(r"[0-9]*\.?[0-9]+(e[+-]?[0-9]+)?", s, re.I):
        f = float(s)
        if math.isfinite(f) and f == int(f):
            value = min(int(f), _LIMIT)
    if value is None:
        raise ValueError(f"{name} must be a whole number of elements such as 1e8 or "
                         f"100000000. Received: {name}={text!r}")
    if not 0 < value < _LIMIT:
        raise ValueError(f"{name} must be positive and below 2**62. Received: {name}={text!r}")
    return value
