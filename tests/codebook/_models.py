"""The small trained Keras models the codebook tests cluster."""

import keras


def trained_mlp(x, y, hidden, classes, epochs):
    """A seeded ReLU MLP: Dense layers ``hidden`` ({name: units}) and a softmax
    Dense ``"out"`` of ``classes``, trained with Adam on ``(x, y)``."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            *(keras.layers.Dense(n, activation="relu", name=name) for name, n in hidden.items()),
            keras.layers.Dense(classes, activation="softmax", name="out"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=epochs, verbose=0)
    return model
