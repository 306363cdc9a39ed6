"""Backends: PyTorch, ONNX and Graphviz lowerings of the graph IR (later issues)."""
