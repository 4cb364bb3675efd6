"""Reading .tflite files in tests: the builtin ops a file holds.

(`tfqnn.lite.custom_ops_in` counts the custom ops.)
"""

from tfqnn.lite import flatbuffer


def builtin_ops(data):
    """The builtin op names of a .tflite file, every subgraph's, with their counts.

    Custom ops are left out: `tfqnn.lite.custom_ops_in` counts them.
    """
    schema = flatbuffer.schema()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = flatbuffer.read_model(data)
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        codes.append(None if code.CustomCode() is not None else names[builtin])
    counts = {}
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            name = codes[subgraph.Operators(o).OpcodeIndex()]
            if name is not None:
                counts[name] = counts.get(name, 0) + 1
    return counts
