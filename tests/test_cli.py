"""The command line as ops use it: config errors, sync summaries, status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors.moneybird.simulator import MoneybirdSimulator, SimulatorServer
from tests.conftest import TOKEN, TOKEN_ENV
from workers.cli import cli


def write_config(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def good_config(
    tmp_path: Path, server: SimulatorServer, simulator: MoneybirdSimulator, database_url: str
) -> Path:
    return write_config(
        tmp_path / "invoice-sync.toml",
        f"""
database_url = "{database_url}"

[[sources]]
name = "acme"
kind = "moneybird"
base_url = "{server.base_url}"
administration_id = "{simulator.administration_id}"
token_env = "{TOKEN_ENV}"
since = "2020-01-01"
interval = "5m"
rate_limit = 150
rate_window = "5m"
""",
    )


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


CONFIG_ERRORS = [
    ("", None, "config file not found"),
    ("database_url = [", "broken.toml", "not valid TOML"),
    (
        '[[sources]]\nname = "acme"\nkind = "exact"\nbase_url = "http://x"\ntoken_env = "T"\n',
        "c.toml",
        "source 'acme': kind: unknown kind 'exact'",
    ),
    (
        '[[sources]]\nname = "acme"\nkind = "moneybird"\nbase_url = "http://x"\ntoken_env = "T"\n',
        "c.toml",
        "source 'acme': administration_id",
    ),
    (
        '[[sources]]\nname = "acme"\nkind = "moneybird"\nbase_url = "http://x"\ntoken_env = "T"\nadministration_id = "1"\nintervall = "5m"\n',
        "c.toml",
        "source 'acme': intervall: unknown key",
    ),
    (
        '[[sources]]\nname = "acme"\nkind = "moneybird"\nbase_url = "http://x"\ntoken_env = "T"\nadministration_id = "1"\ninterval = "soon"\n',
        "c.toml",
        "source 'acme': interval:",
    ),
    (
        '[[sources]]\nname = "acme"\nkind = "moneybird"\nbase_url = "http://x"\nadministration_id = "1"\n',
        "c.toml",
        "source 'acme': token_env: required key is missing",
    ),
]


@pytest.mark.parametrize(("body", "filename", "expected"), CONFIG_ERRORS)
def test_config_errors_are_one_clear_line_and_exit_2(
    tmp_path: Path, body: str, filename: str | None, expected: str
) -> None:
    path = tmp_path / (filename or "missing.toml")
    if filename:
        write_config(path, body)

    code, out, err = run("--config", str(path), "sync", "--inline")

    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0] and expected in lines[0]


def test_an_unset_token_variable_names_the_source_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    path = write_config(
        tmp_path / "c.toml",
        f'database_url = "sqlite:///{tmp_path}/m.db"\n[[sources]]\nname = "acme"\nkind = "moneybird"\n'
        'base_url = "http://127.0.0.1:9"\ntoken_env = "NOPE_TOKEN"\nadministration_id = "1"\n',
    )

    code, _out, err = run("sync", "--inline", "--config", str(path))

    assert code == 2
    assert err.strip() == (
        f"invoice-sync: config error: {path}: source 'acme': token_env: environment variable "
        "NOPE_TOKEN is not set"
    )


def test_config_is_found_through_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path / "env.toml", f'database_url = "sqlite:///{tmp_path}/m.db"\n')
    monkeypatch.setenv("INVOICE_SYNC_CONFIG", str(path))

    code, out, _err = run("status", "--json")

    body = json.loads(out)
    assert code == 0 and body["sources"] == []
    assert set(body["queue"]) == {"ready", "delayed"}


def test_sync_prints_a_summary_and_status_reports_it(
    tmp_path: Path,
    server: SimulatorServer,
    simulator: MoneybirdSimulator,
    database_url: str,
    token: str,
) -> None:
    path = good_config(tmp_path, server, simulator, database_url)

    code, out, err = run("--config", str(path), "sync", "--inline", "--source", "acme")

    assert code == 0, err
    header, row = out.splitlines()[:2]
    assert header.split() == [
        "source",
        "stream",
        "listed",
        "new",
        "changed",
        "unchanged",
        "deleted",
        "restored",
        "quarantined",
        "requests",
        "seconds",
        "status",
    ]
    assert row.split()[:10] == ["acme", "invoices", "120", "120", "0", "0", "0", "0", "0", "3"]
    assert row.split()[-1] == "ok"

    code, out, _ = run("--config", str(path), "status", "--json")
    status = json.loads(out)["sources"][0]
    assert code == 0
    assert (status["source"], status["mirrored"], status["deleted"], status["quarantined"]) == (
        "acme",
        120,
        0,
        0,
    )
    assert status["last_success_at"] is not None and status["last_error"] is None

    code, out, _ = run("--config", str(path), "status")
    assert "acme: last successful sync" in out and "mirrored 120" in out


def test_a_failed_source_gives_exit_code_1(
    tmp_path: Path,
    server: SimulatorServer,
    simulator: MoneybirdSimulator,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "not-the-token")
    path = good_config(tmp_path, server, simulator, database_url)

    code, out, _ = run("--config", str(path), "sync", "--inline")

    assert code == 1
    assert "failed" in out and "401" in out
    assert TOKEN not in out


def test_unknown_source_name_is_a_config_error(
    tmp_path: Path, server: SimulatorServer, simulator: MoneybirdSimulator, token: str
) -> None:
    path = good_config(tmp_path, server, simulator, f"sqlite:///{tmp_path}/m.db")

    code, _out, err = run("--config", str(path), "sync", "--inline", "--source", "nope")

    assert code == 2 and "no source named 'nope'" in err


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.toml", f'database_url = "sqlite:///{tmp_path}/m.db"\n')
    for _ in range(2):
        code, out, _ = run("--config", str(path), "db", "upgrade")
        assert code == 0 and "latest" in out


def test_status_check_fails_for_a_stale_source_and_passes_after_a_sync(
    tmp_path: Path,
    server: SimulatorServer,
    simulator: MoneybirdSimulator,
    database_url: str,
    token: str,
) -> None:
    path = good_config(tmp_path, server, simulator, database_url)

    code, out, err = run("--config", str(path), "status", "--check")
    assert code == 1 and "STALE" in out and "stale: acme" in err

    run("--config", str(path), "sync", "--inline")
    code, out, _err = run("--config", str(path), "status", "--check", "--json")
    report = json.loads(out)["sources"][0]
    assert code == 0
    assert report["stale"] is False and report["running"] is False
    assert 0 <= report["last_success_age_seconds"] < 60
    assert report["queued_messages"] == 0


def test_enqueueing_without_redis_says_so_in_one_line(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "c.toml",
        f'database_url = "sqlite:///{tmp_path}/m.db"\nredis_url = "redis://:secret-pw@127.0.0.1:9/0"\n'
        '[[sources]]\nname = "acme"\nkind = "moneybird"\nbase_url = "http://127.0.0.1:9"\n'
        'token_env = "T"\nadministration_id = "1"\n',
    )

    import subprocess
    import sys

    # a subprocess: enqueueing sets the process-wide dramatiq broker
    done = subprocess.run(
        [sys.executable, "-m", "workers", "--config", str(path), "sync"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    code, err = done.returncode, done.stderr

    assert code == 1
    assert "cannot enqueue on Redis at redis://:***@127.0.0.1:9/0" in err
    assert "secret-pw" not in err


def test_the_demo_runs_end_to_end(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"

    code, out, err = run("demo", "--invoices", "80", "--database", str(database))

    assert code == 0, err
    first, second = out.split("second sync")
    rows = {line.split()[0]: line.split() for line in first.splitlines() if " invoices " in line}
    assert rows["demo"][:4] == ["demo", "invoices", "80", "80"]
    assert rows["demo-venue"][3] == rows["demo-venue"][2], "the first sync of each is all new"
    assert rows["demo-office"][3] == rows["demo-office"][2]
    assert rows["demo-studio"][3] == rows["demo-studio"][2]
    moneybird, recras, wefact, flowtly = (line.split() for line in second.splitlines()[2:6])
    assert moneybird[:4] == ["demo", "invoices", "81", "4"]  # listed, new
    assert recras[:5] == ["demo-venue", "invoices", "27", "2", "3"]  # listed, new, changed
    assert wefact[:2] == ["demo-office", "invoices"] and wefact[3:5] == ["2", "4"]
    assert flowtly[:7] == ["demo-studio", "invoices", "25", "1", "2", "22", "2"]
    assert "status demo: mirrored 81, deleted 3, quarantined 0" in out
    assert "status demo-venue: mirrored 27, deleted 1, quarantined 0" in out
    assert "status demo-office: mirrored 28, deleted 0, quarantined 0" in out
    assert "status demo-studio: mirrored 25, deleted 2, quarantined 0" in out
    assert database.exists()
    # the bank pays three invoices, reconciliation matches them, write-back registers them
    bank = out.split("at the bank:")[1]
    assert "3 new, 0 already present; balance check: ok" in bank
    assert "automatic matches: reference 3" in bank and "bank_payment_not_recorded 3" in bank
    plan, sent = bank.split("write-back, the plan")[1].split("write-back, sent")
    assert plan.count("rule reference") == 3
    assert sent.count("-> sent: payment ") == 3
    assert "3 payment(s) confirmed" in sent
    assert "reconciled 3" in sent.split("confirmed")[1]
    assert (tmp_path / "demo-rabobank.csv").exists()


def test_an_unknown_log_level_is_a_one_line_usage_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "workers", "--log-level", "foo", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "Invalid value for '--log-level': 'foo' is not one of" in done.stderr


def test_sync_without_a_running_worker_says_how_to_start_one(
    tmp_path: Path, server: SimulatorServer, simulator: MoneybirdSimulator, database_url: str
) -> None:
    import os
    import subprocess
    import sys
    import uuid

    import redis

    namespace = f"isync-test-{uuid.uuid4().hex[:12]}"
    path = good_config(tmp_path, server, simulator, database_url)
    path.write_text(
        f'redis_namespace = "{namespace}"\nmetrics_port = 0\n' + path.read_text(), "utf-8"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-m", "workers", "--config", str(path), "sync"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, TOKEN_ENV: TOKEN},
        )
        queued = redis.Redis.from_url("redis://127.0.0.1:6379/0").llen(f"{namespace}:invoice-sync")
    finally:
        client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        keys = list(client.scan_iter(f"{namespace}*"))
        if keys:
            client.delete(*keys)

    assert done.returncode == 1
    assert "acme: cycle enqueued" in done.stdout
    assert "no worker is running" in done.stderr and "invoice-sync worker" in done.stderr
    assert queued == 1, "the message still waits for a worker"


def test_sync_inline_stops_starting_batches_at_its_timeout(
    tmp_path: Path,
    server: SimulatorServer,
    simulator: MoneybirdSimulator,
    database_url: str,
    token: str,
) -> None:
    path = good_config(tmp_path, server, simulator, database_url)
    path.write_text(path.read_text().replace("rate_limit = 150", "rate_limit = 100000"), "utf-8")
    for _ in range(400):
        simulator.create_invoice()
    simulator.add_fault("slow", endpoint="fetch", delay=1.5, times=3)

    code, out, _err = run("--config", str(path), "sync", "--inline", "--timeout", "0.5")

    assert code == 1
    header, row = out.splitlines()[:2]
    values = dict(zip(header.split(), row.split(), strict=True))
    assert values["status"] == "interrupted"
    assert "stopped at the time limit after " in out and " of 520 invoices to fetch" in out
    posts = len([m for m, _p, _n in simulator.requests if m == "POST"])
    assert posts <= 3, "no batch starts after the time limit (only those already running)"


def test_the_command_ends_with_its_output_whole_and_its_exit_code(tmp_path: Path) -> None:
    """`main` ends the process without the interpreter's teardown; what was printed must still
    arrive in full, and a reader that went away (`| head`) is no traceback."""
    import subprocess
    import sys

    config = tmp_path / "invoice-sync.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "m.db"}"\n')
    command = [sys.executable, "-m", "workers", "--config", str(config)]
    done = subprocess.run(
        [*command, "status", "--json"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert isinstance(json.loads(done.stdout), dict)

    reader = subprocess.Popen(
        [*command, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.close()
    assert reader.wait(timeout=60) == 1  # click's answer to a closed pipe
    assert "Traceback" not in reader.stderr.read()
