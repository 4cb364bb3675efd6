"""tfqnn.lite.Interpreter and the other ways to load tfqnn's kernels; clear errors."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import tfqnn
from tfqnn.lite import Interpreter, reference
from tfqnn.lite.testing import Op, Tensor, op_model, single_op_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def quantize_dense_model(rng, in_features=45, out_features=6):
    """float x -> TfqnnQuantize -> TfqnnBdense -> float, and its numpy twin."""
    w = reference.bitpack(
        rng.choice([-1.0, 1.0], size=(out_features, in_features)).astype(np.float32)
    )
    m = rng.uniform(0.5, 2, out_features).astype(np.float32)
    b = rng.normal(size=out_features).astype(np.float32)
    words = -(-in_features // 32)
    tensors = [
        Tensor([3, in_features]),
        Tensor([3, words], "int32"),
        Tensor(w.shape, "int32", w),
        Tensor([out_features], data=m),
        Tensor([out_features], data=b),
        Tensor([3, out_features]),
    ]
    ops = [
        Op("TfqnnQuantize", [0], [1]),
        Op("TfqnnBdense", [1, 2, 3, 4], [5], {"in_features": in_features}),
    ]
    model = op_model(ops, tensors, inputs=[0], outputs=[5])

    def expected(x):
        return reference.bdense(reference.quantize(x), w, m, b, in_features)

    return model, expected


def invoke_once(interpreter, x):
    """Runs a plain TFLite interpreter on one input array."""
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_quantize_then_dense_runs_as_one_delegated_partition(rng):
    model, expected = quantize_dense_model(rng)
    x = rng.normal(size=(3, 45)).astype(np.float32)
    np.testing.assert_array_equal(Interpreter(model_content=model).predict(x), expected(x))


def test_model_path_and_batch_resizing(rng, tmp_path):
    model, expected = quantize_dense_model(rng)
    path = tmp_path / "m.tflite"
    path.write_bytes(model)
    interpreter = Interpreter(model_path=str(path), num_threads=2)
    x = rng.normal(size=(10, 45)).astype(np.float32)
    np.testing.assert_array_equal(interpreter.predict(x, batch_size=4), expected(x))


def test_inference_without_tensorflow(rng, tmp_path):
    """The delegate path needs ai-edge-litert and tfqnn's library only."""
    model, expected = quantize_dense_model(rng)
    x = rng.normal(size=(3, 45)).astype(np.float32)
    (tmp_path / "m.tflite").write_bytes(model)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", expected(x))
    script = textwrap.dedent(f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                    raise ModuleNotFoundError("blocked: " + name, name=name)
        sys.meta_path.insert(0, Block())
        import numpy as np
        import tfqnn.lite
        y = tfqnn.lite.Interpreter(model_path=r"{tmp_path / "m.tflite"}").predict(
            np.load(r"{tmp_path / "x.npy"}"))
        assert np.array_equal(y, np.load(r"{tmp_path / "y.npy"}")), y
        assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
        print("ok")
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_tf_lite_interpreter_with_the_delegate(rng):
    import tensorflow as tf

    model, expected = quantize_dense_model(rng)
    delegate = tf.lite.experimental.load_delegate(tfqnn.lite.library_path())
    interpreter = tf.lite.Interpreter(model_content=model, experimental_delegates=[delegate])
    x = rng.normal(size=(3, 45)).astype(np.float32)
    np.testing.assert_array_equal(invoke_once(interpreter, x), expected(x))


def test_tf_lite_interpreter_with_the_op_registerer(rng):
    from tensorflow.lite.python.interpreter import InterpreterWithCustomOps

    tfqnn.lite.load_library()  # RTLD_GLOBAL: the registerer is found by name
    model, expected = quantize_dense_model(rng)
    interpreter = InterpreterWithCustomOps(
        model_content=model, custom_op_registerers=["TfqnnRegisterOps"]
    )
    x = rng.normal(size=(3, 45)).astype(np.float32)
    np.testing.assert_array_equal(invoke_once(interpreter, x), expected(x))


def test_plain_interpreter_names_the_missing_custom_op(rng):
    from ai_edge_litert.interpreter import Interpreter as LiteRT

    model, _ = quantize_dense_model(rng)
    with pytest.raises(RuntimeError, match="TfqnnQuantize"):
        LiteRT(model_content=model).allocate_tensors()


def test_missing_kernel_library_says_how_to_build_it(rng, tmp_path):
    model, _ = quantize_dense_model(rng)
    (tmp_path / "m.tflite").write_bytes(model)
    script = f"import tfqnn.lite; tfqnn.lite.Interpreter(model_path=r'{tmp_path / 'm.tflite'}')"
    env = dict(os.environ, TFQNN_LIBRARY=str(tmp_path / "missing.so"))
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode != 0
    assert "pip install" in result.stderr and "missing.so" in result.stderr


def test_malformed_model_bytes_raise():
    with pytest.raises(ValueError):
        Interpreter(model_content=b"definitely not a flatbuffer")
    with pytest.raises(ValueError):
        tfqnn.lite.custom_ops_in(b"\x00" * 64)


def test_op_counts_agree_with_litert_op_details():
    """custom_ops_in and builtin_ops_in together count what LiteRT's interpreter lists."""
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
            tfqnn.layers.QuantConv2D(
                8,
                3,
                padding="same",
                input_quantizer="ste_sign",
                kernel_quantizer="ste_sign",
                kernel_constraint="weight_clip",
            ),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    data = tfqnn.export.to_tflite(model, verbose=0)
    interpreter = Interpreter(model_content=data)
    listed = {}
    for op in interpreter._interpreter._get_ops_details():
        if op["op_name"] != "DELEGATE":  # the node a delegate adds, not in the file
            listed[op["op_name"]] = listed.get(op["op_name"], 0) + 1
    custom, builtin = tfqnn.lite.custom_ops_in(data), tfqnn.lite.builtin_ops_in(data)
    assert custom["TfqnnBconv2d"] == 1 and builtin["CONV_2D"] == 1
    assert not set(custom) & set(builtin)
    assert {**custom, **builtin} == listed
    with pytest.raises(ValueError, match="^Invalid model_content: expected a TFLite flatbuffer"):
        tfqnn.lite.builtin_ops_in(b"not a model")
    with pytest.raises(ValueError, match="^Invalid model_content: expected a valid TFLite model"):
        tfqnn.lite.builtin_ops_in(data[:8] + b"\xff" * 8)


def test_input_tensor_with_constant_data_is_rejected(tmp_path):
    # LiteRT itself crashes in set_tensor on such a file.
    model = op_model(
        [Op("TfqnnQuantize", [0], [1])],
        [Tensor([1, 3], data=np.ones((1, 3), np.float32)), Tensor([1, 1], "int32")],
        inputs=[0],
        outputs=[1],
    )
    (tmp_path / "m.tflite").write_bytes(model)
    with pytest.raises(ValueError, match="input tensor 0 .*constant data"):
        Interpreter(model_path=str(tmp_path / "m.tflite"))


def test_inconsistent_options_fail_allocation_with_the_reason(rng):
    w = np.zeros((4, 2), np.int32)
    model = single_op_model(
        "TfqnnBdense",
        {"in_features": 100},  # 4 words, but the input has 2
        [
            Tensor([1, 2], "int32"),
            Tensor([4, 2], "int32", w),
            Tensor([4], data=np.ones(4, np.float32)),
            Tensor([4], data=np.zeros(4, np.float32)),
        ],
        [Tensor([1, 4])],
    )
    with pytest.raises(RuntimeError, match="TfqnnBdense.*in_features"):
        Interpreter(model_content=model).allocate_tensors()
    model = single_op_model(
        "TfqnnQuantize", {"bogus": 1}, [Tensor([1, 3])], [Tensor([1, 1], "int32")]
    )
    with pytest.raises(RuntimeError, match="unknown option 'bogus'"):
        Interpreter(model_content=model).allocate_tensors()


def test_bad_arguments(rng):
    model, _ = quantize_dense_model(rng)
    with pytest.raises(ValueError, match="^Invalid num_threads=0: expected"):
        Interpreter(model_content=model, num_threads=0)
    with pytest.raises(ValueError, match="^Invalid model_path and model_content: .*neither"):
        Interpreter()
    with pytest.raises(ValueError, match="^Invalid model_path and model_content: .*both"):
        Interpreter(model_path="m.tflite", model_content=model)
    with pytest.raises(
        ValueError, match=r"^Invalid inputs: expected one array per model input \(1\), got 2"
    ):
        Interpreter(model_content=model).predict(np.zeros((1, 45)), np.zeros((1, 45)))
    with pytest.raises(ValueError, match="^Invalid batch_size=0: expected"):
        Interpreter(model_content=model).predict(np.zeros((1, 45)), batch_size=0)
    with pytest.raises(ValueError, match="^Invalid model_content: expected a TFLite flatbuffer"):
        tfqnn.lite.custom_ops_in(b"not a model")
    with pytest.raises(ValueError, match="^Invalid model_content: expected a valid TFLite model"):
        tfqnn.lite.custom_ops_in(model[:8] + b"\xff" * 8)


def test_predict_returns_outputs_in_the_keras_models_order(rng):
    # Twelve outputs: the signature's names sort as output_0, output_1, output_10, ...
    # and the file's output tensors come in yet another order.
    x = keras.Input((4,))
    model = keras.Model(x, [keras.layers.Rescaling(i + 1.0)(x) for i in range(12)])
    content = tfqnn.export.to_tflite(model, verbose=0)
    data = rng.normal(size=(3, 4)).astype(np.float32)
    outputs = Interpreter(model_content=content).predict(data)
    assert len(outputs) == 12
    for i, output in enumerate(outputs):
        np.testing.assert_allclose(output, data * (i + 1), rtol=1e-6)
