"""Models shipped inside the package, loaded by name as ``builtin:<name>``.

A built-in model is a folder under a package's ``assets/`` holding what its loader reads
(safetensors + JSON). Names are unique across kinds, so a setting such as
``judge: builtin:phantom-128-robust`` or ``pretrained_autoencoder: builtin:phantom-vae-128``
says by itself which folder it means (the pipeline hashes that folder into stage keys).
"""

from __future__ import annotations

from pathlib import Path

from synthmed.errors import DataError

BUILTIN_PREFIX = "builtin:"
_PACKAGE = Path(__file__).resolve().parents[1]
#: kind -> (assets folder, the weights file that marks a complete model folder)
_KINDS = {
    "judge": (_PACKAGE / "judge" / "assets", "model.safetensors"),
    "autoencoder": (_PACKAGE / "models" / "assets", "diffusion_pytorch_model.safetensors"),
}


def is_builtin(ref: object) -> bool:
    """Whether ``ref`` is a ``builtin:<name>`` reference."""
    return isinstance(ref, str) and ref.startswith(BUILTIN_PREFIX)


def builtin_names(kind: str) -> list[str]:
    """Names of the shipped models of ``kind`` (``"judge"``, ``"autoencoder"``)."""
    root, marker = _KINDS[kind]
    return sorted(p.name for p in root.iterdir() if (p / marker).is_file()) if root.is_dir() else []


def resolve_builtin(ref: str | Path, kind: str | None = None) -> Path:
    """The folder of a ``builtin:<name>`` model of ``kind`` (any kind when None); other refs as paths.

    Raises:
        DataError: an unknown name, listing the shipped ones.
    """
    text = str(ref)
    if not is_builtin(text):
        return Path(ref)
    name = text[len(BUILTIN_PREFIX):]
    kinds = [kind] if kind is not None else list(_KINDS)
    for k in kinds:
        if name in builtin_names(k):
            return _KINDS[k][0] / name
    shipped = [BUILTIN_PREFIX + n for k in kinds for n in builtin_names(k)]
    what = f"built-in {kind}" if kind else "built-in model"
    raise DataError(f"unknown {what} {name!r}; available: " + (", ".join(shipped) or "none"), text)
