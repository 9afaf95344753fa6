"""The command line as people expect one: help everywhere, exit codes that mean something (0 success, 1 failed,
2 usage), one line for an expected failure, a start that checks before it changes anything and says exactly what is
real. Each runs the real CLI as a subprocess."""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bot.cli import parser
from bot.settings import package_version
from tests.conftest import Emulators
from tests.harness import JIRA_TOKEN, JIRA_USER, WEBHOOK_TOKEN, BotProcess, free_port, postgres_database, run_cli

SANDBOX_TOKEN = "sandbox-webhook-token"


cli = run_cli


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The failure said in one line, with no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_every_option_has_help_and_each_subcommand_its_own() -> None:
    def walk(command: argparse.ArgumentParser, name: str) -> None:
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}")
            elif action.help != argparse.SUPPRESS:
                assert action.help, f"`{name}` {action.option_strings or action.dest} has no help"

    walk(parser(), "triage-bot")
    upgrade = cli("db", "upgrade", "--help")
    assert upgrade.returncode == 0 and upgrade.stdout.startswith("usage: triage-bot db upgrade")
    assert "Migrate the database" in upgrade.stdout
    jobs = " ".join(cli("jobs", "--help").stdout.split())
    assert "--status STATUS comma list of: pending, running, dead, refused, done (default: dead,refused)" in jobs
    version = cli("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"triage-bot {package_version()}")
    assert "complete -o" in cli("completion", "bash").stdout  # a script bash takes


def test_exit_codes_mean_something(tmp_path: Path) -> None:
    sqlite = {"TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path}/bot.db"}
    absent = cli("db", "current", **sqlite)
    assert absent.returncode == 1 and "there is no database at" in _one_line(absent)
    assert not (tmp_path / "bot.db").exists()  # asking made nothing
    with postgres_database() as url:
        unmigrated = cli("db", "current", TRIAGE_DATABASE_URL=url)
        assert unmigrated.returncode == 1 and "run `triage-bot db upgrade`" in unmigrated.stdout
        assert cli("db", "upgrade", TRIAGE_DATABASE_URL=url).returncode == 0
        current = cli("db", "current", TRIAGE_DATABASE_URL=url)
        assert current.returncode == 0 and "database schema current" in current.stdout
    usage = cli("jobs", "--status", "bogus", **sqlite)
    assert usage.returncode == 2 and "no status bogus: choose from pending,running,dead,refused,done" in usage.stderr
    assert cli("jobs", "retry", **sqlite).returncode == 2


def test_a_database_out_of_reach_is_said_in_one_line() -> None:
    url = f"postgresql://triage:hunter2-secret@127.0.0.1:{free_port()}/triage"
    for command in (("db", "upgrade"), ("worker",)):
        result = cli(*command, TRIAGE_DATABASE_URL=url, TRIAGE_WEBHOOK_TOKEN=WEBHOOK_TOKEN)
        assert result.returncode == 1, (command, result.stderr)
        line = _one_line(result)
        assert line.startswith("triage-bot: cannot use the database at postgresql+psycopg://triage:***@127.0.0.1:")
        assert "Connection refused" in line and "hunter2" not in line


def test_route_says_why_no_sender_fits(tmp_path: Path) -> None:
    payload = tmp_path / "odd.json"
    payload.write_text(json.dumps({"routing_key": "k", "event_action": "explode", "payload": {"summary": "s"}}))
    result = cli("route", str(payload))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"triage-bot: {payload} fits none of the senders the bot takes:",
        "  Alertmanager (POST /alerts/alertmanager): missing groupKey, version, alerts",
        "  Grafana (POST /alerts/grafana): missing groupKey, alerts",
        "  Events API v2 (POST /alerts/events): missing payload.source, payload.severity; "
        "event_action should be 'trigger', 'acknowledge' or 'resolve'",
    ]
    missing = cli("route", str(tmp_path / "nowhere.json"))
    assert missing.returncode == 2 and _one_line(missing).endswith("No such file or directory")


def test_db_upgrade_makes_no_folder_outside_the_current_one(tmp_path: Path) -> None:
    here, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    here.mkdir()
    result = cli("db", "upgrade", cwd=here, TRIAGE_DATABASE_URL=f"sqlite:///{elsewhere}/deep/bot.db")
    assert result.returncode == 1
    assert f"the folder {elsewhere}/deep of the SQLite database does not exist" in _one_line(result)
    assert not elsewhere.exists()
    inside = cli("db", "upgrade", cwd=here, TRIAGE_DATABASE_URL="sqlite:///var/bot.db")
    assert inside.returncode == 0 and "created the folder var for the database bot.db" in inside.stderr
    assert (here / "var" / "bot.db").exists()


def test_a_second_serve_changes_nothing_and_demo_checks_its_token_first(tmp_path: Path) -> None:
    """`make run` twice: the second finds the port taken before it deletes the sandbox's database. And `demo` with
    a wrong token says so before it creates anything."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    first = BotProcess(env={}, log_path=tmp_path / "first.log", cwd=tmp_path)
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("TRIAGE_")}  # full sandbox
    try:
        first.start()
    finally:
        os.environ.update(saved)
    try:
        database = tmp_path / "var" / "sandbox.db"
        inode = database.stat().st_ino
        second = cli("serve", cwd=tmp_path, TRIAGE_PORT=str(first.port))
        assert second.returncode == 1
        assert f"cannot listen on 127.0.0.1:{first.port}" in _one_line(second)
        assert database.stat().st_ino == inode  # the running server's database is still the CLI's
        assert cli("db", "current", cwd=tmp_path, TRIAGE_DATABASE_URL="sqlite:///var/sandbox.db").returncode == 0

        for demo in (("demo",), ("demo", "--report")):
            refused = subprocess.run(
                [sys.executable, "-m", "bot.cli", *demo, "--url", first.url, "--token", "not-the-token-0123456789"],
                capture_output=True,
                text=True,
                env=clean,
                timeout=60,
                check=False,
            )
            assert refused.returncode == 1
            assert "refused the token (401)" in _one_line(refused)
        with httpx.Client(base_url=first.url, headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"}) as client:
            assert client.get("/api/tickets").json()["tickets"] == []
            assert client.get("/sandbox/mail/_emulator/messages").json() == []
    finally:
        first.kill()


def _banner(env: dict[str, str], cwd: Path, terminal: bool = False, until: str = "try it") -> str:
    """What `serve` prints as it starts, up to ``until`` (then it is stopped); on a terminal if ``terminal``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    master, slave = pty.openpty() if terminal else os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve"],
        env=clean | env | {"TRIAGE_PORT": str(free_port())},
        stdout=slave,
        stderr=slave,
        cwd=cwd,
        start_new_session=True,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 30
    try:
        while until.encode() not in seen and time.monotonic() < deadline and proc.poll() is None:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=30)
        os.close(master)
    return seen.decode(errors="replace").replace("\r\n", "\n")


def test_the_banner_says_what_is_real_and_checks_a_real_jira(tmp_path: Path, emulators: Emulators) -> None:
    real_jira = {
        "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "TRIAGE_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "TRIAGE_JIRA_URL": emulators.jira_url,
        "TRIAGE_JIRA_USER": JIRA_USER,
        "TRIAGE_JIRA_TOKEN": "a-token-jira-refuses",
    }
    refused = _banner(real_jira, tmp_path, until="workers")
    assert "WARNING: Jira refused the credentials (401)" in refused
    assert f"  Jira      real      {emulators.jira_url} (NOT WORKING: Jira refused the credentials (401)" in refused
    assert "  Slack     emulated  http://127.0.0.1:" in refused
    assert "PARTLY EMULATED: Slack emulated here" in refused
    assert "nothing is sent outside" not in refused and "SANDBOX MODE" not in refused
    assert "  mail      off       no e-mail is sent to customers" in refused

    out_of_reach = _banner(
        real_jira | {"TRIAGE_JIRA_URL": f"http://127.0.0.1:{free_port()}"}, tmp_path, until="workers"
    )
    assert "WARNING: cannot reach Jira" in out_of_reach

    # Signed in, and on a terminal: the logs are lines a person reads, not JSON.
    working = _banner(real_jira | {"TRIAGE_JIRA_TOKEN": JIRA_TOKEN}, tmp_path, terminal=True, until="triage-bot ready")
    assert f"  Jira      real      {emulators.jira_url} (signed in as {JIRA_USER})" in working
    ready = next(line for line in working.splitlines() if "triage-bot ready" in line)
    assert not ready.lstrip().startswith("{") and " INFO " in ready and "triage.server  triage-bot ready" in ready


def test_the_sandbox_banner_prints_commands_that_work(tmp_path: Path) -> None:
    banner = _banner({}, tmp_path)
    assert "SANDBOX MODE: Jira and Slack are emulated here; nothing is sent outside this machine." in banner
    command = next(line for line in banner.splitlines() if line.startswith("try it"))
    printed = command.split(":", 1)[1].split()
    assert printed[:3] == [str(Path(sys.executable)), "-m", "bot.cli"] and printed[3] == "demo"
    assert "Connection lost" not in banner and "mail.log" not in banner  # aiosmtpd's noise at start
