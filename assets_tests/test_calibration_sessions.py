"""The session figures of ``churn-dagster calibrate`` (``synth/calibrate_sessions.py``): by hand on a small
log, and the stored targets reproduced from the real head (skipped without ``../shared``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Imp, write_impressions, write_snapshots

from churn_dagster.synth.calibrate import connect
from churn_dagster.synth.calibrate_sessions import TARGETS, session_figures
from churn_dagster.synth.session_breakdown import session_breakdown

HEAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "ncm_head_10k"


def test_session_figures_by_hand(tmp_path):
    # u1: a session of requests at 10:00, 10:00 (same request), 10:12, 10:40 (40 minutes, the gaps under 30),
    # then one at 12:00 (a new session, 80 minutes after the first ended); u2: one request on day 2.
    # The log ends at 13:00 on day 2 (u2's request), so every request of day 1 is uncensored at every horizon.
    write_impressions(tmp_path, [
        Imp("u1", "2019-11-01 10:00:00", position=1), Imp("u1", "2019-11-01 10:00:00", position=2),
        Imp("u1", "2019-11-01 10:12:00", position=1), Imp("u1", "2019-11-01 10:40:00", position=1),
        Imp("u1", "2019-11-01 12:00:00", position=1), Imp("u2", "2019-11-02 13:00:00", position=1),
    ])
    write_snapshots(tmp_path, ["u1", "u2"])
    f = session_figures(connect(tmp_path))
    # Sessions: u1 [10:00-10:40] with 3 requests, u1 [12:00] with 1, u2 [13:00] with 1.
    assert f["requests per session, mean"] == pytest.approx(5 / 3)
    assert f["sessions of one request, share"] == pytest.approx(2 / 3)
    assert f["sessions of 30+ minutes, share"] == pytest.approx(1 / 3)
    # Requests (distinct times) of day 1: 10:00 goes on 40 minutes, 10:12 28, 10:40 and 12:00 none; u2's is
    # censored (nothing after it).
    assert f["requests continuing 10+ minutes, share"] == pytest.approx(2 / 4)
    assert f["requests continuing 20+ minutes, share"] == pytest.approx(2 / 4)
    assert f["requests continuing 30+ minutes, share"] == pytest.approx(1 / 4)
    # One gap between sessions: 10:40 to 12:00 = 1.333 hours.
    assert f["hours between sessions, median"] == pytest.approx(80 / 60)
    # Users first seen on dt 1-7: u1 active on 1 day, u2 on 1.
    assert f["active days of the first 14, mean (dt 1-7 users)"] == pytest.approx(1.0)


@pytest.mark.skipif(not HEAD.exists(), reason=f"{HEAD} is absent (the real head is not part of the repository)")
def test_the_targets_are_the_real_heads_figures():
    found = session_figures(connect(HEAD))
    assert set(found) == set(TARGETS)
    for name, target in TARGETS.items():
        assert found[name] == pytest.approx(target, rel=1e-3), name


def test_session_breakdown_by_hand(tmp_path):
    # u1 and u2 as above, each active on one day; u3 on dt 12 and 13, first seen too late to be a new user.
    # The log now ends at 09:00 on dt 13, so u2's request is uncensored (it goes on 0 minutes) and so is u3's first.
    write_impressions(tmp_path, [
        Imp("u1", "2019-11-01 10:00:00", position=1), Imp("u1", "2019-11-01 10:00:00", position=2),
        Imp("u1", "2019-11-01 10:12:00", position=1), Imp("u1", "2019-11-01 10:40:00", position=1),
        Imp("u1", "2019-11-01 12:00:00", position=1), Imp("u2", "2019-11-02 13:00:00", position=1),
        Imp("u3", "2019-11-12 09:00:00", position=1), Imp("u3", "2019-11-13 09:00:00", position=1),
    ])
    write_snapshots(tmp_path, ["u1", "u2", "u3"])
    rows = {r["group"]: r for r in session_breakdown(connect(tmp_path))}
    assert set(rows) == {"1 active day", "2-3 active days", "new users, first 14 days"}
    # u1's sessions of 3 and 1 requests, u2's of 1; 5 and 1 impressions; of the 5 requests 2 go on 10 minutes
    # (10:00 and 10:12), 1 goes on 30 (10:00).
    for group in ("1 active day", "new users, first 14 days"):
        r = rows[group]
        assert (r["users"], r["sessions"]) == (2, 3), group
        assert r["requests per session"] == pytest.approx(5 / 3)
        assert r["impressions per user, median"] == pytest.approx(3.0)
        assert r["requests continuing 10+ minutes"] == pytest.approx(2 / 5)
        assert r["requests continuing 30+ minutes"] == pytest.approx(1 / 5)
    u3 = rows["2-3 active days"]
    assert (u3["users"], u3["sessions"], u3["requests per session"]) == (1, 2, 1.0)
    assert u3["requests continuing 10+ minutes"] == u3["requests continuing 30+ minutes"] == 0.0


@pytest.mark.skipif(not HEAD.exists(), reason=f"{HEAD} is absent (the real head is not part of the repository)")
def test_the_heads_new_users_as_docs_synthetic_quotes_them():
    new = next(r for r in session_breakdown(connect(HEAD)) if r["group"] == "new users, first 14 days")
    assert (new["users"], new["sessions"]) == (219, 583)
    assert new["requests per session"] == pytest.approx(3.208, abs=5e-4)
    assert new["requests continuing 10+ minutes"] == pytest.approx(0.0898, abs=5e-4)
    assert new["requests continuing 30+ minutes"] == pytest.approx(0.0225, abs=5e-4)


def test_the_command_prints_both_tables_and_fails_on_a_miss(tmp_path):
    write_impressions(tmp_path, [Imp("u1", "2019-11-01 10:00:00"), Imp("u1", "2019-11-01 10:12:00"),
                                 Imp("u2", "2019-11-02 13:00:00")])
    write_snapshots(tmp_path, ["u1", "u2"])
    done = subprocess.run([str(Path(sys.executable).with_name("churn-dagster")), "calibrate", "--source", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1  # three impressions are nothing like the real log
    assert "pooled CTR" in done.stdout and "Sessions (targets from the real log's first 10,000 rows" in done.stdout
    line = next(x for x in done.stdout.splitlines() if x.startswith("requests per session, mean"))
    assert line.split()[4] == "1.5"  # two sessions, u1's with two requests


def test_a_twin_of_20000_users_meets_every_session_target(tmp_path):
    """The generator's session tail (docs/SYNTHETIC.md): every session figure within the +-30 % the realistic-twin
    issue sets, on the quick start's 20,000 users."""
    from churn_dagster.synth.calibrate_sessions import calibration_session_report
    from churn_dagster.synth.generator import generate

    generate(tmp_path, users=20_000, seed=0)
    report = calibration_session_report(tmp_path)
    misses = [f"{f.name}: {f.value:.4g} against {f.target:.4g}" for f in report if not f.within_tolerance]
    assert not misses, misses
