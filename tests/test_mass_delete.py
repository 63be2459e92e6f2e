"""The mass-deletion guard: a listing that suddenly lacks most invoices marks nothing deleted.

An outage answering an empty list, a wrong filter or a changed `since` must not empty the
reporting database until the next good cycle; ops decide with `--allow-mass-delete`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors.moneybird.simulator import MoneybirdSimulator, SimulatorServer
from tests.conftest import TOKEN_ENV
from tests.mirror_check import assert_mirror_equals, mirror_rows
from workers.cli import cli
from workers.engine import check_mass_deletion


def config(
    tmp_path: Path,
    server: SimulatorServer,
    simulator: MoneybirdSimulator,
    database_url: str,
    extra: str = "",
) -> str:
    path = tmp_path / "invoice-sync.toml"
    path.write_text(
        f'database_url = "{database_url}"\n[[sources]]\nname = "acme"\nkind = "moneybird"\n'
        f'base_url = "{server.base_url}"\nadministration_id = "{simulator.administration_id}"\n'
        f'token_env = "{TOKEN_ENV}"\nsince = "2020-01-01"\nrate_limit = 100000\n{extra}'
    )
    return str(path)


def cli_run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def summary(out: str) -> dict[str, str]:
    header, row = out.splitlines()[:2]
    return dict(zip(header.split(), row.split(), strict=True))


def test_a_listing_lacking_most_invoices_is_blocked_until_ops_allow_it(
    tmp_path: Path,
    server: SimulatorServer,
    simulator: MoneybirdSimulator,
    database_url: str,
    token: str,
) -> None:
    path = config(tmp_path, server, simulator, database_url)
    assert cli_run("--config", path, "sync", "--inline")[0] == 0
    for remote_id in simulator.ids()[:100]:
        simulator.delete_invoice(remote_id)
    simulator.create_invoice()

    code, out, _err = cli_run("--config", path, "sync", "--inline")

    assert code == 1
    row = summary(out)
    assert (row["status"], row["deleted"], row["new"]) == ("blocked", "0", "0")
    assert (
        "acme: MassDeletionBlocked: mass deletion guard: the listing lacks 100 of 120 live "
        "invoices (83%, more than mass_delete_fraction = 0.5 allows); nothing was marked "
        "deleted or fetched. If the source really deleted them, run `invoice-sync sync "
        "--inline --source acme --allow-mass-delete`" in out
    )
    from workers.app import App
    from workers.config import load_config

    engine = App.open(load_config(path)).engine
    assert sum(1 for r in mirror_rows(engine).values() if r["deleted_at"]) == 0
    code, out, err = cli_run("--config", path, "status", "--check", "--json")
    assert code == 1 and "blocked: acme" in err
    report = json.loads(out)["sources"][0]
    assert report["blocked"] is True and report["last_status"] == "blocked"
    assert "mass deletion guard" in report["last_error"]
    assert cli_run("--config", path, "sync", "--inline")[0] == 1, "blocked, every cycle"

    code, out, _err = cli_run(
        "--config", path, "sync", "--inline", "--source", "acme", "--allow-mass-delete"
    )

    assert code == 0, out
    row = summary(out)
    assert (row["status"], row["deleted"], row["new"]) == ("ok", "100", "1")
    assert_mirror_equals(engine, simulator)
    assert cli_run("--config", path, "status", "--check")[0] == 0
    engine.dispose()


def test_an_empty_listing_marks_nothing_deleted(
    tmp_path: Path,
    server: SimulatorServer,
    simulator: MoneybirdSimulator,
    database_url: str,
    token: str,
) -> None:
    path = config(tmp_path, server, simulator, database_url)
    cli_run("--config", path, "sync", "--inline")
    for remote_id in simulator.ids():
        simulator.delete_invoice(remote_id)

    code, out, _err = cli_run("--config", path, "sync", "--inline")

    assert code == 1 and summary(out)["status"] == "blocked"
    assert "lacks 120 of 120 live invoices (100%" in out


def test_the_fraction_is_a_config_key(
    tmp_path: Path,
    server: SimulatorServer,
    simulator: MoneybirdSimulator,
    database_url: str,
    token: str,
) -> None:
    path = config(tmp_path, server, simulator, database_url, "mass_delete_fraction = 0.9\n")
    cli_run("--config", path, "sync", "--inline")
    for remote_id in simulator.ids()[:100]:
        simulator.delete_invoice(remote_id)

    code, out, _err = cli_run("--config", path, "sync", "--inline")

    assert code == 0 and summary(out)["deleted"] == "100"


def test_allow_mass_delete_needs_inline(
    tmp_path: Path, server: SimulatorServer, simulator: MoneybirdSimulator, database_url: str
) -> None:
    path = config(tmp_path, server, simulator, database_url)
    code, _out, err = cli_run("--config", path, "sync", "--allow-mass-delete")
    assert code == 2 and "--allow-mass-delete needs --inline" in err


@pytest.mark.parametrize(
    ("vanished", "live", "fraction", "blocked"),
    [
        (99, 99, 0.5, False),  # fewer than 100 never trips
        (100, 199, 0.5, True),
        (100, 200, 0.5, False),  # exactly half is allowed
        (101, 200, 0.5, True),
        (500, 1000, 0.6, False),
        (700, 1000, 0.6, True),
        (1000, 1000, None, False),  # --allow-mass-delete
    ],
)
def test_the_guard_trips_above_the_fraction_and_at_least_100(
    vanished: int, live: int, fraction: float | None, blocked: bool
) -> None:
    from workers.engine import MassDeletionBlocked

    if blocked:
        with pytest.raises(MassDeletionBlocked, match=f"lacks {vanished:,} of {live:,}"):
            check_mass_deletion("acme", vanished, live, fraction)
    else:
        check_mass_deletion("acme", vanished, live, fraction)
