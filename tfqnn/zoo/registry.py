"""The zoo's catalogue: every builder with its paper and published ImageNet figures.

`list_models()` names the builders, `get(name)` returns one and `info(name)`
its `ModelInfo`. Published numbers are the sources' (larq-zoo's docstrings
for the literature networks; for the classic networks, the papers' and
reference implementations' results named in `ModelInfo.source`); tfqnn
trains none of them on ImageNet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras

from tfqnn import _validation
from tfqnn.zoo import alexnet, googlenet, quicknet, resnet, vgg


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the zoo knows about one builder.

    Attributes:
        name: the builder's name (``"QuickNet"``).
        builder: the function that builds the model.
        paper: the paper the architecture follows, with its arXiv number.
        quantizations: the presets the builder takes (classic networks), or
            the one fixed scheme of a literature network (``("binary",)``).
        top1: published ImageNet top-1 accuracy (%) by preset, where a
            source gives one.
        source: where `top1` and `params` come from.
        params: the published parameter count at 224x224x3, where one exists
            (larq-zoo's), which the builder reproduces within 0.5 %.
    """

    name: str
    builder: Callable[..., keras.Model]
    paper: str
    quantizations: tuple[str, ...]
    top1: dict[str, float]
    source: str
    params: int | None = None


_CLASSIC = ("float", "binary", "xnor", "dorefa", "ternary")
_LARQ_ZOO = "larq-zoo docstrings (larq/zoo, larq_zoo/literature, larq_zoo/sota)"

_MODELS = (
    ModelInfo(
        "AlexNet",
        alexnet.AlexNet,
        "Krizhevsky 2014, One weird trick (arXiv:1404.5997)",
        _CLASSIC,
        {"float": 59.7, "xnor": 43.3, "dorefa": 53.4},
        "float and dorefa W1A2: tensorpack DoReFa-Net README; xnor: allenai/XNOR-Net "
        "released model",
    ),
    ModelInfo(
        "VGG16",
        vgg.VGG16,
        "Simonyan and Zisserman 2015 (arXiv:1409.1556)",
        _CLASSIC,
        {},
        "no source checked for these presets",
    ),
    ModelInfo(
        "GoogLeNet",
        googlenet.GoogLeNet,
        "Szegedy et al. 2015, Going deeper with convolutions (arXiv:1409.4842)",
        _CLASSIC,
        {},
        "no source checked for these presets",
    ),
    ModelInfo(
        "ResNet18",
        resnet.ResNet18,
        "He et al. 2016, Deep residual learning (arXiv:1512.03385)",
        _CLASSIC,
        {"float": 69.3, "xnor": 51.2},
        "XNOR-Net paper (arXiv:1603.05279), unconfirmed",
    ),
    ModelInfo(
        "ResNet34",
        resnet.ResNet34,
        "He et al. 2016, Deep residual learning (arXiv:1512.03385)",
        _CLASSIC,
        {},
        "no source checked for these presets",
    ),
    ModelInfo(
        "QuickNetSmall",
        quicknet.QuickNetSmall,
        "Bannink et al. 2021, Larq Compute Engine (arXiv:2011.09398)",
        ("binary",),
        {"binary": 59.4},
        _LARQ_ZOO,
        12_655_688,
    ),
    ModelInfo(
        "QuickNet",
        quicknet.QuickNet,
        "Bannink et al. 2021, Larq Compute Engine (arXiv:2011.09398)",
        ("binary",),
        {"binary": 63.3},
        _LARQ_ZOO,
        13_234_088,
    ),
    ModelInfo(
        "QuickNetLarge",
        quicknet.QuickNetLarge,
        "Bannink et al. 2021, Larq Compute Engine (arXiv:2011.09398)",
        ("binary",),
        {"binary": 66.9},
        _LARQ_ZOO,
        23_342_248,
    ),
    ModelInfo(
        "BiRealNet",
        resnet.BiRealNet,
        "Liu et al. 2018, Bi-Real Net (arXiv:1808.00278)",
        ("binary",),
        {"binary": 57.47},
        _LARQ_ZOO,
        11_699_112,
    ),
    ModelInfo(
        "BinaryResNetE18",
        resnet.BinaryResNetE18,
        "Bethge et al. 2019, Back to simplicity (arXiv:1906.08637)",
        ("binary",),
        {"binary": 58.32},
        _LARQ_ZOO,
        11_699_368,
    ),
    ModelInfo(
        "BinaryAlexNet",
        alexnet.BinaryAlexNet,
        "Hubara et al. 2016, Binarized Neural Networks (arXiv:1602.02830)",
        ("binary",),
        {"binary": 36.30},
        _LARQ_ZOO,
        61_859_192,
    ),
    ModelInfo(
        "XNORNet",
        alexnet.XNORNet,
        "Rastegari et al. 2016, XNOR-Net (arXiv:1603.05279)",
        ("xnor",),
        {"xnor": 44.96},
        _LARQ_ZOO,
        62_396_768,
    ),
    ModelInfo(
        "DoReFaNet",
        alexnet.DoReFaNet,
        "Zhou et al. 2016, DoReFa-Net (arXiv:1606.06160)",
        ("dorefa",),
        {"dorefa": 53.39},
        _LARQ_ZOO,
        62_403_912,
    ),
)
_BY_NAME = {model.name: model for model in _MODELS}


def list_models() -> list[str]:
    """The names of the zoo's builders: the classic networks, then the literature ones.

    Example:
        >>> ", ".join(tfqnn.zoo.list_models()[:3])
        'AlexNet, VGG16, GoogLeNet'
    """
    return [model.name for model in _MODELS]


def info(name: Any) -> ModelInfo:
    """The `ModelInfo` of the builder called ``name``.

    Raises:
        ValueError: ``name`` is not one of `list_models()`.
    """
    return _BY_NAME[_validation.check_choice("model", name, tuple(_BY_NAME))]


def get(name: Any) -> Callable[..., keras.Model]:
    """The builder called ``name`` (``tfqnn.zoo.get("QuickNet")(classes=10)``).

    Raises:
        ValueError: ``name`` is not one of `list_models()`.
    """
    return info(name).builder
