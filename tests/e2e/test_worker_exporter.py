"""A `triage-bot worker` run apart from `serve` (its own container, as in deploy/compose.yaml) answers for itself:
GET /metrics with its own jobs and calls (serve's metrics token), GET /healthz; anything else a JSON error."""

from __future__ import annotations

import socket
from typing import Any

import httpx

from bot.sandbox.samples import alertmanager_payload
from tests.conftest import Emulators
from tests.e2e.helpers import issues, post_alert, queue_drained, sample
from tests.harness import WEBHOOK_TOKEN, bot_env, free_port, run_cli, wait_until

AUTH = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}


def _health(url: str) -> int:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).status_code
    except httpx.TransportError:
        return 0


def test_a_separate_worker_serves_its_own_metrics_and_health(
    make_bot: Any, emulators: Emulators, database_url: str
) -> None:
    server = make_bot(TRIAGE_WORKERS="0")  # intake only: the jobs are the worker's
    port = free_port()
    worker = make_bot(command=("worker",), wait=False, TRIAGE_WORKER_METRICS_PORT=str(port))
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _health(url) == 200, timeout=30, what=f"the worker's /healthz (log {worker.log_path})")
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}

    with server.client() as client:
        for step in (1, 2):
            post_alert(client, alertmanager_payload("EXPORTED", alerts=step))
    queue_drained(database_url, timeout=60)
    assert len(issues(emulators)) == 1

    def counted() -> str | None:  # a job's counters move just after its row says done
        metrics = httpx.get(f"{url}/metrics", headers=AUTH).text
        names = ("triage_tickets_created_total", "triage_jobs_finished_total", "triage_alert_batch_notifications_sum")
        return metrics if all(f"\n{name}" in metrics for name in names) else None

    metrics = wait_until(counted, timeout=10, what="the worker's counters")
    assert sample(metrics, 'triage_tickets_created_total{source="alertmanager"}') == 1
    assert sample(metrics, 'triage_jobs_finished_total{kind="jira.create",outcome="done"}') == 1
    # The two notifications were decided in one step or two: every one of them was applied.
    assert sample(metrics, "triage_alert_batch_notifications_sum") == 2
    basic = httpx.get(f"{url}/metrics", auth=("prometheus", WEBHOOK_TOKEN))  # basic auth: the token as password
    assert basic.status_code == 200 and "triage_jobs_finished_total" in basic.text
    head = httpx.head(f"{url}/healthz")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
    with server.client() as client:
        served = client.get("/metrics").text
    assert 'triage_tickets_created_total{source="alertmanager"}' not in served  # each is scraped for its own

    assert httpx.get(f"{url}/metrics?name[]=up", headers=AUTH).status_code == 200  # a scrape's query is no matter
    missing = httpx.get(f"{url}/metrics")
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer " + "x" * 24})
    assert wrong.status_code == 401 and wrong.json() == {"error": "unauthorized", "detail": "the token is not valid"}
    unknown = httpx.get(f"{url}/tickets", headers=AUTH)
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    posted = httpx.post(f"{url}/metrics", headers=AUTH, content=b"{}")
    assert posted.status_code == 405 and posted.json()["error"] == "method_not_allowed"
    odd = httpx.request("BREW", f"{url}/metrics", headers=AUTH)  # refused by the standard library: JSON all the same
    assert odd.status_code == 501 and odd.json()["error"] == "not_implemented"
    assert WEBHOOK_TOKEN not in worker.log()


def test_a_worker_whose_metrics_port_is_taken_says_so_and_exits_1(
    emulators: Emulators, database_url: str, make_bot: Any
) -> None:
    make_bot(TRIAGE_WORKERS="0")  # migrates the database
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = bot_env(database_url, emulators.jira_url, emulators.slack_url, TRIAGE_WORKER_METRICS_PORT=str(port))
        done = run_cli("worker", **env)
    assert done.returncode == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port} for /metrics" in done.stderr
    assert "Traceback" not in done.stderr
