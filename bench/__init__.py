"""Benchmark of triage-bot: intake throughput, webhook-to-ticket latency, Jira calls per ticket, customer reports
(intake with warm sessions, the cost of a cold session check, report-to-ticket latency), peak memory.

Run ``.venv/bin/python -m bench`` (``--quick`` for a short smoke run). Every figure is printed next to a
baseline measured in the same run; the same figures are written to ``bench/results.json``.
"""
