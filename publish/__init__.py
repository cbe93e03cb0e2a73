"""Publishing a result folder: DVC for the data, git for the pointer. Only this package runs
``dvc`` and ``git``."""
