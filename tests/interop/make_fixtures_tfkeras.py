"""Writes the tf_keras fixtures of tfqnn.interop: .h5 models of tf_keras 2.21 layers.

Run with the tf_keras peer environment's python (``scripts/peer_envs.sh``)::

    TF_USE_LEGACY_KERAS=1 .peers/tfkeras/bin/python tests/interop/make_fixtures_tfkeras.py DIR

Writes ``DIR/<name>.h5`` and ``DIR/<name>.npz`` as ``make_fixtures_larq.py``
does (`_peer_data.save_outputs`), after one epoch on 2,048 Fashion-MNIST
images.

- ``tfkeras_functional``: built-in layers only, with a layer shared by two
  branches, a skip connection, LayerNormalization and ``tf.maximum`` of two
  Keras tensors (a TFOpLambda layer in the config).
- ``qkeras_cnn``: QKeras 0.9 QConv2D, QDepthwiseConv2D, QConv1D-free CNN with
  ``quantized_bits`` (``alpha`` None, 1, ``"auto"`` and the ``"auto_po2"``
  that QDense gives a kernel quantizer without ``alpha``), ``ternary``
  (``alpha=1`` and the default ``"auto_po2"``), ``quantized_po2``,
  ``ternary``, ``quantized_relu`` and ``QActivation``; bias quantizers on
  QConv2D, QDepthwiseConv2D (``quantized_po2``), QSeparableConv2D (the
  string form) and QDense (``quantized_bits`` with ``alpha="auto"``).
- ``qkeras_conv1d``: QConv1D and QDense with ``quantized_bits`` kernel and
  bias quantizers, ``binary`` (``alpha=1`` and the layers' ``"auto_po2"``),
  ``stochastic_binary`` as a kernel quantizer (``"auto_po2"``) and
  ``stochastic_ternary`` as an activation (``alpha=1``): on TensorFlow 2
  they do not sample in ``fit`` nor in a ``training=True`` call. Its npz
  keeps 8 test images (size).
- ``qkeras_rnn``: QKeras 0.9 QLSTM, QGRU (``reset_after`` False, QKeras's
  default) and QSimpleRNN over the 28 rows of an image, with kernel,
  recurrent, bias and state quantizers, tanh and QKeras's hard_sigmoid.
- ``qkeras_rnn_activations``: QKeras quantizers as activations: QLSTM with
  its default ``quantized_tanh``, QGRU with ``quantized_sigmoid`` gates,
  QSimpleRNN, QDense with a ``quantized_relu`` activation and QActivation
  with ``quantized_tanh`` and ``quantized_sigmoid``, and a QBidirectional
  QSimpleRNN.
- ``tfkeras_activations``: every activation name tf_keras 2.21 resolves,
  one ``Activation`` layer each, and ``hard_sigmoid`` inside wrappers
  (``TimeDistributed``, ``RNN`` of a cell and of stacked cells); its npz
  holds the inputs ``x`` and tf_keras's output ``y:<layer>`` of each layer.
- ``tfmot_nested_pruned``: ``prune_low_magnitude`` of a model with a
  Sequential backbone as a layer (tfmot wraps the layers inside it too).
- ``tfkeras_lambda``: three ``Lambda`` layers of Python lambdas as larq-zoo
  writes them (MeliusNet22, RealToBinaryNet): larq-zoo's ``TFOpLayer`` of
  ``tf.split`` (a closure whose function tf_keras saves by its name), a
  merge with a default argument and ``tf.pad``, and an identity; for
  ``tfqnn.interop.load(..., safe_mode=False)``.
- ``tfmot_savedmodel`` (a nested Sequential, and a pruned and a clustered
  layer with their wrappers) and ``tfmot_qat_savedmodel``
  (``quantize_model``): SavedModel directories.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import tensorflow as tf
import tf_keras as keras

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _peer_data import fashion_mnist, save_outputs


def functional():
    L = keras.layers
    inputs = keras.Input((28, 28, 1), name="image")
    x = L.Rescaling(2.0, offset=-1.0, name="rescale")(inputs)
    x = L.Conv2D(8, 3, strides=2, activation="relu", name="conv")(x)  # 13 x 13
    x = L.BatchNormalization(name="bn")(x)
    y = L.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    x = L.Add(name="skip")([x, y])
    x = L.SeparableConv2D(16, 3, name="separable")(x)  # 11 x 11
    x = L.MaxPooling2D(2, name="pool")(x)  # 5 x 5
    x = L.Conv2DTranspose(8, 2, strides=2, name="transpose")(x)  # 10 x 10
    x = L.GlobalAveragePooling2D(name="gap")(x)
    shared = L.Dense(16, activation="tanh", name="shared")
    a = shared(x)
    b = shared(L.Dense(8, name="branch")(x))
    x = L.Concatenate(name="concat")([a, b, L.Multiply(name="mul")([a, b]), tf.maximum(a, b)])
    x = L.LayerNormalization(name="ln")(x)
    x = L.Dropout(0.2, name="dropout")(x)
    x = L.LeakyReLU(0.1, name="leaky")(x)
    outputs = L.Dense(10, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name="tfkeras_functional")


def qkeras_cnn():
    from qkeras import QActivation, QConv2D, QDense, QDepthwiseConv2D, QSeparableConv2D
    from qkeras import quantizers as q

    L = keras.layers
    inputs = keras.Input((28, 28, 1), name="image")
    x = QConv2D(
        8,
        3,
        strides=2,
        kernel_quantizer=q.quantized_bits(6, 0, alpha=1),
        use_bias=False,
        name="qconv",
    )(inputs)  # 13 x 13
    x = L.BatchNormalization(name="bn")(x)
    x = QActivation("quantized_relu(4,1)", name="qrelu")(x)
    x = QDepthwiseConv2D(
        3,
        padding="same",
        depthwise_quantizer=q.quantized_po2(4, 1),
        bias_quantizer=q.quantized_po2(5),
        name="qdepthwise",
    )(x)
    x = QActivation(q.quantized_bits(8, 2, 1), name="qbits")(x)
    x = QConv2D(
        16,
        3,
        kernel_quantizer=q.ternary(alpha=1),
        bias_quantizer=q.quantized_bits(6, 2, alpha=1),
        name="qternary",
    )(x)  # 11 x 11
    x = L.BatchNormalization(name="bn2")(x)
    x = QActivation(q.quantized_relu(3, 0), name="qrelu2")(x)
    x = QSeparableConv2D(
        16,
        3,
        depthwise_quantizer=q.quantized_bits(4, 1, 1, alpha=1),
        pointwise_quantizer=q.quantized_bits(5, 0, alpha="auto"),
        bias_quantizer="quantized_bits(5,1,1,alpha=1)",
        name="qseparable",
    )(x)  # 9 x 9
    x = QConv2D(8, 1, kernel_quantizer=q.ternary(), use_bias=False, name="qternary_auto")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = QDense(
        10,
        kernel_quantizer=q.quantized_bits(4, 0, 1),
        bias_quantizer=q.quantized_bits(8, 3, alpha="auto"),
        name="qdense",
    )(x)
    outputs = L.Activation("softmax", name="softmax")(x)
    return keras.Model(inputs, outputs, name="qkeras_cnn")


def qkeras_conv1d():
    from qkeras import QActivation, QConv1D, QDense
    from qkeras import quantizers as q

    return keras.Sequential(
        [
            keras.Input((28, 28)),
            QConv1D(
                16,
                3,
                strides=2,
                kernel_quantizer=q.quantized_bits(4, 0, alpha=1),
                bias_quantizer=q.quantized_bits(4, 1, alpha=1),
                name="qconv1d",
            ),
            keras.layers.BatchNormalization(name="bn"),
            QActivation("binary(alpha=1)", name="qbinary"),
            keras.layers.Flatten(name="flatten"),
            QDense(32, kernel_quantizer="binary()", use_bias=False, name="qdense_binary"),
            keras.layers.BatchNormalization(name="bn2"),
            QActivation("quantized_bits(4,0,keep_negative=False)", name="qunsigned"),
            QDense(
                16,
                kernel_quantizer="stochastic_binary()",
                use_bias=False,
                name="qdense_stochastic_binary",
            ),
            QActivation(q.stochastic_ternary(alpha=1, threshold=0.2), name="qstochastic_ternary"),
            QDense(
                10,
                kernel_quantizer=q.quantized_bits(8, 3, 1, alpha=1),
                bias_quantizer=q.quantized_bits(6, 2, alpha=1),
                name="qdense",
            ),
            keras.layers.Activation("softmax", name="softmax"),
        ],
        name="qkeras_conv1d",
    )


def qkeras_rnn():
    from qkeras import QGRU, QLSTM, QDense, QSimpleRNN
    from tensorflow.python.util import nest

    # QKeras 0.9's QGRUCell and QSimpleRNNCell call nest.is_sequence, which
    # TensorFlow renamed is_nested (same function) and removed by 2.21.
    if not hasattr(nest, "is_sequence"):
        nest.is_sequence = nest.is_nested
    from qkeras import quantizers as q

    def quantized(**kwargs):
        return dict(
            kernel_quantizer=q.quantized_bits(4, 0, alpha=1),
            recurrent_quantizer=q.quantized_bits(4, 0, alpha=1),
            bias_quantizer=q.quantized_bits(8, 2, alpha=1),
            state_quantizer=q.quantized_bits(8, 3, alpha=1),
            activation="tanh",
            **kwargs,
        )

    return keras.Sequential(
        [
            keras.Input((28, 28)),
            QLSTM(8, return_sequences=True, name="qlstm", **quantized()),
            QGRU(8, return_sequences=True, name="qgru", **quantized()),
            QSimpleRNN(8, name="qsimplernn", **quantized()),
            QDense(10, kernel_quantizer=q.quantized_bits(8, 3, 1, alpha=1), name="qdense"),
            keras.layers.Activation("softmax", name="softmax"),
        ],
        name="qkeras_rnn",
    )


def qkeras_rnn_activations():
    from qkeras import QGRU, QLSTM, QActivation, QBidirectional, QDense, QSimpleRNN
    from qkeras import quantizers as q
    from tensorflow.python.util import nest

    if not hasattr(nest, "is_sequence"):  # as in qkeras_rnn
        nest.is_sequence = nest.is_nested
    bits = q.quantized_bits(4, 0, alpha=1)
    return keras.Sequential(
        [
            keras.Input((28, 28)),
            QActivation(q.quantized_sigmoid(6, use_real_sigmoid=True), name="qsigmoid_real"),
            QBidirectional(
                QSimpleRNN(
                    3,
                    return_sequences=True,
                    kernel_quantizer=bits,
                    recurrent_quantizer=bits,
                    name="qsimplernn_both",
                ),
                name="qbidirectional",
            ),
            QLSTM(
                6,
                return_sequences=True,
                kernel_quantizer=bits,
                recurrent_quantizer=bits,
                name="qlstm_default",
            ),
            QGRU(
                6,
                return_sequences=True,
                activation=q.quantized_tanh(4, use_real_tanh=True),
                recurrent_activation=q.quantized_sigmoid(4),
                kernel_quantizer=bits,
                recurrent_quantizer=bits,
                name="qgru_quantized",
            ),
            QSimpleRNN(
                6,
                activation=q.quantized_tanh(5, symmetric=True),
                kernel_quantizer=bits,
                recurrent_quantizer=bits,
                name="qsimplernn_quantized",
            ),
            QActivation("quantized_tanh(3)", name="qtanh"),
            QDense(
                12, activation=q.quantized_relu(4, 2), kernel_quantizer=bits, name="qdense_relu"
            ),
            QDense(10, kernel_quantizer=bits, name="qdense"),
            keras.layers.Activation("softmax", name="softmax"),
        ],
        name="qkeras_rnn_activations",
    )


def _mlp(name):
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(32, activation="relu", name="hidden"),
            keras.layers.Dense(10, activation="softmax", name="classes"),
        ],
        name=name,
    )


def tfmot_pruned():
    """An MLP pruned to 75 % by tfmot's prune_low_magnitude, then strip_pruning."""
    import tensorflow_model_optimization as tfmot

    sparsity = tfmot.sparsity.keras
    schedule = sparsity.ConstantSparsity(0.75, begin_step=0, frequency=1)
    return sparsity.prune_low_magnitude(_mlp("tfmot_pruned"), pruning_schedule=schedule)


def tfmot_clustered():
    """An MLP clustered to 8 values per kernel by tfmot's cluster_weights, then stripped."""
    import tensorflow_model_optimization as tfmot

    clustering = tfmot.clustering.keras
    return clustering.cluster_weights(
        _mlp("tfmot_clustered"),
        number_of_clusters=8,
        cluster_centroids_init=clustering.CentroidInitialization.LINEAR,
    )


def _cnn(name):
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            L.Conv2D(8, 3, strides=2, activation="relu", name="conv"),  # 13 x 13
            L.MaxPooling2D(2, name="pool"),  # 6 x 6
            L.Flatten(name="flatten"),
            L.Dense(16, activation="relu", name="hidden"),
            L.Dense(10, activation="softmax", name="classes"),
        ],
        name=name,
    )


def tfmot_pruned_wrapped():
    """A CNN wrapped by prune_low_magnitude (50 %), saved with its wrappers (not stripped)."""
    import tensorflow_model_optimization as tfmot

    sparsity = tfmot.sparsity.keras
    schedule = sparsity.ConstantSparsity(0.5, begin_step=0, frequency=1)
    return sparsity.prune_low_magnitude(_cnn("tfmot_pruned_wrapped"), pruning_schedule=schedule)


def tfmot_clustered_wrapped():
    """A CNN wrapped by cluster_weights (16 values per kernel), saved with its wrappers."""
    import tensorflow_model_optimization as tfmot

    clustering = tfmot.clustering.keras
    return clustering.cluster_weights(
        _cnn("tfmot_clustered_wrapped"),
        number_of_clusters=16,
        cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS,
    )


def tfmot_qat():
    """A CNN wrapped by quantize_model (tfmot's default 8-bit scheme), saved with its wrappers."""
    import tensorflow_model_optimization as tfmot

    return tfmot.quantization.keras.quantize_model(_cnn("tfmot_qat"))


def tfmot_qat_cnn():
    """quantize_model of a small CNN with what tfmot's default 8-bit scheme wraps in one.

    Conv2D and DepthwiseConv2D followed by BatchNormalization (with ReLU
    layers, an ``Activation("relu")`` and without), Add, Concatenate, max,
    average and global pooling, LeakyReLU, SeparableConv2D (which tfmot
    splits in two), Conv2DTranspose, Dense followed by BatchNormalization,
    Dropout and softmax, on 14 x 14 images (every other
    pixel) to keep the fixture small.
    """
    import tensorflow_model_optimization as tfmot

    L = keras.layers
    inputs = keras.Input((14, 14, 1), name="image")
    a = L.Conv2D(4, 3, use_bias=False, name="conv")(inputs)  # 12 x 12
    a = L.BatchNormalization(name="bn")(a)
    a = L.ReLU(name="relu")(a)
    b = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="depthwise")(a)
    b = L.BatchNormalization(name="bn_dw")(b)
    b = L.Activation("relu", name="act_relu")(b)
    c = L.ReLU(name="add_relu")(L.Add(name="add")([a, b]))
    d = L.Conv2D(4, 1, activation="relu", name="pointwise")(c)
    e = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="depthwise_linear")(c)
    f = L.MaxPooling2D(2, name="maxpool")(L.Concatenate(name="concat")([d, e]))  # 6 x 6
    g = L.Conv2D(8, 3, use_bias=False, name="conv_bn")(f)  # 4 x 4
    g = L.BatchNormalization(name="bn_out")(g)
    g = L.LeakyReLU(0.1, name="leaky")(L.AveragePooling2D(2, name="avgpool")(g))
    g = L.GlobalAveragePooling2D(name="gap")(g)
    # tfmot rewrites SeparableConv2D as DepthwiseConv2D then Conv2D.
    h = L.SeparableConv2D(6, 3, activation="relu", name="separable")(f)  # 4 x 4
    h = L.Conv2DTranspose(4, 2, strides=2, name="transpose")(h)  # 8 x 8
    g = L.Concatenate(name="features")([g, L.GlobalMaxPooling2D(name="gmp")(h)])
    g = L.Dense(12, use_bias=False, name="dense_bn")(g)
    g = L.BatchNormalization(name="bn_dense")(g)
    g = L.Dropout(0.1, name="dropout")(L.Activation("relu", name="dense_relu")(g))
    outputs = L.Activation("softmax", name="softmax")(L.Dense(10, name="logits")(g))
    model = keras.Model(inputs, outputs, name="tfmot_qat_cnn")
    return tfmot.quantization.keras.quantize_model(model)


def tf_op_layer(tf_op, *args, **kwargs):
    """larq_zoo/core/utils.py's TFOpLayer: a TensorFlow op in a Lambda layer."""
    name = kwargs.pop("name", None)
    return keras.layers.Lambda(lambda x_: tf_op(x_, *args, **kwargs), name=name)


def tfkeras_lambda():
    """Lambda layers of Python lambdas, as larq-zoo's MeliusNet22 and RealToBinaryNet use them."""
    L = keras.layers
    inputs = keras.Input((14, 14, 1), name="image")
    x = L.Conv2D(8, 3, strides=2, name="conv")(inputs)
    halves = tf_op_layer(tf.split, 2, axis=-1, name="split")(x)
    wide = L.Conv2D(8, 3, padding="same", name="conv_a")(halves[0])
    narrow = L.Conv2D(4, 3, padding="same", name="conv_b")(halves[1])
    x = L.Lambda(
        lambda x_, f_in=8: x_[0] + tf.pad(x_[1], [[0, 0], [0, 0], [0, 0], [f_in - 4, 0]]),
        name="merge",
    )([wide, narrow])
    x = L.Lambda(lambda x: x, name="identity")(L.ReLU(name="relu")(x))
    outputs = L.Dense(10, activation="softmax", name="dense")(L.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs, name="tfkeras_lambda")


def tfkeras_nested():
    """A functional model that calls a frozen Sequential and a functional model as layers.

    Transfer learning's shape (and larq-zoo's models used as a backbone):
    the Sequential ``backbone`` (trainable=False) and the functional
    ``head`` with a QKeras QDense are layers of the outer model, whose own
    Dense shares the name ``dense`` with one inside ``head``.
    """
    from qkeras import QDense
    from qkeras import quantizers as q

    L = keras.layers
    backbone = keras.Sequential(
        [
            keras.Input((14, 14, 1)),
            L.Conv2D(4, 3, strides=2, name="conv"),
            L.BatchNormalization(name="bn"),
            L.ReLU(name="relu"),
            L.GlobalAveragePooling2D(name="gap"),
        ],
        name="backbone",
    )
    backbone.trainable = False
    features = keras.Input((4,), name="features")
    quantized = QDense(8, kernel_quantizer=q.quantized_bits(4, 0, alpha=1), name="qdense")
    y = L.Add(name="skip")([L.Dense(8, name="dense")(features), quantized(features)])
    head = keras.Model(features, L.Activation("relu", name="act")(y), name="head")
    inputs = keras.Input((14, 14, 1), name="image")
    outputs = L.Dense(10, activation="softmax", name="dense")(head(backbone(inputs)))
    return keras.Model(inputs, outputs, name="tfkeras_nested")


def tfkeras_savedmodel():
    """A small functional model with a QKeras QDense, saved as a SavedModel directory."""
    from qkeras import QDense
    from qkeras import quantizers as q

    L = keras.layers
    inputs = keras.Input((14, 14, 1), name="image")
    x = L.Flatten(name="flatten")(inputs)
    x = QDense(8, kernel_quantizer=q.quantized_bits(4, 0, alpha=1), name="qdense")(x)
    y = L.BatchNormalization(name="bn")(x)
    x = L.Activation("relu", name="relu")(L.Add(name="add")([x, y]))
    outputs = L.Dense(10, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name="tfkeras_savedmodel")


# Every activation name tf_keras 2.21's activations.get resolves (its module's functions
# and the aliases leaky_relu, log_softmax, relu6, silu).
ACTIVATION_NAMES = (
    "elu",
    "exponential",
    "gelu",
    "hard_sigmoid",
    "leaky_relu",
    "linear",
    "log_softmax",
    "mish",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "softsign",
    "swish",
    "tanh",
)


def tfkeras_activations():
    """One Activation layer per name, and hard_sigmoid inside tf_keras's wrappers."""
    L = keras.layers
    inputs = keras.Input((5, 8), name="x")
    outputs = [L.Activation(name, name=f"act_{name}")(inputs) for name in ACTIVATION_NAMES]
    dense = L.Dense(6, activation="hard_sigmoid", name="dense")
    outputs.append(L.TimeDistributed(dense, name="time_distributed_dense")(inputs))
    outputs.append(
        L.TimeDistributed(L.Activation("hard_sigmoid", name="act"), name="time_distributed_act")(
            inputs
        )
    )
    cell = L.LSTMCell(4, activation="hard_sigmoid", recurrent_activation="hard_sigmoid")
    outputs.append(L.RNN(cell, return_sequences=True, name="rnn_lstm_cell")(inputs))
    cells = [
        L.GRUCell(4, recurrent_activation="hard_sigmoid"),
        L.SimpleRNNCell(3, activation="hard_sigmoid"),
    ]
    outputs.append(L.RNN(cells, name="rnn_stacked_cells")(inputs))
    outputs.append(L.Conv1D(4, 3, activation="gelu", name="conv_gelu")(inputs))
    return keras.Model(inputs, outputs, name="tfkeras_activations")


def activation_inputs():
    """Inputs over [-8, 8] with the breakpoints of hard_sigmoid (+-2.5, +-3) and 0."""
    rng = np.random.default_rng(15)
    x = rng.uniform(-8, 8, (2, 5, 8)).astype(np.float32)
    x.flat[:9] = [-3.0, -2.5, -1.0, 0.0, 1.0, 2.5, 3.0, 6.0, -6.0]
    return x


def save_activations(model, path):
    x = activation_inputs()
    outputs = model.predict(x, verbose=0)
    names = [name.split("/")[0] for name in model.output_names]
    np.savez_compressed(path, x=x, **{f"y:{n}": y for n, y in zip(names, outputs)})


def tfmot_savedmodel():
    """A nested Sequential, a prune_low_magnitude and a cluster_weights layer, wrappers kept."""
    import tensorflow_model_optimization as tfmot

    L = keras.layers
    sparsity, clustering = tfmot.sparsity.keras, tfmot.clustering.keras
    backbone = keras.Sequential(
        [
            keras.Input((14, 14, 1)),
            L.Conv2D(4, 3, strides=2, name="conv"),  # 6 x 6
            L.BatchNormalization(name="bn"),
            L.ReLU(name="relu"),
            L.MaxPooling2D(2, name="pool"),  # 3 x 3
        ],
        name="backbone",
    )
    inputs = keras.Input((14, 14, 1), name="image")
    x = L.Flatten(name="flatten")(backbone(inputs))
    schedule = sparsity.ConstantSparsity(0.5, begin_step=0, frequency=1)
    hidden = L.Dense(12, activation="relu", name="hidden")
    x = sparsity.prune_low_magnitude(hidden, pruning_schedule=schedule)(x)
    classes = L.Dense(10, activation="softmax", name="classes")
    outputs = clustering.cluster_weights(
        classes,
        number_of_clusters=8,
        cluster_centroids_init=clustering.CentroidInitialization.LINEAR,
    )(x)
    return keras.Model(inputs, outputs, name="tfmot_savedmodel")


def tfmot_nested_pruned():
    """prune_low_magnitude of a model that uses a Sequential backbone as a layer.

    tfmot wraps the backbone's Conv2D inside the nested model, and the outer Dense.
    """
    import tensorflow_model_optimization as tfmot

    L = keras.layers
    backbone = keras.Sequential(
        [
            keras.Input((14, 14, 1)),
            L.Conv2D(4, 3, strides=2, activation="relu", name="conv"),  # 6 x 6
            L.MaxPooling2D(2, name="pool"),  # 3 x 3
            L.Flatten(name="flatten"),
        ],
        name="backbone",
    )
    inputs = keras.Input((14, 14, 1), name="image")
    outputs = L.Dense(10, activation="softmax", name="classes")(backbone(inputs))
    sparsity = tfmot.sparsity.keras
    schedule = sparsity.ConstantSparsity(0.5, begin_step=0, frequency=1)
    model = keras.Model(inputs, outputs, name="tfmot_nested_pruned")
    return sparsity.prune_low_magnitude(model, pruning_schedule=schedule)


def tfmot_qat_savedmodel():
    """quantize_model of a small CNN with a BatchNormalization, saved as a SavedModel."""
    import tensorflow_model_optimization as tfmot

    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((14, 14, 1)),
            L.Conv2D(4, 3, strides=2, use_bias=False, name="conv"),  # 6 x 6
            L.BatchNormalization(name="bn"),
            L.ReLU(name="relu"),
            L.MaxPooling2D(2, name="pool"),  # 3 x 3
            L.Flatten(name="flatten"),
            L.Dense(10, activation="softmax", name="classes"),
        ],
        name="tfmot_qat_savedmodel",
    )
    return tfmot.quantization.keras.quantize_model(model)


def strip(model):
    """tfmot's strip_pruning or strip_clustering, whichever wrappers the model has."""
    import tensorflow_model_optimization as tfmot

    if model.name == "tfmot_pruned":
        return tfmot.sparsity.keras.strip_pruning(model)
    if model.name == "tfmot_clustered":
        return tfmot.clustering.keras.strip_clustering(model)
    return model


MODELS = {
    "tfkeras_functional": functional,
    "qkeras_cnn": qkeras_cnn,
    "qkeras_conv1d": qkeras_conv1d,
    "qkeras_rnn": qkeras_rnn,
    "qkeras_rnn_activations": qkeras_rnn_activations,
    "tfmot_pruned": tfmot_pruned,
    "tfmot_clustered": tfmot_clustered,
    "tfmot_pruned_wrapped": tfmot_pruned_wrapped,
    "tfmot_clustered_wrapped": tfmot_clustered_wrapped,
    "tfmot_qat": tfmot_qat,
    "tfmot_qat_cnn": tfmot_qat_cnn,
    "tfkeras_nested": tfkeras_nested,
    "tfkeras_savedmodel": tfkeras_savedmodel,
    "tfkeras_activations": tfkeras_activations,
    "tfmot_savedmodel": tfmot_savedmodel,
    "tfmot_qat_savedmodel": tfmot_qat_savedmodel,
    "tfmot_nested_pruned": tfmot_nested_pruned,
    "tfkeras_lambda": tfkeras_lambda,
}
# Models saved with fewer, smaller samples: every other pixel, 4 test and 8
# training images (the fixtures stay small).
SMALL = (
    "tfmot_qat_cnn",
    "tfkeras_nested",
    "tfkeras_savedmodel",
    "tfmot_savedmodel",
    "tfmot_qat_savedmodel",
    "tfmot_nested_pruned",
    "tfkeras_lambda",
)
# Models saved as a SavedModel directory NAME (model.save(NAME, save_format="tf")).
SAVED_MODELS = (
    "tfkeras_savedmodel",
    "tfmot_savedmodel",
    "tfmot_qat_savedmodel",
)


def main(directory, names=()):
    os.makedirs(directory, exist_ok=True)
    x_train, y_train, x_test = fashion_mnist()
    for name, build in MODELS.items():
        if names and name not in names:
            continue
        keras.utils.set_random_seed(15)
        model = build()
        if name == "tfkeras_activations":  # no training: tf_keras's outputs of each layer
            path = os.path.join(directory, name + ".h5")
            model.save(path, include_optimizer=False)
            save_activations(model, os.path.join(directory, name + ".npz"))
            continue
        model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        train, test = (
            (x_train, x_test)
            if name not in ("qkeras_conv1d", "qkeras_rnn")
            else (x_train[..., 0], x_test[..., 0])
        )
        if name in SMALL:
            train, test = train[:, ::2, ::2], test[:, ::2, ::2]
        callbacks = []
        if name.startswith("tfmot_pruned") or name in ("tfmot_savedmodel", "tfmot_nested_pruned"):
            import tensorflow_model_optimization as tfmot

            callbacks = [tfmot.sparsity.keras.UpdatePruningStep()]
        model.fit(train, y_train, batch_size=128, epochs=1, verbose=0, callbacks=callbacks)
        model = strip(model)
        path = os.path.join(directory, name + ".h5")
        if name in SAVED_MODELS:
            path = os.path.join(directory, name)
            model.save(path, include_optimizer=False, save_format="tf")
        else:
            model.save(path, include_optimizer=False)
        y_small = y_train[:16]
        if name in SMALL:  # room in the 2 MB of fixtures
            test, train, y_small = test[:4], train[:8], y_train[:8]
        elif name == "qkeras_conv1d":
            test = test[:8]
        save_outputs(model, os.path.join(directory, name + ".npz"), test, train[:16], y_small)
        print(f"{path}: {os.path.getsize(path)} bytes, tf {tf.__version__}")


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--large"]  # no large models here
    # DIR, then optionally the names of the models to write (all by default).
    main(
        arguments[0] if arguments else os.path.join(os.path.dirname(__file__), "fixtures"),
        arguments[1:],
    )
