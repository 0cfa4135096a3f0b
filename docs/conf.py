"""Sphinx configuration for zkserver's documentation: ``python -m sphinx -W -b html docs out``.

The plugin author's pages are generated from the code with autodoc (the hook specifications'
docstrings, the interfaces'); the tutorial includes the example plugin's files, which
tests/plugins/test_example_plugin.py runs. tests/test_docs.py builds these docs with warnings
as errors and checks that every hook and every zoo.cfg key is documented.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's core, plugins: documented as they are here
sys.path.insert(1, str(ROOT / "examples" / "zkserver-example-plugin" / "src"))

project = "zkserver"
author = "the zkserver authors"
copyright = "the zkserver authors"
release = version = "0.1.0"

extensions = ["sphinx.ext.autodoc"]
templates_path: list[str] = []
exclude_patterns = ["_build"]
default_role = "py:obj"  # `Store` in a docstring links to the class where Sphinx knows it

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "undoc-members": False}

html_theme = "alabaster"
html_title = "zkserver"
html_static_path: list[str] = []
