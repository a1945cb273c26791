"""Sphinx configuration for the dynvi documentation (Sphinx + MyST + autodoc).

Build strictly with ``bash scripts/docs.sh`` (``sphinx-build -W --keep-going``).
The API pages under ``docs/api/`` are written at build time from the packages'
``__all__`` (see ``docs/_ext/dynvi_docs.py``), so a new public name gets its
entry without anyone editing a page.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document the checkout, not an older install
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

project = "dynvi"
author = "dynvi authors"
copyright = "dynvi authors"
release = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "myst_parser",
    "dynvi_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "build", "Thumbs.db", ".DS_Store", "_templates"]
templates_path = ["_templates"]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
autodoc_default_options = {"exclude-members": "__new__, __init__"}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True
add_module_names = False

# Type hints name third-party classes (jax.Array, optax.Schedule, ...) that are
# documented elsewhere; intersphinx needs the network, so unresolved types in
# signatures are not errors. Everything else (bad RST, a missing page, a broken
# reference inside the site) fails the strict build.
nitpicky = False
intersphinx_mapping: dict = {}

html_theme = "sphinx_book_theme"
html_title = "dynvi"
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
html_static_path: list = []
