"""mkdocs hooks of the documentation site (mkdocs.yml: ``hooks``).

- The home page is the README, and the benchmarks page benchmarks/README.md,
  with their repository-relative links rewritten for the site.
- Each ``examples/*.py`` becomes a page (its docstring, then its source),
  listed on ``examples/index.md``.
- Every name in the ``__all__`` of a module rendered on an API page
  (``::: module`` in ``docs/api/*.md``) must have a docstring: a missing
  one is a warning, which ``mkdocs build --strict`` turns into a failure.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import logging
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("mkdocs.plugins.tfqnn")

# Repository paths the README (and benchmarks/README.md, as ../docs/) link to,
# and their pages on the site.
LINKS = {
    "docs/": "",
    "../docs/": "",
    "benchmarks/README.md": "benchmarks.md",
    "LICENSE": "license.md",
}


def _site_links(markdown: str) -> str:
    """``markdown`` with its links to repository paths (`LINKS`) pointing at site pages."""

    def rewrite(match: re.Match[str]) -> str:
        target, anchor = match.group(1), match.group(2) or ""
        for prefix, page in LINKS.items():
            if prefix.endswith("/") and target.startswith(prefix):
                return f"]({target[len(prefix) :]}{anchor})"
            if target == prefix:
                return f"]({page}{anchor})"
        return match.group(0)

    return re.sub(r"\]\(([^)#:\s]+)(#[^)]*)?\)", rewrite, markdown)


def _example_page(path: Path) -> str:
    source = path.read_text()
    docstring = ast.get_docstring(ast.parse(source)) or ""
    title = f"# {path.stem.replace('_', ' ').capitalize()}\n\n"
    run = f"Run it with `.venv/bin/python examples/{path.name}`.\n\n"
    return f"{title}```text\n{docstring}\n```\n\n{run}```python\n{source}```\n"


def on_files(files: Files, config: Any) -> Files:
    """Adds the README, benchmarks, license and example pages."""

    def add(uri: str, content: str) -> None:
        files.append(File.generated(config, uri, content=content))

    add("index.md", _site_links((ROOT / "README.md").read_text()))
    add("benchmarks.md", _site_links((ROOT / "benchmarks" / "README.md").read_text()))
    add("license.md", f"# License\n\n```text\n{(ROOT / 'LICENSE').read_text()}```\n")
    examples = sorted((ROOT / "examples").glob("*.py"))
    listing = ["# Examples\n", "Scripts in the repository's `examples/` folder:\n"]
    for path in examples:
        add(f"examples/{path.stem}.md", _example_page(path))
        summary = (ast.get_docstring(ast.parse(path.read_text())) or "").split("\n\n")[0]
        listing.append(f"- [{path.stem}]({path.stem}.md): {summary}")
    add("examples/index.md", "\n".join(listing) + "\n")
    return files


def on_pre_build(config: Any) -> None:
    """Warns about every undocumented public name of the API pages' modules."""
    for page in sorted((Path(config["docs_dir"]) / "api").glob("*.md")):
        for module_name in re.findall(r"^::: ([\w.]+)", page.read_text(), re.MULTILINE):
            module = importlib.import_module(module_name)
            for name in getattr(module, "__all__", []):
                obj = getattr(module, name)
                documentable = inspect.ismodule(obj) or inspect.isclass(obj) or callable(obj)
                # Its own docstring: inspect.getdoc would inherit a base class's.
                if documentable and not (getattr(obj, "__doc__", None) or "").strip():
                    log.warning(f"{module_name}.{name} (on {page.name}) has no docstring")
