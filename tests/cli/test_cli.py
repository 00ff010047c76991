import json
import subprocess
import sys

from typer.main import get_command
from typer.testing import CliRunner

from synthmed.cli.main import app

runner = CliRunner()


def _all_command_paths(cmd, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    if hasattr(cmd, "commands"):  # a group (typer may use its own click)
        for name, sub in cmd.commands.items():
            paths += _all_command_paths(sub, prefix + (name,))
    return paths


def test_every_command_has_help():
    paths = _all_command_paths(get_command(app))
    assert ("data", "phantom") in paths and ("caption",) in paths and ("demo",) in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_phantom_then_caption_via_cli(tmp_path):
    out = tmp_path / "ph"
    r = runner.invoke(app, ["data", "phantom", "--out", str(out), "--n", "12", "--size", "64", "--workers", "1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["caption", str(out), "--captioner", "mask"])
    assert r.exit_code == 0, r.output
    assert "captioned 12 of 12" in r.output
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert all(row["captioner"] == "mask" and row["original_findings"] for row in rows)


def test_user_errors_exit_2_with_one_clear_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "synthmed.cli.main", "caption", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "dataset directory not found" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "synthmed.cli.main", "data", "phantom", "--out",
                           str(tmp_path / "x"), "--tumor-fraction", "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "tumor_fraction must be in [0, 1]" in proc.stderr


def test_unknown_captioner_lists_names(tmp_path):
    from synthmed.errors import ConfigError

    r = runner.invoke(app, ["caption", str(tmp_path), "--captioner", "gpt-17"])
    assert isinstance(r.exception, ConfigError) and "available: api, hf, mask" in str(r.exception)


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("synthmed ")


def test_error_text_is_printed_literally_not_as_markup(tmp_path):
    for name in ("mydata[v2]", "x[/bold]y"):
        proc = subprocess.run([sys.executable, "-m", "synthmed.cli.main", "data", "stats", str(tmp_path / name)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert name in proc.stderr and "Traceback" not in proc.stderr and "MarkupError" not in proc.stderr


def test_messages_with_brackets_survive_the_console(capsys):
    from synthmed.cli import console

    console.error("install it with pip install 'synthmed[vlm]'; YAML said [x ...")
    console.warn("captioner hf[/]: 3 missing")
    captured = capsys.readouterr()
    assert "pip install 'synthmed[vlm]'; YAML said [x ..." in captured.err
    assert "hf[/]: 3 missing" in captured.out


def test_an_os_error_is_one_line_naming_the_path(tmp_path):
    import errno

    from synthmed.cli.main import os_error_message

    (tmp_path / "a-file").write_text("x")
    proc = subprocess.run([sys.executable, "-m", "synthmed.cli.main", "data", "phantom", "--out",
                           str(tmp_path / "a-file" / "out"), "--n", "4", "--size", "32", "--workers", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "a-file" in proc.stderr and "Not a directory" in proc.stderr
    full = os_error_message(OSError(errno.ENOSPC, "No space left on device", "/runs/x/images/a.png"))
    assert full == "/runs/x/images/a.png: No space left on device; free some space or choose another --out; " \
                   "rerun the same command to resume"
