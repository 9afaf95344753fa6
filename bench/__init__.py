"""Benchmark of triage-bot: intake throughput (with and without the workers running), webhook-to-ticket latency,
Jira calls per ticket, customer reports (intake with warm sessions, the cost of a cold session check,
report-to-ticket latency), peak memory; and the storms of issue 9: a steady 500 alerts/s, a storm into a
rate-limited Jira, a Jira outage followed by a rate limit, 50,000 alerts over keep-alive connections (every post's
fate, the RSS of all the bot's processes), scale-out with worker processes on PostgreSQL, and the cost of claiming
a job against the backlog's size.

Run ``.venv/bin/python -m bench`` (``--quick`` for a short smoke run, ``--only`` to pick sections). Every figure
is printed next to a baseline measured in the same run; the same figures are written to ``bench/results.json``.
"""
