"""``synthmed push``: upload an artifact folder to the Hugging Face Hub, with its model card.

Only what makes the artifact goes up: training checkpoints, logs, caches and synthmed's lock folder stay
behind. A folder holding pickled weights (``.bin``, ``.pt``, ``.ckpt``...) or a link that leads outside
it is refused before anything is sent.
"""

from __future__ import annotations

import os
from pathlib import Path

from synthmed.errors import ConfigError, DataError
from synthmed.share.card import CARD_FILE, write_model_card

#: Folders of an artifact that are not part of it (training state, logs, caches, synthmed's lock).
LEFT_BEHIND = ("checkpoints", "logs", "cache", ".synthmed")
PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def files_to_push(folder: str | Path) -> list[Path]:
    """The files ``push`` uploads, relative to ``folder``.

    Raises:
        DataError: a pickled weights file, or a link leading outside the folder (naming it).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("folder not found", folder)
    root = folder.resolve()
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if rel.parts[0] in LEFT_BEHIND or path.is_dir():
            continue
        if path.is_symlink() and root not in path.resolve().parents:
            raise DataError("a link to a file outside the artifact; copy the file in or remove the link", path)
        if path.suffix.lower() in PICKLED:
            raise DataError("pickled weights (loading them can run code); synthmed pushes safetensors only: remove "
                            "this file (e.g. the A1111 .pt of textual inversion) and push again", path)
        out.append(rel)
    return out


def push(folder: str | Path, repo: str, *, private: bool = False, license: str = "other") -> str:
    """Write the model card if none exists, then upload the artifact to the Hub model repo ``repo``.

    Returns:
        The repo's URL.

    Raises:
        DataError: the folder cannot be pushed (see :func:`files_to_push`), or has no provenance.
        ConfigError: offline, no token, or the Hub refused or could not be reached.
    """
    from synthmed.share.card import MARKER

    folder = Path(folder)
    files = files_to_push(folder)
    card = folder / CARD_FILE
    if not card.is_file() or MARKER in card.read_text(encoding="utf-8", errors="replace"):
        write_model_card(folder, license=license)
        if Path(CARD_FILE) not in files:
            files.append(Path(CARD_FILE))
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ConfigError("cannot push while offline (HF_HUB_OFFLINE is set): the model card is written; push from "
                          "a machine that reaches the Hub")
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        url = api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model",
                          allow_patterns=[str(f) for f in files], commit_message="Upload with synthmed push")
    except Exception as err:  # noqa: BLE001 - network, auth and Hub errors all end here, named
        raise ConfigError(f"the Hub refused or could not be reached for {repo!r} ({type(err).__name__}: {err}); "
                          "check the network, `huggingface-cli login` (or HF_TOKEN) and the repo id") from err
    return str(url)
