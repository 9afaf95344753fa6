"""Configuration from TRIAGE_* environment variables, validated at start with errors that say what to fix."""

from __future__ import annotations

from email.errors import HeaderParseError
from email.headerregistry import Address
from email.utils import parseaddr
from functools import cache, cached_property
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EXAMPLE_POLICY = Path(__file__).parent / "examples" / "policy.yaml"
SANDBOX_WEBHOOK_TOKEN = "sandbox-webhook-token"  # noqa: S105 - documented sandbox default, refused outside it
SANDBOX_JIRA_USER = "sandbox@example.com"
SANDBOX_JIRA_TOKEN = "sandbox-token"  # noqa: S105
SANDBOX_SLACK_TOKEN = "xoxb-sandbox"  # noqa: S105
SANDBOX_SLACK_SECRET = "sandbox-signing-secret"  # noqa: S105
SANDBOX_IDENTITY_TOKEN = "sandbox-introspection-token"  # noqa: S105
SANDBOX_SLACK_APP_TOKEN = "xapp-sandbox"  # noqa: S105 - the Slack emulator's default app-level token


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRIAGE_", extra="ignore", frozen=True)

    database_url: str = ""  # default: var/triage-bot.db, or var/sandbox.db in full sandbox mode
    policy: Path = EXAMPLE_POLICY
    webhook_token: SecretStr | None = None
    metrics_token: SecretStr | None = None
    # The web console (/console): its own secret, exchanged at the login page for a session cookie. Unset: the
    # console is open without a login in full sandbox mode, and off everywhere else.
    console_token: SecretStr | None = None
    public_url: str | None = None  # default: http://HOST:PORT
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)

    jira_url: str | None = None
    jira_user: str | None = None
    jira_token: SecretStr | None = None
    jira_timeout: float = Field(default=10.0, gt=0, le=120)
    # After a create whose answer was lost, wait this long before searching for it: Jira's index lags.
    jira_search_settle_seconds: float = Field(default=20.0, ge=0, le=600)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    # Socket Mode: an app-level token (xapp-...) makes the bot also take Slack's interactivity over a WebSocket it
    # opens itself, for workspaces that cannot expose a public Request URL. With the Slack emulator any value.
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_timeout: float = Field(default=10.0, ge=1, le=120)

    # Customer reports (POST /reports): the apps' identity service, by OAuth 2.0 token introspection (RFC 7662).
    # Unset: the built-in identity emulator in full sandbox mode, otherwise reports are off (503).
    session_introspection_url: str | None = None
    session_introspection_token: SecretStr | None = None
    session_scope: str = "reports:write"  # the scope a session needs to report; empty: none
    session_cache_seconds: float = Field(default=30.0, ge=0, le=3600)
    session_timeout: float = Field(default=5.0, gt=0, le=60)
    reports_per_minute: int = Field(default=10, ge=1, le=10_000)  # per customer
    report_attachments: int = Field(default=5, ge=0, le=20)  # at most this many per report
    report_attachment_bytes: int = Field(default=2_097_152, ge=1024, le=26_214_400)  # each, decoded (25 MiB max)
    # E-mail to customers: smtp://user:password@host:587 (STARTTLS) or smtps://user:password@host:465 (TLS).
    # Unset: the built-in mail catcher in full sandbox mode, otherwise no e-mail is sent (said at start).
    smtp_url: SecretStr | None = None
    smtp_timeout: float = Field(default=10.0, gt=0, le=120)
    mail_from: str = "triage-bot <triage-bot@localhost>"
    mail_templates: Path | None = None  # a folder whose templates replace the built-in ones, file by file

    grafana_hmac_secret: SecretStr | None = None
    jira_webhook_secret: SecretStr | None = None
    grafana_hmac_timestamp_header: str | None = None

    # A steady pace per outside system, shared by every worker and replica (bot.jobs.budget): at most this many
    # jobs of its lanes start per second. Unset: no pacing; a 429 still pauses the whole system until its reset.
    jira_requests_per_second: float | None = Field(default=None, gt=0, le=1000)
    slack_requests_per_second: float | None = Field(default=None, gt=0, le=1000)

    workers: int = Field(default=8, ge=0, le=64)  # threads per worker process (or inside serve, with 0 processes)
    # Worker processes `serve` starts and supervises beside the HTTP server, each running `workers` threads; 0: the
    # threads run inside the HTTP process (one GIL with the event loop: intake slows while the queue is busy).
    worker_processes: int = Field(default=1, ge=0, le=32)
    # A `triage-bot worker` running apart from `serve` answers GET /metrics and /healthz on this port (on
    # TRIAGE_HOST); unset: it serves nothing. Worker processes that `serve` starts are counted in serve's /metrics.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # How long an idle keep-alive connection stays open. Longer than any proxy or load balancer in front keeps one
    # (nginx upstream keepalive 60 s, AWS ALB 60 s): the side that closes an idle connection must be the client,
    # or a request sent on it as the server closes it ends in a connection reset with no answer.
    http_keep_alive_seconds: int = Field(default=75, ge=1, le=3600)
    job_lease_seconds: float = Field(default=60.0, ge=1)
    job_max_attempts: int = Field(default=25, ge=1)  # about 90 minutes of backoff before a job is kept as dead
    job_poll_seconds: float = Field(default=0.2, gt=0, le=10)
    escalation_scan_seconds: float = Field(default=30.0, gt=0)
    event_retention_days: int = Field(default=30, ge=1)  # inbound request bodies kept this long
    max_body_bytes: int = Field(default=5_242_880, ge=1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"  # auto: text for a person at a terminal, else JSON
    auto_migrate: bool | None = None  # default: on for SQLite, off for server databases

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        if not value:
            return value
        if value.startswith("postgres://") or value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        if not (value.startswith("sqlite:") or value.startswith("postgresql+psycopg://")):
            raise ValueError("use sqlite:///path/to.db or postgresql+psycopg://user:pass@host:5432/db")
        return value

    @field_validator(
        "jira_url",
        "jira_user",
        "jira_token",
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "webhook_token",
        "metrics_token",
        "console_token",
        "grafana_hmac_secret",
        "jira_webhook_secret",
        "session_introspection_url",
        "session_introspection_token",
        "smtp_url",
        "jira_requests_per_second",
        "slack_requests_per_second",
        "public_url",
        "mail_templates",
        mode="before",
    )
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return value or None

    @field_validator("slack_app_token")
    @classmethod
    def _app_level_token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or info.data.get("slack_bot_token") is None:
            return value  # unset, or Slack is the emulator: any value turns Socket Mode on
        token = value.get_secret_value()
        if token.startswith("xox"):
            raise ValueError(
                f"this is a {token[:4]}- token; Socket Mode needs the app's app-level token (xapp-...) with the "
                "connections:write scope (Slack app settings: Basic Information, App-Level Tokens)"
            )
        if not token.startswith("xapp-"):
            raise ValueError(
                "an app-level token starts with xapp-: create one with the connections:write scope under the Slack "
                "app's Basic Information, App-Level Tokens"
            )
        return value

    @field_validator("jira_url", "slack_api_url", "public_url", "session_introspection_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _complete(self) -> Settings:
        if not self.database_url:
            name = "sandbox.db" if self.full_sandbox else "triage-bot.db"
            object.__setattr__(self, "database_url", f"sqlite:///var/{name}")
        if self.jira_url and not self.jira_token:
            raise ValueError(
                "TRIAGE_JIRA_URL is set but TRIAGE_JIRA_TOKEN is not: set the API token "
                "(Jira Cloud: with TRIAGE_JIRA_USER as your e-mail; Data Center: a personal access token)"
            )
        if self.slack_bot_token and not self.slack_signing_secret:
            raise ValueError("TRIAGE_SLACK_BOT_TOKEN is set but TRIAGE_SLACK_SIGNING_SECRET is not")
        if not self.full_sandbox and self.webhook_token is None:
            raise ValueError("TRIAGE_WEBHOOK_TOKEN is required when Jira or Slack is real (it guards /alerts/*)")
        if self.session_introspection_url and not self.session_introspection_token:
            raise ValueError(
                "TRIAGE_SESSION_INTROSPECTION_URL is set but TRIAGE_SESSION_INTROSPECTION_TOKEN is not: set the "
                "bearer token the bot presents to the identity service"
            )
        try:
            sender = Address(addr_spec=parseaddr(self.mail_from)[1])
        except (ValueError, IndexError, HeaderParseError):
            sender = None
        if sender is None or not sender.domain or any(c in self.mail_from for c in "\r\n"):
            raise ValueError("TRIAGE_MAIL_FROM is not an e-mail address; write it like: Support <help@example.com>")
        if self.smtp_url is not None:
            parts = urlsplit(self.smtp_url.get_secret_value())
            if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
                raise ValueError("TRIAGE_SMTP_URL looks like smtp://user:password@host:587 or smtps://host:465")
        for name, token in (
            ("TRIAGE_WEBHOOK_TOKEN", self.webhook_token),
            ("TRIAGE_METRICS_TOKEN", self.metrics_token),
            ("TRIAGE_CONSOLE_TOKEN", self.console_token),
        ):
            value = token.get_secret_value() if token is not None else None
            if value is not None and len(value) < 16:
                raise ValueError(f"{name} must be at least 16 characters")
            # Sent in an HTTP header, which carries ASCII: any other character could never match.
            if value is not None and not (value.isascii() and value.isprintable() and " " not in value):
                raise ValueError(f"{name} must be printable ASCII without spaces (it travels in an HTTP header)")
        return self

    @property
    def worker_stop_seconds(self) -> float:
        """How long a stopping worker waits for the jobs it is running: the longest outside call, and 5 s."""
        return max(self.jira_timeout, self.slack_timeout, self.smtp_timeout) + 5

    @property
    def jira_sandbox(self) -> bool:
        return not self.jira_url

    @property
    def slack_sandbox(self) -> bool:
        return self.slack_bot_token is None

    @property
    def sandbox(self) -> bool:
        return self.jira_sandbox or self.slack_sandbox

    @property
    def full_sandbox(self) -> bool:
        """Both Jira and Slack are the built-in emulators: nothing real is reachable through this bot."""
        return self.jira_sandbox and self.slack_sandbox

    def parts(self) -> list[tuple[str, str, str]]:
        """The outside parts as (name, "real", "emulated" or "off", where the real one is or the stand-in's page)."""
        local = self.base_url

        def part(name: str, real: str | None, emulated: bool, page: str, off: str) -> tuple[str, str, str]:
            if real is not None:
                return (name, "real", real)
            return (name, "emulated", f"{local}{page}") if emulated else (name, "off", off)

        smtp = self.smtp_url.get_secret_value() if self.smtp_url else None
        slack = None if self.slack_sandbox else self.slack_api_url
        return [
            part("Jira", self.jira_url, True, "/sandbox/jira/_emulator/issues", ""),
            part("Slack", slack, True, "/sandbox/slack/_emulator/messages", ""),
            part(
                "mail",
                _without_password(smtp) if smtp else None,
                self.mail_sandbox,
                "/sandbox/mail/_emulator/messages",
                "no e-mail is sent to customers (TRIAGE_SMTP_URL is unset)",
            ),
            part(
                "sessions",
                self.session_introspection_url,
                self.identity_sandbox,
                "/sandbox/identity (sessions sandbox-session-jane, sandbox-session-john)",
                "customer reports are off: POST /reports answers 503 (TRIAGE_SESSION_INTROSPECTION_URL is unset)",
            ),
        ]

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def migrate_on_start(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @cached_property
    def local_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Where people reach this service (links in cards and tickets)."""
        return self.public_url or self.local_url

    def effective_webhook_token(self) -> str:
        if self.webhook_token is not None:
            return self.webhook_token.get_secret_value()
        return SANDBOX_WEBHOOK_TOKEN

    def effective_metrics_token(self) -> str:
        if self.metrics_token is not None:
            return self.metrics_token.get_secret_value()
        return self.effective_webhook_token()

    def secrets(self) -> tuple[str, ...]:
        """Every configured secret, for the log redactor."""
        values = (
            self.webhook_token,
            self.metrics_token,
            self.console_token,
            self.jira_webhook_secret,
            self.jira_token,
            self.slack_bot_token,
            self.slack_signing_secret,
            # With the emulator the app token is only a switch ("on", "1"): masking that would garble every line.
            None if self.slack_sandbox else self.slack_app_token,
            self.grafana_hmac_secret,
            self.session_introspection_token,
            self.smtp_url,
            SecretStr(_smtp_password(self.smtp_url)) if self.smtp_url else None,
        )
        return tuple(v.get_secret_value() for v in values if v is not None and v.get_secret_value())

    def effective_jira(self) -> tuple[str, str | None, str]:
        """(base URL, user or None for a personal access token, token)."""
        if self.jira_url and self.jira_token:
            return self.jira_url, self.jira_user, self.jira_token.get_secret_value()
        return f"{self.local_url}/sandbox/jira", SANDBOX_JIRA_USER, SANDBOX_JIRA_TOKEN

    def effective_slack(self) -> tuple[str, str, str]:
        """(Web API base URL ending in /, bot token, signing secret)."""
        if self.slack_bot_token and self.slack_signing_secret:
            return (
                self.slack_api_url.rstrip("/") + "/",
                self.slack_bot_token.get_secret_value(),
                self.slack_signing_secret.get_secret_value(),
            )
        return f"{self.local_url}/sandbox/slack/api/", SANDBOX_SLACK_TOKEN, SANDBOX_SLACK_SECRET

    @property
    def console_enabled(self) -> bool:
        """The web console is served: with its token set (a login), or open in full sandbox mode."""
        return self.console_token is not None or self.full_sandbox

    @property
    def console_login(self) -> bool:
        """The console asks for TRIAGE_CONSOLE_TOKEN (whenever it is set, in sandbox mode too)."""
        return self.console_token is not None

    @property
    def identity_sandbox(self) -> bool:
        """Sessions are checked by the built-in identity emulator (only ever in full sandbox mode)."""
        # Not with a real mail server: anyone could make up a sandbox session and have e-mail sent through it.
        return self.session_introspection_url is None and self.full_sandbox and self.smtp_url is None

    @property
    def mail_sandbox(self) -> bool:
        """E-mail goes to the built-in mail catcher (only ever in full sandbox mode)."""
        return self.smtp_url is None and self.full_sandbox

    def effective_identity(self) -> tuple[str, str] | None:
        """(introspection URL, bearer token), or None when reports are off."""
        if self.session_introspection_url and self.session_introspection_token:
            return self.session_introspection_url, self.session_introspection_token.get_secret_value()
        if self.identity_sandbox:
            return f"{self.local_url}/sandbox/identity/introspect", SANDBOX_IDENTITY_TOKEN
        return None

    def effective_slack_app_token(self) -> str | None:
        """The app-level token Socket Mode connects with (the emulator's own in sandbox), None when it is off."""
        if self.slack_app_token is None:
            return None
        return SANDBOX_SLACK_APP_TOKEN if self.slack_sandbox else self.slack_app_token.get_secret_value()


def _smtp_password(url: SecretStr) -> str:
    return urlsplit(url.get_secret_value()).password or ""


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


@cache
def package_version() -> str:
    """The installed triage-bot's version (pyproject.toml's)."""
    try:
        return version("triage-bot")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class SettingsError(Exception):
    pass


def load_settings() -> Settings:
    """Read the environment; raise SettingsError naming each variable to fix."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = "TRIAGE_" + "_".join(str(p) for p in error["loc"]).upper() if error["loc"] else "settings"
            lines.append(f"  {name}: {error['msg'].removeprefix('Value error, ')}")
        raise SettingsError("invalid configuration:\n" + "\n".join(lines)) from exc
