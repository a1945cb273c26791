"""Sphinx helpers for the dynvi site.

* ``config-inited`` (before Sphinx lists the source files): write
  ``api/dynopt.rst`` and ``api/genvi.rst`` from each package's ``__all__``: an
  ``autosummary`` table whose stubs autosummary then generates, so every public
  name has a rendered entry and a new name needs no edit here.
  ``tests/test_docs_api.py`` checks the built inventory against ``__all__``.
* ``{optdoc}`name``` role: a link to the page ``name`` when it exists, plain
  text otherwise, for pages that are optional in a build.
"""

import importlib
import inspect
from pathlib import Path

from docutils import nodes
from sphinx import addnodes

PACKAGES = ("dynopt", "genvi")


def api_page(package: str) -> str:
    """The RST source of one package's API page, listed from ``__all__``."""
    module = importlib.import_module(package)
    names = list(module.__all__)
    classes = [n for n in names if inspect.isclass(getattr(module, n))]
    functions = [n for n in names if n not in classes]
    title = f"``{package}`` API"
    lines = [
        ".. This page is written by docs/_ext/dynvi_docs.py from __all__.",
        "",
        title,
        "=" * len(title),
        "",
        f".. automodule:: {package}",
        "   :no-members:",
        "",
        f".. currentmodule:: {package}",
        "",
    ]
    for heading, group in (("Functions", functions), ("Classes", classes)):
        if not group:
            continue
        lines += [heading, "-" * len(heading), "", ".. autosummary::"]
        lines += ["   :toctree: _autosummary", "   :nosignatures:", ""]
        lines += [f"   {name}" for name in group] + [""]
    return "\n".join(lines)


def write_api_pages(app, config) -> None:
    out = Path(app.srcdir) / "api"
    out.mkdir(exist_ok=True)
    for package in PACKAGES:
        path = out / f"{package}.rst"
        text = api_page(package)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def optdoc_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """A reference to an optional page: a link if the page exists, else text."""
    env = inliner.document.settings.env
    target = text.strip()
    srcdir = Path(env.srcdir)
    if any((srcdir / f"{target}{suffix}").exists() for suffix in (".md", ".rst")):
        ref = addnodes.pending_xref(
            rawtext,
            refdomain="std",
            reftype="doc",
            reftarget=target,
            refexplicit=False,
            refwarn=True,
        )
        ref += nodes.inline(rawtext, target, classes=["xref", "std", "std-doc"])
        return [ref], []
    return [nodes.emphasis(rawtext, target)], []


def skip_namedtuple_fields(app, what, name, obj, skip, options):
    """Leave NamedTuple fields to the class's ``Attributes:`` section."""
    doc = getattr(obj, "__doc__", None) or ""
    if doc.startswith("Alias for field number"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", skip_namedtuple_fields)
    app.connect("config-inited", write_api_pages)
    app.add_role("optdoc", optdoc_role)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
