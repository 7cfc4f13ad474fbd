"""`just dev`'s environment: the README's Events v2 example is accepted as written, colours only on a terminal."""

from __future__ import annotations

import re

from scripts.dev import environment
from services.api.settings import parse_integration_keys
from tests.support.processes import ROOT


def test_the_readme_routing_key_is_one_that_just_dev_accepts() -> None:
    readme = (ROOT / "README.md").read_text()
    keys = set(re.findall(r'"routing_key": "([^"]+)"', readme))
    assert keys, "the README shows an Events v2 example"
    entries = environment({}, terminal=True)["INTEGRATION_KEYS"].split(",")
    assert keys <= {key.key.reveal() for key in parse_integration_keys(entries)}


def test_keys_and_colours_the_caller_set_win() -> None:
    env = environment({"INTEGRATION_KEYS": "grafana:abc", "LOG_COLOUR": "1"}, terminal=False)
    assert env["INTEGRATION_KEYS"] == "grafana:abc"
    assert env["LOG_COLOUR"] == "1"
    assert environment({}, terminal=False)["LOG_COLOUR"] == "0"
    assert environment({}, terminal=True)["LOG_COLOUR"] == "1"
