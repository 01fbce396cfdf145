"""Random initializers: normal, uniform, truncated normal, and variance scaling.

Following ``jax/_src/nn/initializers.py``, there is one general
:class:`VarianceScaling`; Glorot, He and LeCun are thin specialisations that
fix ``(scale, mode, distribution)``. Fans come from :mod:`fastinit._fans`;
values from :mod:`fastinit.random`. Seeds follow
:func:`fastinit.initializers.base.resolve_seed`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .. import _fans, random as fr
from . import _complex
from .._checks import check_real, shown
from .base import SeededInitializer
from . import _keras

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    from .._typing import (
        Array, Config, DistributionName, DTypeKind, InitializerSeed, Mode,
    )
    from .base import Request

    Axes = int | Sequence[int]

__all__ = [
    "TRUNCATED_NORMAL_STDDEV", "COMPLEX_TRUNCATED_NORMAL_STDDEV",
    "RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling",
    "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform", "LecunNormal",
]

#: The standard deviation of a standard normal truncated to ``[-2, 2]``:
#: ``sqrt(1 - 4 phi(2) / (2 Phi(2) - 1))`` with ``phi``, ``Phi`` the standard normal
#: density and distribution function. Variance scaling with a truncated normal
#: divides ``sqrt(scale / n)`` by it so that the values, after truncation at
#: two (pre-truncation) standard deviations, have standard deviation
#: ``sqrt(scale / n)`` (Keras 3, JAX and TensorFlow use the same constant).
TRUNCATED_NORMAL_STDDEV = 0.87962566103423978

#: JAX's counterpart for complex dtypes (``jax.nn.initializers.variance_scaling``):
#: the samples are a complex normal with ``E|z|^2 = 1`` whose modulus is truncated
#: at 2, divided by this constant. Kept for parity with JAX; note that the exact
#: root-mean-square modulus of that truncated distribution is
#: ``sqrt(1 - 4 e**-4 / (1 - e**-4)) = 0.96196...``, so these values have a
#: variance about 1.8% above ``scale / n``, exactly as JAX's do.
COMPLEX_TRUNCATED_NORMAL_STDDEV = 0.95311164380491208


class RandomNormal(SeededInitializer):
    """Normal values with mean ``mean`` and standard deviation ``stddev`` (Keras' ``RandomNormal``).

    Parameters
    ----------
    mean : float, default 0.0
    stddev : float, default 0.05
        ``>= 0``.
    seed : int or None
        See :func:`~fastinit.initializers.base.resolve_seed`.

    Examples
    --------
    >>> init = RandomNormal(stddev=1.0, seed=0)
    >>> init((4,))
    array([-1.6703726 , -0.66995764, -2.2075317 ,  0.02670374], dtype=float32)
    >>> bool((init((4,)) == init((4,))).all())           # same seed, same values
    True
    >>> init((4,), stream=1)                             # another stream, other values
    array([ 1.4215661 , -0.12305395,  0.32014555,  0.33665344], dtype=float32)
    """

    dtype_kind: ClassVar[DTypeKind] = "inexact"
    elementwise: ClassVar[bool] = True

    def __init__(self, mean: float = 0.0, stddev: float = 0.05,
                 seed: InitializerSeed = None) -> None:
        self.mean = check_real(mean, "mean")
        self.stddev = check_real(stddev, "stddev", minimum=0.0)
        super().__init__(seed)

    def generate(self, request: Request) -> Array:
        if request.is_complex:
            return _complex.normal(request, self._call_seed, self.mean, self.stddev)
        return request.draw(fr.normal_distribution(self.mean, self.stddev, request.dtype),
                            self._call_seed)

    def get_config(self) -> Config:
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class RandomUniform(SeededInitializer):
    """Uniform values on ``[minval, maxval)`` (Keras' ``RandomUniform``).

    Parameters
    ----------
    minval : float, default -0.05
    maxval : float, default 0.05
        ``minval <= maxval``.
    seed : int or None
        See :func:`~fastinit.initializers.base.resolve_seed`.

    Examples
    --------
    >>> RandomUniform(0.0, 1.0, seed=0)((2, 2))
    array([[0.19799882, 0.5607079 ],
           [0.08742666, 0.49807483]], dtype=float32)
    """

    elementwise: ClassVar[bool] = True

    def __init__(self, minval: float = -0.05, maxval: float = 0.05,
                 seed: InitializerSeed = None) -> None:
        self.minval = check_real(minval, "minval")
        self.maxval = check_real(maxval, "maxval")
        if self.minval > self.maxval:
            raise ValueError(f"minval must be <= maxval. "
                             f"Received: minval={minval}, maxval={maxval}")
        super().__init__(seed)

    def generate(self, request: Request) -> Array:
        return request.draw(fr.uniform_distribution(self.minval, self.maxval, request.dtype),
                            self._call_seed)

    def get_config(self) -> Config:
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


class TruncatedNormal(SeededInitializer):
    """Normal values re-drawn outside ``[mean + lower stddev, mean + upper stddev]``.

    Keras' ``TruncatedNormal``: by default values more than two standard
    deviations from the mean are re-drawn; ``stddev`` is the standard
    deviation *before* truncation (for the default bounds the values have
    standard deviation ``0.8796 stddev``). ``lower`` and ``upper`` are JAX's
    (``jax.nn.initializers.truncated_normal``), in units of ``stddev``.

    Parameters
    ----------
    mean : float, default 0.0
    stddev : float, default 0.05
        ``>= 0``.
    seed : int or None
        See :func:`~fastinit.initializers.base.resolve_seed`.
    lower, upper : float, default -2.0, 2.0
        ``lower < upper``; may be infinite.

    Examples
    --------
    >>> x = TruncatedNormal(stddev=1.0, seed=0)((100_000,))
    >>> bool(x.min() >= -2.0 and x.max() <= 2.0)
    True
    >>> TruncatedNormal(stddev=0.1, seed=0).parameters()
    {'mean': 0.0, 'stddev': 0.1, 'a': -0.2, 'b': 0.2}
    """

    elementwise: ClassVar[bool] = True

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: InitializerSeed = None,
                 lower: float = -2.0, upper: float = 2.0) -> None:
        self.mean = check_real(mean, "mean")
        self.stddev = check_real(stddev, "stddev", minimum=0.0)
        self.lower = check_real(lower, "lower", finite=False)
        self.upper = check_real(upper, "upper", finite=False)
        if not self.lower < self.upper:
            raise ValueError(f"lower must be < upper. Received: lower={lower}, upper={upper}")
        p = self.parameters()
        if self.stddev and not p["a"] < p["b"]:
            raise ValueError("mean + lower * stddev and mean + upper * stddev are the same "
                             "float64 number: stddev is too small next to mean. "
                             f"Received: mean={mean}, stddev={stddev}")
        super().__init__(seed)

    def parameters(self) -> dict[str, float]:
        """The absolute bounds ``a``, ``b`` passed to :func:`fastinit.random.truncated_normal`."""
        return {"mean": self.mean, "stddev": self.stddev,
                "a": self.mean + self.lower * self.stddev if self.stddev else self.mean,
                "b": self.mean + self.upper * self.stddev if self.stddev else self.mean}

    def generate(self, request: Request) -> Array:
        p = self.parameters()
        if self.stddev == 0.0:
            dist = fr.uniform_distribution(self.mean, self.mean, request.dtype)
        else:
            dist = fr.truncated_normal_distribution(p["mean"], p["stddev"], p["a"], p["b"],
                                                    request.dtype)
        return request.draw(dist, self._call_seed)

    def get_config(self) -> Config:
        config = {"mean": self.mean, "stddev": self.stddev, **super().get_config()}
        if (self.lower, self.upper) != (-2.0, 2.0):
            config.update(lower=self.lower, upper=self.upper)
        return config


_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")


class VarianceScaling(SeededInitializer):
    """Values whose variance is ``scale / n``, ``n`` a fan of the shape.

    ``n`` is the fan chosen by ``mode`` (``fan_in``, ``fan_out``, their
    arithmetic mean ``fan_avg`` or, as in JAX, their geometric mean
    ``fan_geo_avg``), at least 1. The fans follow Keras' rule for a
    ``(..., in, out)`` kernel (the receptive field is the product of the leading
    dimensions), or ``input_axes``/``output_axes`` (Keras), or
    ``in_axis``/``out_axis``/``batch_axis`` (JAX); see :mod:`fastinit._fans`.

    - ``"truncated_normal"`` (also ``"normal"``, as in Keras): a normal with
      standard deviation ``sqrt(scale / n) / TRUNCATED_NORMAL_STDDEV``
      truncated at two of those standard deviations, so that the values have
      standard deviation ``sqrt(scale / n)``.
    - ``"untruncated_normal"``: a normal with standard deviation ``sqrt(scale / n)``.
    - ``"uniform"``: uniform on ``[-limit, limit)``, ``limit = sqrt(3 scale / n)``.

    Complex dtypes (complex64, complex128) follow JAX: a complex normal, a
    uniform disk, or a complex normal with truncated modulus
    (see :mod:`fastinit.initializers._complex`), with ``E|z|^2 = scale / n``
    (up to JAX's constant :data:`COMPLEX_TRUNCATED_NORMAL_STDDEV`).

    Parameters
    ----------
    scale : float, default 1.0
        ``> 0``.
    mode : {"fan_in", "fan_out", "fan_avg", "fan_geo_avg"}, default "fan_in"
    distribution : {"truncated_normal", "normal", "untruncated_normal", "uniform"}
        Default "truncated_normal". Case-insensitive; "normal" is stored as
        "truncated_normal" (Keras' meaning; JAX's "normal" is
        "untruncated_normal", and ``fastinit.jax`` translates it).
    seed : int or None
        See :func:`~fastinit.initializers.base.resolve_seed`.
    input_axes, output_axes : list of int, optional
        Keras: the fans are the products of these dimensions (give both).
    in_axis, out_axis, batch_axis : int or list of int, optional
        JAX: input, output and ignored axes; the others form the receptive
        field. Giving any of them selects JAX's rule (defaults ``-2``, ``-1``,
        ``()``), which needs at least 2 dimensions unless ``in_axis`` is given.

    Examples
    --------
    >>> init = VarianceScaling(2.0, "fan_in", "uniform", seed=0)
    >>> p = init.parameters((3, 3, 16, 32))       # a Conv2D kernel: fan_in = 3*3*16
    >>> p["fan_in"], p["fan_out"], round(p["limit"], 6)
    (144, 288, 0.204124)
    >>> x = init((3, 3, 16, 32))
    >>> bool(abs(x).max() < p["limit"])
    True
    >>> bool((init((3, 3, 16, 32), index=(1, slice(None), 0)) == x[1, :, 0]).all())
    True
    """

    dtype_kind: ClassVar[DTypeKind] = "inexact"
    elementwise: ClassVar[bool] = True

    def __init__(self, scale: float = 1.0, mode: Mode = "fan_in",
                 distribution: DistributionName = "truncated_normal",
                 seed: InitializerSeed = None, input_axes: Axes | None = None,
                 output_axes: Axes | None = None, in_axis: Axes | None = None,
                 out_axis: Axes | None = None, batch_axis: Axes | None = None) -> None:
        # Keras' messages (its own tests match them), with the value named.
        self.scale = check_real(scale, "scale")
        if self.scale <= 0.0:
            raise ValueError(f"Argument `scale` must be positive float. Received: scale={scale}")
        if not isinstance(mode, str) or mode not in _fans.MODES:
            raise ValueError(f"Invalid `mode` argument: {shown(mode)}. Use one of "
                             f"{', '.join(map(repr, _fans.MODES))}. Received: mode={shown(mode)}")
        self.mode = mode
        dist = distribution.lower() if isinstance(distribution, str) else None
        dist = "truncated_normal" if dist == "normal" else dist
        if dist not in _DISTRIBUTIONS:
            raise ValueError(f"Invalid `distribution` argument: {shown(distribution)}. Use "
                             f"one of 'normal', {', '.join(map(repr, _DISTRIBUTIONS))}. "
                             f"Received: distribution={shown(distribution)}")
        self.distribution = dist
        if (input_axes is None) != (output_axes is None):
            raise ValueError("input_axes and output_axes must be given together. "
                             f"Received: input_axes={input_axes!r}, output_axes={output_axes!r}")
        self.input_axes = None if input_axes is None else _axes_list(input_axes, "input_axes")
        self.output_axes = None if output_axes is None else _axes_list(output_axes,
                                                                       "output_axes")
        jax_axes = (in_axis, out_axis, batch_axis)
        if self.input_axes is not None and any(a is not None for a in jax_axes):
            raise ValueError("Give either Keras' input_axes/output_axes or JAX's in_axis/"
                             f"out_axis/batch_axis. Received: input_axes={input_axes!r}, "
                             f"in_axis={in_axis!r}, out_axis={out_axis!r}, "
                             f"batch_axis={batch_axis!r}")
        self.in_axis = None if in_axis is None else _fans.check_axes(in_axis, "in_axis")
        self.out_axis = None if out_axis is None else _fans.check_axes(out_axis, "out_axis")
        self.batch_axis = None if batch_axis is None else _fans.check_axes(batch_axis,
                                                                           "batch_axis")
        super().__init__(seed)

    @property
    def _jax_axes(self) -> bool:
        return any(a is not None for a in (self.in_axis, self.out_axis, self.batch_axis))

    def fans(self, shape: Sequence[int]) -> tuple[float, float]:
        """``(fan_in, fan_out)`` of ``shape`` under this initializer's layout."""
        if self._jax_axes:
            return _fans.jax_fans(shape, -2 if self.in_axis is None else self.in_axis,
                                  -1 if self.out_axis is None else self.out_axis,
                                  () if self.batch_axis is None else self.batch_axis)
        return _fans.keras_fans(shape, self.input_axes, self.output_axes)

    def parameters(self, shape: Sequence[int],
                   dtype: npt.DTypeLike | None = None) -> dict[str, Any]:
        """What a call with ``shape`` draws from: fans, variance and the distribution's parameters.

        Returns
        -------
        dict
            ``fan_in``, ``fan_out``, ``variance`` (``scale / n``),
            ``distribution``, and ``stddev`` (normal: its standard deviation;
            truncated normal: the standard deviation before truncation, with
            bounds ``a``/``b`` at two of them) or ``limit`` (uniform). For
            complex dtypes ``scale`` is the factor applied to the unit-variance
            complex draw.
        """
        shape = tuple(shape)
        fan_in, fan_out = self.fans(shape)
        variance = self.scale / _fans.denominator(fan_in, fan_out, self.mode)
        p = {"fan_in": fan_in, "fan_out": fan_out, "variance": variance,
             "distribution": self.distribution}
        complex_ = dtype is not None and _is_complex(dtype)
        if complex_:
            constant = (COMPLEX_TRUNCATED_NORMAL_STDDEV
                        if self.distribution == "truncated_normal" else 1.0)
            p["scale"] = math.sqrt(variance) / constant
        elif self.distribution == "truncated_normal":
            stddev = math.sqrt(variance) / TRUNCATED_NORMAL_STDDEV
            p.update(stddev=stddev, a=-2.0 * stddev, b=2.0 * stddev)
        elif self.distribution == "untruncated_normal":
            p["stddev"] = math.sqrt(variance)
        else:
            p["limit"] = math.sqrt(3.0 * variance)
        return p

    def generate(self, request: Request) -> Array:
        p = self.parameters(request.shape, request.dtype)
        if request.is_complex:
            if self.distribution == "truncated_normal":
                return _complex.truncated_normal(request, self._call_seed, 2.0, p["scale"])
            if self.distribution == "untruncated_normal":
                return _complex.normal(request, self._call_seed, 0.0, p["scale"])
            return _complex.uniform_disk(request, self._call_seed, p["scale"])
        if self.distribution == "truncated_normal":
            dist = fr.truncated_normal_distribution(0.0, p["stddev"], p["a"], p["b"],
                                                    request.dtype)
        elif self.distribution == "untruncated_normal":
            dist = fr.normal_distribution(0.0, p["stddev"], request.dtype)
        else:
            dist = fr.uniform_distribution(-p["limit"], p["limit"], request.dtype)
        return request.draw(dist, self._call_seed)

    def _axes_config(self) -> Config:
        config = {"input_axes": self.input_axes, "output_axes": self.output_axes}
        for name in ("in_axis", "out_axis", "batch_axis"):
            if getattr(self, name) is not None:
                config[name] = getattr(self, name)
        return config

    def get_config(self) -> Config:
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                **super().get_config(), **self._axes_config()}


# Keras layers treat their own VarianceScaling specially (EinsumDense gives it the fan
# axes of its kernel); the family takes Keras' class as a base when Keras defines it.
_keras.adopt(VarianceScaling, "VarianceScaling")


def _axes_list(value: Axes, name: str) -> list[int]:
    axes = _fans.check_axes(value, name)
    return [axes] if isinstance(axes, int) else axes


def _is_complex(dtype: npt.DTypeLike) -> bool:
    try:
        return np.dtype(dtype).kind == "c"
    except TypeError:
        return False


class _Preset(VarianceScaling):
    """A variance-scaling initializer with fixed ``(scale, mode, distribution)``."""

    PRESET: ClassVar[tuple[float, Mode, DistributionName]] = (1.0, "fan_in", "truncated_normal")

    def __init__(self, seed: InitializerSeed = None, input_axes: Axes | None = None,
                 output_axes: Axes | None = None, in_axis: Axes | None = None,
                 out_axis: Axes | None = None, batch_axis: Axes | None = None) -> None:
        scale, mode, distribution = self.PRESET
        super().__init__(scale, mode, distribution, seed, input_axes, output_axes, in_axis,
                         out_axis, batch_axis)

    def get_config(self) -> Config:
        return {**SeededInitializer.get_config(self), **self._axes_config()}


class GlorotUniform(_Preset):
    """Glorot (Xavier) uniform: ``VarianceScaling(1.0, "fan_avg", "uniform")``.

    Uniform on ``[-limit, limit)`` with ``limit = sqrt(6 / (fan_in + fan_out))``.
    Takes ``seed`` and the axes arguments of :class:`VarianceScaling`.

    Examples
    --------
    >>> GlorotUniform(seed=0)((2, 3))
    array([[-0.6616515 ,  0.13300443, -0.90390295],
           [-0.00421786, -0.6116842 ,  1.021215  ]], dtype=float32)
    """

    PRESET = (1.0, "fan_avg", "uniform")


class GlorotNormal(_Preset):
    """Glorot (Xavier) normal: ``VarianceScaling(1.0, "fan_avg", "truncated_normal")``.

    Values with standard deviation ``sqrt(2 / (fan_in + fan_out))`` (a
    truncated normal, see :data:`TRUNCATED_NORMAL_STDDEV`).

    Examples
    --------
    >>> round(GlorotNormal(seed=0).parameters((64, 64))["stddev"], 6)
    0.142106
    """

    PRESET = (1.0, "fan_avg", "truncated_normal")


class HeUniform(_Preset):
    """He (Kaiming) uniform: ``VarianceScaling(2.0, "fan_in", "uniform")``, ``limit = sqrt(6 / fan_in)``.

    Examples
    --------
    >>> round(HeUniform(seed=0).parameters((3, 3, 16, 32))["limit"], 6)
    0.204124
    """

    PRESET = (2.0, "fan_in", "uniform")


class HeNormal(_Preset):
    """He (Kaiming) normal: ``VarianceScaling(2.0, "fan_in", "truncated_normal")``.

    Values with standard deviation ``sqrt(2 / fan_in)``.

    Examples
    --------
    >>> x = HeNormal(seed=0)((512, 512))
    >>> round(float(x.std()) / (2 / 512) ** 0.5, 2)
    1.0
    """

    PRESET = (2.0, "fan_in", "truncated_normal")


class LecunUniform(_Preset):
    """LeCun uniform: ``VarianceScaling(1.0, "fan_in", "uniform")``, ``limit = sqrt(3 / fan_in)``.

    Examples
    --------
    >>> LecunUniform(seed=0).parameters((3, 5))["limit"]
    1.0
    """

    PRESET = (1.0, "fan_in", "uniform")


class LecunNormal(_Preset):
    """LeCun normal: ``VarianceScaling(1.0, "fan_in", "truncated_normal")``.

    Values with standard deviation ``sqrt(1 / fan_in)``.

    Examples
    --------
    >>> round(LecunNormal(seed=0).parameters((4, 5))["stddev"] * TRUNCATED_NORMAL_STDDEV, 12)
    0.5
    """

    PRESET = (1.0, "fan_in", "truncated_normal")
