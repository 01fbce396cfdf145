"""The type aliases of fastinit's annotations, written once.

Imported only under ``typing.TYPE_CHECKING`` (with ``from __future__ import
annotations``), so that annotations cost nothing at run time and ``import
fastinit`` still loads NumPy only. Frameworks appear here for checkers only.

- Arrays: :data:`Array` is what a call returns (a NumPy array; on a GPU a CuPy
  array, which ships no types and is typed as NumPy's); :data:`Output` what
  ``out=`` takes (a NumPy array or a CUDA buffer such as a torch CUDA tensor),
  :data:`OutputT` an ``out=`` returned as given.
- Shapes: :data:`ShapeLike` is what a call takes (an int or a sequence of
  ints), :data:`Shape` what fastinit hands back (a tuple of ints).
- Seeds: :data:`Seed` for the seed rule (an int in ``[0, 2**64)`` or None);
  :data:`InitializerSeed` adds a Keras ``SeedGenerator`` (:class:`SeedGeneratorLike`).
- ``Self`` (``typing_extensions``, for checkers only: ``typing.Self`` is 3.11+).
- String options as ``Literal``: :data:`BackendName`, :data:`Mode`,
  :data:`DistributionName`, :data:`OrthogonalMethod`.
- Front ends: :data:`InitializerLike` (what ``fastinit.initializers.get`` turns into
  an initializer), :data:`StrPath`, the type variables :data:`TensorT` / :data:`ModuleT`
  (a ``torch.nn.init``-style call returns the tensor it was given, a ``Parameter`` as a
  ``Parameter``), and ``init_module_``'s :data:`Rules` and :data:`Regions`.
- JAX: :data:`JaxKey` (a PRNG key or an int seed), :class:`JaxInitializer` (what a
  ``fastinit.jax`` builder returns) and :class:`WrappedJaxInitializer` (one with its
  fastinit ``initializer``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import (
    TYPE_CHECKING, Any, Literal, Protocol, SupportsIndex, TypeAlias, TypeVar, Union,
)

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:   # not imported at run time: none is needed to import this module
    import jax
    import jax.sharding
    import jax.typing
    import torch
    from typing_extensions import Self   # typing.Self is Python 3.11+

__all__ = ["Array", "GpuArray", "FloatArray", "Output", "CudaArrayLike", "ShapeLike", "Shape",
           "Index", "Seed", "InitializerSeed", "SeedGeneratorLike", "BackendName", "Backend",
           "DeviceLike", "Allocator", "Mode", "DistributionName", "OrthogonalMethod",
           "DTypeKind", "Config", "InitializerLike", "StrPath", "TensorT", "ModuleT", "Layout",
           "FanMode", "Nonlinearity", "RuleValue", "Rules", "Regions", "OutputT", "JaxKey",
           "JaxInitializer", "WrappedJaxInitializer"]

#: A call's result: a NumPy array, or a CuPy array for GPU outputs (typed as NumPy's).
Array: TypeAlias = npt.NDArray[Any]
#: A CuPy array (CuPy ships no types: Any to checkers; the name says what is meant).
GpuArray: TypeAlias = Any
#: A floating-point NumPy array (float16, float32, float64; bfloat16 is an ml_dtypes dtype).
FloatArray: TypeAlias = npt.NDArray[np.floating[Any]]


class CudaArrayLike(Protocol):
    """A CUDA buffer (``__cuda_array_interface__``: CuPy arrays, torch CUDA tensors)."""

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]: ...


#: What ``out=`` takes: a writable NumPy array, or a CUDA buffer filled on its GPU.
Output: TypeAlias = Union[npt.NDArray[Any], CudaArrayLike]
#: An ``out=`` given to a ``fastinit.random`` function, returned as it is (the same object).
OutputT = TypeVar("OutputT", bound=Output)

#: A shape as given: an int or a sequence of ints (NumPy integers included).
ShapeLike: TypeAlias = Union[SupportsIndex, Sequence[SupportsIndex]]
#: A shape as fastinit returns it.
Shape: TypeAlias = tuple[int, ...]
#: A region of a tensor (``index=``): an int, a slice, or a tuple of them (one per axis).
Index: TypeAlias = Union[SupportsIndex, slice, tuple[Union[SupportsIndex, slice], ...]]

#: The seed rule's seed (``fastinit.initializers.resolve_seed``): an int or None.
Seed: TypeAlias = Union[SupportsIndex, None]


class SeedGeneratorLike(Protocol):
    """A Keras ``keras.random.SeedGenerator`` (each call draws the next seed from it)."""

    def next(self, ordered: bool = ...) -> Any: ...


#: An initializer's seed: the seed rule's, or a Keras ``SeedGenerator``.
InitializerSeed: TypeAlias = Union[SupportsIndex, None, SeedGeneratorLike]

#: The built-in backends; ``"auto"`` chooses from where the output lives.
BackendName: TypeAlias = Literal["auto", "numba", "numpy", "cupy"]
#: A backend argument: a built-in name, or one given to ``fastinit.backends.register``.
Backend: TypeAlias = Union[BackendName, str]
#: ``None``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, a ``torch.device`` (or a ``cupy.cuda.Device``,
#: which ships no types).
DeviceLike: TypeAlias = Union[str, None, "torch.device"]

#: Which fan divides the scale of variance scaling.
Mode: TypeAlias = Literal["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]
#: Variance scaling's distributions ("normal" means "truncated_normal", as in Keras).
DistributionName: TypeAlias = Literal["truncated_normal", "normal", "untruncated_normal",
                                      "uniform"]
#: Who allocates fastinit's GPU memory (``fastinit.gpu.set_allocator``).
Allocator: TypeAlias = Literal["auto", "torch", "cupy"]
#: The algorithms of ``Orthogonal``.
OrthogonalMethod: TypeAlias = Literal["auto", "stewart", "cholqr2", "qr"]
#: Which dtypes an initializer's call accepts (``fastinit._dtypes.resolve``).
DTypeKind: TypeAlias = Literal["float", "inexact", "any"]

#: An initializer's configuration (``get_config``): JSON-serializable values by name.
Config: TypeAlias = dict[str, Any]

#: Anything :func:`fastinit.initializers.get` turns into an initializer: an instance or any
#: callable ``(shape, dtype=None)``, a class, a name, or a config dict.
InitializerLike: TypeAlias = Union[Callable[..., Any], str, Config]
#: A file or directory path.
StrPath: TypeAlias = Union[str, "os.PathLike[str]"]
#: A tensor given to a ``fastinit.torch`` function, returned as it is (the same object).
TensorT = TypeVar("TensorT", bound="torch.Tensor")
#: A module given to ``init_module_``, returned as it is.
ModuleT = TypeVar("ModuleT", bound="torch.nn.Module")
#: How a Keras-style initializer sees a PyTorch weight (``fastinit.torch.fill_``).
Layout: TypeAlias = Literal["keras", "torch"]
#: ``torch.nn.init``'s ``mode`` and ``nonlinearity`` (as torch annotates them).
FanMode: TypeAlias = Literal["fan_in", "fan_out"]
Nonlinearity: TypeAlias = Literal["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                                  "conv_transpose2d", "conv_transpose3d", "sigmoid", "tanh",
                                  "relu", "leaky_relu", "selu"]
#: A rule's value (``init_module_``): a ``torch.nn.init`` name or ``(name, arguments)``, an
#: initializer, or (for a module type) a dict of them by local tensor name.
RuleValue: TypeAlias = Union[InitializerLike, tuple[str, dict[str, Any]]]
#: ``init_module_``'s rules: keys are name patterns (``str``, ``re.Pattern``) or module
#: types (Any here: a dict of one kind of key must match).
Rules: TypeAlias = Union[Mapping[Any, RuleValue], Iterable[tuple[Any, RuleValue]]]
#: ``name -> (global shape, region)`` of plain tensors that hold a region of a larger one.
Regions: TypeAlias = Mapping[str, tuple[Sequence[SupportsIndex], Any]]

#: A JAX PRNG key (typed, or raw key data: a JAX or NumPy integer array; concrete or
#: traced) or an int seed (``fastinit.jax.key_to_seed``).
JaxKey: TypeAlias = Union["jax.Array", npt.NDArray[np.integer[Any]], int, np.integer[Any]]


class JaxInitializer(Protocol):
    """``jax.nn.initializers``' protocol as ``fastinit.jax`` implements it (its
    ``out_sharding`` a ``jax.sharding.Sharding``: a ``PartitionSpec`` is refused)."""

    def __call__(self, key: JaxKey, shape: ShapeLike,
                 dtype: jax.typing.DTypeLike | None = None,
                 out_sharding: jax.sharding.Sharding | None = None) -> jax.Array: ...


_Initializer_co = TypeVar("_Initializer_co", covariant=True)


class WrappedJaxInitializer(JaxInitializer, Protocol[_Initializer_co]):
    """A :class:`JaxInitializer` made by ``fastinit.jax.wrap`` from a fastinit initializer."""

    @property
    def initializer(self) -> _Initializer_co:
        """The fastinit initializer it calls (with the key's seed)."""
