"""Models by name: every torchvision classification model, plus LeNet-5."""

from __future__ import annotations

import difflib
import os

DEFAULT_INPUT_SHAPE = (1, 3, 224, 224)
LENET_INPUT_SHAPE = (1, 1, 32, 32)
WEIGHTS = ("imagenet", "random")


class ModelError(ValueError):
    """A model that cannot be had: unknown name, or weights that cannot be loaded."""


def model_names() -> list[str]:
    """All names ``--model`` accepts."""
    import torchvision

    return sorted([*torchvision.models.list_models(module=torchvision.models), "lenet"])


def check_model_name(name: str) -> None:
    """Raise ModelError naming the closest valid names when ``name`` is unknown."""
    names = model_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(names)}"
        raise ModelError(f"unknown model {name!r}{hint}")


def check_input_shape(name: str, shape) -> None:
    """Raise ModelError when an input of ``shape`` cannot go through model ``name``: one forward
    pass on PyTorch's meta device (shapes only: no memory, no weights, milliseconds)."""
    import torch
    import torchvision

    try:
        with torch.device("meta"):
            model = lenet() if name == "lenet" else torchvision.models.get_model(name, weights=None)
            model.eval()(torch.empty(*shape))
    except NotImplementedError:  # an op without a meta kernel: the profiler will find out
        return
    except Exception as exc:  # size errors come as RuntimeError, AssertionError, ValueError
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelError(
            f"--input-shape {' '.join(map(str, shape))} does not fit {name} ({reason})"
        ) from None


def default_input_shape(name: str) -> tuple[int, int, int, int]:
    """LeNet takes 1×1×32×32, every torchvision model 1×3×224×224."""
    return LENET_INPUT_SHAPE if name == "lenet" else DEFAULT_INPUT_SHAPE


def lenet():
    """LeNet-5 (LeCun et al. 1998) for 1×32×32 inputs, with ReLU and max pooling."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, kernel_size=5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


def load_model(name: str, weights: str):
    """The model in eval mode, with ImageNet weights (torchvision's cache or download) or
    random ones. LeNet has no pretrained weights and is always random."""
    import torch
    import torchvision

    torch.manual_seed(0)
    if name == "lenet":
        return lenet().eval()
    if weights == "random":
        return torchvision.models.get_model(name, weights=None).eval()
    try:
        return torchvision.models.get_model(name, weights="DEFAULT").eval()
    except Exception as exc:  # download or cache failure: many exception types
        home = os.environ.get("TORCH_HOME", "~/.cache/torch")
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ModelError(
            f"ImageNet weights for {name} could not be had ({reason}); put them under "
            f"TORCH_HOME ({home})/hub/checkpoints or use --weights random"
        ) from None
