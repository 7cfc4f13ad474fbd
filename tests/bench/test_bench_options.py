"""`--only` picks phases and `--code-root` reaches every service the bench starts (before/after runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.bench.options import parse_args
from scripts.bench.system import code_env
from tests.support.processes import ROOT


def test_only_picks_the_create_and_storm_phases_and_marks_the_run_an_experiment() -> None:
    options = parse_args(["--only", "api,storm"])
    assert options.only == frozenset({"api", "storm"})
    assert not options.is_default  # written as experiment-<time>.json, latest.json left alone
    assert parse_args([]).only == frozenset()
    with pytest.raises(SystemExit):
        parse_args(["--only", "api,vendorx"])


def test_code_root_imports_every_service_from_the_other_checkout(tmp_path: Path) -> None:
    options = parse_args(["--code-root", str(tmp_path)])
    assert options.code_root == tmp_path.resolve()
    env = code_env(tmp_path)
    assert env["PYTHONPATH"] == str(tmp_path)
    assert env["PYTHONSAFEPATH"] == "1"  # the bench's working directory is not on sys.path
    assert code_env(ROOT) == {}
