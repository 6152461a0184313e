"""End-to-end tests of the Docker Compose stack (pytest marker `docker`)."""
from __future__ import annotations
