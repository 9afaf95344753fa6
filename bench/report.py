"""The results as plain-text tables for stdout (and the README)."""

from __future__ import annotations

import math
from typing import Any

MiB = 1024 * 1024
NOISY = 0.3  # CPUs of background work before a measurement above which its figures are suspect
LABELS = {"bare": "bare FastAPI + pydantic", "bot_sqlite": "bot, SQLite", "bot_postgresql": "bot, PostgreSQL"}


def _n(value: Any, fmt: str = ".0f", suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{fmt}}{suffix}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def _count_and_rate(count: int, issues: int) -> str:
    return f"{count} ({count / issues:.2f})" if issues else str(count)


def render(results: dict[str, Any]) -> str:
    c, m = results["config"], results["machine"]
    out = [
        f"triage-bot benchmark, {results['date']} ({'quick' if c['quick'] else 'full'} run, "
        f"{results['bench_seconds']:.0f} s)",
        f"machine: {m['nproc']} CPUs, Python {m['python']}, {m['platform']}, commit {m['git_commit'] or '?'}; "
        f"load average {results['load_average_before']:.2f} before, {results['load_average_after']:.2f} after",
        "",
        f"1. Intake: POST /alerts/alertmanager, {c['requests']} requests x {c['alerts_per_post']} alerts, "
        f"{c['connections']} concurrent keep-alive connections, after {c['warmup']} warm-up requests;",
        f"   {c['rounds']} rounds per target, the median round shown (spread = slowest..fastest round, req/s).",
        "   Client: "
        + (
            "raw HTTP/1.1 over asyncio streams (httpx.AsyncClient itself tops out near 300 req/s here)."
            if c["client"] == "raw"
            else "httpx.AsyncClient (CPU-bound: the bare baseline measures the client more than the server)."
        ),
        "   The bot runs with TRIAGE_WORKERS=0: this measures intake only (event + job committed), the queue fills.",
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

    floor = c["jira_latency"]
    any_run: dict[str, Any] = next(iter(results["latency"].values()), {})
    out += [
        "",
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
                st = r[key]
                rows.append(
                    [
                        kind,
                        series,
                        name,
                        str(st["n"]),
                        _n(st["p50"] * 1000),
                        _n(st["p99"] * 1000),
                        _n(st["max"] * 1000),
                        _n(st["p50"] / floor, ".1f", "x"),
                        _n(st["p99"] / floor, ".1f", "x"),
                    ]
                )
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

    out += ["", "4. Peak RSS (VmHWM of the server process at the end of its run):"]
    rows = [
        [
            name,
            _n(v["peak_rss_bytes"] / MiB if v["peak_rss_bytes"] else None, ".1f"),
            _n(v["ratio_vs_bare"], ".2f", "x"),
        ]
        for name, v in results["memory"].items()
    ]
    out += _table(["process", "MiB", "vs bare"], rows)
    noisy = [
        f"{label} ({e['background_cpus_before']:.1f} CPUs)"
        for label, e in [*results["intake"].items(), *((f"latency {k}", v) for k, v in results["latency"].items())]
        if (e.get("background_cpus_before") or 0) > NOISY
    ]
    if noisy:
        out += [
            "",
            "WARNING: other processes were using the CPUs just before: " + ", ".join(noisy) + ".",
            "         Those figures are low and noisy; run again on an idle machine (--wait-idle 300).",
        ]
    return "\n".join(out)
