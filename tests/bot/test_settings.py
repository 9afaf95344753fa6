"""Settings as the environment gives them: TRIAGE_SLACK_APP_TOKEN (Socket Mode)."""

from __future__ import annotations

import os

import pytest

from bot.settings import SANDBOX_SLACK_APP_TOKEN, Settings, SettingsError, load_settings

REAL_SLACK = {
    "TRIAGE_WEBHOOK_TOKEN": "test-webhook-token-0123456789",
    "TRIAGE_SLACK_BOT_TOKEN": "xoxb-1-real-bot-token",
    "TRIAGE_SLACK_SIGNING_SECRET": "real-signing-secret",
}
APP_TOKEN = "xapp-1-A0123-456-0123456789abcdef"


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in os.environ:
        if name.startswith("TRIAGE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def test_socket_mode_is_off_unless_the_token_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings(monkeypatch, **REAL_SLACK).effective_slack_app_token() is None
    assert settings(monkeypatch, **REAL_SLACK, TRIAGE_SLACK_APP_TOKEN="").effective_slack_app_token() is None


def test_an_app_level_token_turns_it_on_and_is_masked_in_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = settings(monkeypatch, **REAL_SLACK, TRIAGE_SLACK_APP_TOKEN=APP_TOKEN)
    assert loaded.effective_slack_app_token() == APP_TOKEN
    assert APP_TOKEN in loaded.secrets()
    assert APP_TOKEN not in repr(loaded)


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("xoxb-1-real-bot-token", "this is a xoxb- token; Socket Mode needs the app's app-level token (xapp-...)"),
        ("xoxp-1-a-user-token", "this is a xoxp- token"),
        ("A0123-456-not-a-token", "an app-level token starts with xapp-"),
    ],
)
def test_anything_but_an_app_level_token_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, token: str, says: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        settings(monkeypatch, **REAL_SLACK, TRIAGE_SLACK_APP_TOKEN=token)
    message = str(refused.value)
    assert f"TRIAGE_SLACK_APP_TOKEN: {says}" in message
    assert "connections:write" in message
    assert token not in message  # the message names the variable, never its value


def test_with_the_slack_emulator_any_value_turns_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = settings(monkeypatch, TRIAGE_SLACK_APP_TOKEN="yes")
    assert loaded.slack_sandbox
    assert loaded.effective_slack_app_token() == SANDBOX_SLACK_APP_TOKEN  # the emulator's own token
    assert loaded.secrets() == ()  # there it is a switch, not a secret: masking "yes" would garble the logs


@pytest.mark.parametrize("sender", ["Support help@shop.example", "no-at-sign", "a@b\r\nBcc: x@y"])
def test_a_sender_that_is_not_an_address_stops_the_start(monkeypatch: pytest.MonkeyPatch, sender: str) -> None:
    monkeypatch.setenv("TRIAGE_MAIL_FROM", sender)
    with pytest.raises(SettingsError, match="TRIAGE_MAIL_FROM"):
        load_settings()


def test_reports_and_mail_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_MAIL_FROM", "Support <help@shop.example>")
    monkeypatch.setenv("TRIAGE_SMTP_URL", "smtp://bot:s3cr%40t@mail.example:587")
    settings = load_settings()
    assert "s3cr%40t" in " ".join(settings.secrets())  # the URL (with its password) is masked in logs
    assert not settings.identity_sandbox  # a real mail server: no made-up sandbox sessions
    monkeypatch.setenv("TRIAGE_SESSION_INTROSPECTION_URL", "https://id.example/introspect")
    with pytest.raises(SettingsError, match="TRIAGE_SESSION_INTROSPECTION_TOKEN"):
        load_settings()


@pytest.mark.parametrize("name", ["TRIAGE_WEBHOOK_TOKEN", "TRIAGE_METRICS_TOKEN", "TRIAGE_CONSOLE_TOKEN"])
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("short-token", "at least 16 characters"),
        ("jetons-très-secrets-0123", "printable ASCII"),  # a header carries ASCII: it could never match
        ("two words-0123456789", "printable ASCII"),
    ],
)
def test_the_bots_own_tokens_are_long_enough_and_fit_in_a_header(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, problem: str
) -> None:
    with pytest.raises(SettingsError, match=f"{name} must be .*{problem}"):
        settings(monkeypatch, **{**REAL_SLACK, name: value})


def test_an_empty_token_is_unset_not_a_token_that_matches_an_empty_header(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = settings(monkeypatch, **REAL_SLACK, TRIAGE_METRICS_TOKEN="", TRIAGE_CONSOLE_TOKEN="")
    assert loaded.metrics_token is None and loaded.console_token is None
    assert loaded.effective_metrics_token() == REAL_SLACK["TRIAGE_WEBHOOK_TOKEN"]
