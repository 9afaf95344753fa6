"""The results as plain-text tables for stdout (and the README)."""

from __future__ import annotations

from typing import Any

from bench.report_storm import render_storms
from bench.report_util import MiB
from bench.report_util import n as _n
from bench.report_util import table as _table

NOISY = 0.3  # CPUs of background work before a measurement above which its figures are suspect
LABELS = {
    "bare": "bare FastAPI + pydantic",
    "bot_sqlite": "bot, SQLite",
    "bot_postgresql": "bot, PostgreSQL",
    "bot_sqlite_workers": "bot, SQLite, workers running",
    "bot_postgresql_workers": "bot, PostgreSQL, workers running",
}
DATABASES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def _latency_cells(st: dict[str, Any], floor: float) -> list[str]:
    """n, p50, p99, max (ms) and p50, p99 against the Jira floor."""
    return [
        str(st["n"]),
        _n(st["p50"] * 1000),
        _n(st["p99"] * 1000),
        _n(st["max"] * 1000),
        _n(st["p50"] / floor, ".1f", "x"),
        _n(st["p99"] / floor, ".1f", "x"),
    ]


def _count_and_rate(count: int, issues: int) -> str:
    return f"{count} ({count / issues:.2f})" if issues else str(count)


def _intake(results: dict[str, Any]) -> list[str]:
    c = results["config"]
    out = [
        f"1. Intake: POST /alerts/alertmanager, {c['requests']} requests x {c['alerts_per_post']} alerts, "
        f"{c['connections']} concurrent keep-alive connections, after {c['warmup']} warm-up requests;",
        f"   {c['rounds']} rounds per target, the median round shown (spread = slowest..fastest round, req/s).",
        "   Client: "
        + (
            "raw HTTP/1.1 over asyncio streams (httpx.AsyncClient itself tops out near 300 req/s here)."
            if c["client"] == "raw"
            else "httpx.AsyncClient (CPU-bound: the bare baseline measures the client more than the server)."
        ),
        "   The bot runs with TRIAGE_WORKERS=0: this measures intake only (event + job committed), the queue fills;",
        "   'workers running': the bot as deployed (serve's default workers), Jira answering in "
        f"{c['jira_latency'] * 1000:.0f} ms, one round.",
        "   Baseline: a bare FastAPI app (own uvicorn process) that parses the body with AlertmanagerWebhook, 202.",
        "   CPU columns: share of one CPU used by the server process, the load client, and the rest of the machine",
        "   (PostgreSQL's own processes, and anything else running).",
    ]
    rows = []
    for label, e in results["intake"].items():
        rows.append(
            [
                LABELS.get(label, label),
                _n(e["requests_per_s"]),
                f"{min(e['rounds_requests_per_s']):.0f}..{max(e['rounds_requests_per_s']):.0f}",
                _n(e["alerts_per_s"]),
                _n(e["p50_ms"], ".1f"),
                _n(e["p99_ms"], ".1f"),
                _n(e["server_cpu_ms_per_request"], ".2f"),
                _n(e["server_cpu_utilisation"], ".0%"),
                _n(e["client_cpu_utilisation"], ".0%"),
                _n(e.get("other_cpu_utilisation"), ".0%"),
                str(e["errors"]),
                _n(e["ratio_requests_per_s_vs_bare"], ".2f", "x"),
                _n(e["ratio_p99_vs_bare"], ".1f", "x"),
            ]
        )
    out += _table(
        [
            "target",
            "req/s",
            "spread",
            "alerts/s",
            "p50 ms",
            "p99 ms",
            "srv CPU ms/req",
            "srv CPU",
            "client CPU",
            "rest CPU",
            "errors",
            "req/s vs bare",
            "p99 vs bare",
        ],
        rows,
    )
    if results.get("postgres_skipped"):
        out.append(f"   PostgreSQL skipped: {results['postgres_skipped']}")

    pg_sessions = {k: e.get("postgres_sessions_opened") for k, e in results["intake"].items()}
    for label, n in pg_sessions.items():
        if n is not None:
            out.append(
                f"   {LABELS.get(label, label)}: {n} PostgreSQL connections opened in its life "
                f"({c['warmup'] + c['requests']} requests)."
            )

    return out


def _latency(results: dict[str, Any]) -> list[str]:
    c = results["config"]
    out: list[str] = []
    floor = c["jira_latency"]
    any_run: dict[str, Any] = next(iter(results["latency"].values()), {})
    out += [
        f"2. Webhook -> Jira issue: Jira emulator +{floor * 1000:.0f} ms on every request (Slack none), bot with "
        f"default workers ({any_run.get('workers', '?')}), one bot per database.",
        f"   'unloaded': {c['idle_groups']} distinct alert groups at {c['idle_rate']:g}/s, then 'loaded': "
        f"{c['groups']} groups at {c['rate']:g}/s.",
        f"   Baseline: {floor * 1000:.0f} ms, the floor of one Jira call (x floor = latency / {floor:g} s).",
    ]
    rows = []
    for kind, e in results["latency"].items():
        for series, r in e["series"].items():
            for name, key in (
                ("POST acked -> issue exists (bench clock)", "ack_to_issue_s"),
                ("tickets.first_event_at -> jira_created_at", "db_first_event_to_jira_created_s"),
            ):
                rows.append([kind, series, name, *_latency_cells(r[key], floor)])
            h = r["histogram_alert_to_ticket_s"]
            rows.append(
                [
                    kind,
                    series,
                    "triage_alert_to_ticket_seconds (buckets)",
                    str(h["n"]),
                    "~" + _n(h["p50_estimate"] * 1000),
                    "~" + _n(h["p99_estimate"] * 1000),
                    "mean " + _n(h["mean"] * 1000),
                    _n(h["p50_estimate"] / floor, ".1f", "x"),
                    _n(h["p99_estimate"] / floor, ".1f", "x"),
                ]
            )
    out += _table(["db", "series", "measure", "n", "p50 ms", "p99 ms", "max ms", "p50 x floor", "p99 x floor"], rows)
    out += ["", "   Where the time goes, per ticket (bot's jobs table + Jira emulator's request log), p50 / p99 ms:"]
    rows = []
    for kind, e in results["latency"].items():
        for series, r in e["series"].items():
            st = r["stages_s"]
            rows.append(
                [
                    kind,
                    series,
                    *(
                        f"{_n(st[k]['p50'] * 1000)} / {_n(st[k]['p99'] * 1000)}"
                        for k in ("alert_job", "to_jira_call", "jira_call", "after")
                    ),
                    _n(r["seconds_until_all_issues"], ".1f"),
                    _n(r["seconds_until_queue_drained"], ".1f"),
                    _n(r["ack_ms"]["p99"], ".0f"),
                ]
            )
    out += _table(
        [
            "db",
            "series",
            "event -> alert.process done",
            "-> POST /issue sent",
            "POST /issue",
            "answer -> committed",
            "all issues (s)",
            "queue empty (s)",
            "ack p99 ms",
        ],
        rows,
    )

    out += ["", "3. Jira requests per created issue, whole latency run (emulator's request log), count (per issue):"]
    categories: list[str] = []
    for e in results["latency"].values():
        categories += [k for k in e["jira_requests_by_category"] if k not in categories]
    rows = []
    for kind, e in results["latency"].items():
        rows.append(
            [
                kind,
                str(e["issues_created"]),
                str(e["jira_requests"]),
                _n(e["jira_requests_per_issue"], ".2f"),
                *(_count_and_rate(e["jira_requests_by_category"].get(k, 0), e["issues_created"]) for k in categories),
                str(e["jobs_retried"]),
            ]
        )
    out += _table(["db", "issues", "requests", "per issue", *categories, "jobs retried"], rows)

    return out


def render(results: dict[str, Any]) -> str:
    c, m = results["config"], results["machine"]
    out = [
        f"triage-bot benchmark, {results['date']} ({'quick' if c['quick'] else 'full'} run, "
        f"{results['bench_seconds']:.0f} s)",
        f"machine: {m['nproc']} CPUs, Python {m['python']}, {m['platform']}, commit {m['git_commit'] or '?'}; "
        f"load average {results['load_average_before']:.2f} before, {results['load_average_after']:.2f} after",
    ]
    if "intake" in results:
        out += ["", *_intake(results)]
    if "latency" in results:
        out += ["", *_latency(results)]
    if results.get("reports"):
        out += ["", *_reports(results)]
    if results["memory"]:
        out += ["", "5. Peak RSS (VmHWM of the server process at the end of its run):"]
        rows = [
            [
                name,
                _n(v["peak_rss_bytes"] / MiB if v["peak_rss_bytes"] else None, ".1f"),
                _n(v["ratio_vs_bare"], ".2f", "x"),
            ]
            for name, v in results["memory"].items()
        ]
        out += _table(["process", "MiB", "vs bare"], rows)
    out += render_storms(results)
    if results.get("failed"):
        out += ["", "FAILED sections: " + "; ".join(f"{k}: {v}" for k, v in results["failed"].items())]
    timings = results.get("section_seconds") or {}
    if timings:
        out += ["", "Wall time per section: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + "."]
    noisy = [
        f"{label} ({e['background_cpus_before']:.1f} CPUs)"
        for label, e in [
            *results.get("intake", {}).items(),
            *((f"latency {k}", v) for k, v in results.get("latency", {}).items()),
            *((f"reports {k}", v["intake"]) for k, v in results.get("reports", {}).items()),
        ]
        if (e.get("background_cpus_before") or 0) > NOISY
    ]
    if noisy:
        out += [
            "",
            "WARNING: other processes were using the CPUs just before: " + ", ".join(noisy) + ".",
            "         Those figures are low and noisy; run again on an idle machine (--wait-idle 300).",
        ]
    return "\n".join(out)


def _reports(results: dict[str, Any]) -> list[str]:
    c, reports = results["config"], results["reports"]
    floor = c["jira_latency"]
    any_run: dict[str, Any] = next(iter(reports.values()))
    out = [
        f"4. Customer reports: POST /reports (no attachments, an Idempotency-Key each), {c['report_requests']} "
        f"reports per round from {c['report_sessions']} customers, {c['connections']} connections, same client;",
        f"   after {any_run['intake']['warmup_requests']} warm-up reports (one per customer: each session is "
        "checked once, then cached by the bot), so no measured report waits for the identity service",
        "   ('introspect' counts the calls made during the measured rounds). TRIAGE_WORKERS=0: ticket, history,",
        "   Jira/Slack jobs and the receipt e-mail committed before the 201, nothing processed.",
        "   Baseline: the alerts intake of section 1 on the same database (one POST of "
        f"{c['alerts_per_post']} alerts: event + job before the 202).",
    ]
    rows = []
    for kind, r in reports.items():
        e, name = r["intake"], DATABASES.get(kind, kind)
        alerts = results["intake"].get(f"bot_{kind}", {})
        bare = results["intake"].get("bare", {})
        for target, x, introspect, ratios in (
            (f"alerts, {name} (1.)", alerts, "", ("1.00x", "1.0x", "1.0x")),
            (
                f"reports, {name}",
                e,
                str(e["introspections_measured"]),
                (
                    _n(e["ratio_requests_per_s_vs_alerts"], ".2f", "x"),
                    _n(e["ratio_p50_vs_alerts"], ".1f", "x"),
                    _n(e["ratio_p99_vs_alerts"], ".1f", "x"),
                ),
            ),
        ):
            if not x:
                continue
            rows.append(
                [
                    target,
                    _n(x["requests_per_s"]),
                    f"{min(x['rounds_requests_per_s']):.0f}..{max(x['rounds_requests_per_s']):.0f}",
                    _n(x["p50_ms"], ".1f"),
                    _n(x["p99_ms"], ".1f"),
                    _n(x["server_cpu_ms_per_request"], ".2f"),
                    _n(x["server_cpu_utilisation"], ".0%"),
                    _n(x["client_cpu_utilisation"], ".0%"),
                    _n(x.get("other_cpu_utilisation"), ".0%"),
                    str(x["errors"]),
                    introspect,
                    *ratios,
                    _n(x["requests_per_s"] / bare["requests_per_s"] if bare else None, ".2f", "x"),
                ]
            )
    out += _table(
        [
            "target",
            "req/s",
            "spread",
            "p50 ms",
            "p99 ms",
            "srv CPU ms/req",
            "srv CPU",
            "client CPU",
            "rest CPU",
            "errors",
            "introspect",
            "req/s vs alerts",
            "p50 vs alerts",
            "p99 vs alerts",
            "req/s vs bare",
        ],
        rows,
    )

    out += [
        "",
        f"   Session check: {c['cold_reports']} new sessions, one request at a time, nothing else in flight: each "
        "session's first report",
        "   (one introspection call to the identity emulator, which answers at once), then at once its second "
        "(cached session).",
        "   Baseline: a report whose session is cached; and the introspection call alone, made from the bench.",
    ]
    rows = []
    for kind, r in reports.items():
        sc = r["session_check"]
        warm_p50 = sc["warm_ms"]["p50"]
        for name, st, introspect in (
            ("second report (cached)", sc["warm_ms"], "0"),
            ("first report (cold)", sc["cold_ms"], str(sc["introspections"])),
            ("introspection call alone", sc["introspection_alone_ms"], str(sc["pairs"])),
        ):
            rows.append(
                [
                    kind,
                    name,
                    str(st["n"]),
                    _n(st["p50"], ".1f"),
                    _n(st["p99"], ".1f"),
                    _n(st["max"], ".1f"),
                    _n(st["p50"] / warm_p50 if warm_p50 else None, ".2f", "x"),
                    introspect,
                ]
            )
        rows.append([kind, "cold - cached, p50", "", _n(sc["cold_minus_warm_p50_ms"], ".1f"), "", "", "", ""])
    out += _table(["db", "session", "n", "p50 ms", "p99 ms", "max ms", "p50 x cached", "introspect"], rows)

    out += [
        "",
        f"   201 -> Jira issue exists: a bot with default workers on a fresh database, {c['report_stream']} reports "
        f"at {c['rate']:g}/s after one unmeasured (as section 2's 'unloaded'), Jira +{floor * 1000:.0f} ms;",
        "   baseline: the alerts' 'loaded' series of section 2 (same rate and Jira latency), and the Jira floor.",
    ]
    rows = []
    for kind, r in reports.items():
        lat = r["latency"]
        alerts = results["latency"].get(kind, {}).get("series", {}).get("loaded", {}).get("ack_to_issue_s")
        vs_alerts = lat.get("ratio_vs_alerts_loaded") or {}
        for name, st, x_alerts in (
            ("reports: 201 -> issue exists (bench clock)", lat["ack_to_issue_s"], vs_alerts),
            ("reports: tickets.first_event_at -> jira_created_at", lat["db_first_event_to_jira_created_s"], {}),
            ("alerts 'loaded' (2.): 202 -> issue exists", alerts, {}),
        ):
            if not st:
                continue
            rows.append(
                [
                    kind,
                    name,
                    *_latency_cells(st, floor),
                    _n(x_alerts.get("ack_to_issue_p50"), ".2f", "x"),
                    _n(x_alerts.get("ack_to_issue_p99"), ".2f", "x"),
                ]
            )
    out += _table(
        [
            "db",
            "measure",
            "n",
            "p50 ms",
            "p99 ms",
            "max ms",
            "p50 x floor",
            "p99 x floor",
            "p50 vs alerts",
            "p99 vs alerts",
        ],
        rows,
    )
    for kind, r in reports.items():
        lat = r["latency"]
        out.append(
            f"   {kind}: {lat['reports_accepted']}/{lat['reports']} accepted, {lat['issues_created']} issues, "
            f"{lat['jira_requests']} Jira requests ({_n(lat['jira_requests_per_issue'], '.2f')} per issue), "
            f"{lat['emails_delivered']} receipts delivered, all issues after {lat['seconds_until_all_issues']:.1f} s, "
            f"queue empty after {lat['seconds_until_queue_drained']:.1f} s, 201 p99 {_n(lat['ack_ms']['p99'])} ms."
        )
        jobs = ", ".join(
            f"{kind} {_n(st['p50'])} / {_n(st['p99'])}" for kind, st in lat.get("jobs_queued_to_done_ms", {}).items()
        )
        calls = ", ".join(
            f"{name} {v['count']} x {_n(v['mean_ms'], '.1f')}" for name, v in lat.get("outside_calls", {}).items()
        )
        out.append(f"      jobs queued -> done, p50 / p99 ms: {jobs}; outside calls (n x mean ms): {calls}.")
    out.append(
        "   Wall time of this section: " + ", ".join(f"{k} {r['seconds']:.0f} s" for k, r in reports.items()) + "."
    )
    return out
