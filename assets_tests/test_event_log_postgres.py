"""An event log read from PostgreSQL and the scores written back to it, on a local server: the source is a
table read in one snapshot (its ``count(*)`` checked against what was loaded), the credentials come through
``{{ env(...) }}``, and the scores of a window are replaced in one transaction, so a rerun leaves one row
per user and window."""

from __future__ import annotations

import dagster as dg
import pyarrow.csv as pacsv
import pytest

from assets_tests.local_servers import postgres_cluster
from bench.event_log_project import load, materialize, write_project
from churn_dagster.components.event_log_spec import EventLogConfigError
from churn_dagster.synth.event_logs import LogSpec, generate_log

YAML = """\
type: churn_dagster.components.EventLogComponent
attributes:
  name: shopdb
  source:
    postgres:
      uri: "{{{{ env('SHOP_DB_URI') }}}}"
      table: {table}
  mapping:
    user_id: customer_id
    event_time: order_date
    value: amount
    event_id: order_id
  windows:
    start: "2024-01-01"
    end: "2024-04-29"
    grain: week
  scores_table:
    uri: "{{{{ env('SHOP_DB_URI') }}}}"
    table: churn_scores
"""


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    import adbc_driver_postgresql.dbapi as pg

    folder = tmp_path_factory.mktemp("pglog")
    log = folder / "purchases.csv"
    generate_log(LogSpec("purchases", users=2000, days=120, seed=3), log)
    with postgres_cluster() as server:
        server.create_database("shop")
        uri = f"postgresql://{server.user}:{server.password}@127.0.0.1:{server.port}/shop"
        table = pacsv.read_csv(log, convert_options=pacsv.ConvertOptions(
            column_types={"order_date": "string", "customer_id": "string", "order_id": "string"}))
        with pg.connect(uri) as conn, conn.cursor() as cur:
            cur.adbc_ingest("orders", table, mode="create")
            conn.commit()
        yield uri, table.num_rows


def _count(uri: str, sql: str) -> list:
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(uri) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_a_postgres_table_in_and_the_scores_back_out(tmp_path, database, monkeypatch):
    uri, rows = database
    monkeypatch.setenv("SHOP_DB_URI", uri)
    monkeypatch.setenv("CHURN_MIN_VALIDATION_POSITIVES", "10")
    monkeypatch.setenv("CHURN_MIN_VALIDATION_NEGATIVES", "10")
    root, package = write_project(tmp_path, {"shopdb": YAML.format(table="public.orders")})
    defs = load(root, package)
    instance = dg.DagsterInstance.ephemeral()
    events = materialize(defs, [["shopdb", "events"]], instance)
    meta = events.get_asset_materialization_events()[0].materialization.metadata
    assert meta["records_counted"].value == rows and meta["dagster/row_count"].value == rows
    keys = defs.resolve_asset_graph().get(dg.AssetKey(["shopdb", "cohorts"])).partitions_def.get_partition_keys()
    assert materialize(defs, [["shopdb", "cohorts"]], instance, partition_range=(keys[0], keys[-1])).success
    assert materialize(defs, [["shopdb", "churn_rfm_gbm"], ["shopdb", "churn_logreg"]], instance,
                       partition_key="2024-03-25").success
    for _ in range(2):  # a rerun replaces the window's rows
        assert materialize(defs, [["shopdb", "churn_scores"]], instance, partition_key="2024-04-08").success
    import pandas as pd

    written = _count(uri, "SELECT count(*), count(DISTINCT user_id), min(cohort_day), max(cohort_day), "
                          "min(p_churn) >= 0 AND max(p_churn) <= 1 FROM churn_scores")
    expected = pd.read_parquet(tmp_path / "data" / "event_logs" / "shopdb" / "scores" / "2024-04-08.parquet")
    assert written[0][0] == written[0][1] == len(expected) > 0
    assert str(written[0][2]) == str(written[0][3]) == "2024-04-08" and written[0][4] is True


def test_an_unreachable_database_is_one_line_naming_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOP_DB_URI", "postgresql://nobody:x@127.0.0.1:9/shop")
    root, package = write_project(tmp_path, {"shopdb": YAML.format(table="public.orders")})
    with pytest.raises(Exception) as info:
        load(root, package)
    error = info.value
    while error is not None and not isinstance(error, EventLogConfigError):
        error = error.__cause__ or error.__context__
    assert error is not None and "source.uri: cannot connect to PostgreSQL" in str(error)
    assert "\n" not in str(error)
