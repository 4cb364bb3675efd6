"""Networks built from tfqnn layers: the survey's classics and today's binary networks.

Every builder takes `keras.applications`' arguments with their meaning and
returns a functional `keras.Model`:

- ``include_top``: whether to end with the classifier;
- ``weights``: None (random initialization) or the path of a ``.weights.h5``
  or ``.keras`` file saved from the same builder with the same arguments, or
  of a tf_keras ``.h5`` weights file of the same architecture, such as
  larq-zoo's QuickNetSmall weights (read by layer order; tfqnn ships no
  pretrained ImageNet weights);
- ``input_tensor``: a Keras tensor to build on (``keras.Input(...)``);
- ``input_shape``: ``(height, width, channels)``, (224, 224, 3) by default;
  28x28x1 and 32x32x3 work, with a small-input stem below 50 px;
- ``pooling``: None, ``"avg"`` or ``"max"`` pooling of the features when
  ``include_top=False``;
- ``classes``: the classifier's width;
- ``classifier_activation``: the classifier's activation (computed in
  float32), None for logits;
- ``name``: the model's name.

The classic networks (`AlexNet`, `VGG16`, `GoogLeNet`, `ResNet18`,
`ResNet34`) also take ``quantization``, one of `QUANTIZATIONS` (``"float"``,
``"binary"``, ``"xnor"``, ``"dorefa"``, ``"ternary"``; their meaning is in
docs/zoo.md) and ``bits`` for ``"dorefa"``: an int for weights and
activations, or ``(weight_bits, activation_bits)``, W1A2 by default. The
literature networks (`QuickNetSmall`, `QuickNet`, `QuickNetLarge`,
`BiRealNet`, `BinaryResNetE18`, `BinaryAlexNet`, `XNORNet`, `DoReFaNet`) are
larq-zoo's definitions with its parameter counts.

Invalid arguments (an unknown model or preset, a missing weights file, a
file of another architecture or number of classes, an image too small for
the architecture) raise ValueError naming the argument.

Example:
    >>> model = tfqnn.zoo.ResNet18(input_shape=(28, 28, 1), classes=10,
    ...                            quantization="binary")
    >>> model.output_shape
    (None, 10)
"""

from __future__ import annotations

from tfqnn.zoo._presets import QUANTIZATIONS
from tfqnn.zoo.alexnet import AlexNet, BinaryAlexNet, DoReFaNet, XNORNet
from tfqnn.zoo.googlenet import GoogLeNet
from tfqnn.zoo.quicknet import QuickNet, QuickNetLarge, QuickNetSmall
from tfqnn.zoo.registry import ModelInfo, get, info, list_models
from tfqnn.zoo.resnet import BinaryResNetE18, BiRealNet, ResNet18, ResNet34
from tfqnn.zoo.vgg import VGG16

__all__ = [
    "QUANTIZATIONS",
    "AlexNet",
    "BiRealNet",
    "BinaryAlexNet",
    "BinaryResNetE18",
    "DoReFaNet",
    "GoogLeNet",
    "ModelInfo",
    "QuickNet",
    "QuickNetLarge",
    "QuickNetSmall",
    "ResNet18",
    "ResNet34",
    "VGG16",
    "XNORNet",
    "get",
    "info",
    "list_models",
]
