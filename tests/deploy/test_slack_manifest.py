"""deploy/slack-app-manifest*.yaml: Slack's own manifest types take them (@slack/web-api's `Manifest`, checked by
the TypeScript compiler: field names, types, scope and event names), the bot scopes are exactly those the Web API
methods the code calls need, and the slash command and Request URLs reach the bot's listeners."""

from __future__ import annotations

import ast
import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from slack_sdk import WebClient

from bot.settings import Settings
from tests.conftest import Emulators
from tests.harness import JIRA_TOKEN, JIRA_USER, SLACK_SECRET, SLACK_TOKEN, WEBHOOK_TOKEN

REPO = Path(__file__).resolve().parents[2]
CHECKS = Path(__file__).resolve().parent
TSC = CHECKS / "node_modules" / ".bin" / "tsc"
MANIFESTS = sorted((REPO / "deploy").glob("slack-app-manifest*.yaml"))
WEB_API_SPEC = REPO.parent / "shared" / "specs" / "slack_web_openapi_v2.json"

# Scopes a method's spec entry does not name, each with the reason the bot needs it.
NEEDED_BESIDES_METHODS = {
    "commands": "the /triage slash command",
    "users:read.email": "users.info answers profile.email only with it (the member's Jira account is found by it)",
}
# Methods the spec does not list (or lists for another kind of token), with what they need instead.
NOT_BOT_SCOPES = {"apps.connections.open": "Socket Mode: the app-level token (xapp-) with connections:write"}


def _tsc(manifest: dict[str, Any], workdir: Path) -> subprocess.CompletedProcess[str]:
    """The manifest as an object literal typed as Slack's `Manifest`: excess properties and unknown scope names
    are compile errors."""
    if not TSC.exists():
        pytest.fail(f"{TSC} is missing: run tests/services.sh (make test does)")
    (workdir / "node_modules").symlink_to(CHECKS / "node_modules")  # where the compiler finds @slack/web-api
    source = workdir / "manifest.ts"
    source.write_text(
        'import type { AppsManifestCreateArguments } from "@slack/web-api";\n'
        f'export const manifest: AppsManifestCreateArguments["manifest"] = {json.dumps(manifest, indent=2)};\n'
    )
    return subprocess.run(
        [str(TSC), "--noEmit", "--strict", "--skipLibCheck", "--types", "node", str(source)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=workdir,
    )


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def test_both_variants_are_shipped() -> None:
    assert [m.name for m in MANIFESTS] == ["slack-app-manifest.socket-mode.yaml", "slack-app-manifest.yaml"]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_slacks_manifest_types_take_it(path: Path, tmp_path: Path) -> None:
    result = _tsc(_load(path), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_manifest_is_refused(tmp_path: Path) -> None:
    broken = _load(REPO / "deploy" / "slack-app-manifest.yaml")
    broken["oauth_config"]["scopes"]["bot"].append("chat:writes")
    broken["settings"]["interactivity"]["request_uri"] = broken["settings"]["interactivity"].pop("request_url")
    result = _tsc(broken, tmp_path)
    assert result.returncode != 0
    assert "chat:writes" in result.stdout and "request_uri" in result.stdout, result.stdout


def _methods_called() -> set[str]:
    """Every Web API method the bot's code calls through a slack_sdk client (``client.chat_postMessage(...)``)."""
    known = {name for name in dir(WebClient) if not name.startswith("_") and "_" in name} - {"api_call"}
    called = set()
    for package in ("bot", "webhooks"):
        for module in (REPO / package).rglob("*.py"):
            if "sandbox" in module.parts:
                continue
            for node in ast.walk(ast.parse(module.read_text())):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in known:
                    called.add(node.func.attr.replace("_", "."))
    return called


def _scopes_of(method: str, spec: dict[str, Any]) -> set[str]:
    """The bot scopes a method needs, by Slack's Web API spec (its classic chat:write:bot is chat:write now)."""
    operations = spec["paths"][f"/{method}"].values()
    scopes = {s for op in operations for entry in op.get("security", []) for s in entry.get("slackAuth", [])}
    scopes = {"chat:write" if s.startswith("chat:write:") else s for s in scopes}
    return scopes - {"none"}


def test_the_scopes_are_those_the_code_needs_and_no_more() -> None:
    spec = json.loads(WEB_API_SPEC.read_text())
    called = _methods_called()
    assert {"chat.postMessage", "chat.update", "users.info", "views.open"} <= called, called  # the scan works
    needed: dict[str, set[str]] = {}
    for method in sorted(called - set(NOT_BOT_SCOPES)):
        needed[method] = _scopes_of(method, spec)
    for path in MANIFESTS:
        scopes = set(_load(path)["oauth_config"]["scopes"]["bot"])
        for method, any_of in needed.items():
            assert not any_of or any_of & scopes, f"{path.name}: {method} needs one of {sorted(any_of)}"
        justified = set().union(*needed.values()) | set(NEEDED_BESIDES_METHODS)
        assert scopes <= justified, f"{path.name} asks for scopes no code needs: {sorted(scopes - justified)}"
        # Both history scopes: cards are found again in public (channels:) and private (groups:) channels alike.
        assert {"channels:history", "groups:history"} <= scopes


def test_the_command_and_the_request_urls_reach_the_listeners(tmp_path: Path, emulators: Emulators) -> None:
    from webhooks.app import create_app

    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/manifest.db",
        webhook_token=WEBHOOK_TOKEN,
        jira_url=emulators.jira_url,
        jira_user=JIRA_USER,
        jira_token=JIRA_TOKEN,
        slack_bot_token=SLACK_TOKEN,
        slack_signing_secret=SLACK_SECRET,
        slack_api_url=emulators.slack_url,
    )
    slack = emulators.slack  # signs as Slack does
    http, socket = (
        _load(REPO / "deploy" / "slack-app-manifest.yaml"),
        _load(REPO / "deploy" / "slack-app-manifest.socket-mode.yaml"),
    )
    [command] = http["features"]["slash_commands"]
    urls = {urlsplit(command["url"]).path, urlsplit(http["settings"]["interactivity"]["request_url"]).path}
    assert urls == {"/slack/events"}
    app = create_app(settings)  # its lifespan is not run: only the listeners answer, no workers

    async def run(name: str) -> httpx.Response:
        body, headers = slack.slash_command("U0OP1", "help", command=name)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
            return await client.post("/slack/events", content=body, headers=headers)

    for name in {c["command"] for c in http["features"]["slash_commands"] + socket["features"]["slash_commands"]}:
        answer = asyncio.run(run(name))
        assert answer.status_code == 200, answer.text
        assert f"{name} new" in answer.json()["text"], answer.json()
    # The Socket Mode variant has no Request URL at all, and needs no public address.
    assert (
        socket["settings"]["socket_mode_enabled"] is True and "request_url" not in socket["settings"]["interactivity"]
    )
    assert not any("url" in c for c in socket["features"]["slash_commands"])
    # Both ask for the same app.
    assert (
        http["oauth_config"] == socket["oauth_config"] and http["display_information"] == socket["display_information"]
    )
