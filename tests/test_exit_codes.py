"""One exit-code contract for every command (README "Usage", ``cli.exit_codes``)."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from cli.exit_codes import ExitCode
from cli.main import cli

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_table_is_the_enum() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = {int(code) for code in re.findall(r"^\| (\d) \| ", text, flags=re.MULTILINE)}
    assert rows == {int(c) for c in ExitCode}
    assert ExitCode.VOLUMES_SKIPPED == 3 and ExitCode.USAGE == 2


def test_help_names_the_codes_and_each_kind_of_failure_exits_with_its_own(tmp_path: Path) -> None:
    runner = CliRunner()
    top = runner.invoke(cli, ["--help"])
    assert top.exit_code == ExitCode.OK and "Exit codes" in top.output and "3 a batch" in " ".join(top.output.split())
    predict_help = runner.invoke(cli, ["predict", "--help"])
    assert "3 when some were skipped" in " ".join(predict_help.output.split())
    # A usage error is Click's 2; an error in the input is 1, one line naming the file.
    usage = runner.invoke(cli, ["synth", str(tmp_path / "x"), "--volumes", "0"])
    assert usage.exit_code == ExitCode.USAGE
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "volume_1_slice_0.h5").write_bytes(b"junk")
    error = runner.invoke(cli, ["inspect", str(tmp_path / "nothing_here")])
    assert error.exit_code == ExitCode.USAGE  # a missing argument path is Click's to refuse
    error = runner.invoke(cli, ["predict", str(bad), "--out", str(tmp_path / "o"), "--segmenter", str(tmp_path / "none.pt")])
    assert error.exit_code == ExitCode.ERROR and "none.pt" in error.output, error.output
