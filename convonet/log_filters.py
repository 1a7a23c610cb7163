"""Log filters that keep what callers say and send out of the logs."""

from __future__ import annotations

import logging
import os

_WIRE_LIBRARIES = (f"{os.sep}websockets{os.sep}", f"{os.sep}wsproto{os.sep}")


class NoWireFrames(logging.Filter):
    """Drops the WebSocket libraries' frame dumps (uvicorn hands them its own logger, so
    they look like uvicorn's): at DEBUG they write every socket message, PINs, session
    tokens and audio included, into the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG:
            return True
        return not any(part in record.pathname for part in _WIRE_LIBRARIES)


def uvicorn_log_config() -> dict[str, object]:
    """Uvicorn's own logging configuration with the frame dumps filtered out."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"no_wire_frames": {"()": NoWireFrames}}
    for handler in config["handlers"].values():
        handler["filters"] = ["no_wire_frames"]
    return config
