"""Fan-in and fan-out of a weight shape: the one place that knows the layouts.

Three conventions are in use, and this module resolves all of them; nothing
else in fastinit computes a fan.

Keras, ``(..., in, out)``
    A dense kernel is ``(in, out)``; a convolution kernel is
    ``(*spatial, in, out)`` and its receptive field is the product of the
    leading (spatial) dimensions. A vector ``(n,)`` has ``fan_in = fan_out = n``
    and a scalar has fans ``1``. ``input_axes`` / ``output_axes`` (given
    together) replace the rule by products over those axes.
PyTorch, ``(out, in, *kernel)``
    ``nn.Linear.weight`` is ``(out, in)``; ``nn.ConvNd.weight`` is
    ``(out, in / groups, *kernel)`` and the receptive field is the product of
    the trailing dimensions. Fewer than two dimensions is an error.
JAX, ``in_axis`` / ``out_axis`` / ``batch_axis``
    Each is an axis or a sequence of axes; every other axis belongs to the
    receptive field. With the defaults (``-2``, ``-1``, ``()``) this is the
    Keras rule for two or more dimensions, and an error below that.

:func:`denominator` turns ``(fan_in, fan_out)`` into the ``n`` of
``variance = scale / n`` for a mode (``fan_in``, ``fan_out``, ``fan_avg``,
``fan_geo_avg``), never below 1 (Keras' rule, which only matters for empty
shapes).

Examples
--------
>>> keras_fans((3, 3, 16, 32))        # a Keras Conv2D kernel
(144, 288)
>>> torch_fans((32, 16, 3, 3))        # the same layer in PyTorch
(144, 288)
>>> jax_fans((3, 3, 16, 32))
(144.0, 288.0)
>>> jax_fans((8, 3, 3, 16, 32), batch_axis=0)
(144.0, 288.0)
>>> denominator(144, 288, "fan_avg")
216.0
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, SupportsIndex, Union, cast

from ._checks import check_integer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._typing import Mode

    #: One axis or several (JAX's in_axis / out_axis / batch_axis; Keras' input_axes).
    Axes = Union[SupportsIndex, Sequence[SupportsIndex]]

__all__ = ["MODES", "keras_fans", "torch_fans", "jax_fans", "denominator", "check_axes"]

#: The modes of variance scaling: which fan divides the scale.
MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")


def keras_fans(shape: Sequence[int], input_axes: Sequence[SupportsIndex] | None = None,
               output_axes: Sequence[SupportsIndex] | None = None) -> tuple[int, int]:
    """``(fan_in, fan_out)`` as integers, by Keras 3's rule (``keras.src.initializers.compute_fans``).

    Parameters
    ----------
    shape : tuple of int
        Kernel shape in Keras layout ``(..., in, out)``.
    input_axes, output_axes : sequence of int, optional
        When both are given, the fans are the products of those dimensions.

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> keras_fans(()), keras_fans((7,)), keras_fans((3, 5))
    ((1, 1), (7, 7), (3, 5))
    >>> keras_fans((4, 5, 6), input_axes=[0, 1], output_axes=[2])
    (20, 6)
    """
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return (math.prod(shape[_axis(a, len(shape), "input_axes")] for a in input_axes),
                math.prod(shape[_axis(a, len(shape), "output_axes")] for a in output_axes))
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def torch_fans(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` by ``torch.nn.init._calculate_fan_in_and_fan_out``.

    Parameters
    ----------
    shape : tuple of int
        Weight shape in PyTorch layout ``(out, in, *kernel)``, at least 2-D.

    Examples
    --------
    >>> torch_fans((64, 128))            # nn.Linear(128, 64).weight
    (128, 64)
    """
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for a tensor with fewer "
                         f"than 2 dimensions. Received: shape={shape}")
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def jax_fans(shape: Sequence[int], in_axis: Axes = -2, out_axis: Axes = -1,
             batch_axis: Axes = ()) -> tuple[float, float]:
    """``(fan_in, fan_out)`` as floats, by ``jax.nn.initializers`` (``_compute_fans``).

    Axes outside ``in_axis``, ``out_axis`` and ``batch_axis`` form the
    receptive field.

    Examples
    --------
    >>> jax_fans((5, 3, 3, 16), in_axis=-1, out_axis=0)   # an (out, kh, kw, in) kernel
    (144.0, 45.0)
    """
    shape = tuple(shape)
    if isinstance(in_axis, numbers.Integral) and in_axis == -2 and len(shape) <= 1:
        raise ValueError(f"Can't compute input and output sizes of a {len(shape)}-dimensional "
                         "weights tensor with the default in_axis: it must be at least 2-D, "
                         f"or give in_axis explicitly. Received: shape={shape}")
    in_size = _size(shape, in_axis, "in_axis")
    out_size = _size(shape, out_axis, "out_axis")
    batch_size = _size(shape, batch_axis, "batch_axis")
    total = math.prod(shape)
    if total == 0:
        # JAX divides by the sizes; with an empty axis that has no value, and
        # nothing is generated anyway.
        return 0.0, 0.0
    receptive_field = total / in_size / out_size / batch_size
    return in_size * receptive_field, out_size * receptive_field


def denominator(fan_in: float, fan_out: float, mode: Mode) -> float:
    """The ``n`` in ``variance = scale / n`` for ``mode`` (at least 1).

    Examples
    --------
    >>> [denominator(4, 9, m) for m in MODES]
    [4.0, 9.0, 6.5, 6.0]
    """
    if mode == "fan_in":
        n = fan_in
    elif mode == "fan_out":
        n = fan_out
    elif mode == "fan_avg":
        n = (fan_in + fan_out) / 2.0
    elif mode == "fan_geo_avg":
        n = math.sqrt(fan_in * fan_out)
    else:
        raise ValueError(f"mode must be one of {', '.join(MODES)}. Received: mode={mode!r}")
    return max(1.0, float(n))


def check_axes(value: object, name: str, allow_empty: bool = True) -> int | list[int]:
    """An axis or sequence of axes as given (int or list of int); ValueError otherwise.

    Used to validate configurations eagerly; the axes are checked against a
    shape only when one is known.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (list, tuple)):
        if all(isinstance(a, numbers.Integral) and not isinstance(a, bool) for a in value):
            if value or allow_empty:
                return [int(a) for a in value]
    raise ValueError(f"{name} must be an integer or a sequence of integers. "
                     f"Received: {name}={value!r}")


def _axis(a: object, ndim: int, name: str) -> int:
    axis: int = check_integer(a, f"{name} entry", ValueError)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name} entry {axis} is out of range for a {ndim}-dimensional shape. "
                         f"Received: {name} entry {axis}")
    return axis


def _size(shape: tuple[int, ...], axes: Axes, name: str) -> int:
    if isinstance(axes, numbers.Integral):
        return shape[_axis(axes, len(shape), name)]
    sequence = cast("Sequence[SupportsIndex]", axes)   # not an Integral: a sequence
    return math.prod(shape[_axis(a, len(shape), name)] for a in sequence)
