"""What a user sees when a command is given something it cannot use: one line, exit code 2."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from procs import segsweep

from segsweep import __version__
from segsweep.cli import main
from segsweep.data.synth import synthesize

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "ph"
    synthesize(out, n=12, size=32, seed=0)
    return out


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_user_error(result, *fragments):
    """Exit code 2 and one ``Error:`` line holding every fragment, and no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0]


def create(name, data, *sets, exist_ok=False):
    # --no-plan: these studies test the command, not the plan (tests/test_plan_cli.py), and on
    # a GPU the plan's batch ladder would train and write studies/batch-ladder.json
    args = ["study", "create", name, "--data", data, "--no-plan"]
    for s in sets:
        args += ["--set", s]
    result = run(*args, *(["--exist-ok"] if exist_ok else []))
    assert result.exit_code == 0, result.output
    return result


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"segsweep, version {__version__}"


def test_create_writes_settings_and_journal(workdir, phantoms):
    result = create("s1", phantoms, "data.image_size=32")
    assert "data: 12 image/mask pairs" in result.output
    assert sorted(p.name for p in (workdir / "studies").iterdir()) == [
        "s1.journal",
        "s1.split.json",
        "s1.toml",
    ]
    assert "image_size = 32" in (workdir / "studies" / "s1.toml").read_text()


def test_create_with_a_missing_data_folder_leaves_nothing_behind(workdir):
    result = run("study", "create", "s1", "--data", "no_such_folder")
    assert_user_error(result, "no_such_folder", "not found")
    assert not (workdir / "studies").exists()


def test_create_with_a_misspelt_setting_suggests_the_right_one(workdir, phantoms):
    result = run("study", "create", "s1", "--data", phantoms, "--set", "data.imge_size=64")
    assert_user_error(result, "'data.imge_size'", "Did you mean 'data.image_size'?")
    assert not (workdir / "studies").exists()


def test_create_with_a_bad_value_names_it(workdir, phantoms):
    result = run("study", "create", "s1", "--data", phantoms, "--set", "search.pruner=asha")
    assert_user_error(result, "'search.pruner'", "'asha'", "'hyperband'")
    assert not (workdir / "studies").exists()


def test_create_with_an_unknown_resize_names_the_choices(workdir, phantoms):
    result = run("study", "create", "s1", "--data", phantoms, "--set", 'data.resize="crop"')
    assert_user_error(result, "'data.resize'", "'crop'", "'stretch', 'pad'")
    assert not (workdir / "studies").exists()


def test_create_refuses_a_patch_size_the_depth_cannot_halve(workdir, phantoms):
    args = ["study", "create", "s1", "--data", phantoms, "--no-plan", "--set"]
    result = run(*args, "data.patch_size=20", "--set", "space.depth=[2, 3]")
    assert_user_error(result, "data.patch_size = 20", "2**depth = 8", "16 or 24")
    assert not (workdir / "studies").exists()
    result = run(*args, "data.patch_size=-16")
    assert_user_error(result, "'data.patch_size'", "an int in [0, 4096]", "-16")


def test_create_with_a_malformed_set(workdir, phantoms):
    result = run("study", "create", "s1", "--data", phantoms, "--set", "data.image_size")
    assert_user_error(result, "KEY=VALUE")


def test_creating_a_study_twice_keeps_the_first(workdir, phantoms):
    create("s1", phantoms, "train.epochs=3")
    toml = workdir / "studies" / "s1.toml"
    before = toml.read_bytes()
    result = run("study", "create", "s1", "--data", phantoms, "--set", "train.epochs=9")
    assert_user_error(result, "s1.toml", "already exists", "--exist-ok")
    assert toml.read_bytes() == before


def test_exist_ok_keeps_the_study_and_applies_new_settings(workdir, phantoms):
    create("s1", phantoms, "train.epochs=3", "data.image_size=32")
    journal = workdir / "studies" / "s1.journal"
    optuna.load_study(
        study_name="s1",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal))
        ),
    ).enqueue_trial({"depth": 3})
    create("s1", phantoms, "train.epochs=5", exist_ok=True)
    text = (workdir / "studies" / "s1.toml").read_text()
    assert "epochs = 5" in text
    assert "image_size = 32" in text  # earlier settings not given again are kept
    study = optuna.load_study(
        study_name="s1",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal))
        ),
    )
    assert len(study.trials) == 2  # the same study (default trial + enqueued), not a fresh one
    assert "epochs = 5" in study.user_attrs["segsweep.config"]


def test_a_case_objective_on_2d_images_is_refused_by_create_and_run(workdir, phantoms):
    case_dsc = "search.objective=val_case_dsc"
    result = run("study", "create", "s1", "--data", phantoms, "--set", case_dsc)
    assert_user_error(result, "'search.objective'", "'val_case_dsc'", "'val_dsc'", "2D images")
    assert not (workdir / "studies").exists()
    create("s1", phantoms)
    toml = workdir / "studies" / "s1.toml"
    toml.write_text(toml.read_text().replace('objective = "val_dsc"', 'objective = "val_case_dsc"'))
    assert_user_error(run("study", "run", "s1", "--trials", 1), "'val_case_dsc'", "2D images")


def test_run_without_any_study(workdir):
    assert_user_error(run("study", "run", "--trials", 1), "no study settings in studies")


def test_run_of_an_unknown_study(workdir, phantoms):
    create("s1", phantoms)
    assert_user_error(run("study", "run", "other", "--trials", 1), "other.toml not found")


def test_run_needs_at_least_one_trial(workdir, phantoms):
    create("s1", phantoms)
    assert_user_error(run("study", "run", "s1", "--trials", 0), "--trials", "0 is not in the range")


def test_run_takes_workers_or_gpus_not_both(workdir, phantoms):
    create("s1", phantoms)
    result = run("study", "run", "s1", "--trials", 1, "--workers", 1, "--gpus", 0)
    assert_user_error(result, "--workers", "--gpus")


def test_run_with_a_bad_gpu_list(workdir, phantoms):
    create("s1", phantoms)
    assert_user_error(run("study", "run", "s1", "--trials", 1, "--gpus", "a,b"), "'a,b'")


def test_status_when_the_storage_is_gone(workdir, phantoms):
    create("s1", phantoms)
    (workdir / "studies" / "s1.journal").unlink()
    assert_user_error(run("study", "status", "s1"), "no Optuna journal", "s1.journal")


def test_status_of_a_fresh_study(workdir, phantoms):
    create("s1", phantoms)
    result = run("study", "status")  # the only study in studies/ needs no name
    assert result.exit_code == 0, result.output
    assert "study 's1'" in result.output and "no trial has completed yet" in result.output


def test_predict_with_a_missing_model_file(workdir, phantoms):
    result = run("predict", "missing.keras", phantoms / "images", workdir / "out")
    assert_user_error(result, "missing.keras")
    assert not (workdir / "out").exists()


def test_synth_into_an_existing_phantom_set(workdir):
    assert run("data", "synth", "ph", "--n", 3, "--size", 32).exit_code == 0
    before = {p.name: p.read_bytes() for p in (workdir / "ph" / "images").iterdir()}
    result = run("data", "synth", "ph", "--n", 2, "--size", 32, "--seed", 5)
    assert_user_error(result, "not empty", "overwrite")
    assert {p.name: p.read_bytes() for p in (workdir / "ph" / "images").iterdir()} == before

    result = run("data", "synth", "ph", "--n", 2, "--size", 32, "--seed", 5, "--overwrite")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (workdir / "ph" / "images").iterdir()) == [
        "case_0000.png",
        "case_0001.png",
    ]


@pytest.mark.slow
def test_create_refuses_data_doctor_rejects_and_writes_nothing(tmp_path, make_data_dir):
    gray = np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)
    empty = np.zeros((32, 32), np.uint8)
    in_between = np.resize(np.array([0, 3, 128, 250, 255], np.uint8), (32, 32))
    data = make_data_dir(
        {"a.png": gray, "b.png": gray, "c.png": b"not an image", "d.png": gray},
        {
            "a.png": in_between,
            "b.png": np.zeros((16, 16), np.uint8),
            "c.png": empty,
            "d.png": empty,
        },
    )
    out = segsweep(tmp_path, "study", "create", "bad", "--data", str(data), check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.splitlines()
    faults = [line for line in lines if line.startswith("error:")]
    assert len(faults) == 4, out.stderr
    for name in ("masks/a.png", "images/b.png", "images/c.png", "no lesion pixel"):
        assert sum(name in line for line in faults) == 1, (name, out.stderr)
    assert [line for line in lines if line.startswith("Error:")] == [
        f"Error: 4 faults in {data}, one per line above (as `segsweep doctor --data {data}` "
        "reports them); nothing was written"
    ]
    assert not (tmp_path / "studies").exists() and not (tmp_path / "mlflow.db").exists()

    # a storage that already holds a study: the bad one adds nothing to it
    shared = tmp_path / "shared.journal"
    segsweep(tmp_path, "data", "synth", "ph", "--n", "8", "--size", "32", "--seed", "1")
    segsweep(
        tmp_path, "study", "create", "good", "--data", "ph", "--storage", str(shared), "--no-plan"
    )
    before = shared.read_bytes()
    args = ["study", "create", "bad", "--data", str(data), "--storage", str(shared)]
    assert segsweep(tmp_path, *args, check=False).returncode == 2
    assert shared.read_bytes() == before
    storage = JournalStorage(JournalFileBackend(str(shared)))
    assert optuna.get_all_study_names(storage) == ["good"]
    assert sorted(p.name for p in (tmp_path / "studies").iterdir()) == [
        "good.split.json",
        "good.toml",
    ]
