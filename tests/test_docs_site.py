"""The documentation site's hooks (scripts/mkdocs_hooks.py); `make docs` builds the site."""

import importlib.util
import json
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


def test_benchmark_pictures_point_at_the_site_images(hooks):
    text = "![a](../docs/images/x.png) [b](../docs/training.md#pictures-tfqnnplot)"
    assert hooks._site_links(text) == "![a](images/x.png) [b](training.md#pictures-tfqnnplot)"


def test_every_benchmarks_readme_picture_exists_and_resolves_on_the_site(hooks):
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert "../docs/images/pareto_weight_procedures_lenet.png" in pictures
    for target in pictures:
        assert (ROOT / "benchmarks" / target).exists(), target
    for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", hooks._site_links(readme)):
        assert (ROOT / "docs" / target).exists(), target


def test_docs_images_reads_the_weight_procedures_results(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "docs_images", ROOT / "scripts" / "docs_images.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = [
        {"model": "m", "method": "float", "accuracy": 0.9, "size_bytes": 4000},
        {"model": "m", "method": "INQ 5 bits", "accuracy": 0.895, "size_bytes": 640},
        {"model": "n", "method": "float", "accuracy": 0.5, "size_bytes": 8},
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"rows": rows}))
    assert module.weight_procedure_results(path) == {
        "m": {
            "float": {"accuracy": pytest.approx(90.0), "size": 4000},
            "INQ 5 bits": {"accuracy": pytest.approx(89.5), "size": 640},
        },
        "n": {"float": {"accuracy": pytest.approx(50.0), "size": 8}},
    }


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
