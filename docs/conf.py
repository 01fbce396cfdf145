"""Sphinx configuration for the fastinit documentation.

Build (from the repository root, with ``pip install -e ".[docs]"``)::

    python -m sphinx -W -n --keep-going -b html docs docs/_build/html

``-W`` turns warnings into errors and ``-n`` (nitpicky) reports every
cross-reference that does not resolve; ``tests/tools/test_docs.py`` runs the same
build. The pages are Markdown (MyST-Parser); the API reference is generated
from the numpydoc docstrings by ``sphinx.ext.autodoc`` and
``sphinx.ext.napoleon``. Nothing is fetched from the network (no intersphinx),
so references to objects outside fastinit (NumPy, PyTorch, JAX, Python types)
are not checked; every reference to a ``fastinit`` object is.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:  # a checkout that is not installed: document the source tree
    sys.path.insert(0, ROOT)

import fastinit  # noqa: E402

project = "fastinit"
author = "the fastinit developers"
copyright = "the fastinit developers"
version = release = fastinit.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "scripts", "Thumbs.db", ".DS_Store"]

# -- MyST (Markdown) ---------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
# GitHub-style anchors for headings (stream.md links to "#1-overview" and so on).
myst_heading_anchors = 4

# -- autodoc / napoleon --------------------------------------------------------------
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"           # the numpydoc "Parameters" sections carry the types
autodoc_mock_imports = []            # torch / jax are imported lazily: nothing to mock
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# Section titles used in fastinit's docstrings beyond numpydoc's standard ones.
napoleon_custom_sections = [
    ("Parameters of a call", "params_style"),
    "Parallel features",
    "Compatibility guarantee",
]

# -- cross-references ----------------------------------------------------------------
nitpicky = True
# Without intersphinx (no network), names of Python, NumPy, PyTorch and JAX
# objects in docstrings ("int", "numpy.ndarray", "array_like", "optional") cannot
# resolve; only references to fastinit's own objects are required to.
nitpick_ignore_regex = [
    (r"py:.*", r"(?!fastinit\b).*"),
]

# -- HTML --------------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"fastinit {release}"
html_static_path = ["_static"]
html_theme_options = {"description": "Fast, exact, reproducible weight initialization"}


# -- re-exported names ------------------------------------------------------------
# Objects are documented once, in the module that defines them
# (``fastinit.initializers.registry.get``). Docstrings and pages may use the
# public re-exported path (``fastinit.initializers.get``); this resolves such a
# reference to the defining module's entry instead of reporting it missing.


def _resolve_reexport(app, env, node, contnode):
    import importlib

    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not target.startswith("fastinit."):
        return None
    module_name, _, attr = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return None
    defined_in = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", attr)
    if not defined_in or f"{defined_in}.{qualname}" == target:
        return None
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                                             f"{defined_in}.{qualname}", node, contnode)


def setup(app):
    app.connect("missing-reference", _resolve_reexport)
