"""The command line's consoles: every message is printed literally, never parsed as rich markup.

Paths, package extras (``synthmed[vlm]``), YAML snippets and captioner names all contain square
brackets; rich would read them as markup, drop them, or crash on one such as ``[/bold]``.
Colour is given as a style, never inside the text.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

out = Console(markup=False, highlight=False)
err = Console(stderr=True, markup=False, highlight=False)


def warn(message: str) -> None:
    """A warning on stdout, in yellow."""
    out.print(message, style="yellow", soft_wrap=True)


def error(message: str) -> None:
    """``error: MESSAGE`` on stderr, the word in bold red, the message as given."""
    err.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
