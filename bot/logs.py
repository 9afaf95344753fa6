"""Logs on stderr: one JSON object per line for machines, a readable line for a person at a terminal; secrets are
masked wherever they might appear."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "color_message"}
_SECRET_PATTERNS = [
    re.compile(r"xox[abposr]-[A-Za-z0-9-]+"),
    re.compile(r"(?i)(authorization|token|secret|password)(['\"]?\s*[:=]\s*['\"]?)([^\s'\",}]+)"),
    re.compile(r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"),
]


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _SECRET_PATTERNS[0].sub("xox*-***", text)
    text = _SECRET_PATTERNS[2].sub(lambda m: f"{m.group(1)} ***", text)  # before the key=value rule eats the scheme
    return _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str), self.secrets)


_COLOURS = {"WARNING": "\033[33m", "ERROR": "\033[31m", "CRITICAL": "\033[31;1m"}


class TextFormatter(logging.Formatter):
    """``12:00:01 WARNING triage.jira  message  key=value ...``, the level in colour on a terminal."""

    def __init__(self, secrets: tuple[str, ...] = (), colour: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s  %(message)s", datefmt="%H:%M:%S")
        self.secrets = secrets
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}
        line = super().format(record) + "".join(f"  {k}={v}" for k, v in extra.items() if v is not None)
        colour = _COLOURS.get(record.levelname) if self.colour else None
        if colour:
            line = line.replace(record.levelname, f"{colour}{record.levelname}\033[0m", 1)
        return redact(line, self.secrets)


def configure(level: str, fmt: str, secrets: tuple[str, ...] = ()) -> None:
    """``fmt``: json, text, or auto (text when stderr is a terminal, where a person reads it; JSON otherwise)."""
    handler = logging.StreamHandler(sys.stderr)
    terminal = sys.stderr.isatty()
    text = fmt == "text" or (fmt == "auto" and terminal)
    handler.setFormatter(TextFormatter(secrets, colour=terminal) if text else JsonFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # mail.log: aiosmtpd, the sandbox's mail catcher, which logs each connection (its own check at start too).
    for noisy in ("urllib3", "jira", "slack_sdk", "slack_bolt", "httpx", "alembic", "mail.log"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # metrics count requests; logs stay readable
