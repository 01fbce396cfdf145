"""Keras-style initializers on the fastinit engine.

Every Keras 3 initializer (with Keras' defaults and validation), JAX's
variance-scaling extras (``fan_geo_avg``, ``in_axis``/``out_axis``/
``batch_axis``, complex dtypes) and PyTorch's structured ones (``Dirac``,
``Sparse``), behind one base class:

>>> import fastinit.initializers as fi
>>> init = fi.GlorotUniform(seed=1234)
>>> w = init((256, 128))                     # a NumPy array, float32
>>> w.shape, w.dtype
((256, 128), dtype('float32'))
>>> bool((init((256, 128)) == w).all())      # a seeded initializer repeats itself
True
>>> fi.get("xavier_uniform")                 # Keras, PyTorch and TF names
GlorotUniform(seed=None, input_axes=None, output_axes=None)

A call takes ``out=`` (fill in place), ``backend=``, ``device=``,
``stream=`` and the engine's region arguments ``index=``/``offset=``; see
:class:`~fastinit.initializers.base.Initializer`. The seed rule is
:func:`~fastinit.initializers.base.resolve_seed`. The PyTorch and JAX front
ends are :mod:`fastinit.torch` and :mod:`fastinit.jax`.
"""

from .base import Initializer, Request, call_initializer, resolve_seed
from .constant import Constant, FromArray, Ones, Zeros
from .random_initializers import (
    COMPLEX_TRUNCATED_NORMAL_STDDEV, TRUNCATED_NORMAL_STDDEV, GlorotNormal, GlorotUniform,
    HeNormal, HeUniform, LecunNormal, LecunUniform, RandomNormal, RandomUniform,
    TruncatedNormal, VarianceScaling,
)
from .registry import deserialize, get, names, register, serialize
from .structured import STFT, DeltaOrthogonal, Dirac, Identity, Orthogonal, Sparse

# Keras' lower-case class aliases (keras.initializers.glorot_uniform is the class).
zeros, ones, constant = Zeros, Ones, Constant
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
variance_scaling = VarianceScaling
glorot_uniform, glorot_normal = GlorotUniform, GlorotNormal
he_uniform, he_normal = HeUniform, HeNormal
lecun_uniform, lecun_normal = LecunUniform, LecunNormal
orthogonal, identity, stft = Orthogonal, Identity, STFT
delta_orthogonal, dirac, sparse = DeltaOrthogonal, Dirac, Sparse

__all__ = [
    "Initializer", "Request", "call_initializer", "resolve_seed",
    "Zeros", "Ones", "Constant", "FromArray",
    "RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling",
    "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform", "LecunNormal",
    "Orthogonal", "Identity", "STFT", "DeltaOrthogonal", "Dirac", "Sparse",
    "TRUNCATED_NORMAL_STDDEV", "COMPLEX_TRUNCATED_NORMAL_STDDEV",
    "get", "serialize", "deserialize", "register", "names",
]
