"""Gradscope's server: web (HTTP and pages) -> runs (training) -> store (SQLite) -> stream (hub).

The repository's top-level folders install as one `gradscope` namespace (`gradscope.server`,
`gradscope.engine`, `gradscope.static`, `gradscope.templates`), so the same relative layout
holds in a checkout and in an installed wheel.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATIC_DIR = ROOT / "static"
TEMPLATES_DIR = ROOT / "templates"
