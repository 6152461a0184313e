"""`--param KEY=VALUE` parsing and checking against a real prefect Flow's Parameters."""
from __future__ import annotations

import pytest
from prefect import Flow, Parameter

from agents.errors import UserError
from agents.cli.params import check_params, parse_params


def test_values_are_json_when_valid_else_text() -> None:
    assert parse_params(["n=3", "flag=true", "items=[1, 2]", "name=world", "eq=a=b", "empty="]) == {
        "n": 3, "flag": True, "items": [1, 2], "name": "world", "eq": "a=b", "empty": ""}


@pytest.mark.parametrize("bad", ["novalue", "=3", " =x"])
def test_malformed_items_say_the_expected_form(bad: str) -> None:
    with pytest.raises(UserError, match="write it as KEY=VALUE"):
        parse_params([bad])


def test_check_refuses_unknown_and_missing_parameters() -> None:
    flow = Flow("params-flow")
    flow.add_task(Parameter("required"))
    flow.add_task(Parameter("optional", default=1))
    check_params(flow, {"required": 1})
    with pytest.raises(UserError, match="has no parameter 'typo': its parameters are optional, required"):
        check_params(flow, {"required": 1, "typo": 2})
    with pytest.raises(UserError, match="required parameter\\(s\\) 'required'"):
        check_params(flow, {"optional": 2})
