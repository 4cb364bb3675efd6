"""Draws the documentation's pictures into docs/images/ (run by `make docs`).

- ``quantizer_<alias>.png``: `tfqnn.plot.quantizer` of every quantizer alias
  at its defaults (docs/quantizers.md shows them);
- ``summary_demo_cnn.png``: `tfqnn.plot.summary` of the demo's binarized CNN
  (examples/binarized_fashion_mnist.py).

The PNGs carry no timestamp or version, so an unchanged figure rewrites the
same bytes. Usage: python scripts/docs_images.py [--out docs/images]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tfqnn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
import binarized_fashion_mnist as demo  # noqa: E402


def save(figure, path):
    figure.savefig(path, dpi=72, metadata={"Software": None})
    print(f"wrote {os.path.relpath(path, ROOT)}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "images"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for alias in sorted(tfqnn.quantizers.ALIASES):
        save(tfqnn.plot.quantizer(alias), os.path.join(args.out, f"quantizer_{alias}.png"))
    model = demo.build_model((28, 28, 1), True, "demo_cnn")
    save(tfqnn.plot.summary(model), os.path.join(args.out, "summary_demo_cnn.png"))


if __name__ == "__main__":
    main()
