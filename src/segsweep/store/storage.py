"""Optuna studies: where they are stored, how they are created, and what they hold.

The default storage is Optuna's journal file ``studies/NAME.journal``: an append-only log with
file locks, which Optuna recommends for several processes writing on one machine (SQLite locks
under concurrent writers). Any storage URL (``sqlite:///…``, ``postgresql://…``) works too. The
study's settings are also saved in the study itself, so a worker on another host needs only the
storage URL.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

from segsweep.config import Config, config_from_dict, dump_toml
from segsweep.data.assign import Assignment
from segsweep.errors import DataError, StudyError

__all__ = [
    "STUDIES_DIR",
    "check_data_unchanged",
    "check_not_finalized",
    "create_study",
    "check_objective",
    "find_study_name",
    "load_study",
    "record_objective",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "split_json_path",
    "storage_url",
    "study_assignment",
    "study_config",
    "study_objective",
    "scoring_of",
]

STUDIES_DIR = Path("studies")
# RDB storages (shared by hosts): a worker beats every HEARTBEAT_INTERVAL s while its trial runs;
# a trial silent for GRACE_PERIOD s is failed by whichever study run looks next, and retried.
HEARTBEAT_INTERVAL = 20
GRACE_PERIOD = 90
CONFIG_ATTR = "segsweep.config"
ASSIGNMENT_ATTR = "segsweep.assignment"
CHAMPION_ATTR = "segsweep.champion"
# Every test scoring, oldest first: a --rescore adds one and never replaces the first.
TEST_RECORDS_ATTR = "segsweep.test_records"
# The settings that shape a score, as the search uses them: finalize scores with these.
SCORING_ATTR = "segsweep.scoring"
SCORING_KEYS = (
    "train.threshold",
    "metrics.min_lesion_px",
    "metrics.match_dilation",
    "data.mask_threshold",
    "search.objective",
)
JOURNAL_LOCK_GRACE = 30  # seconds before a journal lock left by a killed process is broken
DEFAULT_ATTR = "default"  # on the trial of the default configuration (search.default_first)
FOLDS_ATTR = "segsweep.folds"  # on a finalize companion study: {"k": {stem: fold}} per k


def storage_url(cfg: Config, studies_dir: Path = STUDIES_DIR) -> str:
    return cfg.study.storage or str(studies_dir / f"{cfg.study.name}.journal")


def open_storage(url: str, *, create: bool = False) -> optuna.storages.BaseStorage:
    """A URL with a scheme is an RDB storage; anything else is a journal file path.

    Only ``create=True`` (``study create``) may make a new journal file, so a mistyped path in
    any other command is an error instead of an empty study store.
    """
    if "://" not in url:
        if not create and not Path(url).is_file():
            raise StudyError(
                f"no Optuna journal at {url}; `segsweep study create NAME` makes "
                "one (with --exist-ok if studies/NAME.toml already exists)"
            )
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        # An absolute path: Optuna's lock is a symlink to the journal by the path it is given,
        # and it judges a lock stale by stat()ing the link's target. A relative target resolves
        # against the lock's own folder, stat fails, and a lock left by a worker killed while
        # writing is never broken: the study hangs (optuna 5.1, JournalFileSymlinkLock.acquire).
        path = str(Path(url).resolve())
        lock = JournalFileSymlinkLock(path, grace_period=JOURNAL_LOCK_GRACE)
        return JournalStorage(JournalFileBackend(path, lock_obj=lock))
    from segsweep.store.recovery import on_stale_heartbeat

    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs=_engine_kwargs(url),
                heartbeat_interval=HEARTBEAT_INTERVAL,
                grace_period=GRACE_PERIOD,
                heartbeat_stale_trial_callback=on_stale_heartbeat,
            )
    except Exception as err:  # SQLAlchemy and drivers raise many types; say which storage
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StudyError(f"cannot open Optuna storage {url}: {first}") from None


def _engine_kwargs(url: str) -> dict[str, Any]:
    # SQLite: wait for a lock instead of failing at once when workers write together.
    return (
        {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    )


def make_sampler(cfg: Config, *, seed: int) -> optuna.samplers.BaseSampler:
    if cfg.search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar keeps parallel workers from sampling next to each other's running trials.
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=cfg.search.startup_trials, constant_liar=True
    )


def make_pruner(cfg: Config) -> optuna.pruners.BasePruner:
    if cfg.search.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=cfg.search.min_epochs, max_resource=cfg.train.epochs
        )
    if cfg.search.pruner == "sha":
        # reduction factor 3 and rungs from epoch 1: chosen by replaying 50 recorded
        # learning curves through Optuna's pruners (benchmarks/RESULTS.md §4b)
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=cfg.search.min_epochs, reduction_factor=3
        )
    if cfg.search.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=cfg.search.min_epochs)
    return optuna.pruners.NopPruner()


def create_study(
    cfg: Config, url: str, *, exist_ok: bool, assignment: Assignment | None = None
) -> optuna.Study:
    """Create (or with ``exist_ok`` update) the study; ``assignment`` is stored only on a study
    that has none, so an existing study keeps the split its trials were scored on."""
    storage = open_storage(url, create=True)
    exists = cfg.study.name in optuna.get_all_study_names(storage)
    if exists and not exist_ok:
        raise StudyError(
            f"study '{cfg.study.name}' already exists in {url}; pass --exist-ok "
            "to keep it and update its settings"
        )
    if exists:
        check_objective(optuna.load_study(study_name=cfg.study.name, storage=storage), cfg)
    study = optuna.create_study(
        study_name=cfg.study.name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=make_sampler(cfg, seed=cfg.search.seed),
        pruner=make_pruner(cfg),
    )
    study.set_user_attr(CONFIG_ATTR, dump_toml(cfg))
    if not exists:
        study.set_user_attr(SCORING_ATTR, json.dumps(scoring_of(cfg)))
    if assignment is not None and not exists:
        study.set_user_attr(ASSIGNMENT_ATTR, assignment.to_json())
    if cfg.search.default_first and not exists:
        enqueue_default(study, cfg)
    return study


def enqueue_default(study: optuna.Study, cfg: Config) -> dict[str, Any]:
    """Queue the default configuration (``config.space.DEFAULT_CONFIG``) as the next trial."""
    from segsweep.config.space import default_params, is_fixed

    params = default_params(cfg.space)
    searched = {k: v for k, v in params.items() if not is_fixed(getattr(cfg.space, k))}
    study.enqueue_trial(searched, user_attrs={DEFAULT_ATTR: True})
    return params


def load_study(
    name: str, url: str, cfg: Config | None = None, *, seed: int | None = None
) -> optuna.Study:
    storage = open_storage(url)
    if name not in optuna.get_all_study_names(storage):
        raise StudyError(
            f"no study '{name}' in {url}; create it with `segsweep study create {name}` "
            f"(add --exist-ok if studies/{name}.toml already exists)"
        )
    if cfg is None:
        return optuna.load_study(study_name=name, storage=storage)
    return optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(cfg, seed=cfg.search.seed if seed is None else seed),
        pruner=make_pruner(cfg),
    )


def study_config(study: optuna.Study) -> Config:
    """The settings saved in the study by ``study create``."""
    import tomllib

    text = study.user_attrs.get(CONFIG_ATTR)
    if text is None:
        raise StudyError(f"study '{study.study_name}' was not created by segsweep (no settings)")
    return config_from_dict(tomllib.loads(text))


def study_assignment(study: optuna.Study) -> Assignment | None:
    """The train/val/test assignment made at ``study create``; None for studies made before
    segsweep kept one (their workers split train/val as they always did, with no test set)."""
    text = study.user_attrs.get(ASSIGNMENT_ATTR)
    return Assignment.from_json(text) if text else None


def check_data_unchanged(study: optuna.Study, cfg: Config) -> None:
    """Stop when files were added, removed or edited in the data since ``study create``."""
    from segsweep.data.assign import changed_files

    stored = study_assignment(study)
    if stored is None:
        return
    changed = changed_files(stored, Path(cfg.data.dir))
    if changed:
        shown = ", ".join(changed[:5]) + (
            f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        )
        raise DataError(
            f"the data of study '{study.study_name}' changed since study create: {shown}; "
            "restore the files, or create a new study for the new data"
        )


def split_json_path(name: str, studies_dir: Path = STUDIES_DIR) -> Path:
    return studies_dir / f"{name}.split.json"


def study_objective(study: optuna.Study) -> str:
    """The value the study maximises (studies made before ``search.objective``: val_dsc)."""
    try:
        return study_config(study).search.objective
    except StudyError:
        return "val_dsc"


def scoring_of(cfg: Config) -> dict[str, Any]:
    """The values of :data:`SCORING_KEYS` in ``cfg``."""
    return {k: getattr(getattr(cfg, k.split(".")[0]), k.split(".")[1]) for k in SCORING_KEYS}


def check_objective(study: optuna.Study, cfg: Config) -> None:
    """A study's trials were all ranked by one objective: it cannot change once there are any."""
    stored = study_objective(study)
    if stored != cfg.search.objective and study.get_trials(deepcopy=False):
        raise StudyError(
            f"study '{study.study_name}' maximises {stored} and already has trials; "
            f"search.objective cannot become {cfg.search.objective} (keep {stored}, or create a "
            "new study)"
        )


def record_objective(study: optuna.Study, cfg: Config) -> None:
    """Check ``cfg``'s objective against the study's, and store it while the study is empty
    (``studies/NAME.toml`` edited between ``create`` and the first ``run``)."""
    check_objective(study, cfg)
    if study_objective(study) != cfg.search.objective:
        study.set_user_attr(CONFIG_ATTR, dump_toml(cfg))
    if not study.get_trials(deepcopy=False):  # what this first search will score with
        study.set_user_attr(SCORING_ATTR, json.dumps(scoring_of(cfg)))


def check_not_finalized(study: optuna.Study, *, rescore: bool) -> None:
    """A test set is scored once: refuse a second ``finalize`` unless ``rescore``."""
    done = study.user_attrs.get(CHAMPION_ATTR)
    test = json.loads(done).get("test") if done else None
    if test is not None and not rescore:
        raise StudyError(
            f"study '{study.study_name}' was finalized already and its test set scored once "
            f"({test['value']:.4f}); `study status --json` shows the champion. Pass --rescore "
            "to cross-validate and score again (the test value then no longer stands untouched)"
        )


def find_study_name(studies_dir: Path = STUDIES_DIR) -> str:
    """The one study whose settings file is in ``studies/``, for commands given no NAME."""
    names = sorted(p.stem for p in studies_dir.glob("*.toml"))
    if len(names) == 1:
        return names[0]
    if not names:
        raise StudyError(f"no study settings in {studies_dir}/; run `segsweep study create NAME`")
    raise StudyError(f"{studies_dir}/ holds several studies ({', '.join(names)}); name one")
