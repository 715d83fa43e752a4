"""Logging through the host when running inside Weir, to stderr otherwise."""

import sys

_LEVELS = ("trace", "debug", "info", "warn", "error")


def log(level: str, message: str) -> None:
    """Log ``message`` at ``level``."""
    if level not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}")
    try:
        from wit_world.imports import host
    except ImportError:
        print(f"[{level}] {message}", file=sys.stderr)
        return
    host.log(host.Level[level.upper()], message)
