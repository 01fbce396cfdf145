"""Where fastinit's initializers meet Keras 3, without importing Keras.

- Serialization: Keras looks a serialized ``class_name`` up among its own
  initializers first, so ``GlorotUniform`` would come back as Keras' class.
  Registered as ``"fastinit>GlorotUniform"`` (what ``keras.saving.
  register_keras_serializable(package="fastinit")`` does), a layer's config
  carries that name and ``keras.layers.deserialize`` / ``load_model`` give
  fastinit's class back.
- Keras' own classes: Keras layers special-case them (``EinsumDense``, and so
  ``MultiHeadAttention`` and ``GroupedQueryAttention``, give a
  ``keras.initializers.VarianceScaling`` the fan axes of the einsum kernel). Keras'
  initializers are not abstract classes, so no virtual subclass can be
  registered: fastinit's ``VarianceScaling`` takes Keras' class as a second base
  once Keras has defined it (:func:`adopt`), and those layers treat the whole
  family as they treat Keras' own.
- Seeds: a Keras ``SeedGenerator`` passed as ``seed`` (:func:`seed_generator`,
  :func:`draw_seed`).

Each of these happens when Keras' module in question is imported (a one-shot
import hook) or at once if it already is. See ``docs/getting-started.md`` (Keras 3).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

    from .._typing import SeedGeneratorLike

__all__ = ["PACKAGE", "REGISTRY_MODULE", "INITIALIZERS_MODULE", "keras_name", "add",
           "adopt", "register_with_keras", "install", "seed_generator", "draw_seed",
           "serialize_seed"]

PACKAGE = "fastinit"
REGISTRY_MODULE = "keras.src.saving.object_registration"
INITIALIZERS_MODULE = "keras.src.initializers.random_initializers"
_SEED_GENERATOR_MODULE = "keras.src.random.seed_generator"
_lock = threading.RLock()
_entries: dict[str, type] = {}   # Keras name -> class
_adopted: dict[type, str] = {}   # fastinit class -> the name of the Keras class it takes as a base


def keras_name(cls: type) -> str:
    """The name a built-in fastinit class has in Keras' registry: ``"fastinit>Name"``."""
    return f"{PACKAGE}>{cls.__name__}"


def add(name: str, cls: type) -> None:
    """Give ``cls`` the Keras name ``name`` (now if Keras is imported, else when it is)."""
    with _lock:
        _entries[name] = cls
        register_with_keras({name: cls})


def register_with_keras(entries: Mapping[str, type] | None = None) -> bool:
    """Register the classes (all of them by default) with Keras if it is imported; returns
    whether it was. A Keras name taken by another object is an error; a class that
    already has a Keras name keeps it."""
    with _lock:
        mod = sys.modules.get(REGISTRY_MODULE)
        if mod is None or not hasattr(mod, "GLOBAL_CUSTOM_NAMES"):
            return False
        objects, names = mod.GLOBAL_CUSTOM_OBJECTS, mod.GLOBAL_CUSTOM_NAMES
        for key, obj in dict(_entries if entries is None else entries).items():
            if objects.get(key, obj) is not obj:
                raise ValueError(f"The Keras name {key!r} is already registered to "
                                 f"{objects[key]!r}")
            objects[key] = obj
            names.setdefault(obj, key)
        return True


def adopt(cls: type, keras_class_name: str) -> None:
    """Give ``cls`` Keras' class ``keras_class_name`` (of Keras' random initializers) as
    its last base, now if Keras has defined it, else when it does. ``cls``'s own methods
    come first in its MRO: Keras' base only makes ``isinstance`` checks in Keras true."""
    with _lock:
        _adopted[cls] = keras_class_name
        _adopt_now()


def _adopt_now() -> bool:
    with _lock:
        mod = sys.modules.get(INITIALIZERS_MODULE)
        if mod is None:
            return False
        for cls, name in _adopted.items():
            base = getattr(mod, name, None)
            if isinstance(base, type) and not issubclass(cls, base):
                cls.__bases__ = cls.__bases__ + (base,)
        return True


# -- Keras SeedGenerator seeds ---------------------------------------------------------


def seed_generator(seed: object) -> SeedGeneratorLike | None:
    """``seed`` as a Keras ``SeedGenerator`` if it is one, or the config Keras serializes
    one to (``{"class_name": "SeedGenerator", ...}``, rebuilt with Keras); else None."""
    if isinstance(seed, dict) and seed.get("class_name") == "SeedGenerator":
        try:
            import keras
        except ImportError:
            raise ValueError("seed is a serialized Keras SeedGenerator, which needs Keras "
                             f"(pip install keras). Received: seed={seed!r}") from None
        seed = keras.saving.deserialize_keras_object(seed)
    mod = sys.modules.get(_SEED_GENERATOR_MODULE)   # no SeedGenerator without it
    if mod is not None and isinstance(seed, mod.SeedGenerator):
        return seed
    return None


def draw_seed(generator: SeedGeneratorLike) -> int:
    """The fastinit seed of one call under a Keras ``SeedGenerator``: its next state
    ``(seed, counter)`` (which advances it, as each Keras draw does), as
    ``(seed mod 2**32) * 2**32 + (counter mod 2**32)``."""
    import numpy as np
    state = np.asarray(sys.modules["keras"].ops.convert_to_numpy(generator.next()))
    high, low = (int(v) % (1 << 32) for v in state.reshape(-1)[:2])
    return high << 32 | low


def serialize_seed(generator: SeedGeneratorLike) -> dict[str, Any]:
    """A ``SeedGenerator`` as Keras serializes it (a JSON-able config)."""
    return sys.modules["keras"].saving.serialize_keras_object(generator)


# -- the import hook ---------------------------------------------------------------------


def _on_import(name: str) -> None:
    if name == REGISTRY_MODULE:
        register_with_keras()
    elif name == INITIALIZERS_MODULE:
        _adopt_now()


class _Loader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, name: str) -> None:
        self._loader, self._name = loader, name

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _on_import(self._name)


class _Finder(importlib.abc.MetaPathFinder):
    """Wraps the loaders of the Keras modules it waits for, so that fastinit acts right
    after each runs; removes itself once it has seen them all."""

    def __init__(self, names: Sequence[str]) -> None:
        self._waiting = set(names)

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        with _lock:
            if fullname not in self._waiting:
                return None
            self._waiting.discard(fullname)   # so that the look-up below passes this finder
            if not self._waiting and self in sys.meta_path:
                sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader, fullname)
        return spec


def install() -> None:
    """Act now on the Keras modules already imported, and on the others when they are
    (never imports Keras)."""
    with _lock:
        waiting = []
        if not register_with_keras():
            waiting.append(REGISTRY_MODULE)
        if not _adopt_now():
            waiting.append(INITIALIZERS_MODULE)
        if waiting and not any(isinstance(f, _Finder) for f in sys.meta_path):
            sys.meta_path.insert(0, _Finder(waiting))
