"""The documentation builds without warnings and its links resolve.

The Sphinx build (``docs/conf.py``) runs with ``-W`` (warnings are errors) and
``-n`` (nitpicky: every cross-reference to a fastinit object must resolve),
into a temporary folder. Sphinx cannot reach the internet here, so instead of
``-b linkcheck`` the tests check the internal links: every relative link of
the Markdown sources points to an existing file, and every link of the built
HTML to an existing page and anchor. The build tests skip when Sphinx or
MyST-Parser is absent (``pip install -e ".[docs]"``); the source-level checks
always run.
"""

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CATALOGUE = DOCS / "_static" / "catalogue"

# [text](target) in Markdown, not images' alt text mixed with code spans.
MD_LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def _markdown_pages():
    return sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts) + [ROOT / "README.md"]


def _relative_links(page):
    text = INLINE_CODE.sub("", FENCE.sub("", page.read_text(encoding="utf-8")))
    for target in MD_LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http:, https:, mailto: (cannot be checked offline); same-page anchors
        yield target


@pytest.mark.parametrize("page", _markdown_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_links_point_to_files(page):
    missing = [t for t in _relative_links(page)
               if not (page.parent / t.partition("#")[0]).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_catalogue_has_an_image_for_every_random_initializer():
    from fastinit.initializers.base import SeededInitializer
    from fastinit.initializers.registry import ALL_OBJECTS

    page = (DOCS / "initializers.md").read_text(encoding="utf-8")
    for cls in ALL_OBJECTS:
        assert f"`{cls.__name__}" in page, f"{cls.__name__} is missing from the catalogue"
    images = set(re.findall(r"_static/catalogue/([\w.-]+\.png)", page))
    assert images, "the catalogue shows no histogram"
    for name in images:
        assert (CATALOGUE / name).is_file(), f"{name}: run python docs/scripts/make_histograms.py"
    for cls in ALL_OBJECTS:
        if issubclass(cls, SeededInitializer):
            title = f"![{cls.__name__} "
            assert title in page, f"no histogram of {cls.__name__} in the catalogue"
    total = sum(p.stat().st_size for p in CATALOGUE.glob("*.png"))
    assert total < 2 * 1024 * 1024, f"catalogue images take {total / 1024:.0f} KiB"


# -- the Sphinx build ------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_html(tmp_path_factory):
    pytest.importorskip("sphinx", reason="the docs build needs Sphinx (pip install -e '.[docs]')")
    pytest.importorskip("myst_parser", reason="the docs build needs MyST-Parser")
    out = tmp_path_factory.mktemp("docs")
    cmd = [sys.executable, "-m", "sphinx", "-W", "-n", "--keep-going", "-q", "-b", "html",
           "-d", str(out / "doctrees"), str(DOCS), str(out / "html")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, ("sphinx-build -W -n failed:\n" + proc.stdout[-4000:]
                                  + proc.stderr[-8000:])
    return out / "html"


def test_docs_build_without_warnings(built_html):
    for page in ("index", "getting-started", "initializers", "stream", "reproducibility",
                 "performance", "benchmarking", "api", "benchmarks-cpu"):
        assert (built_html / f"{page}.html").is_file(), page


def test_built_links_resolve(built_html):
    ids = {}
    pages = [p for p in built_html.rglob("*.html") if "_modules" not in p.parts]
    for page in pages:
        ids[page.resolve()] = set(re.findall(r'\sid="([^"]+)"', page.read_text(encoding="utf-8")))
    broken = []
    for page in pages:
        for ref in re.findall(r'(?:href|src)="([^"]+)"', page.read_text(encoding="utf-8")):
            ref = html.unescape(ref)
            if re.match(r"^[a-z][a-z0-9+.-]*:", ref) or ref.startswith("//"):
                continue
            path, _, anchor = ref.partition("#")
            path = path.partition("?")[0]
            target = (page.parent / path).resolve() if path else page.resolve()
            if not target.exists():
                broken.append(f"{page.relative_to(built_html)}: {ref}")
            elif anchor and target.suffix == ".html" and anchor not in ids.get(target, ()):
                broken.append(f"{page.relative_to(built_html)}: {ref} (no such anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken[:50])


def test_api_reference_documents_the_public_api(built_html):
    api = (built_html / "api.html").read_text(encoding="utf-8")
    for name in ("fastinit.random.normal", "fastinit.random.truncated_normal",
                 "fastinit.initializers.random_initializers.VarianceScaling",
                 "fastinit.initializers.registry.get", "fastinit.torch.kaiming_uniform_",
                 "fastinit.jax.glorot_uniform"):
        assert f'id="{name}"' in api, f"{name} is not in the API reference"


# -- paths to tests named in the docs and the code ---------------------------------------


def test_named_test_files_exist():
    """Every ``tests/...py`` that a page, a docstring or a comment names exists (the suite's
    folders moved once and left stale paths behind). The examples of the pages run in
    ``test_docs_run.py``."""
    sources = [ROOT / "README.md", ROOT / ".ci" / "run", *DOCS.glob("*.md"), *DOCS.glob("*.py"),
               *(ROOT / "fastinit").rglob("*.py"), *(ROOT / "fastinit").rglob("*.cu*"),
               *(ROOT / "benchmarks").rglob("*.py"), *(ROOT / "benchmarks").glob("*.sh")]
    stale = []
    for source in sources:
        for name in set(re.findall(r"\btests/[\w/]+\.py\b", source.read_text(encoding="utf-8"))):
            if not (ROOT / name).is_file():
                stale.append(f"{source.relative_to(ROOT)}: {name}")
    assert not stale, "stale test paths:\n" + "\n".join(sorted(stale))
