"""Model cards and inference runtimes (ONNX Runtime, TensorRT). No Qt."""
