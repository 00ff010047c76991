"""torch-fidelity, imported as a reference implementation where torchvision is absent.

torch-fidelity's package ``__init__`` imports its CLIP and DINOv2 extractors and its datasets,
which import torchvision; synthmed does not depend on torchvision (PyPI's build does not load
beside the CPU torch wheel), so torch-fidelity is installed with ``--no-deps``. Its FID
Inception-v3 and its metrics need only torch. :func:`import_torch_fidelity` registers empty
stand-in ``torchvision`` modules while the package is imported, then removes them, so the package
lands in ``sys.modules`` and torchmetrics (which imports torch-fidelity when it is installed)
keeps working and still sees torchvision as absent.
"""

from __future__ import annotations

import importlib.util
import sys
import types

NO_DEPS_INSTALL = "pip install --no-deps torch-fidelity==0.4.0"


def _torchvision_stand_ins() -> list[types.ModuleType]:
    tv = types.ModuleType("torchvision")
    tv.datasets = types.ModuleType("torchvision.datasets")
    for name in ("CIFAR10", "CIFAR100", "STL10"):
        setattr(tv.datasets, name, type(name, (), {}))
    tv.models = types.ModuleType("torchvision.models")
    tv.transforms = types.ModuleType("torchvision.transforms")
    tv.transforms.functional = types.ModuleType("torchvision.transforms.functional")
    return [tv, tv.datasets, tv.models, tv.transforms, tv.transforms.functional]


def import_torch_fidelity() -> types.ModuleType | None:
    """The ``torch_fidelity`` package, or None where it is not installed."""
    if "torch_fidelity" in sys.modules:
        return sys.modules["torch_fidelity"]
    if importlib.util.find_spec("torch_fidelity") is None:
        return None
    stubs = [] if importlib.util.find_spec("torchvision") is not None else _torchvision_stand_ins()
    for mod in stubs:
        sys.modules[mod.__name__] = mod
    try:
        import torch_fidelity
    finally:
        for mod in stubs:
            del sys.modules[mod.__name__]
    return torch_fidelity
