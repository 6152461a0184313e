"""CORS for the Prefect UI, which runs on another origin than the API and sends its own headers.

Prefect Server's Apollo allows every origin (the `cors` middleware's default, `*`). The emulator allows only
the origins it is told, by default those where this project publishes a UI (ports 8080 and 8082 on localhost
and 127.0.0.1), so that a page of any other site a user visits cannot drive the API from the user's browser.
`*` is accepted when it is given on purpose.
"""
from __future__ import annotations

from typing import Dict, FrozenSet, Iterable, Optional
from urllib.parse import urlsplit

# where the stack publishes a UI: the server profile's `ui` (8080) and the prefect-ui profile (8082)
UI_PORTS = (8080, 8082)
DEFAULT_ORIGINS = tuple(f"http://{host}:{port}" for port in UI_PORTS for host in ("localhost", "127.0.0.1"))
# what the UI sends (src/main.js and its Apollo links), plus the headers of every GraphQL client
ALLOWED_HEADERS = ("authorization", "content-type", "x-backend", "x-prefect-tenant-id", "x-prefect-ui",
                   "x-prefect-user-id")
ALLOWED_METHODS = ("GET", "POST", "OPTIONS")
PREFLIGHT_MAX_AGE = 600  # seconds a browser may reuse a preflight answer


class CorsError(ValueError):
    """An origin setting that is not a list of origins."""


def parse_origins(text: Optional[str]) -> FrozenSet[str]:
    """The allowed origins from a comma-separated setting (None or blank: DEFAULT_ORIGINS).

    Raises:
        CorsError: naming the first entry that is not `scheme://host[:port]` or `*`
    """
    if text is None or not text.strip():
        return frozenset(DEFAULT_ORIGINS)
    origins = set()
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        if entry != "*":
            parts = urlsplit(entry)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
                    or parts.query or parts.fragment or parts.username:
                raise CorsError(f"{entry!r} is not an origin: give scheme://host[:port] such as "
                                "http://localhost:8082 (no path), or * to allow any origin.")
            entry = f"{parts.scheme}://{parts.netloc.lower()}"
        origins.add(entry)
    return frozenset(origins)


class Cors:
    """Decides the CORS headers of each answer.

    Args:
        origins: allowed origins (see parse_origins); `*` allows any
    """

    def __init__(self, origins: Iterable[str] = DEFAULT_ORIGINS) -> None:
        self.origins = frozenset(origins)

    def allows(self, origin: Optional[str]) -> bool:
        """Whether a request from `origin` may read the answer (no Origin header: not a browser, allowed)."""
        return origin is None or "*" in self.origins or origin in self.origins

    def headers(self, origin: Optional[str]) -> Dict[str, str]:
        """Headers for any answer (errors included) to a request carrying `origin`."""
        # Vary on every answer: a cache must not hand one origin's answer to another
        headers = {"Vary": "Origin"}
        if origin is not None and self.allows(origin):
            headers["Access-Control-Allow-Origin"] = origin
        return headers

    def preflight_headers(self, origin: Optional[str]) -> Dict[str, str]:
        """Headers of the answer to an allowed preflight (OPTIONS)."""
        return dict(self.headers(origin), **{
            "Access-Control-Allow-Methods": ", ".join(ALLOWED_METHODS),
            "Access-Control-Allow-Headers": ", ".join(ALLOWED_HEADERS),
            "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
        })

    def refusal(self, origin: str) -> str:
        """The error text for a preflight from an origin that is not allowed."""
        return (f"Origin {origin!r} is not allowed to call this API. Start the emulator with "
                f"--cors-origins {origin} (or PREFECT_EMULATOR_CORS_ORIGINS={origin}); several origins are "
                "separated by commas.")
