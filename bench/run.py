"""The benchmark: one run, every figure beside a baseline measured in the same run."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import load
from bench.claims import claim_cost
from bench.common import (
    WEBHOOK_TOKEN,
    bot_env,
    issue_clock,
    run_async,
    scrape,
)
from bench.common import category as _category
from bench.common import terminate as _terminate
from bench.metrics import parse_prometheus, queue_busy, read_tables, seconds_between, summary
from bench.procs import (
    Server,
    background_cpus,
    clean_env,
    load_average,
    machine_busy_seconds,
    postgres_available,
    postgres_database,
    postgres_sessions,
)
from bench.report import render
from bench.storm import Storms, storm_config
from bot.jobs.kinds import system_lane
from bot.sandbox.identity_emulator import IdentityEmulator, create_identity_emulator
from bot.sandbox.jira_emulator import JiraEmulator, create_jira_emulator
from bot.sandbox.mail_catcher import MailCatcher
from bot.sandbox.samples import alertmanager_payload
from bot.sandbox.server_thread import ServerThread
from bot.sandbox.slack_emulator import SlackEmulator, create_slack_emulator
from bot.settings import SANDBOX_IDENTITY_TOKEN, Settings
from bot.tickets.alerts import lane_for
from workflows.effects import System
from workflows.routing import dedup_label

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results.json"
REPORTS_PER_MINUTE = 10_000  # per customer: the highest TRIAGE_REPORTS_PER_MINUTE allows, so nothing is refused


@dataclass(frozen=True)
class Config:
    quick: bool
    requests: int
    warmup: int
    alerts_per_post: int
    connections: int
    rounds: int
    client: str
    groups: int
    rate: float
    idle_groups: int
    idle_rate: float
    jira_latency: float
    postgres: bool
    report_requests: int
    report_sessions: int
    cold_reports: int
    report_stream: int


class Bench:
    def __init__(self, config: Config, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.servers: list[Server] = []
        self.stack = contextlib.ExitStack()
        self.jira: JiraEmulator
        self.slack: SlackEmulator
        self.identity: IdentityEmulator
        self.mail: MailCatcher
        self.jira_url = self.slack_url = self.identity_url = ""

    # ---- plumbing ------------------------------------------------------------------------------
    def start_emulators(self) -> None:
        jira_app, slack_app = create_jira_emulator(), create_slack_emulator()
        jira_server = self.stack.enter_context(ServerThread(jira_app))
        slack_server = self.stack.enter_context(ServerThread(slack_app))
        self.jira, self.slack = jira_app.state.emulator, slack_app.state.emulator
        self.jira_url, self.slack_url = jira_server.url, slack_server.url + "/api/"
        identity_app = create_identity_emulator()
        self.identity = identity_app.state.emulator
        self.identity_url = self.stack.enter_context(ServerThread(identity_app)).url + "/introspect"
        self.mail = self.stack.enter_context(MailCatcher())

    def server(self, name: str, args: list[str], env: dict[str, str], ready_path: str) -> Server:
        server = Server(name, args, env, self.workdir / f"{name}.log", ready_path)
        self.servers.append(server)
        return server.start()

    def bot(self, name: str, database_url: str, **extra: str) -> Server:
        env = bot_env(database_url, self.jira_url, self.slack_url, **extra)
        return self.server(name, ["-m", "bot.cli", "serve"], env, "/readyz")

    def report_env(self) -> dict[str, str]:
        """What turns reports on: the identity service, e-mail (so each report queues its receipt, as in
        production) and a per-customer limit no bench run reaches. The session cache keeps its default."""
        target = self.mail.target
        return {
            "TRIAGE_SESSION_INTROSPECTION_URL": self.identity_url,
            "TRIAGE_SESSION_INTROSPECTION_TOKEN": SANDBOX_IDENTITY_TOKEN,
            "TRIAGE_SMTP_URL": f"smtp://{target.host}:{target.port}?starttls=off",
            "TRIAGE_REPORTS_PER_MINUTE": str(REPORTS_PER_MINUTE),
        }

    def new_sessions(self, prefix: str, count: int) -> list[str]:
        """``count`` sessions of as many customers, issued by the identity emulator; their ids."""
        ids = []
        for i in range(count):
            session_id = f"bench-{prefix}-{i}"
            self.identity.add_session(session_id, f"{prefix}-customer-{i}", f"customer{i}@example.com")
            ids.append(session_id)
        return ids

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        self.stack.close()

    @contextlib.contextmanager
    def database(self, kind: str, name: str) -> Any:
        if kind == "sqlite":
            yield f"sqlite:///{self.workdir}/{name}.db"
        else:
            with postgres_database() as url:
                try:
                    yield url
                finally:
                    for server in self.servers:  # before DROP DATABASE, when something went wrong
                        server.stop()

    def databases(self) -> list[str]:
        return ["sqlite", "postgresql"] if self.config.postgres else ["sqlite"]

    # ---- 1. intake -----------------------------------------------------------------------------
    def intake(self) -> dict[str, Any]:
        c = self.config
        bodies = [load.encode(alertmanager_payload(f"intake-{i}", c.alerts_per_post)) for i in range(c.requests)]
        warmup = [load.encode(alertmanager_payload(f"warmup-{i}", c.alerts_per_post)) for i in range(c.warmup)]
        results: dict[str, Any] = {}

        def measure(
            label: str,
            server: Server,
            token: str | None,
            background: float,
            database_url: str = "",
            sessions0: int | None = None,
            rounds: int | None = None,
        ) -> None:
            loop = load.raw_closed_loop if c.client == "raw" else load.closed_loop
            results_of_rounds = []
            for index in range(rounds or c.rounds):
                results_of_rounds.append(
                    run_async(loop(server.url, token, bodies, c.connections, warmup if index == 0 else (), server.cpu))
                )
            server.stop()  # its backends exit, so PostgreSQL's statistics include all of its sessions
            sessions1 = postgres_sessions(database_url)
            figures = round_figures(results_of_rounds)
            results[label] = {
                **figures,
                "alerts_per_s": figures["requests_per_s"] * c.alerts_per_post,
                "peak_rss_bytes": server.final_peak_rss,
                # connections the bot opened in its whole life (start-up, warm-up and run) to PostgreSQL
                "postgres_sessions_opened": (sessions1 - sessions0) if sessions0 is not None and sessions1 else None,
                "background_cpus_before": background,
            }
            print(
                f"  {label:<18} {results[label]['requests_per_s']:8.0f} req/s  p99 {results[label]['p99_ms']:.1f} ms",
                file=sys.stderr,
            )

        background = background_cpus()
        bare = self.server("bare", ["-m", "bench.bare_app", "--port", "{port}"], clean_env({}), "/healthz")
        measure("bare", bare, None, background)
        for kind in self.databases():
            background = background_cpus()  # before CREATE DATABASE, which keeps PostgreSQL busy for a moment
            with self.database(kind, "intake") as url:
                sessions0 = postgres_sessions(url)
                bot = self.bot(f"bot-intake-{kind}", url, TRIAGE_WORKERS="0")
                measure(f"bot_{kind}", bot, WEBHOOK_TOKEN, background, url, sessions0)
        for kind in self.databases():
            # The same with the bot as deployed (serve's default workers) working off what comes in, Jira
            # answering in jira_latency: does intake keep up while the queue is busy? One round (the queue's
            # state carries over from round to round anyway).
            background = background_cpus()
            self.jira.reset()
            self.slack.reset()
            self.jira.set_fault(latency=c.jira_latency)
            try:
                with self.database(kind, "intake-workers") as url:
                    sessions0 = postgres_sessions(url)
                    bot = self.bot(f"bot-intake-workers-{kind}", url)
                    measure(f"bot_{kind}_workers", bot, WEBHOOK_TOKEN, background, url, sessions0, rounds=1)
            finally:
                self.jira.clear_faults()
        base = results["bare"]
        for label, entry in results.items():
            entry["ratio_requests_per_s_vs_bare"] = entry["requests_per_s"] / base["requests_per_s"]
            entry["ratio_p50_vs_bare"] = entry["p50_ms"] / base["p50_ms"]
            entry["ratio_p99_vs_bare"] = entry["p99_ms"] / base["p99_ms"]
            if label != "bare" and entry["server_cpu_ms_per_request"] and base["server_cpu_ms_per_request"]:
                entry["ratio_cpu_per_request_vs_bare"] = (
                    entry["server_cpu_ms_per_request"] / base["server_cpu_ms_per_request"]
                )
        return results

    # ---- 2 and 3. webhook -> ticket, Jira calls ------------------------------------------------
    def latency(self, kind: str) -> dict[str, Any]:
        """One bot (default workers) on a fresh database; first a trickle of groups (``unloaded``: the
        floor of the pipeline), then the steady stream (``loaded``). Jira answers every call after
        ``jira_latency``; each series waits until all its issues exist and the queue is empty."""
        c = self.config
        self.jira.reset()
        self.slack.reset()
        self.jira.set_fault(latency=c.jira_latency)
        created, on_change = issue_clock()

        run_id = f"{kind}{int(time.time())}"
        plan = [("unloaded", c.idle_groups, c.idle_rate), ("loaded", c.groups, c.rate)]
        runs: dict[str, dict[str, Any]] = {}
        unsubscribe = self.jira.on_change(on_change)
        background = background_cpus()
        try:
            with self.database(kind, "latency") as url:
                bot = self.bot(f"bot-latency-{kind}", url)
                cpu0 = bot.cpu()
                previous_scrape = ""
                for name, groups, rate in plan:
                    bodies = [
                        load.encode(alertmanager_payload(f"{name}-{run_id}-{i}", c.alerts_per_post))
                        for i in range(groups)
                    ]
                    expected = len(created)
                    busy0, wall0, started = machine_busy_seconds(), time.time(), time.perf_counter()
                    acks = run_async(load.steady(bot.url, WEBHOOK_TOKEN, bodies, rate))
                    expected += sum(1 for a in acks if a.status == 202)
                    deadline = time.monotonic() + 60 + groups / max(rate, 0.1) * 4
                    while len(created) < expected and time.monotonic() < deadline:
                        time.sleep(0.02)
                    all_created = time.perf_counter() - started
                    while queue_busy(url) and time.monotonic() < deadline:
                        time.sleep(0.05)
                    drained = time.perf_counter() - started
                    scrape = httpx.get(
                        bot.url + "/metrics", headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}, timeout=30
                    )
                    scrape.raise_for_status()
                    runs[name] = {
                        "groups": groups,
                        "rate": rate,
                        "acks": acks,
                        "window": (wall0, time.time()),
                        "seconds_until_all_issues": all_created,
                        "seconds_until_queue_drained": drained,
                        "machine_busy": machine_busy_seconds() - busy0,
                        "metrics": (previous_scrape, scrape.text),
                    }
                    previous_scrape = scrape.text
                cpu1 = bot.cpu()
                bot.stop()
                tables = read_tables(url)
        finally:
            unsubscribe()
            self.jira.clear_faults()
        requests = self.jira.requests()
        issues = self.jira.issues()
        key_by_label = {label: issue["key"] for issue in issues for label in issue["fields"]["labels"]}
        series = {name: self._series(name, run, created, key_by_label, requests, tables) for name, run in runs.items()}
        categories = Counter(_category(r["method"], r["path"]) for r in requests)
        n_issues = len(issues)
        return {
            "database": kind,
            "workers": Settings.model_fields["workers"].default,
            "series": series,
            "issues_created": n_issues,
            "jira_requests": len(requests),
            "jira_requests_by_category": dict(categories.most_common()),
            "jira_requests_per_issue": len(requests) / n_issues if n_issues else None,
            "jira_requests_per_issue_by_category": {k: v / n_issues for k, v in categories.most_common() if n_issues},
            "outside_calls": parse_prometheus(runs["loaded"]["metrics"][1])["outside_calls"],
            "jobs": dict(sorted(Counter(f"{j.kind}:{j.status}" for j in tables.jobs).items())),
            "jobs_retried": sum(1 for j in tables.jobs if j.attempts > 1),
            "slack_requests": len(self.slack.requests()),
            "bot_cpu_seconds": (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None,
            "peak_rss_bytes": bot.final_peak_rss,
            "background_cpus_before": background,
        }

    def _series(
        self,
        name: str,
        run: dict[str, Any],
        created: dict[str, float],
        key_by_label: dict[str, str],
        requests: list[dict[str, Any]],
        tables: Any,
    ) -> dict[str, Any]:
        floor = self.config.jira_latency
        acks: list[load.Ack] = run["acks"]
        begin, end = run["window"]
        in_window = [r for r in requests if begin <= r["time"] <= end]
        create_call_by_label: dict[str, dict[str, Any]] = {}
        for entry in in_window:
            if entry["method"] == "POST" and _category(entry["method"], entry["path"]) == "create issue":
                for label in ((entry.get("body") or {}).get("fields") or {}).get("labels", []):
                    create_call_by_label.setdefault(label, entry)

        # The bench's clock: POST acknowledged -> the emulator created the issue.
        ack_to_issue = []
        for ack in acks:
            key = key_by_label.get(dedup_label(ack.dedup_key, 1)) if ack.dedup_key else None
            if key is not None and key in created:
                ack_to_issue.append(created[key] - ack.acked_at)

        # The bot's own columns, and where the time went (its jobs table + the Jira request log).
        alert_jobs = {j.lane: j for j in tables.jobs if j.kind == "alert.process"}
        tickets = [t for t in tables.tickets if f'"Alert{name}-' in t.dedup_key]
        db_latency: list[float | None] = []
        stage: dict[str, list[float | None]] = {k: [] for k in ("alert_job", "to_jira_call", "jira_call", "after")}
        for ticket in tickets:
            db_latency.append(seconds_between(ticket.first_event_at, ticket.jira_created_at))
            alert_job = alert_jobs.get(lane_for(ticket.dedup_key))
            processed = alert_job.finished_at if alert_job is not None else None
            stage["alert_job"].append(seconds_between(ticket.first_event_at, processed))
            call = create_call_by_label.get(dedup_label(ticket.dedup_key, ticket.generation))
            if call is not None and processed is not None:
                stage["to_jira_call"].append(seconds_between(processed, datetime.fromtimestamp(call["time"], UTC)))
                stage["jira_call"].append(call["duration"])
                answered = datetime.fromtimestamp(call["time"] + call["duration"], UTC)
                stage["after"].append(seconds_between(answered, ticket.jira_created_at))

        before, after = (parse_prometheus(text)["ticket_latency"] for text in run["metrics"])
        hist = after.minus(before)
        categories = Counter(_category(r["method"], r["path"]) for r in in_window)
        bench_clock = summary(ack_to_issue)
        db_clock = summary([v for v in db_latency if v is not None])
        return {
            "groups": run["groups"],
            "rate_per_s": run["rate"],
            "groups_acknowledged": sum(1 for a in acks if a.status == 202),
            "ack_ms": summary([1000 * (a.acked_at - a.sent_at) for a in acks]),
            "ack_to_issue_s": bench_clock,
            "db_first_event_to_jira_created_s": db_clock,
            "histogram_alert_to_ticket_s": {
                "n": int(hist.count),
                "mean": hist.total / hist.count if hist.count else float("nan"),
                "p50_estimate": hist.quantile(0.5),
                "p99_estimate": hist.quantile(0.99),
            },
            "stages_s": {k: summary([v for v in values if v is not None]) for k, values in stage.items()},
            "seconds_until_all_issues": run["seconds_until_all_issues"],
            "seconds_until_queue_drained": run["seconds_until_queue_drained"],
            "machine_busy_cpus": run["machine_busy"] / max(end - begin, 1e-9),  # everything, the bot included
            "jira_requests": len(in_window),
            "jira_requests_by_category": dict(categories.most_common()),
            "ratio_vs_jira_floor": {
                "ack_to_issue_p50": bench_clock["p50"] / floor,
                "ack_to_issue_p99": bench_clock["p99"] / floor,
                "ack_to_issue_max": bench_clock["max"] / floor,
                "db_p50": db_clock["p50"] / floor,
                "db_p99": db_clock["p99"] / floor,
            },
        }

    # ---- 4. customer reports -------------------------------------------------------------------
    def reports(self, kind: str, alerts: dict[str, Any], loaded: dict[str, Any] | None) -> dict[str, Any]:
        """POST /reports on one database kind, three ways, beside the alerts' figures of the same run
        (``alerts``: the intake entry of this database; ``loaded``: its 'loaded' latency series):

        - intake: a bot with TRIAGE_WORKERS=0 (ticket, history, jobs and receipt e-mail committed, nothing
          processed); one report per customer first (the warm-up, which fills the bot's session cache), then
          closed-loop rounds over the same customers, so no request waits for the identity service;
        - session check: one request at a time, a new session's first report (one introspection call) and at
          once its second (cached), pair after pair; baseline: the introspection call alone, from here;
        - 201 -> Jira issue exists: a bot with default workers on a fresh database, ``report_stream`` reports
          sent like the alerts' 'loaded' series (same rate and Jira latency)."""
        c = self.config
        started = time.perf_counter()
        run_id = f"{kind}{int(time.time())}"
        sessions = self.new_sessions(f"{run_id}-warm", c.report_sessions)
        warmup = report_posts(sessions, len(sessions), f"{run_id}-warmup")
        background = background_cpus()
        with self.database(kind, "reports") as url:
            bot = self.bot(f"bot-reports-{kind}", url, TRIAGE_WORKERS="0", **self.report_env())
            loop = load.raw_closed_loop if c.client == "raw" else load.closed_loop  # as for the alerts
            asked0 = len(self.identity.requests())
            warm = run_async(loop(bot.url, None, warmup, c.connections, path=load.REPORTS_PATH, expect=201))
            asked1 = len(self.identity.requests())
            rounds = []
            for index in range(c.rounds):
                bodies = report_posts(sessions, c.report_requests, f"{run_id}-round{index}")
                rounds.append(
                    run_async(
                        loop(bot.url, None, bodies, c.connections, (), bot.cpu, path=load.REPORTS_PATH, expect=201)
                    )
                )
            asked2 = len(self.identity.requests())
            session_check = self._session_check(bot, f"{run_id}-cold")
            bot.stop()
        intake = round_figures(rounds) | {
            "customers": len(sessions),
            "warmup_requests": len(warmup),
            "warmup_errors": warm.errors,
            "introspections_warmup": asked1 - asked0,
            "introspections_measured": asked2 - asked1,  # 0: every measured report found its session cached
            "peak_rss_bytes": bot.final_peak_rss,
            "background_cpus_before": background,
        }
        intake |= {
            "ratio_requests_per_s_vs_alerts": intake["requests_per_s"] / alerts["requests_per_s"],
            "ratio_p50_vs_alerts": intake["p50_ms"] / alerts["p50_ms"],
            "ratio_p99_vs_alerts": intake["p99_ms"] / alerts["p99_ms"],
            "ratio_cpu_per_request_vs_alerts": (
                intake["server_cpu_ms_per_request"] / alerts["server_cpu_ms_per_request"]
                if intake["server_cpu_ms_per_request"] and alerts["server_cpu_ms_per_request"]
                else None
            ),
        }
        print(
            f"  reports_{kind:<10} {intake['requests_per_s']:8.0f} req/s  p99 {intake['p99_ms']:.1f} ms  "
            f"({intake['ratio_requests_per_s_vs_alerts']:.2f}x alerts)",
            file=sys.stderr,
        )
        latency = self._report_latency(kind, sessions, run_id, loaded)
        return {
            "database": kind,
            "intake": intake,
            "session_check": session_check,
            "latency": latency,
            "seconds": time.perf_counter() - started,  # the whole scenario on this database, bots' starts included
        }

    def _session_check(self, bot: Server, prefix: str) -> dict[str, Any]:
        """Pairs of reports, one request at a time: a new session's first (the bot asks the identity service)
        and at once its second (the bot's cache answers); then the introspection call alone, from the bench."""
        c = self.config
        sessions = self.new_sessions(prefix, c.cold_reports)
        posts = report_posts([s for s in sessions for _ in range(2)], 2 * len(sessions), prefix)
        asked0 = len(self.identity.requests())
        answers = run_async(load.one_by_one(bot.url, None, posts, load.REPORTS_PATH))
        asked = len(self.identity.requests()) - asked0
        cold = [1000 * seconds for _, seconds in answers[0::2]]
        warm = [1000 * seconds for _, seconds in answers[1::2]]
        direct = []
        with httpx.Client(headers={"Authorization": f"Bearer {SANDBOX_IDENTITY_TOKEN}"}, timeout=30) as client:
            for session_id in sessions:
                started = time.perf_counter()
                client.post(self.identity_url, data={"token": session_id}).raise_for_status()
                direct.append(1000 * (time.perf_counter() - started))
        cold_ms, warm_ms, direct_ms = summary(cold), summary(warm), summary(direct)
        return {
            "pairs": len(sessions),
            "errors": sum(1 for status, _ in answers if status != 201),
            "introspections": asked,  # one per new session: the second report of each found it cached
            "cold_ms": cold_ms,
            "warm_ms": warm_ms,
            "introspection_alone_ms": direct_ms,
            "cold_minus_warm_p50_ms": cold_ms["p50"] - warm_ms["p50"],
            "ratio_cold_vs_warm_p50": cold_ms["p50"] / warm_ms["p50"],
            "ratio_cold_vs_warm_p99": cold_ms["p99"] / warm_ms["p99"],
        }

    def _report_latency(
        self, kind: str, sessions: list[str], run_id: str, loaded: dict[str, Any] | None
    ) -> dict[str, Any]:
        """201 -> Jira issue exists, as ``latency`` measures it for alerts (one series, like its 'loaded'). One
        report goes first, unmeasured, and its issue and e-mail are waited for: a fresh process's first calls
        (Jira's serverInfo, the first SMTP connection) are what the alerts' 'unloaded' series absorbs."""
        c = self.config
        floor = c.jira_latency
        self.jira.reset()
        self.slack.reset()
        self.mail.clear()
        self.jira.set_fault(latency=floor)
        created, on_change = issue_clock()

        unsubscribe = self.jira.on_change(on_change)
        posts = report_posts(sessions, c.report_stream, f"{run_id}-latency")
        first = report_posts(sessions, 1, f"{run_id}-first")

        def send(items: list[load.Post]) -> list[load.Ack]:
            return run_async(
                load.steady(bot.url, None, items, c.rate, path=load.REPORTS_PATH, expect=201, dedup_key=_report_key)
            )

        def settle(expected: int, deadline: float) -> tuple[float, float]:
            """Seconds until ``expected`` issues exist, and until the queue is empty."""
            started = time.perf_counter()
            while len(created) < expected and time.monotonic() < deadline:
                time.sleep(0.02)
            all_created = time.perf_counter() - started
            while queue_busy(url) and time.monotonic() < deadline:
                time.sleep(0.05)
            return all_created, time.perf_counter() - started

        try:
            with self.database(kind, "reports_latency") as url:
                bot = self.bot(f"bot-reports-latency-{kind}", url, **self.report_env())
                settle(sum(1 for a in send(first) if a.status == 201), time.monotonic() + 60)
                before = scrape(bot)
                expected = len(created)
                begin, started = time.time(), time.perf_counter()
                acks = send(posts)
                sent = time.perf_counter() - started
                expected += sum(1 for a in acks if a.status == 201)
                all_created, drained = settle(expected, time.monotonic() + 60 + len(posts) / max(c.rate, 0.1) * 4)
                after = scrape(bot)
                bot.stop()
                tables = read_tables(url)
        finally:
            unsubscribe()
            self.jira.clear_faults()
        requests = [r for r in self.jira.requests() if r["time"] >= begin]
        issues = self.jira.issues()
        accepted = sum(1 for a in acks if a.status == 201)
        key_by_label = {label: issue["key"] for issue in issues for label in issue["fields"]["labels"]}
        ack_to_issue = []
        for ack in acks:
            key = key_by_label.get(dedup_label(ack.dedup_key, 1)) if ack.dedup_key else None
            if key is not None and key in created:
                ack_to_issue.append(created[key] - ack.acked_at)
        measured = {a.dedup_key for a in acks if a.dedup_key}
        lanes = {
            system_lane(system, t.id)
            for t in tables.tickets
            if t.dedup_key in measured and t.id is not None
            for system in System
        }
        refs = {key.removeprefix("report:") for key in measured}
        job_ms: dict[str, list[float]] = {}
        for job in tables.jobs:
            if job.lane in lanes:
                waited = seconds_between(job.created_at, job.finished_at)
                if waited is not None:
                    job_ms.setdefault(job.kind, []).append(1000 * waited)
        calls_before, calls_after = (parse_prometheus(text)["outside_calls"] for text in (before, after))
        db_latency = [
            seconds_between(t.first_event_at, t.jira_created_at) for t in tables.tickets if t.dedup_key in measured
        ]
        bench_clock = summary(ack_to_issue)
        db_clock = summary([v for v in db_latency if v is not None])
        alerts_clock = loaded["ack_to_issue_s"] if loaded else None
        categories = Counter(_category(r["method"], r["path"]) for r in requests)
        return {
            "reports": len(posts),
            "rate_per_s": c.rate,
            "reports_accepted": accepted,
            "ack_ms": summary([1000 * (a.acked_at - a.sent_at) for a in acks]),
            "ack_to_issue_s": bench_clock,
            "db_first_event_to_jira_created_s": db_clock,
            "seconds_until_all_issues": sent + all_created,
            "seconds_until_queue_drained": sent + drained,
            "issues_created": len(ack_to_issue),
            "jira_requests": len(requests),
            "jira_requests_by_category": dict(categories.most_common()),
            "jira_requests_per_issue": len(requests) / len(ack_to_issue) if ack_to_issue else None,
            # each job of the measured reports: queued (with its report) -> done, wait for a worker included
            "jobs_queued_to_done_ms": {kind: summary(values) for kind, values in sorted(job_ms.items())},
            "outside_calls": _calls_between(calls_before, calls_after),
            "emails_delivered": sum(
                1 for m in self.mail.messages() if m["message_id"].split(".", 1)[0].strip("<") in refs
            ),
            "jobs_whole_run": dict(sorted(Counter(f"{j.kind}:{j.status}" for j in tables.jobs).items())),
            "peak_rss_bytes": bot.final_peak_rss,
            "ratio_vs_jira_floor": {
                "ack_to_issue_p50": bench_clock["p50"] / floor,
                "ack_to_issue_p99": bench_clock["p99"] / floor,
            },
            "ratio_vs_alerts_loaded": (
                {
                    "ack_to_issue_p50": bench_clock["p50"] / alerts_clock["p50"],
                    "ack_to_issue_p99": bench_clock["p99"] / alerts_clock["p99"],
                }
                if alerts_clock
                else None
            ),
        }


def report_posts(sessions: list[str], count: int, tag: str) -> list[load.Post]:
    """``count`` reports, customer by customer in turn, each with its own Idempotency-Key (as the apps send)."""
    return [
        load.Post(
            load.encode(load.report_payload(i)),
            {"X-Session-Id": sessions[i % len(sessions)], "Idempotency-Key": f"{tag}-{i}"},
        )
        for i in range(count)
    ]


def _calls_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Outside calls (count, mean ms) made between two scrapes (``parse_prometheus``'s ``outside_calls``)."""
    calls = {}
    for name, now in after.items():
        then = before.get(name) or {"count": 0, "mean_ms": None}
        count = now["count"] - then["count"]
        if count > 0:
            total = now["count"] * (now["mean_ms"] or 0.0) - then["count"] * (then["mean_ms"] or 0.0)
            calls[name] = {"count": count, "mean_ms": total / count}
    return calls


def _report_key(answer: dict[str, Any]) -> str | None:
    """The ticket's dedup key of a 201 to POST /reports."""
    return f"report:{answer['id']}" if isinstance(answer.get("id"), str) else None


def round_figures(rounds: list[load.ClosedLoopResult]) -> dict[str, Any]:
    """The figures of the median round (by requests per second) of a closed-loop measurement, and the spread."""
    run = sorted(rounds, key=lambda r: r.requests / r.seconds)[len(rounds) // 2]
    return {
        "rounds": len(rounds),
        "rounds_requests_per_s": [r.requests / r.seconds for r in rounds],
        "requests": run.requests,
        "errors": sum(r.errors for r in rounds),
        "statuses": {str(k): v for k, v in sorted(run.statuses.items())},
        "seconds": run.seconds,
        "requests_per_s": run.requests / run.seconds,
        "p50_ms": 1000 * load.percentile(run.latencies, 50),
        "p99_ms": 1000 * load.percentile(run.latencies, 99),
        "max_ms": 1000 * max(run.latencies),
        "server_cpu_ms_per_request": (
            1000 * run.server_cpu_seconds / run.requests if run.server_cpu_seconds is not None else None
        ),
        "server_cpu_utilisation": (
            run.server_cpu_seconds / run.seconds if run.server_cpu_seconds is not None else None
        ),
        "client_cpu_utilisation": run.client_cpu_seconds / run.seconds,
        # CPU the rest of the machine used meanwhile (other processes: PostgreSQL, anything else running)
        "other_cpu_utilisation": max(
            0.0, run.machine_busy_seconds - run.client_cpu_seconds - (run.server_cpu_seconds or 0.0)
        )
        / run.seconds,
    }


def wait_for_idle(limit: float, threshold: float = 0.2) -> None:
    """Until the rest of the machine uses under ``threshold`` CPUs for 3 s in a row, at most ``limit`` s."""
    deadline, quiet = time.monotonic() + limit, 0
    while time.monotonic() < deadline and quiet < 3:
        busy = background_cpus(1.0)
        quiet = quiet + 1 if busy < threshold else 0
        if not quiet:
            print(f"bench: waiting for an idle machine (others use {busy:.1f} CPUs)", file=sys.stderr)
    if quiet < 3:
        print(f"bench: the machine did not go idle within {limit:.0f} s; measuring anyway", file=sys.stderr)


def machine() -> dict[str, Any]:
    commit = ""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short smoke run (every section at a small size)")
    parser.add_argument("--requests", type=int, help="intake requests per target (default 2000; quick 200)")
    parser.add_argument(
        "--rounds", type=int, help="intake rounds per target, the median one reported (default 3; quick 1)"
    )
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections for intake")
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="intake load client: raw keep-alive HTTP/1.1 over asyncio streams (default; ~0.1 ms CPU a request) "
        "or httpx.AsyncClient (CPU-bound near 300 req/s on this machine, which caps the baseline)",
    )
    parser.add_argument("--alerts", type=int, default=10, help="alerts per POST")
    parser.add_argument("--groups", type=int, help="alert groups for the latency run (default 100; quick 20)")
    parser.add_argument("--rate", type=float, default=20.0, help="groups per second for the latency run")
    parser.add_argument("--jira-latency", type=float, default=0.2, help="seconds the Jira emulator adds per call")
    parser.add_argument(
        "--reports", type=int, help="customer reports per intake round (default 150; quick 100)", dest="report_requests"
    )
    parser.add_argument(
        "--sessions", type=int, help="customers (sessions) the reports come from (default 200; quick 50)"
    )
    parser.add_argument(
        "--cold", type=int, help="new sessions for the cold vs cached session check (default 50; quick 20)"
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--storm-postgres",
        action="store_true",
        help="run the storms (steady, limited, outage, big) on PostgreSQL too (default: SQLite, serve's default "
        "database; scale-out is always PostgreSQL, claims both)",
    )
    parser.add_argument(
        "--change-share",
        type=float,
        default=0.5,
        help="steady storm: the share of repeats that change their group's content (default 0.5: Alertmanager "
        "re-notifies a changed group, and an HA pair sends each notification twice)",
    )
    parser.add_argument(
        "--only",
        metavar="SECTIONS",
        help=f"comma-separated sections to run, of {', '.join(SECTIONS)} (reports bring intake and latency)",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for other processes to leave the CPUs alone (shared machines)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, SQLite files)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    return parser.parse_args(argv)


SECTIONS = ("intake", "latency", "reports", "steady", "limited", "outage", "big", "scale", "claims")
NEEDS = {"reports": ("intake", "latency")}  # reports are shown beside these


def sections(only: str | None) -> list[str]:
    if not only:
        return list(SECTIONS)
    chosen = {name.strip() for name in only.split(",") if name.strip()}
    unknown = chosen - set(SECTIONS)
    if unknown:
        raise SystemExit(f"bench: unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    for name in list(chosen):
        chosen |= set(NEEDS.get(name, ()))
    return [name for name in SECTIONS if name in chosen]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    requests = args.requests or (200 if args.quick else 2000)
    groups = args.groups or (20 if args.quick else 100)
    postgres = not args.no_postgres
    skipped = None
    if postgres and (reason := postgres_available()) is not None:
        postgres, skipped = False, f"PostgreSQL not reachable ({reason}); run `make services`"
        print(f"bench: {skipped}; measuring SQLite only", file=sys.stderr)
    config = Config(
        quick=args.quick,
        requests=requests,
        warmup=min(100, max(10, requests // 20)),
        alerts_per_post=args.alerts,
        connections=args.connections,
        rounds=args.rounds or (1 if args.quick else 3),
        client=args.client,
        groups=groups,
        rate=args.rate,
        idle_groups=5 if args.quick else 10,
        idle_rate=2.0,
        jira_latency=args.jira_latency,
        postgres=postgres,
        report_requests=args.report_requests or (100 if args.quick else 150),
        report_sessions=args.sessions or (50 if args.quick else 200),
        cold_reports=args.cold or (20 if args.quick else 50),
        report_stream=max(1, groups // 2),
    )
    storms = storm_config(args.quick, args.jira_latency, args.alerts, args.connections, postgres, args.change_share)
    if args.storm_postgres and postgres:
        storms = replace(storms, databases=("sqlite", "postgresql"))
    claim_sizes = (0, 1_000, 10_000) if args.quick else (0, 1_000, 10_000, 100_000)
    claims_per_size = 30 if args.quick else 200
    chosen = sections(args.only)

    signal.signal(signal.SIGTERM, _terminate)
    if args.wait_idle > 0:
        wait_for_idle(args.wait_idle)
    workdir = Path(tempfile.mkdtemp(prefix="triage-bench-"))
    bench = Bench(config, workdir)
    started = time.perf_counter()
    load_before = load_average()
    failure: BaseException | None = None
    results: dict[str, Any] = {}
    failed: dict[str, str] = {}
    timings: dict[str, float] = {}

    def storm_section(name: str, title: str, run: Callable[[], Any]) -> None:
        """A storm scenario: its failure is reported and the run goes on (the exit status says so)."""
        if name not in chosen:
            return
        print(f"bench: {title}", file=sys.stderr)
        began = time.perf_counter()
        try:
            results[name] = run()
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
            results[name] = {"error": failed[name]}
            print(f"bench: {name} FAILED: {failed[name]}", file=sys.stderr)
            for server in bench.servers:
                server.stop()
        timings[name] = time.perf_counter() - began

    try:
        bench.start_emulators()
        if "intake" in chosen:
            print("bench: 1. intake throughput", file=sys.stderr)
            began = time.perf_counter()
            results["intake"] = bench.intake()
            timings["intake"] = time.perf_counter() - began
        if "latency" in chosen:
            results["latency"] = {}
            began = time.perf_counter()
            for kind in bench.databases():
                print(f"bench: 2. webhook -> ticket latency ({kind})", file=sys.stderr)
                results["latency"][kind] = bench.latency(kind)
            timings["latency"] = time.perf_counter() - began
        if "reports" in chosen:
            results["reports"] = {}
            began = time.perf_counter()
            for kind in bench.databases():
                print(f"bench: 4. customer reports ({kind})", file=sys.stderr)
                results["reports"][kind] = bench.reports(
                    kind, results["intake"][f"bot_{kind}"], results["latency"][kind]["series"].get("loaded")
                )
            timings["reports"] = time.perf_counter() - began
        storm = Storms(bench, storms)

        def each(scenario: Callable[[str], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
            return lambda: {kind: scenario(kind) for kind in storms.databases}

        storm_section("steady", "6. steady storm", each(storm.steady))
        storm_section("limited", "7. storm into a rate-limited Jira", each(storm.limited))
        storm_section("outage", "8. Jira outage, then a rate limit", each(storm.outage))
        storm_section("big", "9. a 50,000-alert storm over keep-alive connections", each(storm.big))
        if postgres:
            storm_section("scale", "10. scale-out: worker processes on PostgreSQL", storm.scale)
        elif "scale" in chosen:
            results["scale"] = {"skipped": skipped or "PostgreSQL not measured (--no-postgres)"}
        storm_section(
            "claims",
            "11. claim cost vs backlog",
            lambda: {kind: claim_cost(kind, workdir, claim_sizes, claims_per_size) for kind in bench.databases()},
        )
    except BaseException as exc:
        failure = exc
        raise
    finally:
        bench.close()
        if isinstance(failure, Exception) or failed:  # not for Ctrl-C or SIGTERM
            for server in bench.servers:
                tail = "\n".join(server.log_tail().splitlines()[-15:])
                print(f"bench: end of the {server.name} log:\n{tail}", file=sys.stderr)
        if args.keep:
            print(f"bench: logs and SQLite files kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    intake, latency, reports = results.get("intake", {}), results.get("latency", {}), results.get("reports", {})
    bare_rss = intake.get("bare", {}).get("peak_rss_bytes")
    memory = {
        name: {"peak_rss_bytes": rss, "ratio_vs_bare": rss / bare_rss if rss and bare_rss else None}
        for name, rss in [
            ("bare", bare_rss),
            *((f"bot_intake_{k}", intake[f"bot_{k}"]["peak_rss_bytes"]) for k in bench.databases() if intake),
            *(
                (f"bot_intake_workers_{k}", intake[f"bot_{k}_workers"]["peak_rss_bytes"])
                for k in bench.databases()
                if intake
            ),
            *((f"bot_latency_{k}", latency[k]["peak_rss_bytes"]) for k in latency),
            *((f"bot_reports_{k}", reports[k]["intake"]["peak_rss_bytes"]) for k in reports),
        ]
        if name != "bare" or bare_rss
    }
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "config": asdict(config),
        "storm_config": asdict(storms),
        "claims_config": {"sizes": list(claim_sizes), "claims_per_size": claims_per_size},
        "sections": chosen,
        "postgres_skipped": skipped,
        **results,
        "memory": memory,
        "failed": failed,
        "section_seconds": timings,
        "bench_seconds": time.perf_counter() - started,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    args.output.write_text(json.dumps(_finite(results), indent=2, default=_json_default) + "\n")
    print(render(results))
    print(f"\n(figures also in {args.output})")
    if failed:
        print(f"bench: FAILED: {', '.join(f'{k} ({v})' for k, v in failed.items())}", file=sys.stderr)
        return 1
    return 0


def _finite(value: Any) -> Any:
    """NaN and infinities (no samples) as null, so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
