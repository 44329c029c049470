"""Shared fixtures: a temporary lake, a DuckDB connection, and a writer of impression files in the real format."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.domain.calendar import Calendar
from churn_dagster.storage.duck import DuckSettings, connect
from churn_dagster.storage.lake import Lake

SHANGHAI = timezone(timedelta(hours=8))
REAL_HEAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "ncm_head_10k"
CALENDAR = Calendar()


def require_real_head() -> Path:
    if not REAL_HEAD.exists():
        pytest.skip(f"{REAL_HEAD} is absent: the real 10k-row heads ship beside the repo, not in it")
    return REAL_HEAD


def tid(label: str) -> str:
    """A test's readable user or card label (``"A"``, ``"U1"``) as an ID of the published grammar
    (``ncm_format.ID_GRAMMAR``), which the loader requires: each letter is its two-digit place in the alphabet,
    each digit itself, and every digit is written as its token (``"A"`` is 01, ``"GCHC"``)."""
    digits = "".join(f"{ord(c.upper()) - ord('A') + 1:02d}" if c.isalpha() else c for c in label)
    token = "".join(fmt.ID_DIGIT_LETTERS[int(d)] + fmt.ID_TOKEN_END for d in digits)
    if not re.fullmatch(fmt.ID_GRAMMAR.pattern, token):
        raise ValueError(f"{label!r} is too long for a test ID ({fmt.MAX_ID_DIGITS} digits at most)")
    return token


@dataclass
class Imp:
    """One impression, given in Asia/Shanghai local time as the tests reason in it."""

    user: str
    local: str  # "2019-11-01 10:00:00"
    position: int = 1
    card: str = "GCHCIC"
    click: bool = False
    like: bool = False
    share: bool = False
    comment: bool = False
    view_comment: bool = False
    homepage: bool = False
    view_time: float | None = None
    detail: str | None = None  # the swipe-down list as published (a Python literal); written quoted

    @property
    def epoch_ms(self) -> int:
        return int(datetime.strptime(self.local, "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI).timestamp()) * 1000

    @property
    def dt(self) -> int:
        return CALENDAR.dt(datetime.strptime(self.local, "%Y-%m-%d %H:%M:%S").date())

    def csv_line(self) -> str:
        flag = lambda b: "1" if b else "0"  # noqa: E731
        view = "NA" if self.view_time is None else repr(self.view_time)
        detail = "NA" if self.detail is None else f'"{self.detail}"'
        return ",".join(
            [
                detail, str(self.dt), str(self.position), str(self.epoch_ms), flag(self.click), flag(self.comment),
                flag(self.homepage), flag(self.share), flag(self.view_comment), flag(self.like), self.card, view,
                self.user,
            ]
        )


def write_impressions(folder: Path, rows: Iterable[Imp], extra_lines: Iterable[str] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "impression_data.csv"
    lines = [",".join(fmt.IMPRESSIONS.header), *(r.csv_line() for r in rows), *extra_lines]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_snapshots(folder: Path, users: Iterable[str] = ()) -> None:
    """Minimal demographics files in the real quoting styles (users get no demographics unless listed)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "user_demographics.csv").write_text(
        ",".join(fmt.USER_DEMOGRAPHICS.header) + "\n" + "".join(f"{u},guang dong,21,female,12,5,6\n" for u in users)
    )
    quoted = lambda cols: ",".join(f'"{c}"' for c in cols)  # noqa: E731
    (folder / "mlog_demographics.csv").write_text(
        quoted(fmt.MLOG_DEMOGRAPHICS.header) + '\n"GCHCIC","AFBHAHLH","AFBHAHLH","HCHC",20,2,"5001,5010,5054",-1\n'
    )
    (folder / "creator_demographics.csv").write_text(quoted(fmt.CREATOR_DEMOGRAPHICS.header) + '\n"HCHC","",30,5,9,0,7\n')
    (folder / "mlog_stats.csv").write_text(",".join(fmt.MLOG_STATS.header) + "\nGCHCIC,1,10,1,0,0,0,0,0,0\n")
    (folder / "creator_stats.csv").write_text(quoted(fmt.CREATOR_STATS.header) + '\n"HCHC",1,1\n')


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


@pytest.fixture
def con(tmp_path: Path):
    connection = connect(DuckSettings(memory_limit="1GB", threads=2, temp_directory=tmp_path / "duck_tmp"))
    yield connection
    connection.close()


@pytest.fixture(autouse=True)
def _no_user_dagster_home(monkeypatch, tmp_path: Path):
    """Tests never touch the developer's instance or data folder."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    monkeypatch.setenv("CHURN_DATA_DIR", str(tmp_path / "data"))
    for var in ("CHURN_FIRST_DAY", "CHURN_LAST_DAY", "CHURN_OBSERVATION_DAYS", "CHURN_LABEL_DAYS"):
        monkeypatch.delenv(var, raising=False)
    os.environ.pop("CHURN_SOURCE_DIR", None)
    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI, which a later test's settings would read: each
    # test starts from the variable as it was before it.
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def all_days() -> list[date]:
    return [CALENDAR.day(d) for d in range(1, CALENDAR.num_days + 1)]


def resources_for(source: Path, root: Path, min_validation_users: int = 30, promotion_margin: float = 0.02) -> dict:
    """Every resource of the code location, pointed at folders under ``root`` (MLflow included); the registry's
    evidence rule asks for ``min_validation_users`` positives and negatives (tests on small sets ask fewer, to
    exercise the registry's path)."""
    from churn_dagster.core.mlflow_resource import MlflowResource
    from churn_dagster.core.resources import (
        FeatureSettingsResource,
        LakeResource,
        NcmSourceResource,
    )

    return {
        "source": NcmSourceResource(directory=str(source)),
        "lake": LakeResource(data_dir=str(root / "data"), duckdb_memory_limit="1GB"),
        "features": FeatureSettingsResource(),
        "mlflow": MlflowResource(tracking_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
                                 artifact_root=str(root / "mlflow" / "artifacts"),
                                 min_validation_positives=min_validation_users,
                                 min_validation_negatives=min_validation_users, promotion_margin=promotion_margin),
    }
