"""Storm scenarios (issue 9): a steady storm, a storm into a rate-limited Jira, an outage then a limit, a
50,000-alert storm over keep-alive connections, and scale-out with worker processes on PostgreSQL.

Each starts the bot as a deployment would (``serve`` on its defaults, or ``serve --workers 0`` plus separate
``triage-bot worker`` processes for scale-out) on a fresh database, against the bench's Jira and Slack emulators
(Jira answering every call after ``jira_latency``), and reads what happened from the emulators (the Jira issue
clock, the request log, the Slack cards) and the bot's tables."""

from __future__ import annotations

import json
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from bench import load
from bench.common import WEBHOOK_TOKEN, bot_env, category, issue_clock, run_async
from bench.metrics import queue_busy, summary
from bench.procs import RssSampler, Server, clean_env, process_tree
from bot.db.engine import make_engine
from bot.sandbox.samples import alertmanager_payload
from workflows.routing import dedup_label

if TYPE_CHECKING:
    from bench.run import Bench

Json = dict[str, Any]
ISSUE_KEY = re.compile(r"\bOPS-\d+\b")  # a key of the shipped policy's project, anywhere in a card's text or blocks
PROGRESS_EVERY = 10.0  # seconds between progress lines while waiting


@dataclass(frozen=True)
class StormConfig:
    quick: bool
    jira_latency: float
    alerts_per_post: int
    connections: int
    # a. steady storm
    steady_seconds: float
    steady_posts_per_s: float
    steady_new_per_s: float
    # Of repeats, the share that changes the group's content (a real update). Alertmanager re-notifies a group
    # before repeat_interval only when it changed, and an HA pair sends every notification twice (the second one
    # identical): about half the repeats of a storm carry a change.
    steady_change_share: float
    steady_wait: float  # after the last post, at most this long for the issues and cards
    # b. rate-limited storm
    limited_posts: int
    limited_groups: int
    limited_rate: float  # Jira requests per second
    limited_wait: float
    settle_wait: float  # after the last issue, at most this long for the queue to drain (steady state)
    # c. outage then limit
    outage_groups: int
    outage_seconds: float
    outage_rate: float
    outage_wait: float  # after the outage's end
    # d. big storm over keep-alive connections
    big_posts: int
    big_groups: int
    big_wait: float
    # e. scale-out
    scale_processes: tuple[int, ...]
    scale_limit: float
    scale_wait: float
    databases: tuple[str, ...]  # for a-d
    postgres: bool


def storm_config(
    quick: bool, jira_latency: float, alerts: int, connections: int, postgres: bool, change_share: float = 0.5
) -> StormConfig:
    return StormConfig(
        quick=quick,
        jira_latency=jira_latency,
        alerts_per_post=alerts,
        connections=connections,
        steady_seconds=10 if quick else 60,
        steady_posts_per_s=50,
        steady_new_per_s=5,
        steady_change_share=change_share,
        steady_wait=20 if quick else 60,
        limited_posts=100 if quick else 1000,
        limited_groups=50 if quick else 500,
        limited_rate=20,
        limited_wait=45 if quick else 150,
        settle_wait=20 if quick else 60,
        outage_groups=10 if quick else 50,
        outage_seconds=5 if quick else 15,
        outage_rate=2,
        outage_wait=25 if quick else 150,
        big_posts=500 if quick else 5000,
        big_groups=50 if quick else 500,
        big_wait=45 if quick else 150,
        scale_processes=(1, 2) if quick else (1, 2, 4),
        scale_limit=100,
        scale_wait=30 if quick else 90,
        databases=("sqlite",),
        postgres=postgres,
    )


# ---- payloads ----------------------------------------------------------------------------------------------
def storm_body(tag: str, group: int, variant: int, alerts: int) -> bytes:
    """An Alertmanager notification of group ``group``: ``alerts`` alerts, the first ``variant % alerts`` of
    them resolved (so a new variant is a real change of the group: an alert resolved or back), the rest firing."""
    payload = alertmanager_payload(f"{tag}-{group}", alerts)
    for alert in payload["alerts"][: variant % alerts]:
        alert["status"] = "resolved"
        alert["endsAt"] = "2026-11-22T11:00:00Z"
    return load.encode(payload)


@dataclass(frozen=True)
class Planned:
    group: int
    variant: int
    first: bool  # the first post of its group


def round_robin(posts: int, groups: int, change_every: int = 1) -> list[Planned]:
    """Post i to group i % groups: every group's first post, then round after round of repeats; a repeat
    changes its group's content every ``change_every`` rounds."""
    return [Planned(i % groups, (i // groups) // change_every, i < groups) for i in range(posts)]


def steady_plan(seconds: float, rate: float, new_per_s: float, change_share: float, seed: int = 9) -> list[Planned]:
    """``rate`` posts a second for ``seconds``: ``new_per_s`` of them the first post of a new group, spread evenly,
    the rest repeats of a group already started (any of them alike), ``change_share`` of those with new content."""
    rng = random.Random(seed)
    every = max(1, round(rate / new_per_s))
    variants: list[int] = []
    plan = []
    for i in range(int(seconds * rate)):
        if i % every == 0:
            variants.append(0)
            plan.append(Planned(len(variants) - 1, 0, True))
            continue
        group = rng.randrange(len(variants))
        if rng.random() < change_share:
            variants[group] += 1
        plan.append(Planned(group, variants[group], False))
    return plan


# ---- reading what happened ---------------------------------------------------------------------------------
@dataclass
class Groups:
    """Each group's dedup key and the moment its first post was acknowledged (the earliest 202 of the group)."""

    dedup: dict[int, str]
    acked: dict[int, float]

    @staticmethod
    def of(answers: Sequence[load.Answer], plan: Sequence[Planned]) -> Groups:
        dedup: dict[int, str] = {}
        acked: dict[int, float] = {}
        for answer in answers:
            if answer.status != 202 or answer.acked_at is None:
                continue
            group = plan[answer.index].group
            key = answer.json().get("dedup_key")
            if isinstance(key, str) and (group not in acked or answer.acked_at < acked[group]):
                dedup[group], acked[group] = key, answer.acked_at
        return Groups(dedup, acked)

    def issue_times(self, created: dict[str, float], key_by_label: dict[str, str]) -> dict[int, float]:
        """Group -> when its (first) Jira issue was created, for the groups that have one."""
        times = {}
        for group, key in self.dedup.items():
            issue = key_by_label.get(dedup_label(key, 1))
            if issue is not None and issue in created:
                times[group] = created[issue]
        return times


def answer_figures(answers: Sequence[load.Answer]) -> Json:
    """Every post's fate: answered by status, not answered by error, and the acknowledgement times."""
    statuses = Counter(str(a.status) for a in answers if a.status is not None)
    errors = Counter(a.error or "?" for a in answers if a.status is None)
    acked = [a for a in answers if a.acked_at is not None]
    acked_at = [a.acked_at for a in answers if a.acked_at is not None]
    sent = [a.sent_at for a in answers]
    span = (max(acked_at) - min(sent)) if acked_at and sent else float("nan")
    return {
        "posts": len(answers),
        "answered": len(acked),
        "answered_202": statuses.get("202", 0),
        "not_202": sum(n for s, n in statuses.items() if s != "202"),
        "statuses": dict(sorted(statuses.items())),
        "not_answered": sum(errors.values()),
        "errors": dict(errors.most_common()),
        "ack_ms": summary([1000 * (a.acked_at - a.sent_at) for a in acked if a.acked_at is not None]),
        "sent_late_ms": summary([1000 * (a.sent_at - a.due_at) for a in answers]),  # open loop: behind schedule
        "seconds": span,
        "posts_per_s": len(acked) / span if span and span == span else float("nan"),
    }


def card_times(messages: Sequence[Json]) -> dict[int, tuple[float, float | None]]:
    """Ticket id -> (when its first card was posted, when a card of it first showed the Jira key), from the
    Slack emulator's messages (top-level cards, with their edit history)."""
    cards: dict[int, tuple[float, float | None]] = {}
    for message in messages:
        metadata = message.get("metadata") or {}
        if message.get("thread_ts") or metadata.get("event_type") != "triage_ticket":
            continue
        ticket = (metadata.get("event_payload") or {}).get("ticket_id")
        if not isinstance(ticket, int):
            continue
        # edits[i] is the card as it was before edit i: posted at ts, then edited at edits[i + 1]'s edited_ts,
        # and last at the message's own edited_ts
        edits = message.get("edits") or []
        texts = [json.dumps([e.get("text"), e.get("blocks")]) for e in edits]
        texts.append(json.dumps([message.get("text"), message.get("blocks")]))
        times = [float(message["ts"])] + [float(e["edited_ts"]) for e in edits[1:]]
        if edits:
            times.append(float(message.get("edited_ts") or message["ts"]))
        keyed = next((t for t, body in zip(times, texts, strict=True) if ISSUE_KEY.search(body)), None)
        posted, first_keyed = cards.get(ticket, (times[0], None))
        posted = min(posted, times[0])
        if keyed is not None and (first_keyed is None or keyed < first_keyed):
            first_keyed = keyed
        cards[ticket] = (posted, first_keyed)
    return cards


def ticket_ids(database_url: str) -> dict[str, int]:
    """Dedup key -> ticket id (first generation), straight from the tickets table."""
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, dedup_key FROM tickets WHERE generation = 1")).all()
    finally:
        engine.dispose()
    return {str(key): int(ticket) for ticket, key in rows}


def jira_calls(requests: Sequence[Json], begin: float, end: float) -> Json:
    """The Jira requests made in [begin, end): by category, how many were answered 429 by the rate limit, 503 by
    a fault, and the searches."""
    window = [r for r in requests if begin <= r["time"] < end]
    categories = Counter(category(r["method"], r["path"]) for r in window)
    return {
        "requests": len(window),
        "rate_limited_429": sum(1 for r in window if r.get("rate_limited")),
        "fault_answers": sum(1 for r in window if r.get("fault")),
        "admitted": sum(1 for r in window if not r.get("rate_limited") and not r.get("fault")),
        "searches": categories.get("search", 0),
        "by_category": dict(categories.most_common()),
        "seconds": end - begin,
    }


def wait_for(done: Callable[[], bool], seconds: float, label: str, progress: Callable[[], str], bot: Server) -> bool:
    """Until ``done()``, at most ``seconds``; a progress line every PROGRESS_EVERY seconds. Fails when the bot's
    process is gone (its log tail is in the error)."""
    deadline = time.monotonic() + seconds
    next_line = time.monotonic() + PROGRESS_EVERY
    while not done():
        if not bot.alive():
            raise RuntimeError(f"{bot.name} exited during {label}:\n{bot.log_tail()}")
        now = time.monotonic()
        if now >= deadline:
            print(f"    {label}: gave up after {seconds:.0f} s ({progress()})", file=sys.stderr)
            return False
        if now >= next_line:
            print(f"    {label}: {progress()}", file=sys.stderr)
            next_line = now + PROGRESS_EVERY
        time.sleep(0.05)
    return True


def latency_figures(values: Sequence[float], floor: float = 0.0) -> Json:
    """summary() of seconds, and the same with ``floor`` taken off each (the Jira call's own latency)."""
    return {"s": summary(values), "minus_floor_s": summary([v - floor for v in values])}


def _served(answers: Sequence[load.Answer]) -> int:
    return sum(1 for a in answers if a.status == 202)


class Storms:
    """The storm scenarios, each on a fresh database with a fresh bot."""

    def __init__(self, bench: Bench, config: StormConfig) -> None:
        self.bench, self.c = bench, config

    # ---- plumbing ----------------------------------------------------------------------------------------
    @contextmanager
    def emulators(self, *, rate_limit: float | None = None) -> Iterator[dict[str, float]]:
        """Fresh emulators (Jira answering after ``jira_latency``, limited to ``rate_limit`` requests a second)
        and the issue clock; faults and the limit are taken off afterwards."""
        jira, slack = self.bench.jira, self.bench.slack
        jira.reset()
        slack.reset()
        jira.set_rate_limit(rate_limit)
        if self.c.jira_latency:
            jira.set_fault(latency=self.c.jira_latency)
        created, on_change = issue_clock()
        unsubscribe = jira.on_change(on_change)
        try:
            yield created
        finally:
            unsubscribe()
            jira.clear_faults()
            jira.set_rate_limit(None)

    def key_by_label(self) -> dict[str, str]:
        return {label: issue["key"] for issue in self.bench.jira.issues() for label in issue["fields"]["labels"]}

    # ---- a. steady storm ---------------------------------------------------------------------------------
    def steady(self, kind: str) -> Json:
        """500 alerts/s as 50 posts/s of 10 alerts (5 of them a new group's first post), open loop, for
        ``steady_seconds``; Jira answering in ``jira_latency``. After one warm-up group (a fresh process's first
        calls), the time from each new group's 202 to its Jira issue (minus Jira's latency) and to its first card."""
        c = self.c
        tag = f"steady-{kind}-{int(time.time())}"
        plan = steady_plan(c.steady_seconds, c.steady_posts_per_s, c.steady_new_per_s, c.steady_change_share)
        bodies = [storm_body(tag, p.group, p.variant, c.alerts_per_post) for p in plan]
        groups_planned = sum(1 for p in plan if p.first)
        with self.emulators() as created, self.bench.database(kind, "steady") as url:
            bot = self.bench.bot(f"bot-steady-{kind}", url)
            sampler = RssSampler([bot.pid]).start()
            warm = run_async(load.storm_closed_loop(bot.url, WEBHOOK_TOKEN, [storm_body(tag + "-warm", 0, 0, 1)], 1))
            wait_for(lambda: len(created) >= _served(warm), 60, "warm-up", lambda: f"{len(created)} issues", bot)
            issues0, cards0 = len(created), len(self.bench.slack.messages())
            begin = time.time()
            print(
                f"  {kind}: {len(plan)} posts at {c.steady_posts_per_s:g}/s ({groups_planned} new groups)",
                file=sys.stderr,
            )
            answers = run_async(load.storm_open_loop(bot.url, WEBHOOK_TOKEN, bodies, c.steady_posts_per_s))
            sent = time.time()
            groups = Groups.of(answers, plan)
            expected = issues0 + len(groups.acked)

            def cards() -> int:
                return len(card_times(self.bench.slack.messages()))

            wait_for(
                lambda: len(created) >= expected and cards() >= expected,
                c.steady_wait,
                "issues and cards",
                lambda: f"{len(created) - issues0}/{len(groups.acked)} issues, {cards() - cards0} cards",
                bot,
            )
            end = time.time()
            busy = queue_busy(url)
            ids = ticket_ids(url)
            bot.stop()
            memory = sampler.stop()
        return self._steady_figures(kind, plan, answers, groups, created, ids, begin, sent, end, busy, memory)

    def _steady_figures(
        self,
        kind: str,
        plan: Sequence[Planned],
        answers: Sequence[load.Answer],
        groups: Groups,
        created: dict[str, float],
        ids: dict[str, int],
        begin: float,
        sent: float,
        end: float,
        busy: int,
        memory: Json,
    ) -> Json:
        c = self.c
        issue_at = groups.issue_times(created, self.key_by_label())
        to_issue = [issue_at[g] - groups.acked[g] for g in issue_at]
        cards = card_times(self.bench.slack.messages())
        to_card = []
        for group, key in groups.dedup.items():
            card = cards.get(ids.get(key, -1))
            if card is not None:
                to_card.append(card[0] - groups.acked[group])
        # issues created while the storm was on, per second of it: do they keep up with 5 new groups a second?
        during = sum(1 for g, t in issue_at.items() if t <= sent)
        return {
            "database": kind,
            "seconds": c.steady_seconds,
            "posts_per_s": c.steady_posts_per_s,
            "alerts_per_s": c.steady_posts_per_s * c.alerts_per_post,
            "new_groups_per_s": c.steady_new_per_s,
            "repeats_changed_share": c.steady_change_share,
            "jira_latency_s": c.jira_latency,
            "posts": answer_figures(answers),
            "groups_planned": sum(1 for p in plan if p.first),
            "groups_acknowledged": len(groups.acked),
            "issues": len(issue_at),
            "issues_missing": len(groups.acked) - len(issue_at),
            "issues_while_sending": during,
            "cards": len(to_card),
            "ack_to_issue": latency_figures(to_issue, c.jira_latency),
            "ack_to_first_card_s": summary(to_card),
            "jira": jira_calls(self.bench.jira.requests(), begin, end),
            "queue_busy_at_end": busy,
            "waited_after_last_post_s": end - sent,
            "memory": memory,
        }

    # ---- b. rate-limited storm ---------------------------------------------------------------------------
    def limited(self, kind: str) -> Json:
        """``limited_posts`` posts of 10 alerts in ``limited_groups`` groups, as fast as the bot takes them (16
        connections), into a Jira limited to ``limited_rate`` requests a second (429 + Retry-After): the time to
        the last group's issue against the ideal groups / rate, the 429s, Jira requests per issue while creating;
        then, once every issue exists, each group notified once more with a change (the steady state: updates
        only) and the Jira requests until the queue is empty, searches among them."""
        c = self.c
        tag = f"limited-{kind}-{int(time.time())}"
        plan = round_robin(c.limited_posts, c.limited_groups)
        bodies = [storm_body(tag, p.group, p.variant, c.alerts_per_post) for p in plan]
        with self.emulators(rate_limit=c.limited_rate) as created, self.bench.database(kind, "limited") as url:
            bot = self.bench.bot(f"bot-limited-{kind}", url)
            print(f"  {kind}: {len(plan)} posts in {c.limited_groups} groups", file=sys.stderr)
            begin = time.time()
            answers = run_async(load.storm_closed_loop(bot.url, WEBHOOK_TOKEN, bodies, c.connections))
            sent = time.time()
            groups = Groups.of(answers, plan)
            expected = len(groups.acked)
            all_issues = wait_for(
                lambda: len(created) >= expected,
                c.limited_wait,
                "issues",
                lambda: f"{len(created)}/{expected} issues, {self.bench.jira.rate_limited} answered 429",
                bot,
            )
            last_issue = max(created.values()) if created else time.time()
            # The steady state: every group notified once more, with a change, once all issues exist: only
            # updates are left to do, and none of them needs a search.
            repeat = [
                storm_body(tag, g, c.limited_posts // c.limited_groups + 1, c.alerts_per_post) for g in groups.acked
            ]
            steady_begin = time.time()
            steady_answers = run_async(load.storm_closed_loop(bot.url, WEBHOOK_TOKEN, repeat, c.connections))
            settled = wait_for(
                lambda: queue_busy(url) == 0,
                c.settle_wait,
                "steady state",
                lambda: f"{queue_busy(url)} jobs pending or running",
                bot,
            )
            end = time.time()
            busy = queue_busy(url)
            bot.stop()
        issue_at = groups.issue_times(created, self.key_by_label())
        requests = self.bench.jira.requests()
        create_phase = jira_calls(requests, begin, last_issue + 1e-6)
        issues = len(issue_at)
        ideal = c.limited_groups / c.limited_rate
        to_last = (max(issue_at.values()) - begin) if issue_at else float("nan")
        return {
            "database": kind,
            "posts": answer_figures(answers),
            "groups": c.limited_groups,
            "jira_limit_per_s": c.limited_rate,
            "jira_latency_s": c.jira_latency,
            "groups_acknowledged": expected,
            "issues": issues,
            "all_issues": all_issues,
            "seconds_to_send": sent - begin,
            "seconds_to_last_issue": to_last,
            "ideal_seconds": ideal,
            "ratio_vs_ideal": to_last / ideal if issues == expected else None,
            "ack_to_issue_s": summary([issue_at[g] - groups.acked[g] for g in issue_at]),
            "create_phase": create_phase,
            "requests_per_issue": create_phase["requests"] / issues if issues else None,
            "admitted_per_issue": create_phase["admitted"] / issues if issues else None,
            "non_search_admitted_per_issue": (
                (create_phase["admitted"] - _admitted_searches(requests, begin, last_issue + 1e-6)) / issues
                if issues
                else None
            ),
            "searches_per_issue": create_phase["searches"] / issues if issues else None,
            "steady_state": jira_calls(requests, last_issue + 1e-6, end),
            "steady_state_posts": answer_figures(steady_answers),
            "steady_state_seconds_to_drain": (end - steady_begin) if settled else None,
            "queue_drained": settled,
            "queue_busy_at_end": busy,
            "rate_limited_total": self.bench.jira.rate_limited,
        }

    # ---- c. outage then limit ----------------------------------------------------------------------------
    def outage(self, kind: str) -> Json:
        """``outage_groups`` new groups posted as Jira starts answering 503 for ``outage_seconds``, after which
        Jira is limited to ``outage_rate`` requests a second: from the outage's end, the time until every group
        has its issue and a card that shows the issue's key."""
        c = self.c
        tag = f"outage-{kind}-{int(time.time())}"
        plan = round_robin(c.outage_groups, c.outage_groups)
        bodies = [storm_body(tag, p.group, 0, c.alerts_per_post) for p in plan]
        with self.emulators(rate_limit=c.outage_rate) as created, self.bench.database(kind, "outage") as url:
            bot = self.bench.bot(f"bot-outage-{kind}", url)
            self.bench.jira.set_fault(status=503, seconds=c.outage_seconds, latency=c.jira_latency)
            begin = time.time()
            outage_end = begin + c.outage_seconds
            print(
                f"  {kind}: {len(plan)} groups, Jira 503 for {c.outage_seconds:g} s then {c.outage_rate:g} req/s",
                file=sys.stderr,
            )
            answers = run_async(load.storm_closed_loop(bot.url, WEBHOOK_TOKEN, bodies, c.connections))
            groups = Groups.of(answers, plan)
            expected = len(groups.acked)
            ids_seen: dict[str, int] = {}

            def keyed_cards() -> int:
                return sum(1 for _, keyed in card_times(self.bench.slack.messages()).values() if keyed is not None)

            wait_for(
                lambda: len(created) >= expected and keyed_cards() >= expected,
                c.outage_seconds + c.outage_wait,
                "issues and cards",
                lambda: (
                    f"{len(created)}/{expected} issues, {keyed_cards()} cards with a key, "
                    f"{self.bench.jira.rate_limited} answered 429"
                ),
                bot,
            )
            end = time.time()
            ids_seen = ticket_ids(url)
            busy = queue_busy(url)
            bot.stop()
        issue_at = groups.issue_times(created, self.key_by_label())
        cards = card_times(self.bench.slack.messages())
        keyed = [cards[ids_seen[key]][1] for key in groups.dedup.values() if key in ids_seen and ids_seen[key] in cards]
        keyed_at = [t for t in keyed if t is not None]
        posted = [cards[ids_seen[k]][0] for k in groups.dedup.values() if k in ids_seen and ids_seen[k] in cards]
        requests = self.bench.jira.requests()
        complete = len(issue_at) == expected and len(keyed_at) == expected
        return {
            "database": kind,
            "posts": answer_figures(answers),
            "groups": c.outage_groups,
            "outage_seconds": c.outage_seconds,
            "jira_limit_per_s": c.outage_rate,
            "jira_latency_s": c.jira_latency,
            "groups_acknowledged": expected,
            "issues": len(issue_at),
            "cards": len(posted),
            "cards_with_key": len(keyed_at),
            "cards_posted_during_outage": sum(1 for t in posted if t < outage_end),
            "seconds_after_outage_to_all_issues": (
                max(issue_at.values()) - outage_end if len(issue_at) == expected and issue_at else None
            ),
            "seconds_after_outage_to_all_cards_with_key": (
                max(keyed_at) - outage_end if len(keyed_at) == expected and keyed_at else None
            ),
            "seconds_after_outage_to_all": (
                max([*issue_at.values(), *keyed_at]) - outage_end if complete and issue_at else None
            ),
            "issues_after_outage_s": summary([t - outage_end for t in issue_at.values()]),
            # one search and one create each at most, at the limit: the issue's own yardstick
            "ideal_seconds": 2 * expected / c.outage_rate,
            "ideal_creates_only_seconds": expected / c.outage_rate,
            "during_outage": jira_calls(requests, begin, outage_end),
            "after_outage": jira_calls(requests, outage_end, end),
            "waited_after_outage_s": end - outage_end,
            "queue_busy_at_end": busy,
            "rate_limited_total": self.bench.jira.rate_limited,
        }

    # ---- d. 50,000 alerts over keep-alive connections ----------------------------------------------------
    def big(self, kind: str) -> Json:
        """``big_posts`` posts of 10 alerts in ``big_groups`` groups over 16 keep-alive connections, as fast as
        the bot answers; every post's fate counted exactly (a reset is counted, never sent again); issues/s and
        the time from a group's first 202 to its issue; the peak RSS of every process of the bot. Baseline: the
        bare endpoint taking the same posts the same way."""
        c = self.c
        tag = f"big-{kind}-{int(time.time())}"
        plan = round_robin(c.big_posts, c.big_groups, change_every=2)
        bodies = [storm_body(tag, p.group, p.variant, c.alerts_per_post) for p in plan]
        bare = self.bench.server("bare-big", ["-m", "bench.bare_app", "--port", "{port}"], clean_env({}), "/healthz")
        bare_answers = run_async(load.storm_closed_loop(bare.url, None, bodies, c.connections))
        bare.stop()
        baseline = answer_figures(bare_answers) | {"peak_rss_bytes": bare.final_peak_rss}
        with self.emulators() as created, self.bench.database(kind, "big") as url:
            bot = self.bench.bot(f"bot-big-{kind}", url)
            sampler = RssSampler([bot.pid]).start()
            print(
                f"  {kind}: {len(plan)} posts x {c.alerts_per_post} alerts in {c.big_groups} groups, "
                f"{c.connections} connections",
                file=sys.stderr,
            )
            begin = time.time()
            answers = run_async(load.storm_closed_loop(bot.url, WEBHOOK_TOKEN, bodies, c.connections))
            sent = time.time()
            groups = Groups.of(answers, plan)
            expected = len(groups.acked)
            wait_for(
                lambda: len(created) >= expected,
                c.big_wait,
                "issues",
                lambda: f"{len(created)}/{expected} issues",
                bot,
            )
            end = time.time()
            busy = queue_busy(url)
            processes = process_tree(bot.pid)
            bot.stop()
            memory = sampler.stop()
        issue_at = groups.issue_times(created, self.key_by_label())
        times = sorted(issue_at.values())
        span = times[-1] - times[0] if len(times) > 1 else float("nan")
        posts = answer_figures(answers)
        return {
            "database": kind,
            "posts": posts,
            "alerts": len(plan) * c.alerts_per_post,
            "groups": c.big_groups,
            "connections": c.connections,
            "jira_latency_s": c.jira_latency,
            "baseline_bare": baseline,
            "ratio_posts_per_s_vs_bare": (
                posts["posts_per_s"] / baseline["posts_per_s"] if baseline["posts_per_s"] else None
            ),
            "groups_acknowledged": expected,
            "issues": len(issue_at),
            "seconds_to_send": sent - begin,
            "seconds_to_last_issue": (times[-1] - begin) if times else None,
            "issues_per_s": (len(times) - 1) / span if len(times) > 1 and span > 0 else None,
            "issues_per_s_whole_run": len(times) / ((times[-1] - begin) or 1) if times else None,
            "ack_to_issue_s": summary([issue_at[g] - groups.acked[g] for g in issue_at]),
            "jira": jira_calls(self.bench.jira.requests(), begin, end),
            "queue_busy_at_end": busy,
            "bot_processes_at_end": len(processes),
            "memory": memory,
        }

    # ---- e. scale-out on PostgreSQL ----------------------------------------------------------------------
    def scale(self) -> Json:
        """Storm (b)'s posts into ``serve --workers 0`` (intake only), then N ``triage-bot worker`` processes
        started together, for each N of ``scale_processes``, each on a fresh PostgreSQL database, Jira limited
        to ``scale_limit`` requests a second: issues per second for each N, against Jira's limit."""
        c = self.c
        runs = [self._scale_run(n) for n in c.scale_processes]
        base = runs[0]["issues_per_s"] if runs else None
        for run in runs:
            rate = run["issues_per_s"]
            run["ratio_vs_one_process"] = rate / base if rate and base else None
            run["ratio_vs_jira_limit"] = rate / c.scale_limit if rate else None
        return {
            "database": "postgresql",
            "groups": c.limited_groups,
            "posts": c.limited_posts,
            "jira_limit_per_s": c.scale_limit,
            "jira_latency_s": c.jira_latency,
            "runs": runs,
        }

    def _scale_run(self, n: int) -> Json:
        c = self.c
        tag = f"scale{n}-{int(time.time())}"
        plan = round_robin(c.limited_posts, c.limited_groups)
        bodies = [storm_body(tag, p.group, p.variant, c.alerts_per_post) for p in plan]
        with self.emulators(rate_limit=c.scale_limit) as created, self.bench.database("postgresql", "scale") as url:
            # TRIAGE_WORKER_PROCESSES: a guess at the name of the coming setting (unknown TRIAGE_ names are ignored)
            env = bot_env(url, self.bench.jira_url, self.bench.slack_url, TRIAGE_WORKER_PROCESSES="0")
            serve = self.bench.server(f"bot-scale{n}", ["-m", "bot.cli", "serve", "--workers", "0"], env, "/readyz")
            answers = run_async(load.storm_closed_loop(serve.url, WEBHOOK_TOKEN, bodies, c.connections))
            serve_processes = process_tree(serve.pid)
            groups = Groups.of(answers, plan)
            expected = len(groups.acked)
            print(f"  {n} worker process(es): {expected} groups queued, starting the workers", file=sys.stderr)
            sampler = RssSampler([serve.pid]).start()
            started = time.time()
            workers = []
            for i in range(n):  # all spawned at once, then each waited for
                name = f"worker-scale{n}-{i}"
                worker = Server(
                    name,
                    ["-m", "bot.cli", "worker"],
                    bot_env(url, self.bench.jira_url, self.bench.slack_url),
                    self.bench.workdir / f"{name}.log",
                    "",
                    ready_log="triage-bot worker",
                )
                self.bench.servers.append(worker)
                workers.append(worker)
                worker.spawn()
            for worker in workers:
                worker.wait_ready()
                sampler.add_root(worker.pid)
            ready = time.time()
            wait_for(
                lambda: len(created) >= expected,
                c.scale_wait,
                f"{n} workers",
                lambda: f"{len(created)}/{expected} issues, {self.bench.jira.rate_limited} answered 429",
                serve,
            )
            end = time.time()
            busy = queue_busy(url)
            for worker in workers:
                worker.stop()
            serve.stop()
            memory = sampler.stop()
        times = sorted(t for t in created.values() if t >= started)
        span = times[-1] - times[0] if len(times) > 1 else float("nan")
        requests = self.bench.jira.requests()
        calls = jira_calls(requests, started, end)
        creating = jira_calls(requests, started, times[-1] + 1e-6) if times else calls  # workers start -> last issue
        run: Json = {
            "worker_processes": n,
            "groups_acknowledged": expected,
            "posts": answer_figures(answers),
            "serve_processes": len(serve_processes),  # 1: serve ran no worker process of its own
            "issues": len(times),
            "seconds_to_start_workers": ready - started,
            "seconds_to_last_issue": (times[-1] - started) if times else None,
            "issues_per_s": (len(times) - 1) / span if len(times) > 1 and span > 0 else None,
            "jira_requests_per_s": creating["requests"] / (times[-1] - started) if times else None,
            "jira_admitted_per_s": creating["admitted"] / (times[-1] - started) if times else None,
            "jira_until_last_issue": creating,
            "jira": calls,
            "queue_busy_at_end": busy,
            "memory": memory,
        }
        print(
            f"    {n} worker process(es): {run['issues_per_s'] or 0:.1f} issues/s, "
            f"{calls['rate_limited_429']} answered 429",
            file=sys.stderr,
        )
        return run


def _admitted_searches(requests: Sequence[Json], begin: float, end: float) -> int:
    return sum(
        1
        for r in requests
        if begin <= r["time"] < end
        and category(r["method"], r["path"]) == "search"
        and not r.get("rate_limited")
        and not r.get("fault")
    )


def config_json(config: StormConfig) -> Json:
    return asdict(config)
