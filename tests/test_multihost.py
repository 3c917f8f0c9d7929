"""Two `study run` processes as two hosts sharing one PostgreSQL study and MLflow store.

Needs a PostgreSQL server: SEGSWEEP_TEST_POSTGRES=postgresql://USER:PASSWORD@HOST:PORT/DB of a
role that may create databases. `.ci/run` installs and starts one; in CI its absence fails.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from pathlib import Path

import pytest
from optuna.trial import TrialState
from procs import TINY, segsweep, start

URL = os.environ.get("SEGSWEEP_TEST_POSTGRES", "")
if not URL and os.environ.get("CI"):
    pytest.fail("CI must provide PostgreSQL (SEGSWEEP_TEST_POSTGRES)", pytrace=False)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not URL, reason="no PostgreSQL: set SEGSWEEP_TEST_POSTGRES=postgresql://…"),
]


@pytest.fixture
def databases() -> tuple[str, str]:
    """Two fresh databases (Optuna, MLflow), dropped afterwards."""
    import psycopg

    names = [f"segsweep_test_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("optuna", "mlflow")]
    admin = psycopg.connect(URL, autocommit=True)
    with admin.cursor() as cur:
        for name in names:
            cur.execute(f"CREATE DATABASE {name}")
    base = URL.rsplit("/", 1)[0]
    yield tuple(f"{base}/{name}" for name in names)
    with admin.cursor() as cur:
        for name in names:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def test_two_hosts_share_one_study(tmp_path: Path, databases: tuple[str, str]) -> None:
    import mlflow
    import optuna

    optuna_url, mlflow_url = databases
    hosts = [tmp_path / "host-a", tmp_path / "host-b"]
    for host in hosts:
        host.mkdir()
    segsweep(tmp_path, "data", "synth", "ph", "--n", "16", "--size", "32", "--seed", "5")
    data = str(tmp_path / "ph")
    segsweep(
        hosts[0],
        "study",
        "create",
        "shared",
        "--data",
        data,
        "--storage",
        optuna_url,
        *TINY,
        "--set",
        "train.epochs=1",
        "--set",
        f'tracking.uri="{mlflow_url}"',
    )
    # Host b has no studies/shared.toml: it reads the settings from the shared storage.
    procs = [
        start(
            host,
            "study",
            "run",
            "shared",
            "--storage",
            optuna_url,
            "--tracking-uri",
            mlflow_url,
            "--trials",
            "2",
        )
        for host in hosts
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err

    study = optuna.load_study(study_name="shared", storage=optuna_url)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials), [
        (t.number, t.state.name, t.user_attrs.get("reason")) for t in trials
    ]
    assert len(Counter(t.user_attrs["coordinator_pid"] for t in trials)) == 2
    import psycopg

    with psycopg.connect(optuna_url) as conn:  # every trial's worker beat Optuna's heartbeat
        beats = conn.execute("SELECT count(DISTINCT trial_id) FROM trial_heartbeats").fetchone()
    assert beats[0] == 4

    client = mlflow.MlflowClient(tracking_uri=mlflow_url)
    runs = client.search_runs([client.get_experiment_by_name("shared").experiment_id])
    children = {r.info.run_id for r in runs if "mlflow.parentRunId" in r.data.tags}
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert children == {t.user_attrs["mlflow_run_id"] for t in trials}
    assert [p.info.status for p in parents] == ["FINISHED", "FINISHED"]
