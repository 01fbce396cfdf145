"""IEEE arithmetic under XLA: the rewrites XLA makes, and the one guard against each.

The stream (``docs/stream.md``, section 2) allows only IEEE ``+ - * /`` and
``sqrt``, each rounded once, no fused multiply-add. XLA compiles jax.numpy code
with rewrites that break this (measured on XLA:CPU, jax 0.10.2):

- ``contraction``: ``a * b + c`` becomes one FMA (XLA:CPU's LLVM target allows
  FP-op fusion unconditionally; per-jit options are ignored; NVPTX and ptxas
  contract too). Guard: each product that feeds ``+``/``-`` has its bits XORed
  with an *opaque zero* (:func:`fastinit.backends.xla._philox.philox` makes one
  per element from an inequality that always holds and that no compiler can
  prove), so no compiler sees a product there.
- ``division``: division by a constant becomes multiplication by its
  reciprocal (XLA:CPU), and XLA:GPU divides float32 with ``div.full`` (up to
  2 ulp). Guard: ``"opaque"`` hides the divisor; ``"software"`` also corrects
  the quotient with an exact remainder (Dekker's product), so it is correctly
  rounded whatever the hardware division does; ``"auto"``: software on GPUs.
- ``signed_zero``: ``0.0 + x`` and ``0.0 - x`` fold to ``x`` and ``-x``, which
  keeps a ``-0.0`` where IEEE gives ``+0.0``. Guard: zeros made ``+0.0`` by a
  select.

XLA:CPU also flushes subnormal results to zero whatever ``--xla_cpu_ftz`` says:
outputs below 1.18e-38 in magnitude (float64: 2.2e-308) are the one documented
difference (``docs/jax.md``). :func:`using` switches guards off, to show what
each defends (``tests/backends/test_xla_guards.py``, ``benchmarks/jax_gpu.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Any, Union, cast

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

    import jax
    import numpy.typing as npt

    #: An operand of the guarded operations: an array, or a float constant.
    Operand = Union[jax.Array, np.floating[Any], float]

__all__ = ["Guards", "current", "using", "IEEE"]


@dataclasses.dataclass(frozen=True)
class Guards:
    """Which guards are on (all, by default); part of the key of every compiled program."""

    contraction: bool = True
    division: str = "auto"      # "auto", "software", "opaque" or "none"
    signed_zero: bool = True

    def __post_init__(self) -> None:
        allowed = ("auto", "software", "opaque", "none")
        if self.division not in allowed:
            raise ValueError(f"division must be one of {', '.join(map(repr, allowed))}. "
                             f"Received: division={self.division!r}")


_current = Guards()


def current() -> Guards:
    """The guards that code traced now is compiled with."""
    return _current


@contextlib.contextmanager
def using(**changes: Any) -> Iterator[Guards]:
    """Trace with some guards changed (tests and the GPU check), e.g. ``contraction=False``."""
    global _current
    saved = _current
    _current = dataclasses.replace(saved, **changes)
    try:
        yield _current
    finally:
        _current = saved


class IEEE:
    """The guarded operations of one element's computation in one float type.

    ``zero`` is the element's opaque zero (uint32; widened for float64).
    Plain ``*`` stays where a product feeds only ``*``, ``/``, comparisons or
    ``sqrt``: nothing can contract it there.
    """

    def __init__(self, zero: jax.Array, dtype: npt.DTypeLike, guards: Guards | None = None,
                 ) -> None:
        import jax.numpy as jnp
        from jax import lax

        self.jnp, self.lax = jnp, lax
        self.dtype: np.dtype[Any] = np.dtype(dtype)
        self.uint = np.dtype(np.uint64 if self.dtype == np.float64 else np.uint32)
        self.guards = current() if guards is None else guards
        self.zero = zero.astype(self.uint)

    def hide(self, x: jax.Array) -> jax.Array:
        """``x`` with its bits XORed with the opaque zero: the same value, unknown to the
        compiler."""
        lax = self.lax
        bits = lax.bitcast_convert_type(x, self.uint) ^ self.zero
        return lax.bitcast_convert_type(bits, self.dtype)

    def mul(self, a: Operand, b: Operand) -> jax.Array:
        """``a * b`` rounded on its own, for a product that feeds an addition."""
        product = cast("jax.Array", a * b)   # an array: one operand at least is
        return self.hide(product) if self.guards.contraction else product

    def div(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """``x / y`` correctly rounded, for the stream's divisions (``y > 0``, finite and
        normal operands).

        The quotient is hidden too: with one user, the division fuses into the loop
        around it (XLA does not fuse an expensive operation into several users, and
        would write it to a temporary of the output's size).
        """
        division = self.guards.division
        if division == "none":
            return x / y
        y = self.hide(y)
        if division == "software":
            return self.hide(self.correct_quotient(x, y, x / y))
        if division == "opaque":
            return self.hide(x / y)
        # "auto": chosen when the program is lowered for its platform
        return self.hide(self.lax.platform_dependent(
            x, y, cpu=lambda x, y: x / y,
            default=lambda x, y: self.correct_quotient(x, y, x / y)))

    def zero_minus(self, y: jax.Array) -> jax.Array:
        """``0.0 - y`` as IEEE gives it: ``+0.0`` (never ``-0.0``) when ``y`` is a zero."""
        if not self.guards.signed_zero:
            return self.dtype.type(0.0) - y
        return self.jnp.where(y == 0, self.dtype.type(0.0), -y)

    def plus(self, c: float, y: jax.Array) -> jax.Array:
        """``c + y`` for a constant ``c`` (a Python float), as IEEE gives it."""
        c = self.dtype.type(c)
        if c != 0:
            return c + (self.hide(y) if self.guards.contraction else y)
        if not self.guards.signed_zero:
            return c + y  # what XLA folds to y
        if np.signbit(c):
            return y  # -0.0 + y is y, zeros included
        return self.jnp.where(y == 0, self.dtype.type(0.0), y)

    # -- correctly rounded division from + - * -----------------------------------

    def correct_quotient(self, x: jax.Array, y: jax.Array, q: jax.Array) -> jax.Array:
        """The correctly rounded ``x / y`` from a ``q`` within 2 ulps of it (``y > 0``; no
        overflow or underflow on the way, as in the stream's divisions)."""
        jnp = self.jnp
        # One correction makes q faithful (within an ulp of x / y); then its remainder
        # r = x - q y is exact, and the sign of |r| - (ulp / 2) y (exact operands) says
        # whether x / y lies past the midpoint between q and its neighbour towards it.
        q = q + self.hide(self._remainder(x, q, y) / y)
        r = self._remainder(x, q, y)
        inf = jnp.asarray(np.inf, self.dtype)
        toward = jnp.nextafter(q, jnp.where(r > 0, inf, -inf))
        half_ulp_y = self.hide(jnp.abs(toward - q) * self.dtype.type(0.5)) * y
        past_midpoint = jnp.abs(r) - half_ulp_y
        better = (past_midpoint > 0) | ((past_midpoint == 0) & self._even(toward))
        return jnp.where(x == 0, x / y, jnp.where((r != 0) & better, toward, q))

    def _remainder(self, x: jax.Array, q: jax.Array, y: jax.Array) -> jax.Array:
        """``x - q * y``: exact when ``q`` is within an ulp of ``x / y``, of the right sign
        always."""
        p, e = self._two_product(q, y)
        return (x - p) - e

    def _two_product(self, a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(p, e)`` with ``p = fl(a * b)`` and ``a * b = p + e`` exactly (Dekker; Veltkamp's
        split), every product hidden from contraction."""
        split = self.dtype.type(4097.0 if self.dtype == np.float32 else 134217729.0)
        a_hi, a_lo = self._split(a, split)
        b_hi, b_lo = self._split(b, split)
        p = self.hide(a * b)
        e = (((self.hide(a_hi * b_hi) - p) + self.hide(a_hi * b_lo))
             + self.hide(a_lo * b_hi)) + self.hide(a_lo * b_lo)
        return p, e

    def _split(self, a: jax.Array, split: np.floating[Any]) -> tuple[jax.Array, jax.Array]:
        c = self.hide(split * a)
        hi = c - (c - a)
        return hi, a - hi

    def _even(self, x: jax.Array) -> jax.Array:
        bits = self.lax.bitcast_convert_type(x, self.uint)
        return (bits & self.uint.type(1)) == 0
