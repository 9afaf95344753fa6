"""The Slack Web API emulator, driven over real HTTP by the real slack_sdk clients (no mocks)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import RateLimitErrorRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.server_thread import ServerThread
from bot.sandbox.slack_emulator import SlackEmulator, create_slack_emulator

TOKEN = "xoxb-sandbox"
# The spec kept next to the repo (slackapi/slack-api-specs@bc08db4:web-api/slack_web_openapi_v2.json, Swagger 2.0).
SPEC_PATH = Path(__file__).resolve().parents[4] / "shared" / "specs" / "slack_web_openapi_v2.json"
# The `required` lists of its 200 schemas, copied so that a clean clone without the spec still checks them;
# test_required_lists_match_the_spec re-reads them from the file whenever it is there.
SPEC_REQUIRED = {
    "auth.test": ["ok", "url", "team", "user", "team_id", "user_id"],
    "chat.postMessage": ["ok", "channel", "ts", "message"],
    "chat.update": ["ok", "channel", "ts", "text", "message"],
    "chat.postEphemeral": ["ok", "message_ts"],
    "conversations.history": ["ok", "messages", "has_more", "pin_count", "channel_actions_ts", "channel_actions_count"],
}


def spec_required(method: str) -> list[str]:
    return SPEC_REQUIRED[method]


def test_required_lists_match_the_spec() -> None:
    if not SPEC_PATH.exists():
        pytest.skip(f"{SPEC_PATH} is not in this checkout")
    spec = json.loads(SPEC_PATH.read_text())
    for method, required in SPEC_REQUIRED.items():
        op = next(iter(spec["paths"][f"/{method}"].values()))
        assert op["responses"]["200"]["schema"]["required"] == required, method


def assert_matches_spec(method: str, data: dict[str, Any]) -> None:
    missing = set(spec_required(method)) - set(data)
    assert not missing, f"{method} response lacks {missing}"
    assert data["ok"] is True


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    with ServerThread(app) as server:
        yield server.url


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, SlackEmulator]]:
    app = create_slack_emulator()
    with serve(app) as url:
        yield url, app.state.emulator


@pytest.fixture
def url(served: tuple[str, SlackEmulator]) -> str:
    return served[0]


@pytest.fixture
def emu(served: tuple[str, SlackEmulator]) -> Iterator[SlackEmulator]:
    served[1].reset()
    yield served[1]
    served[1].reset()


@pytest.fixture
def client(url: str, emu: SlackEmulator) -> WebClient:
    return WebClient(token=TOKEN, base_url=f"{url}/api/")


def error_of(call: Any, **kwargs: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        call(**kwargs)
    return info.value


BUTTON: dict[str, Any] = {
    "type": "button",
    "text": {"type": "plain_text", "text": "Ack"},
    "action_id": "ack",
    "value": "A-1",
}
BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*DB down*"}},
    {"type": "actions", "block_id": "act", "elements": [BUTTON]},
]
METADATA = {"event_type": "alert_posted", "event_payload": {"alert_id": "A-1"}}


# ----- messages -----
def test_auth_test_matches_spec(client: WebClient, url: str) -> None:
    data = client.auth_test().data
    assert isinstance(data, dict)
    assert_matches_spec("auth.test", data)
    assert data["url"] == f"{url}/"
    assert data["bot_id"]
    assert data["user_id"]
    assert data["team_id"]


def test_auth_errors(url: str, emu: SlackEmulator) -> None:
    assert error_of(WebClient(token="xoxb-wrong", base_url=f"{url}/api/").auth_test).response["error"] == (
        "invalid_auth"
    )
    err = error_of(WebClient(base_url=f"{url}/api/").chat_postMessage, channel="C0OPS", text="x")
    assert err.response.status_code == 200
    assert err.response["error"] == "not_authed"
    assert emu.messages() == []


def test_post_update_history_with_metadata(client: WebClient, emu: SlackEmulator) -> None:
    posted = client.chat_postMessage(channel="C0OPS", text="DB down", blocks=BLOCKS, metadata=METADATA)
    assert isinstance(posted.data, dict)
    assert_matches_spec("chat.postMessage", posted.data)
    ts = posted["ts"]
    assert posted["channel"] == "C0OPS"
    message = posted["message"]
    assert message["ts"] == ts
    assert message["text"] == "DB down"
    assert message["bot_id"]
    assert message["metadata"] == METADATA
    assert message["blocks"][1]["block_id"] == "act"
    assert message["blocks"][0]["block_id"]

    updated = client.chat_update(channel="C0OPS", ts=ts, text="DB down (acked)", blocks=BLOCKS[:1])
    assert isinstance(updated.data, dict)
    assert_matches_spec("chat.update", updated.data)
    assert updated["ts"] == ts
    assert updated["text"] == "DB down (acked)"
    assert updated["message"]["edited"]["ts"] > ts

    plain = client.conversations_history(channel="C0OPS")
    assert [m["text"] for m in plain["messages"]] == ["DB down (acked)"]
    assert "metadata" not in plain["messages"][0]
    assert set(spec_required("conversations.history")) <= set(plain.data if isinstance(plain.data, dict) else {})
    full = client.conversations_history(channel="C0OPS", include_all_metadata=True)
    assert full["messages"][0]["metadata"] == METADATA

    stored = emu.message("C0OPS", ts)
    assert stored is not None
    assert stored["edit_count"] == 1
    assert stored["edits"][0]["text"] == "DB down"
    assert len(stored["blocks"]) == 1
    assert stored["metadata"] == METADATA

    err = error_of(client.chat_update, channel="C0OPS", ts="1700000000.000001", text="x")
    assert err.response["error"] == "message_not_found"


def test_timestamps_are_unique_and_increasing(client: WebClient) -> None:
    stamps = [client.chat_postMessage(channel="C0QA", text=str(i))["ts"] for i in range(5)]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 5
    assert all(len(ts) == 17 and ts[10] == "." for ts in stamps)


def test_thread_replies(client: WebClient, emu: SlackEmulator) -> None:
    parent = client.chat_postMessage(channel="C0PAY", text="parent")["ts"]
    first = client.chat_postMessage(channel="C0PAY", text="r1", thread_ts=parent, metadata=METADATA)
    client.chat_postMessage(channel="C0PAY", text="r2", thread_ts=parent)
    assert first["message"]["thread_ts"] == parent

    replies = client.conversations_replies(channel="C0PAY", ts=parent)["messages"]
    assert [m["text"] for m in replies] == ["parent", "r1", "r2"]
    assert replies[0]["reply_count"] == 2
    assert replies[0]["thread_ts"] == parent
    assert "metadata" not in replies[1]
    with_meta = client.conversations_replies(channel="C0PAY", ts=parent, include_all_metadata=True)
    assert with_meta["messages"][1]["metadata"] == METADATA
    assert [m["text"] for m in client.conversations_history(channel="C0PAY")["messages"]] == ["parent"]
    assert [m["text"] for m in emu.thread("C0PAY", parent)] == ["parent", "r1", "r2"]

    # Unknown thread_ts: real Slack answers ok but the message shows up nowhere.
    orphan = client.chat_postMessage(channel="C0PAY", text="lost", thread_ts="1600000000.000100")
    assert orphan["ok"]
    assert [m["text"] for m in client.conversations_history(channel="C0PAY")["messages"]] == ["parent"]
    lost = emu.message("C0PAY", orphan["ts"])
    assert lost is not None
    assert lost["orphan"] is True
    err = error_of(client.conversations_replies, channel="C0PAY", ts="1600000000.000100")
    assert err.response["error"] == "thread_not_found"
    err = error_of(client.chat_postMessage, channel="C0PAY", text="x", thread_ts="1600000000.0001")
    assert err.response["error"] == "invalid_thread_ts"


def test_history_paging_and_window(client: WebClient) -> None:
    stamps = [client.chat_postMessage(channel="C0QA", text=f"m{i}")["ts"] for i in range(5)]
    seen, cursor = [], None
    while True:
        page = client.conversations_history(channel="C0QA", limit=2, cursor=cursor)
        seen += [m["text"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        assert page["has_more"] == bool(cursor)
        if not cursor:
            break
    assert seen == ["m4", "m3", "m2", "m1", "m0"]
    window = client.conversations_history(channel="C0QA", oldest=stamps[1], latest=stamps[3])
    assert [m["text"] for m in window["messages"]] == ["m2"]


def test_channels_text_and_length_errors(client: WebClient) -> None:
    assert error_of(client.chat_postMessage, channel="nope", text="x").response["error"] == "channel_not_found"
    with pytest.warns(UserWarning, match="`text` argument is missing"):
        assert error_of(client.chat_postMessage, channel="C0OPS").response["error"] == "no_text"
    too_long = error_of(client.chat_postMessage, channel="C0OPS", text="x" * 40_001)
    assert too_long.response["error"] == "msg_too_long"
    assert client.chat_postMessage(channel="C0NEW1", text="auto-created")["channel"] == "C0NEW1"
    assert client.chat_postMessage(channel="#ops", text="by name")["channel"] == "C0OPS"
    info = client.conversations_info(channel="C0NEW1")
    assert info["channel"]["id"] == "C0NEW1"
    assert error_of(client.conversations_history, channel="C0NONE").response["error"] == "channel_not_found"


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(action_id: str, text: str = "Go") -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id}


@pytest.mark.parametrize(
    ("blocks", "pointer"),
    [
        ([section("x")] * 51, "/blocks]"),
        ([section("x" * 3001)], "/blocks/0/text/text"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "/blocks/0/text/text"),
        ([{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}], "/blocks/0/text/type"),
        ([{"type": "actions", "elements": [button("a", "b" * 76)]}], "/blocks/0/elements/0/text/text"),
        ([{"type": "actions", "elements": [button(f"a{i}") for i in range(26)]}], "/blocks/0/elements"),
        ([{"type": "actions", "elements": [button("a" * 256)]}], "/blocks/0/elements/0/action_id"),
        ([{"type": "actions", "elements": [button("dup")]}, section("x") | {"accessory": button("dup")}], "dup"),
        ([{"type": "carousel"}], "/blocks/0/type"),
        ("not-a-list", "/blocks]"),
    ],
)
def test_invalid_blocks(client: WebClient, emu: SlackEmulator, blocks: Any, pointer: str) -> None:
    err = error_of(client.chat_postMessage, channel="C0OPS", text="t", blocks=blocks)
    assert err.response["error"] in ("invalid_blocks", "invalid_blocks_format")
    if err.response["error"] == "invalid_blocks":
        assert any(pointer in e for e in err.response["errors"]), err.response["errors"]
        assert err.response["response_metadata"]["messages"][0].startswith("[ERROR] ")
    assert emu.messages() == []


def test_valid_blocks_at_the_limits(client: WebClient) -> None:
    header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 150}}
    actions = {"type": "actions", "elements": [button(f"a{i}", "b" * 75) for i in range(25)]}
    blocks = [header, section("x" * 3000), actions, {"type": "divider"}] + [section("y")] * 46
    assert client.chat_postMessage(channel="C0OPS", text="t", blocks=blocks)["ok"]


def test_permalink_under_mount_prefix(emu: SlackEmulator) -> None:
    outer = FastAPI()
    inner = create_slack_emulator()
    outer.mount("/sandbox/slack", inner)
    with serve(outer) as base:
        web = WebClient(token=TOKEN, base_url=f"{base}/sandbox/slack/api/")
        parent = web.chat_postMessage(channel="C0OPS", text="root")["ts"]
        reply = web.chat_postMessage(channel="C0OPS", text="reply", thread_ts=parent)["ts"]
        link = web.chat_getPermalink(channel="C0OPS", message_ts=parent)["permalink"]
        assert link == f"{base}/sandbox/slack/archives/C0OPS/p{parent.replace('.', '')}"
        reply_link = web.chat_getPermalink(channel="C0OPS", message_ts=reply)["permalink"]
        assert reply_link.endswith(f"?thread_ts={parent}&cid=C0OPS")
        assert httpx.get(link).json()["text"] == "root"
        error = error_of(web.chat_getPermalink, channel="C0OPS", message_ts="1600000000.000001")
        assert error.response["error"] == "message_not_found"
    assert emu.messages() == []  # separate emulator instance


def test_ephemeral(client: WebClient, emu: SlackEmulator) -> None:
    resp = client.chat_postEphemeral(channel="C0OPS", user="U0OP1", text="only you", blocks=BLOCKS[:1])
    assert set(spec_required("chat.postEphemeral")) <= set(resp.data if isinstance(resp.data, dict) else {})
    assert emu.ephemerals(user="U0OP1")[0]["ts"] == resp["message_ts"]
    assert emu.ephemerals(user="U0PA1") == []
    assert emu.messages() == []
    err = error_of(client.chat_postEphemeral, channel="C0OPS", user="U0NOBODY", text="x")
    assert err.response["error"] == "user_not_in_channel"


def test_users_usergroups_and_conversations(client: WebClient) -> None:
    user = client.users_lookupByEmail(email="paul.pay@example.com")["user"]
    assert user["id"] == "U0PA1"
    assert user["profile"]["email"] == "paul.pay@example.com"
    assert client.users_info(user="U0QA1")["user"]["name"] == "quinn.qa"
    assert error_of(client.users_lookupByEmail, email="x@example.com").response["error"] == "users_not_found"
    assert error_of(client.users_info, user="U0NONE").response["error"] == "user_not_found"
    assert client.usergroups_users_list(usergroup="S0PAY")["users"] == ["U0PA1", "U0PA2"]
    assert client.conversations_info(channel="C0PAY")["channel"]["name"] == "payments"


def test_views(client: WebClient, emu: SlackEmulator) -> None:
    view = {
        "type": "modal",
        "callback_id": "snooze",
        "title": {"type": "plain_text", "text": "Snooze alert"},
        "submit": {"type": "plain_text", "text": "Snooze"},
        "blocks": [section("How long?")],
    }
    opened = client.views_open(trigger_id="123.456.abc", view=view)["view"]
    assert opened["id"].startswith("V")
    assert opened["callback_id"] == "snooze"
    assert opened["root_view_id"]
    updated = client.views_update(view_id=opened["id"], view=view | {"private_metadata": "A-1"})["view"]
    assert updated["id"] == opened["id"]
    assert updated["private_metadata"] == "A-1"
    pushed = client.views_push(trigger_id="123.456.def", view=view)["view"]
    assert pushed["id"] != opened["id"]
    assert [v["id"] for v in emu.views()] == [opened["id"], pushed["id"]]

    long_title = view | {"title": {"type": "plain_text", "text": "t" * 25}}
    err = error_of(client.views_open, trigger_id="1.2.3", view=long_title)
    assert err.response["error"] == "invalid_arguments"
    assert "/view/title/text" in err.response["response_metadata"]["messages"][0]
    assert error_of(client.views_open, trigger_id="1.2.3", view=view | {"type": "home"}).response["error"]
    assert error_of(client.views_update, view_id="VNOPE", view=view).response["error"] == "not_found"


def test_unknown_method(client: WebClient) -> None:
    err = error_of(client.api_call, api_method="foo.bar")
    assert err.response.status_code == 200
    assert err.response["error"] == "unknown_method"


def test_raw_form_json_and_get_bodies(url: str, emu: SlackEmulator) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    form = {"channel": "C0OPS", "text": "form", "blocks": json.dumps(BLOCKS), "metadata": json.dumps(METADATA)}
    with httpx.Client(base_url=f"{url}/api/", headers=auth) as http:
        posted = http.post("chat.postMessage", data=form).json()
        assert posted["ok"]
        assert posted["message"]["metadata"] == METADATA
        assert http.post("chat.postMessage", json={"channel": "C0OPS", "text": "json"}).json()["ok"]
        history = http.get("conversations.history", params={"channel": "C0OPS", "limit": 1}).json()
        assert [m["text"] for m in history["messages"]] == ["json"]
        assert history["has_more"]
        assert http.post("auth.test", content=b"[1]", headers={"Content-Type": "application/json"}).json() == {
            "ok": False,
            "error": "json_not_object",
        }
        assert http.post("auth.test", data={"token": TOKEN}, headers={"Authorization": ""}).json()["ok"]
    assert [r["method"] for r in emu.requests()] == ["chat.postMessage"] * 2 + ["conversations.history", "auth.test"]


# ----- faults and rate limits -----
def test_429_visible_on_slack_api_error(client: WebClient, emu: SlackEmulator) -> None:
    emu.set_fault(count=1, retry_after=7)
    err = error_of(client.chat_postMessage, channel="C0OPS", text="x")
    assert err.response.status_code == 429
    assert err.response.headers["Retry-After"] in ("7", ["7"])
    assert err.response["error"] == "ratelimited"
    assert client.chat_postMessage(channel="C0OPS", text="x")["ok"]
    assert [(r["status"], r["error"]) for r in emu.requests()] == [(429, "ratelimited"), (200, None)]


def test_rate_limit_retry_handler_recovers(client: WebClient, emu: SlackEmulator) -> None:
    emu.set_fault(count=1, retry_after=0, methods={"chat.postMessage"})
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    assert client.auth_test()["ok"]
    assert client.chat_postMessage(channel="C0OPS", text="after retry")["ok"]
    assert [r["status"] for r in emu.requests()] == [200, 429, 200]
    assert [m["text"] for m in emu.messages("C0OPS")] == ["after retry"]


def test_fault_window_methods_and_5xx(client: WebClient, emu: SlackEmulator) -> None:
    emu.set_fault(status=503, seconds=0.3, methods={"chat.update"})
    ts = client.chat_postMessage(channel="C0OPS", text="x")["ts"]
    err = error_of(client.chat_update, channel="C0OPS", ts=ts, text="y")
    assert err.response.status_code == 503
    time.sleep(0.35)
    assert client.chat_update(channel="C0OPS", ts=ts, text="y")["ok"]
    emu.set_fault(count=None)
    assert error_of(client.auth_test).response.status_code == 429
    emu.clear_faults()
    assert client.auth_test()["ok"]


def test_realistic_per_channel_rate_limit() -> None:
    app = create_slack_emulator(rate_limit_per_channel=1.0, rate_limit_burst=2)
    with serve(app) as base:
        web = WebClient(token=TOKEN, base_url=f"{base}/api/")
        assert web.chat_postMessage(channel="C0OPS", text="1")["ok"]
        assert web.chat_postMessage(channel="C0OPS", text="2")["ok"]
        err = error_of(web.chat_postMessage, channel="C0OPS", text="3")
        assert err.response.status_code == 429
        assert err.response["error"] == "ratelimited"
        assert web.chat_postMessage(channel="C0PAY", text="other channel")["ok"]
        time.sleep(1.05)
        assert web.chat_postMessage(channel="C0OPS", text="3 again")["ok"]


def test_async_client_posts_retries_and_latency(url: str, emu: SlackEmulator) -> None:
    async def scenario() -> None:
        web = AsyncWebClient(token=TOKEN, base_url=f"{url}/api/")
        posted = await web.chat_postMessage(channel="C0OPS", text="async", metadata=METADATA)
        assert isinstance(posted.data, dict)
        assert_matches_spec("chat.postMessage", posted.data)
        updated = await web.chat_update(channel="C0OPS", ts=posted["ts"], text="async 2")
        assert updated["text"] == "async 2"

        emu.set_fault(count=1, retry_after=3)
        with pytest.raises(SlackApiError) as info:
            await web.auth_test()
        assert info.value.response.status_code == 429
        assert info.value.response.headers["Retry-After"] == "3"

        emu.set_fault(count=1, retry_after=0)
        web.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
        assert (await web.auth_test())["ok"]

        # A slow chat.postMessage does not hold up other calls.
        emu.set_fault(status=200, latency=0.6, methods={"chat.postMessage"})
        started = time.monotonic()
        slow = asyncio.create_task(web.chat_postMessage(channel="C0OPS", text="slow"))
        await asyncio.sleep(0.05)
        assert (await web.auth_test())["ok"]
        assert time.monotonic() - started < 0.5
        assert (await slow)["ok"]
        assert time.monotonic() - started >= 0.6

    asyncio.run(scenario())


def test_control_endpoints(url: str, client: WebClient, emu: SlackEmulator) -> None:
    with httpx.Client(base_url=f"{url}/_emulator/") as ctl:
        fault = ctl.post("faults", json={"status": 429, "count": 1, "retry_after": 2, "methods": ["auth.test"]})
        assert fault.json()["ok"]
        assert fault.json()["fault"]["methods"] == ["auth.test"]
        assert error_of(client.auth_test).response.status_code == 429
        ctl.post("faults", json={"count": 5})
        assert ctl.delete("faults").json() == {"ok": True}
        ts = client.chat_postMessage(channel="C0OPS", text="hi", blocks=BLOCKS, metadata=METADATA)["ts"]
        client.chat_postMessage(channel="C0OPS", text="reply", thread_ts=ts)
        client.chat_update(channel="C0OPS", ts=ts, text="hi!")
        msgs = ctl.get("messages", params={"channel": "C0OPS"}).json()["messages"]
        assert msgs[0]["metadata"] == METADATA
        assert msgs[0]["blocks"]
        assert msgs[0]["edit_count"] == 1
        assert msgs[0]["reply_count"] == 1
        assert msgs[1]["thread_ts"] == ts
        assert ctl.get("messages", params={"channel": "C0PAY"}).json()["messages"] == []
        logged = ctl.get("requests").json()["requests"]
        assert [(r["method"], r["status"]) for r in logged[:2]] == [("auth.test", 429), ("chat.postMessage", 200)]
        assert ctl.post("reset").json() == {"ok": True}
        assert ctl.get("messages").json()["messages"] == []
        assert emu.requests() == []


def test_reset_clears_state_and_auto_created_channels(client: WebClient, emu: SlackEmulator) -> None:
    client.chat_postMessage(channel="C0TEMP", text="x")
    emu.set_fault()
    emu.reset()
    assert emu.messages() == []
    assert emu.requests() == []
    assert client.auth_test()["ok"]
    assert error_of(client.conversations_info, channel="C0TEMP").response["error"] == "channel_not_found"


# ----- acting as Slack towards the bot -----
def test_signed_request_official_vector() -> None:
    body = (
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    app = create_slack_emulator(signing_secret="8f742231b10e8888abcd99yyyzzz85a5")
    headers = app.state.emulator.signed_request(body, timestamp=1531420618)
    assert headers["X-Slack-Request-Timestamp"] == "1531420618"
    assert headers["X-Slack-Signature"] == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_block_actions_payload(client: WebClient, emu: SlackEmulator) -> None:
    ts = client.chat_postMessage(channel="C0OPS", text="DB down", blocks=BLOCKS, metadata=METADATA)["ts"]
    body = emu.block_actions_payload("C0OPS", ts, "U0OP1", "ack", "A-1")
    headers = emu.signed_request(body)
    assert SignatureVerifier(emu.signing_secret).is_valid_request(body, headers)
    assert not SignatureVerifier("other-secret").is_valid_request(body, headers)

    form = urllib.parse.parse_qs(body)
    assert list(form) == ["payload"]
    payload = json.loads(form["payload"][0])
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U0OP1"
    assert payload["user"]["username"] == "olivia.ops"
    assert payload["container"] == {"type": "message", "message_ts": ts, "channel_id": "C0OPS", "is_ephemeral": False}
    assert payload["channel"] == {"id": "C0OPS", "name": "ops"}
    assert payload["message"]["ts"] == ts
    assert payload["message"]["blocks"][1]["block_id"] == "act"
    assert payload["trigger_id"]
    assert payload["response_url"].startswith("https://hooks.slack.com/actions/")
    (action,) = payload["actions"]
    assert action["action_id"] == "ack"
    assert action["block_id"] == "act"
    assert action["value"] == "A-1"
    assert action["type"] == "button"
    assert action["text"] == BUTTON["text"]

    with pytest.raises(ValueError, match="no action_id"):
        emu.block_actions_payload("C0OPS", ts, "U0OP1", "missing", "v")
    with pytest.raises(KeyError):
        emu.block_actions_payload("C0OPS", "1600000000.000001", "U0OP1", "ack", "v")


def test_block_actions_payload_accepted_by_bolt(url: str, emu: SlackEmulator) -> None:
    """Real Bolt verifies the signature, parses the payload and its listener calls back into the emulator."""
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.request.async_request import AsyncBoltRequest

    async def scenario() -> None:
        web = AsyncWebClient(token=TOKEN, base_url=f"{url}/api/")
        bolt = AsyncApp(client=web, signing_secret=emu.signing_secret)
        clicks: list[str] = []

        @bolt.action("ack")
        async def on_ack(ack: Any, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient) -> None:
            await ack()
            clicks.append(action["value"])
            await client.chat_update(channel=body["channel"]["id"], ts=body["message"]["ts"], text="acked")

        ts = (await web.chat_postMessage(channel="C0OPS", text="DB down", blocks=BLOCKS))["ts"]
        body = emu.block_actions_payload("C0OPS", ts, "U0OP1", "ack", "A-1")
        headers: dict[str, str | Sequence[str]] = {**emu.signed_request(body)}
        response = await bolt.async_dispatch(AsyncBoltRequest(body=body, headers=headers))
        assert response.status == 200
        assert clicks == ["A-1"]
        stale: dict[str, str | Sequence[str]] = {**emu.signed_request(body, timestamp=int(time.time()) - 600)}
        assert (await bolt.async_dispatch(AsyncBoltRequest(body=body, headers=stale))).status == 401

    asyncio.run(scenario())
    message = emu.message("C0OPS", emu.messages("C0OPS")[0]["ts"])
    assert message is not None
    assert message["text"] == "acked"
    assert [r["method"] for r in emu.requests()] == ["chat.postMessage", "auth.test", "chat.update"]


def test_click_by_label_and_submit_a_modal_as_slack_would() -> None:
    app = create_slack_emulator()
    emu: SlackEmulator = app.state.emulator
    with ServerThread(app) as server:
        client = WebClient(token="xoxb-sandbox", base_url=server.url + "/api/")
        blocks = [
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "action_id": "go", "value": "v1", "text": {"type": "plain_text", "text": "Go"}}
                ],
            }
        ]
        ts = client.chat_postMessage(channel="C0OPS", text="t", blocks=blocks)["ts"]
        body, headers = emu.click("C0OPS", ts, "Go", "U0OP1")
        assert SignatureVerifier("sandbox-signing-secret").is_valid(
            body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
        )
        payload = json.loads(urllib.parse.parse_qs(body)["payload"][0])
        assert (payload["type"], payload["user"]["id"], payload["actions"][0]["value"]) == (
            "block_actions",
            "U0OP1",
            "v1",
        )
        with pytest.raises(ValueError, match="no button 'Stop'"):
            emu.click("C0OPS", ts, "Stop", "U0OP1")
        with pytest.raises(KeyError):
            emu.submit_view("U0OP1", {})
        view = {
            "type": "modal",
            "callback_id": "cb",
            "title": {"type": "plain_text", "text": "Pick"},
            "blocks": [
                {
                    "type": "input",
                    "block_id": "b",
                    "label": {"type": "plain_text", "text": "L"},
                    "element": {
                        "type": "static_select",
                        "action_id": "a",
                        "options": [{"text": {"type": "plain_text", "text": "x"}, "value": "x"}],
                    },
                }
            ],
        }
        client.views_open(trigger_id=payload["trigger_id"], view=view)
        body, _ = emu.submit_view("U0QA1", {"b": {"a": "x"}})
        submitted = json.loads(urllib.parse.parse_qs(body)["payload"][0])
        assert submitted["type"] == "view_submission" and submitted["view"]["callback_id"] == "cb"
        assert submitted["view"]["state"]["values"]["b"]["a"]["selected_option"]["value"] == "x"
