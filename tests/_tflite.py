"""Reading .tflite files in tests: the builtin ops a file holds (`tfqnn.lite.builtin_ops_in`),
the tensors whose declared shape is not the one the interpreter allocates."""

from tfqnn.lite import builtin_ops_in as builtin_ops
from tfqnn.lite import flatbuffer

__all__ = ["builtin_ops", "undeclared_shapes"]


def undeclared_shapes(data):
    """``[(index, name, declared, allocated)]`` for each tensor of the main graph
    whose shape in the file differs from its shape after ``allocate_tensors``."""
    import tfqnn

    graph = flatbuffer.read_model(data).Subgraphs(0)
    interpreter = tfqnn.lite.Interpreter(model_content=data)
    interpreter.allocate_tensors()
    allocated = {d["index"]: [int(v) for v in d["shape"]] for d in interpreter.get_tensor_details()}
    assert len(allocated) == graph.TensorsLength()  # every tensor is listed
    found = []
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        declared = [int(v) for v in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []
        if declared != allocated[i]:
            found.append((i, tensor.Name().decode(), declared, allocated[i]))
    return found
