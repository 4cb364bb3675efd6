"""Prints the model table of docs/zoo.md: every zoo builder at 224x224x3, 1000 classes.

Parameters, MACs, binary share of MACs and size at the weights' precision
come from `tfqnn.summary`; the published top-1 accuracy from
`tfqnn.zoo.info`. Run: ``.venv/bin/python scripts/zoo_table.py``.
"""

from __future__ import annotations

import tfqnn


def main() -> None:
    print(
        "| model | quantization | parameters | MACs | binary MACs | size (MB) "
        "| paper | published top-1 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in tfqnn.zoo.list_models():
        info = tfqnn.zoo.info(name)
        for quantization in info.quantizations:
            kwargs = {} if len(info.quantizations) == 1 else {"quantization": quantization}
            model = info.builder(**kwargs)
            summary = tfqnn.summary(model, print_fn=None)
            top1 = info.top1.get(quantization)
            print(
                f"| {name} | {quantization} | {summary.total_params / 1e6:.2f} M "
                f"| {summary.total_macs / 1e9:.2f} G | {100 * summary.binary_mac_fraction:.1f} % "
                f"| {summary.quantized_bytes / 1e6:.2f} | {info.paper} "
                f"| {'' if top1 is None else f'{top1} %'} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
