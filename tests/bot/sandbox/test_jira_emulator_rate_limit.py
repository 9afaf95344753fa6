"""The Jira emulator's steady rate limit: one token bucket for every REST call of every client, answered as Jira
Cloud answers (429, Retry-After in whole seconds, X-RateLimit-Reset, RateLimit-Reason), over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from bot.sandbox.jira_emulator import JiraEmulator, create_jira_emulator
from bot.sandbox.server_thread import ServerThread

AUTH = ("sandbox@example.com", "sandbox-token")
ISSUE = {"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Task"}, "summary": "limited"}}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ServerThread, JiraEmulator]]:
    app = create_jira_emulator(rate_limit_per_second=2, rate_limit_burst=3)
    with ServerThread(app) as running:
        yield running, app.state.emulator


@pytest.fixture
def emu(server: tuple[ServerThread, JiraEmulator]) -> Iterator[JiraEmulator]:
    emulator = server[1]
    emulator.set_rate_limit(2, 3)
    emulator.clear_faults()
    emulator.reset()
    yield emulator
    emulator.set_rate_limit(None)
    emulator.reset()


@pytest.fixture
def http(server: tuple[ServerThread, JiraEmulator], emu: JiraEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[0].url, auth=AUTH, timeout=10) as client:
        yield client


def test_burst_then_429_as_jira_cloud_sends_it(http: httpx.Client, emu: JiraEmulator) -> None:
    answers = [http.get("/rest/api/2/myself") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]  # the bucket starts full: 3 calls at once
    asked = time.time()
    limited = http.post("/rest/api/2/issue", json=ISSUE)
    assert limited.status_code == 429
    assert limited.json() == {"errorMessages": ["Rate limit exceeded."], "errors": {}}
    headers = limited.headers
    assert headers["RateLimit-Reason"] == "jira-burst-based"
    assert headers["X-RateLimit-Limit"] == "3"
    assert headers["X-RateLimit-Remaining"] == "0"
    retry_after = int(headers["Retry-After"])  # whole seconds, at least 1 (a token comes back in 0.5 s at 2/s)
    assert retry_after == 1
    reset = datetime.fromisoformat(headers["X-RateLimit-Reset"])  # ISO 8601, UTC: the request's time + Retry-After
    assert reset.tzinfo is not None and reset.utcoffset() == UTC.utcoffset(None)
    assert asked + retry_after - 1.5 <= reset.timestamp() <= asked + retry_after + 1.5
    assert emu.issues() == []  # the refused create did nothing
    assert emu.rate_limited == 1
    assert emu.rate_limit_stats() == {"per_second": 2, "burst": 3, "rate_limited": 1}
    log = emu.requests()
    assert [r["status"] for r in log] == [200, 200, 200, 429]
    assert [r.get("rate_limited", False) for r in log] == [False, False, False, True]


def test_steady_rate_over_every_client_and_path(server: tuple[ServerThread, JiraEmulator], emu: JiraEmulator) -> None:
    emu.set_rate_limit(5, 1)  # 5 calls a second, no burst
    paths = ["/rest/api/2/myself", "/rest/api/2/serverInfo", "/rest/api/3/field", "/rest/api/latest/priority"]
    started = time.monotonic()
    with httpx.Client(base_url=server[0].url, auth=AUTH) as one, httpx.Client(base_url=server[0].url) as two:
        statuses = [
            (one if i % 2 else two).get(paths[i % len(paths)], auth=AUTH if i % 2 == 0 else None).status_code
            for i in range(60)
        ]
        while time.monotonic() - started < 1.5:  # both clients share the bucket: about 5 a second in all
            statuses.append(one.get("/rest/api/2/myself").status_code)
            time.sleep(0.01)
    elapsed = time.monotonic() - started
    admitted = statuses.count(200)
    assert set(statuses) == {200, 429}
    assert admitted <= 1 + 5 * elapsed + 1  # never more than the bucket and its refill
    # A 429 says the bucket was empty then: every token made until the last one had been taken (a slow client,
    # on a busy machine, may leave tokens unused before it; that is not the limit's doing).
    last_429 = max(r["time"] for r in emu.requests() if r.get("rate_limited"))
    first = min(r["time"] for r in emu.requests())
    taken_by_then = sum(1 for r in emu.requests() if r["status"] == 200 and r["time"] <= last_429)
    assert taken_by_then >= 1 + 5 * (last_429 - first) - 2
    assert emu.rate_limited == statuses.count(429)
    assert http_get(server[0].url, "/_emulator/issues").status_code == 200  # control routes are never limited


def test_faults_come_first_and_take_no_token(http: httpx.Client, emu: JiraEmulator) -> None:
    emu.set_fault(status=503, count=5)
    assert [http.get("/rest/api/2/myself").status_code for _ in range(5)] == [503] * 5
    assert [http.get("/rest/api/2/myself").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert emu.rate_limited == 1


def test_set_at_run_time_over_http_and_reset_refills(
    server: tuple[ServerThread, JiraEmulator], http: httpx.Client, emu: JiraEmulator
) -> None:
    assert http.post("/_emulator/rate_limit", json={"per_second": None}).json()["per_second"] is None
    assert all(http.get("/rest/api/2/myself").status_code == 200 for _ in range(20))  # no limit
    answer = http.post("/_emulator/rate_limit", json={"per_second": 0.5, "burst": 1})
    assert answer.json() == {"per_second": 0.5, "burst": 1.0, "rate_limited": 0}
    assert http.get("/rest/api/2/myself").status_code == 200
    limited = http.get("/rest/api/2/myself")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"  # a token every 2 s
    assert http.get("/_emulator/rate_limit").json()["rate_limited"] == 1
    assert http.post("/_emulator/rate_limit", json={"per_second": -1}).status_code == 400
    assert http.post("/_emulator/rate_limit", json={"per_second": 1, "burst": 0.5}).status_code == 400
    assert http.post("/_emulator/rate_limit", json={"rate": 1}).status_code == 400
    emu.reset()  # the limit stays, the bucket is full again and the count starts over
    assert http.get("/rest/api/2/myself").status_code == 200
    assert emu.rate_limit_stats() == {"per_second": 0.5, "burst": 1.0, "rate_limited": 0}


def http_get(base: str, path: str) -> httpx.Response:
    return httpx.get(base + path, timeout=10)
