"""The documentation site's hooks (scripts/mkdocs_hooks.py); `make docs` builds the site."""

import importlib.util
import logging
import pathlib
import re
import sys
import types

import pytest

pytest.importorskip("mkdocs")

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hooks():
    spec = importlib.util.spec_from_file_location(
        "mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_links_point_at_site_pages(hooks):
    text = (
        "[a](docs/quantizers.md) [b](docs/lite.md#export) [c](benchmarks/README.md) "
        "[d](LICENSE) [e](https://keras.io) [f](docs/images/x.png)"
    )
    assert hooks._site_links(text) == (
        "[a](quantizers.md) [b](lite.md#export) [c](benchmarks.md) "
        "[d](license.md) [e](https://keras.io) [f](images/x.png)"
    )


def test_every_readme_and_docs_link_resolves_on_the_site(hooks):
    docs = ROOT / "docs"
    pages = {"benchmarks.md", "license.md"}
    text = hooks._site_links((ROOT / "README.md").read_text())
    for target in re.findall(r"\]\(([^)#:]+)", text):
        assert (docs / target).exists() or target in pages, target


def test_an_undocumented_public_name_is_a_warning(hooks, tmp_path, caplog, monkeypatch):
    module = types.ModuleType("tfqnn_fake_api")
    module.__all__ = ["documented", "undocumented", "CONSTANT"]

    def documented():
        """Has one."""

    def undocumented():
        pass

    module.documented, module.undocumented, module.CONSTANT = documented, undocumented, 3
    monkeypatch.setitem(sys.modules, "tfqnn_fake_api", module)
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "fake.md").write_text("# Fake\n\n::: tfqnn_fake_api\n")
    with caplog.at_level(logging.WARNING, logger="mkdocs.plugins.tfqnn"):
        hooks.on_pre_build({"docs_dir": str(tmp_path)})
    assert [r.getMessage() for r in caplog.records] == [
        "tfqnn_fake_api.undocumented (on fake.md) has no docstring"
    ]


def test_the_api_pages_cover_every_public_package():
    import tfqnn

    pages = "".join(p.read_text() for p in (ROOT / "docs" / "api").glob("*.md"))
    rendered = set(re.findall(r"^::: ([\w.]+)", pages, re.M))
    missing = [f"tfqnn.{name}" for name in tfqnn._SUBMODULES if f"tfqnn.{name}" not in rendered]
    assert not missing, f"add an API page (docs/api/) for {missing}"


def test_docs_show_the_curves_of_every_quantizer():
    import tfqnn

    shown = set(
        re.findall(
            r"!\[\w+\]\(images/quantizer_(\w+)\.png\)",
            (ROOT / "docs" / "quantizers.md").read_text(),
        )
    )
    assert shown == set(tfqnn.quantizers.ALIASES)
