"""The storm sections of the report (6-11), each beside its baseline and the issue's target."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from bench.report_util import MiB, n, table

Json = dict[str, Any]


def _ms(value: Any) -> str:
    return n(value * 1000 if isinstance(value, int | float) else None)


def _pass(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def _failed(name: str, entry: Any) -> list[str] | None:
    if isinstance(entry, dict) and "error" in entry:
        return [f"   {name} FAILED: {entry['error']}"]
    if isinstance(entry, dict) and "skipped" in entry:
        return [f"   skipped: {entry['skipped']}"]
    return None


def _measured(entry: Json, out: list[str]) -> Iterator[tuple[str, Json]]:
    """Each database a section ran on, with its results; a failed one's line goes to ``out`` instead."""
    for kind, r in entry.items():
        if (failed := _failed(kind, r)) is not None:
            out.extend(failed)
            continue
        yield kind, r


def _posts(p: Json) -> str:
    errors = ", ".join(f"{k} {v}" for k, v in p["errors"].items()) or "none"
    return (
        f"{p['posts']} posts: {p['answered_202']} answered 202, {p['not_202']} other answers "
        f"{p['statuses']}, {p['not_answered']} not answered ({errors}); ack p50 {n(p['ack_ms']['p50'])} ms, "
        f"p99 {n(p['ack_ms']['p99'])} ms"
    )


def steady(results: Json) -> list[str]:
    c = results["storm_config"]
    out = [
        f"6. Steady storm: {c['steady_posts_per_s'] * c['alerts_per_post']:g} alerts/s ({c['steady_posts_per_s']:g} "
        f"posts/s x {c['alerts_per_post']} alerts, {c['steady_new_per_s']:g} of them a new group's first post, "
        f"{c['steady_change_share']:.0%} of repeats with changed content)",
        f"   for {c['steady_seconds']:g} s, open loop; the bot on serve's defaults; Jira "
        f"+{c['jira_latency'] * 1000:.0f} ms a call. Measured per new group from its first 202.",
        "   Baseline: Jira's own latency (taken off: 'minus Jira'), and section 2's 'unloaded' series on the same "
        "database. Targets: p50 < 100 ms, p99 < 1 s.",
    ]
    entry = results["steady"]
    if (failed := _failed("steady", entry)) is not None:
        return out + failed
    rows = []
    for kind, r in _measured(entry, out):
        minus = r["ack_to_issue"]["minus_floor_s"]
        unloaded = results.get("latency", {}).get(kind, {}).get("series", {}).get("unloaded", {})
        base = unloaded.get("ack_to_issue_s") if unloaded else None
        floor = c["jira_latency"]
        ok = None if not minus["n"] else bool(minus["p50"] < 0.1 and minus["p99"] < 1.0 and not r["issues_missing"])
        rows.append(
            [
                kind,
                f"{r['groups_acknowledged']}",
                f"{r['issues']}",
                f"{r['issues_missing']}",
                _ms(minus["p50"]),
                _ms(minus["p99"]),
                _ms(minus["max"]),
                f"{_ms(base['p50'] - floor)} / {_ms(base['p99'] - floor)}" if base else "-",
                f"{_ms(r['ack_to_first_card_s']['p50'])} / {_ms(r['ack_to_first_card_s']['p99'])}",
                f"{r['issues_while_sending']}",
                _pass(ok),
            ]
        )
    out += table(
        [
            "db",
            "new groups",
            "issues",
            "missing",
            "202->issue minus Jira p50 ms",
            "p99 ms",
            "max ms",
            "baseline unloaded p50 / p99",
            "202->first card p50 / p99 ms",
            "issues while sending",
            "target met",
        ],
        rows,
    )
    for kind, r in entry.items():
        if "posts" in r:
            j = r["jira"]
            out.append(
                f"   {kind}: {_posts(r['posts'])}; posts sent late p99 {n(r['posts']['sent_late_ms']['p99'])} ms."
            )
            out.append(
                f"   {kind}: Jira {j['requests']} requests ({_cats(j['by_category'])}); waited "
                f"{r['waited_after_last_post_s']:.0f} s after the last post; {r['queue_busy_at_end']} jobs still "
                f"queued; bot RSS (all processes, sum of peaks) "
                f"{n(r['memory']['sum_of_peaks_bytes'] / MiB, '.0f')} MiB."
            )
    return out


def _cats(categories: Json) -> str:
    return ", ".join(f"{k} {v}" for k, v in categories.items()) or "none"


def limited(results: Json) -> list[str]:
    c = results["storm_config"]
    out = [
        f"7. Rate-limited storm: {c['limited_posts'] * c['alerts_per_post']:,} alerts ({c['limited_posts']} posts) in "
        f"{c['limited_groups']} groups as fast as the bot takes them ({c['connections']} connections); Jira limited to "
        f"{c['limited_rate']:g} requests/s",
        "   (one bucket for every call: 429, Retry-After, X-RateLimit-Reset, RateLimit-Reason: jira-burst-based) and "
        f"+{c['jira_latency'] * 1000:.0f} ms a call. 'create phase': first post -> last issue; 'steady state': "
        "last issue -> queue empty, with every group notified once more (a change) after its issue exists.",
        f"   Baseline: the ideal {c['limited_groups']} / {c['limited_rate']:g} = "
        f"{c['limited_groups'] / c['limited_rate']:g} s. Targets: within 1.2x; Jira requests per issue <= 1.1 "
        "(searches counted apart); no searches in the steady state.",
    ]
    entry = results["limited"]
    if (failed := _failed("limited", entry)) is not None:
        return out + failed
    rows = []
    for kind, r in _measured(entry, out):
        cp, st = r["create_phase"], r["steady_state"]
        ratio = r["ratio_vs_ideal"]
        per_issue = r["non_search_admitted_per_issue"]
        ok = None if ratio is None else bool(ratio <= 1.2 and (per_issue or 99) <= 1.1 and not st["searches"])
        rows.append(
            [
                kind,
                f"{r['issues']}/{r['groups_acknowledged']}",
                n(r["seconds_to_last_issue"], ".1f"),
                n(r["ideal_seconds"], ".1f"),
                n(ratio, ".2f", "x"),
                str(cp["rate_limited_429"]),
                n(r["requests_per_issue"], ".2f"),
                n(per_issue, ".2f"),
                f"{cp['searches']} ({n(r['searches_per_issue'], '.2f')})",
                f"{st['searches']} / {st['requests']}",
                f"{_ms(r['ack_to_issue_s']['p50'])} / {_ms(r['ack_to_issue_s']['p99'])}",
                _pass(ok),
            ]
        )
    out += table(
        [
            "db",
            "issues",
            "last issue s",
            "ideal s",
            "x ideal",
            "429s",
            "req/issue (all)",
            "admitted non-search/issue",
            "searches (/issue)",
            "steady: searches / req",
            "202->issue p50 / p99 ms",
            "target met",
        ],
        rows,
    )
    for kind, r in entry.items():
        if "posts" in r:
            out.append(f"   {kind}: {_posts(r['posts'])}; all sent in {r['seconds_to_send']:.1f} s.")
            out.append(f"   {kind}: create phase requests: {_cats(r['create_phase']['by_category'])}.")
            drained = (
                f"queue empty {n(r['steady_state_seconds_to_drain'], '.1f')} s after the repeats"
                if r["queue_drained"]
                else f"{r['queue_busy_at_end']} jobs still queued"
            )
            out.append(
                f"   {kind}: steady state {r['steady_state']['seconds']:.0f} s ({drained}): "
                f"{_cats(r['steady_state']['by_category'])}; {r['rate_limited_total']} answered 429 in all."
            )
    return out


def outage(results: Json) -> list[str]:
    c = results["storm_config"]
    g = c["outage_groups"]
    out = [
        f"8. Outage then limit: {g} new groups posted as Jira starts answering 503 for {c['outage_seconds']:g} s; "
        f"then Jira is limited to {c['outage_rate']:g} requests/s (+{c['jira_latency'] * 1000:.0f} ms a call).",
        "   Measured from the outage's end until every group has its issue and a card showing the issue's key.",
        f"   Baseline: the ideal of one search and one create per group at the limit: 2 x {g} / {c['outage_rate']:g} "
        f"= {2 * g / c['outage_rate']:g} s (creates alone: {g / c['outage_rate']:g} s). Target: <= 60 s.",
    ]
    entry = results["outage"]
    if (failed := _failed("outage", entry)) is not None:
        return out + failed
    rows = []
    for kind, r in _measured(entry, out):
        after, during = r["after_outage"], r["during_outage"]
        total = r["seconds_after_outage_to_all"]
        rows.append(
            [
                kind,
                f"{r['issues']}/{r['groups_acknowledged']}",
                f"{r['cards_with_key']}/{r['groups_acknowledged']} ({r['cards_posted_during_outage']})",
                n(r["seconds_after_outage_to_all_issues"], ".1f"),
                n(r["seconds_after_outage_to_all_cards_with_key"], ".1f"),
                n(r["ideal_seconds"], ".0f"),
                n(total / r["ideal_seconds"] if total is not None else None, ".2f", "x"),
                f"{during['requests']} ({during['fault_answers']} x 503)",
                f"{after['requests']} ({after['admitted']} admitted)",
                str(after["rate_limited_429"]),
                str(after["searches"]),
                _pass(total is not None and total <= 60),
            ]
        )
    out += table(
        [
            "db",
            "issues",
            "cards with key (posted in outage)",
            "-> all issues s",
            "-> all keyed cards s",
            "ideal s",
            "x ideal",
            "requests in outage",
            "requests after",
            "429s after",
            "searches after",
            "target met",
        ],
        rows,
    )
    for kind, r in entry.items():
        if "after_outage" in r:
            out.append(
                f"   {kind}: after the outage ({r['waited_after_outage_s']:.0f} s watched): "
                f"{_cats(r['after_outage']['by_category'])}; {r['queue_busy_at_end']} jobs still queued."
            )
    return out


def big(results: Json) -> list[str]:
    c = results["storm_config"]
    out = [
        f"9. Big storm: {c['big_posts'] * c['alerts_per_post']:,} alerts ({c['big_posts']} posts x "
        f"{c['alerts_per_post']}) in {c['big_groups']} groups over {c['connections']} keep-alive connections, as fast "
        f"as answered; Jira +{c['jira_latency'] * 1000:.0f} ms, no limit.",
        "   Every post's fate is counted (a connection reset or a post without an answer is counted, never sent "
        "again). RSS: every process of the bot",
        "   (serve and all its descendants and process group, sampled every 0.25 s): the sum of each one's peak "
        "(VmHWM), the highest total seen at one moment, and that total in PSS (a page the processes share, such as "
        "the interpreter's, counted once).",
        "   Baseline: the bare FastAPI endpoint taking the same posts the same way. Targets: every post answered "
        "202; RSS total < 200 MB.",
    ]
    entry = results["big"]
    if (failed := _failed("big", entry)) is not None:
        return out + failed
    rows = []
    for kind, r in _measured(entry, out):
        for name, p, rss, extra in (
            ("bare", r["baseline_bare"], r["baseline_bare"]["peak_rss_bytes"], None),
            (f"bot, {kind}", r["posts"], r["memory"]["sum_of_peaks_bytes"], r),
        ):
            every = p["answered_202"] == p["posts"]
            rows.append(
                [
                    name,
                    str(p["posts"]),
                    str(p["answered_202"]),
                    str(p["not_202"]),
                    str(p["not_answered"]),
                    n(p["posts_per_s"]),
                    n(p["ack_ms"]["p99"]),
                    n(rss / MiB if rss else None, ".0f"),
                    n(extra["memory"]["max_sampled_total_rss_bytes"] / MiB, ".0f") if extra else "-",
                    n(extra["memory"].get("max_sampled_total_pss_bytes", 0) / MiB, ".0f") if extra else "-",
                    str(extra["issues"]) if extra else "-",
                    n(extra["issues_per_s"], ".1f") if extra else "-",
                    f"{n(extra['ack_to_issue_s']['p50'], '.1f')} / {n(extra['ack_to_issue_s']['p99'], '.1f')}"
                    if extra
                    else "-",
                    _pass(every and (rss or 0) < 200e6) if extra else "-",
                ]
            )
    out += table(
        [
            "target",
            "posts",
            "202",
            "other answer",
            "no answer",
            "posts/s",
            "ack p99 ms",
            "RSS MiB",
            "max total MiB",
            "max total PSS MiB",
            "issues",
            "issues/s",
            "202->issue p50 / p99 s",
            "target met",
        ],
        rows,
    )
    for kind, r in entry.items():
        if "memory" in r:
            errors = r["posts"]["errors"]
            if errors or r["posts"]["not_202"]:
                out.append(f"   {kind}: not 202: {r['posts']['statuses']}, no answer: {errors}.")
            procs = "; ".join(
                f"{p['pid']} {_short(p['command'])} {p['peak_rss_bytes'] / MiB:.0f} MiB"
                for p in r["memory"]["processes"]
            )
            out.append(f"   {kind}: processes (pid, command, peak RSS): {procs}.")
            out.append(
                f"   {kind}: sent in {r['seconds_to_send']:.1f} s; last issue {n(r['seconds_to_last_issue'], '.1f')} s "
                f"after the first post; {r['queue_busy_at_end']} jobs still queued; Jira: "
                f"{_cats(r['jira']['by_category'])}."
            )
    return out


def _short(command: str) -> str:
    parts = command.split()
    return " ".join(parts[1:4]) if len(parts) > 1 else command


def scale(results: Json) -> list[str]:
    c = results["storm_config"]
    out = [
        f"10. Scale-out on PostgreSQL: storm 7's {c['limited_posts']} posts ({c['limited_groups']} groups) queued by "
        "`serve --workers 0`, then N `triage-bot worker` processes",
        f"   (their default threads) started at once; Jira limited to {c['scale_limit']:g} requests/s, "
        f"+{c['jira_latency'] * 1000:.0f} ms a call. issues/s: first to last issue.",
        "   Baseline: one worker process; the ceiling is Jira's limit (one request per issue at best).",
    ]
    entry = results["scale"]
    if (failed := _failed("scale", entry)) is not None:
        return out + failed
    rows = []
    for r in entry["runs"]:
        rows.append(
            [
                str(r["worker_processes"]),
                f"{r['issues']}/{r['groups_acknowledged']}",
                n(r["issues_per_s"], ".1f"),
                n(r["ratio_vs_one_process"], ".2f", "x"),
                n(r["ratio_vs_jira_limit"], ".0%"),
                n(r["jira_requests_per_s"], ".1f"),
                str(r["jira"]["rate_limited_429"]),
                n(r["seconds_to_last_issue"], ".1f"),
                n(r["seconds_to_start_workers"], ".1f"),
                str(r["serve_processes"]),
                n(r["memory"]["sum_of_peaks_bytes"] / MiB, ".0f"),
            ]
        )
    out += table(
        [
            "worker processes",
            "issues",
            "issues/s",
            "vs 1 process",
            "of Jira's limit",
            "Jira req/s",
            "429s",
            "last issue s",
            "start s",
            "serve procs",
            "RSS MiB (all)",
        ],
        rows,
    )
    rated = [r for r in entry["runs"] if r["issues_per_s"]]
    if rated:
        best = max(rated, key=lambda r: r["issues_per_s"])
        growth = ", ".join(
            f"{a['worker_processes']}->{b['worker_processes']}: {b['issues_per_s'] / a['issues_per_s']:.2f}x"
            for a, b in itertools.pairwise(rated)
        )
        out.append(
            f"   Ceiling: {best['issues_per_s']:.1f} issues/s at {best['worker_processes']} process(es), "
            f"{best['issues_per_s'] / c['scale_limit']:.0%} of Jira's {c['scale_limit']:g} requests/s "
            f"(growth {growth or '-'}); each worker thread waits {c['jira_latency'] * 1000:.0f} ms per Jira call, "
            f"so one thread makes at most {1 / c['jira_latency']:.0f} calls/s."
            if c["jira_latency"]
            else f"   Ceiling: {best['issues_per_s']:.1f} issues/s at {best['worker_processes']} process(es)."
        )
    return out


def claims(results: Json) -> list[str]:
    cc = results["claims_config"]
    out = [
        "11. Claim cost vs backlog: bot.jobs.queue.claim on a migrated database with N pending jobs (lanes "
        "jira:/slack:/mail: of 1-5 jobs, every 10th lane blocked",
        "   by a running head, every 5th waiting for a retry an hour ahead, every 10th head urgent), "
        f"{cc['claims_per_size']} claims per size, each put back; PostgreSQL ANALYZEd after each fill.",
        "   Baseline: the claim on an empty queue.",
    ]
    entry = results["claims"]
    if (failed := _failed("claims", entry)) is not None:
        return out + failed
    rows = []
    for kind, r in entry.items():
        for s in r["sizes"]:
            rows.append(
                [
                    kind,
                    f"{s['backlog']:,}",
                    n(s["median"], ".2f"),
                    n(s["p99"], ".2f"),
                    n(s["max"], ".2f"),
                    n(s["ratio_median_vs_empty"], ".1f", "x"),
                    f"{s['found_a_job']}/{s['claims']}",
                    n(s["fill_seconds"], ".1f"),
                ]
            )
    out += table(["db", "pending jobs", "median ms", "p99 ms", "max ms", "x empty", "found a job", "fill s"], rows)
    return out


SECTIONS = (("steady", steady), ("limited", limited), ("outage", outage), ("big", big), ("scale", scale))


def render_storms(results: Json) -> list[str]:
    out: list[str] = []
    for name, render in (*SECTIONS, ("claims", claims)):
        if name in results:
            out += ["", *render(results)]
    return out
