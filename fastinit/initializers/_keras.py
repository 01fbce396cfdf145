"""fastinit's initializers in Keras' serialization registry, without importing Keras.

Keras 3 looks a serialized ``class_name`` up among its own initializers first,
so ``GlorotUniform`` would come back as Keras' class. Registered as
``"fastinit>GlorotUniform"`` (what ``keras.saving.register_keras_serializable(
package="fastinit")`` does), a layer's config carries that name and
``keras.layers.deserialize`` / ``load_model`` give fastinit's class back.
The registration happens when Keras' registry module is imported (a one-shot
import hook) or at once if it already is. See ``docs/getting-started.md`` (Keras 3).
"""

import importlib.abc
import importlib.util
import sys
import threading

__all__ = ["PACKAGE", "REGISTRY_MODULE", "keras_name", "add", "register_with_keras",
           "install"]

PACKAGE = "fastinit"
REGISTRY_MODULE = "keras.src.saving.object_registration"
_lock = threading.RLock()
_entries = {}   # Keras name -> class


def keras_name(cls):
    """The name a built-in fastinit class has in Keras' registry: ``"fastinit>Name"``."""
    return f"{PACKAGE}>{cls.__name__}"


def add(name, cls):
    """Give ``cls`` the Keras name ``name`` (now if Keras is imported, else when it is)."""
    with _lock:
        _entries[name] = cls
        register_with_keras({name: cls})


def register_with_keras(entries=None):
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


class _Loader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        register_with_keras()


class _Finder(importlib.abc.MetaPathFinder):
    """Wraps the loader of Keras' registry module so that fastinit registers right after
    it runs; removes itself on first use."""

    def find_spec(self, fullname, path, target=None):
        if fullname != REGISTRY_MODULE:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def install():
    """Register now if Keras is imported, else when it is (never imports Keras)."""
    with _lock:
        if not register_with_keras() and not any(isinstance(f, _Finder)
                                                 for f in sys.meta_path):
            sys.meta_path.insert(0, _Finder())
