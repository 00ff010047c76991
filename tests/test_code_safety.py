"""``src/`` never gains a way to run code from a file or a string it reads.

The scan reads the code only (comments and strings are dropped first), so a docstring that
names a pattern to explain why it is avoided does not trip it.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "synthmed"

FORBIDDEN = {
    r"weights_only\s*=\s*False": "torch.load of a pickle runs any code it names; use safetensors",
    r"\bpickle\s*\.\s*loads?\b": "unpickling runs code; store tensors as safetensors, the rest as JSON",
    r"\b(dill|joblib|cloudpickle)\b": "pickle-based serialisers run code when loading",
    r"allow_pickle\s*=\s*True": "np.load with pickles runs code",
    r"\byaml\s*\.\s*(unsafe_load|full_load|load_all)\b": "use yaml.safe_load",
    r"\byaml\s*\.\s*load\s*\((?![^)]*SafeLoader)": "yaml.load without SafeLoader constructs any Python object",
    r"shell\s*=\s*True": "a shell command line is injectable; pass an argument list",
    r"\bos\s*\.\s*(system|popen)\b": "a shell command line is injectable; pass subprocess an argument list",
    r"trust_remote_code\s*(:\s*bool\s*)?=\s*True": "remote code must stay opt-in (default False)",
    r"typer\.Option\(\s*True\s*,\s*\"--trust-remote-code": "remote code must stay opt-in on the command line",
    r"(?<![.\w])(eval|exec)\s*\(": "eval/exec run strings as code",
    r"torch\s*\.\s*load\s*\((?![^)]*weights_only\s*=\s*True)": "torch.load needs weights_only=True (or safetensors)",
}


def _code_only(path: Path) -> str:
    """The file's source with comments and string literals blanked out, everything else in place."""
    lines = [list(line) for line in path.read_text().splitlines(keepends=True)]
    blank = {tokenize.COMMENT, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if tok.type not in blank:
            continue
        (row, col), (end_row, end_col) = tok.start, tok.end
        for r in range(row, end_row + 1):
            first = col if r == row else 0
            last = end_col if r == end_row else len(lines[r - 1])
            for c in range(first, last):
                if lines[r - 1][c] != "\n":
                    lines[r - 1][c] = " "
    return "".join("".join(line) for line in lines)


def _hits(text: str) -> list[str]:
    return [f"{why} ({pattern})" for pattern, why in FORBIDDEN.items() if re.search(pattern, text)]


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_code_execution_from_data(path):
    assert not _hits(_code_only(path)), f"{path}: {_hits(_code_only(path))}"


@pytest.mark.parametrize("line", [
    "state = torch.load(ckpt, map_location='cpu', weights_only=False)",
    "state = torch.load(ckpt)",
    "obj = pickle.load(f)",
    "x = np.load(p, allow_pickle=True)",
    "cfg = yaml.load(text)",
    "subprocess.run(cmd, shell=True)",
    "def f(trust_remote_code: bool = True): pass",
    "value = eval(text)",
])
def test_the_scan_catches_each_pattern(tmp_path, line):
    path = tmp_path / "bad.py"
    path.write_text(line + "\n")
    assert _hits(_code_only(path))


def test_the_scan_ignores_safe_forms_and_prose(tmp_path):
    path = tmp_path / "good.py"
    path.write_text('"""Never torch.load(weights_only=False)."""\n'
                    "state = torch.load(p, map_location='cpu', weights_only=True)  # pickle.load is unsafe\n"
                    "cfg = yaml.safe_load(text)\nmodel.eval()\n"
                    "def f(trust_remote_code: bool = False): pass\n")
    assert not _hits(_code_only(path))
