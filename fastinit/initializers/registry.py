"""Names of initializers, and ``get`` / ``serialize`` / ``deserialize``.

Every built-in class is registered under its class name and its snake_case
name, plus Keras' aliases, the PyTorch / TensorFlow / JAX names people
type, and ``"fastinit>Name"``, the name it has in Keras' serialization
registry (``_keras``), so that Keras round-trips keep fastinit's classes. Deserialisation only looks names up: in ``custom_objects`` first, then
in this registry. It never imports a module or evaluates anything, whatever
a config's ``module`` field says.

Examples
--------
>>> get("glorot_uniform")
GlorotUniform(seed=None, input_axes=None, output_axes=None)
>>> config = serialize(RandomNormal(stddev=0.02, seed=7))
>>> config
{'class_name': 'RandomNormal', 'config': {'mean': 0.0, 'stddev': 0.02, 'seed': 7, 'stream_version': 1}}
>>> deserialize(config) == RandomNormal(stddev=0.02, seed=7)
True
"""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING, Any, TypeVar, overload

import numpy as np

from .._checks import shown
from . import _keras
from .base import Initializer
from .constant import Constant, FromArray, Ones, Zeros
from .random_initializers import (
    GlorotNormal, GlorotUniform, HeNormal, HeUniform, LecunNormal, LecunUniform, RandomNormal,
    RandomUniform, TruncatedNormal, VarianceScaling,
)
from .structured import STFT, DeltaOrthogonal, Dirac, Identity, Orthogonal, Sparse

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .._typing import Config

    # What register() decorates and returns unchanged: a class or a function.
    _Registered = TypeVar("_Registered", bound=Callable[..., Any])

__all__ = ["ALL_OBJECTS", "ALIASES", "register", "get", "serialize", "deserialize", "names"]

#: The built-in initializer classes.
ALL_OBJECTS: tuple[type[Initializer], ...] = (
    Zeros, Ones, Constant, FromArray, RandomNormal, RandomUniform, TruncatedNormal,
    VarianceScaling, GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform,
    LecunNormal, Orthogonal, Identity, STFT, DeltaOrthogonal, Dirac, Sparse,
)

#: Names beyond the class names and their snake_case forms.
ALIASES: dict[str, type[Initializer]] = {
    # Keras 3 aliases.
    "normal": RandomNormal, "uniform": RandomUniform, "zero": Zeros, "one": Ones,
    "IdentityInitializer": Identity, "OrthogonalInitializer": Orthogonal,
    "STFTInitializer": STFT,
    # TensorFlow / tf.keras 2.
    "random_normal_initializer": RandomNormal, "random_uniform_initializer": RandomUniform,
    "truncated_normal_initializer": TruncatedNormal, "zeros_initializer": Zeros,
    "ones_initializer": Ones, "constant_initializer": Constant,
    "glorot_uniform_initializer": GlorotUniform, "glorot_normal_initializer": GlorotNormal,
    # PyTorch (nn.init names, with and without the trailing underscore) and JAX.
    "xavier_uniform": GlorotUniform, "xavier_normal": GlorotNormal,
    "kaiming_uniform": HeUniform, "kaiming_normal": HeNormal,
    "trunc_normal": TruncatedNormal, "eye": Identity, "dirac": Dirac,
    "xavier_uniform_": GlorotUniform, "xavier_normal_": GlorotNormal,
    "kaiming_uniform_": HeUniform, "kaiming_normal_": HeNormal,
    "trunc_normal_": TruncatedNormal, "normal_": RandomNormal, "uniform_": RandomUniform,
    "constant_": Constant, "zeros_": Zeros, "ones_": Ones, "eye_": Identity,
    "dirac_": Dirac, "orthogonal_": Orthogonal, "sparse_": Sparse,
    "delta_orthogonal": DeltaOrthogonal, "stft": STFT,
}

_REGISTRY: dict[str, Callable[..., Any]] = {}   # name -> class or function
_NAME_OF: dict[Callable[..., Any], str] = {}    # class or function -> its first name


def _snake_case(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


@overload
def register(cls: _Registered, *, name: str | None = None) -> _Registered: ...


@overload
def register(cls: None = None, *,
             name: str | None = None) -> Callable[[_Registered], _Registered]: ...


def register(cls: Callable[..., Any] | None = None, *,
             name: str | None = None) -> Any:
    """Register an initializer class (or a function) under ``name`` (default: its ``__name__``).

    Usable as a decorator. Registered names work in :func:`get` and
    :func:`deserialize` like the built-in ones. A name already taken by
    another object is an error.

    Examples
    --------
    >>> @register(name="my_package>Halves")
    ... class Halves(Initializer):
    ...     dtype_kind = "any"
    ...     def generate(self, request):
    ...         return request.write(0.5)
    >>> get("my_package>Halves")((2,))
    array([0.5, 0.5], dtype=float32)
    >>> serialize(Halves())
    {'class_name': 'my_package>Halves', 'config': {}}
    """
    def decorate(obj: _Registered) -> _Registered:
        key = name or obj.__name__
        if not isinstance(key, str) or not key:
            raise ValueError(f"name must be a non-empty string. Received: name={key!r}")
        if _REGISTRY.get(key, obj) is not obj:
            raise ValueError(f"The name {key!r} is already registered to {_REGISTRY[key]!r}. "
                             f"Received: name={key!r}")
        _REGISTRY[key] = obj
        _NAME_OF.setdefault(obj, key)
        if ">" in key and inspect.isclass(obj):  # "package>Name": Keras' form, registered there too
            _keras.add(key, obj)
        return obj
    return decorate if cls is None else decorate(cls)


for _cls in ALL_OBJECTS:
    register(_cls)
    _REGISTRY.setdefault(_snake_case(_cls.__name__), _cls)
    _REGISTRY[_keras.keras_name(_cls)] = _cls   # the name Keras' configs carry
    _keras.add(_keras.keras_name(_cls), _cls)
_REGISTRY.update(ALIASES)
_keras.install()


def names() -> list[str]:
    """All registered names, sorted.

    Examples
    --------
    >>> "kaiming_normal" in names() and "GlorotUniform" in names()
    True
    """
    return sorted(_REGISTRY)


def serialize(initializer: Callable[..., Any]) -> Config:
    """The config dict of an initializer: ``{"class_name": ..., "config": ...}``.

    A registered function (or a plain function, by its ``__name__``) gives
    ``{"class_name": name, "config": {}}``. The ``class_name`` of an
    unregistered class is its ``__name__``; give the class to
    :func:`deserialize` in ``custom_objects`` to read it back.
    """
    if isinstance(initializer, Initializer):
        cls = type(initializer)
        return {"class_name": _NAME_OF.get(cls, cls.__name__),
                "config": initializer.get_config()}
    if inspect.isfunction(initializer) or inspect.isbuiltin(initializer):
        return {"class_name": _NAME_OF.get(initializer, initializer.__name__), "config": {}}
    raise ValueError(f"Cannot serialize an initializer of type {type(initializer).__name__}. "
                     f"Received: initializer={initializer!r}")


def _lookup(name: str,
            custom_objects: Mapping[str, Callable[..., Any]] | None) -> Callable[..., Any]:
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    if name in _REGISTRY:
        return _REGISTRY[name]
    raise ValueError(f"Unknown initializer: {shown(name)}. Use a registered name "
                     "(fastinit.initializers.names()), register() the class, or pass it in "
                     f"custom_objects. Received: class_name={shown(name)}")


def deserialize(config: str | Config,
                custom_objects: Mapping[str, Callable[..., Any]] | None = None
                ) -> Callable[..., Any]:
    """An initializer from a name or a config dict (the output of :func:`serialize`).

    Keras' serialized form is accepted too (its ``module`` and
    ``registered_name`` fields are not used to import anything; a
    ``registered_name`` is looked up like ``class_name``).

    Parameters
    ----------
    config : str or dict
    custom_objects : dict, optional
        Names to classes or functions, looked up before the registry.

    Examples
    --------
    >>> deserialize({"module": "keras.initializers", "class_name": "HeNormal",
    ...              "config": {"seed": 3}, "registered_name": None})
    HeNormal(seed=3, input_axes=None, output_axes=None)
    """
    try:
        return _deserialize(config, custom_objects)
    except RecursionError:
        raise ValueError("An initializer config is nested too deeply to read.") from None


def _deserialize(config: str | Config,
                 custom_objects: Mapping[str, Callable[..., Any]] | None
                 ) -> Callable[..., Any]:
    if isinstance(config, str):
        obj = _lookup(config, custom_objects)
        return _build(obj, None) if inspect.isclass(obj) else obj
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError("An initializer config is a name or a dict with 'class_name' and "
                         f"'config'. Received: config={shown(config)}")
    name = config.get("registered_name") or config["class_name"]
    if not isinstance(name, str):
        raise ValueError(f"class_name must be a string. Received: class_name={shown(name)}")
    obj = _lookup(name, custom_objects)
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise ValueError(f"'config' must be a dict. Received: config={shown(inner)}")
    return _build(obj, inner) if inspect.isclass(obj) else obj


def _build(cls: type, config: Config | None) -> Callable[..., Any]:
    """``cls`` from ``config`` (None: its defaults); a config it does not take is a ValueError."""
    try:
        if config is None:
            return cls()
        if hasattr(cls, "from_config"):
            return cls.from_config(config)
        return cls(**config)
    except TypeError as exc:
        raise ValueError(f"Invalid config for {cls.__name__}: {exc}. "
                         f"Received: config={shown(config)}") from None


@overload
def get(identifier: None) -> None: ...


@overload
def get(identifier: object) -> Callable[..., Any]: ...


def get(identifier: object) -> Callable[..., Any] | None:
    """An initializer from an identifier (Keras' ``keras.initializers.get``).

    Parameters
    ----------
    identifier : None, str, dict, class, Initializer, callable or array
        - ``None``: ``None``.
        - a name: that initializer with its defaults (``"he_normal"``,
          ``"kaiming_normal"``, ``"GlorotUniform"``, ...).
        - a config dict: :func:`deserialize`.
        - a class: an instance with its defaults.
        - an initializer or any callable ``(shape, dtype=None)``: itself.
        - an array (NumPy, or anything with ``__array__``, such as a torch or
          JAX array): a :class:`~fastinit.initializers.constant.FromArray`,
          which checks the shape of each call.

    Examples
    --------
    >>> get(None) is None
    True
    >>> get({"class_name": "Constant", "config": {"value": 3}})((2,))
    array([3., 3.], dtype=float32)
    >>> get(np.ones((2, 2)))((2, 2))
    array([[1., 1.],
           [1., 1.]], dtype=float32)
    >>> get("no_such_initializer")
    Traceback (most recent call last):
    ...
    ValueError: Unknown initializer: 'no_such_initializer'. Use a registered name (fastinit.initializers.names()), register() the class, or pass it in custom_objects. Received: class_name='no_such_initializer'
    """
    if identifier is None:
        return None
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier)
    if isinstance(identifier, (np.ndarray, np.generic)) or (
            hasattr(identifier, "__array__") and hasattr(identifier, "shape")
            and not inspect.isclass(identifier)):
        return FromArray(identifier)
    if inspect.isclass(identifier):
        obj = identifier()
        if callable(obj):
            return obj
    elif callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret initializer identifier. "
                     f"Received: identifier={shown(identifier)}")
