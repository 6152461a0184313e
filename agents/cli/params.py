"""`--param KEY=VALUE` options: parsing, and checking them against a flow's Parameters."""
from __future__ import annotations

import json
from typing import Any, Dict, Iterable, Optional

from agents.errors import UserError

OPTION = "--param"


def parse_params(items: Iterable[str]) -> Dict[str, Any]:
    """Parses `KEY=VALUE` strings; a VALUE that is valid JSON (`3`, `true`, `[1, 2]`) is decoded.

    Args:
        items: the raw option values

    Returns:
        The parameters by name.

    Raises:
        UserError: an item without `=`, or with an empty KEY (a usage error of --param, showing the form).
    """
    params: Dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"malformed --param {item!r}: write it as KEY=VALUE, e.g. --param name=world "
                            "or --param count=3 (VALUE is read as JSON when it is valid JSON)", option=OPTION)
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw  # a plain string: `--param name=world` needs no JSON quotes
    return params


def check_params(flow: Any, params: Dict[str, Any], option: Optional[str] = None) -> None:
    """Checks parameter names against the flow's Parameters, before anything runs.

    Args:
        flow: a prefect Flow
        params: the parsed parameters
        option: the option to report as misused (`OPTION` for a usage error, exit 2); None for a plain error

    Raises:
        UserError: an unknown name (the message lists the flow's parameters) or a missing required one.
    """
    declared = {p.name: p for p in flow.parameters()}
    known = ", ".join(sorted(declared)) or "(none)"
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise UserError(f"flow {flow.name!r} has no parameter {', '.join(repr(n) for n in unknown)}: "
                        f"its parameters are {known}", option=option)
    missing = sorted(n for n, p in declared.items() if p.required and n not in params)
    if missing:
        raise UserError(f"flow {flow.name!r} needs --param for required parameter(s) "
                        f"{', '.join(repr(n) for n in missing)}", option=option)
