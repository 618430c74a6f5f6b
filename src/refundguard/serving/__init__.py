"""Serving: the scorer, its reasons, batch and Spark scoring, pyfunc, ONNX, the registry, export."""
