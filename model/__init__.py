"""What is measured: the model zoo, the backends (TensorRT, PyTorch), the benchmark passes and
the writers of the result files. Run it as a program of its own: ``python -m model --help``."""
