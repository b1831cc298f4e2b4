"""The live path: LSL in, windows, ONNX encoder, scores out (built on ``models``)."""
