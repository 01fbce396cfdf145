"""Checks of arguments shared by the layers (a bad value is named in the error)."""

import operator

import numpy as np


def check_uint64(value, name, error=TypeError):
    """``value`` as an int in ``[0, 2**64)`` (seeds, streams).

    ``error`` is raised for a non-integer (bools included), ValueError for an
    integer out of range; both messages end with ``Received: name=value``.
    """
    if isinstance(value, (bool, np.bool_)):
        raise error(f"{name} must be an integer. Received: {name}={value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise error(f"{name} must be an integer. Received: {name}={value!r}") from None
    if not 0 <= value < 1 << 64:
        raise ValueError(f"{name} must lie in [0, 2**64). Received: {name}={value}")
    return value
