"""Save a fitted model as one self-describing JSON file, and load it back only if it still fits.

The file holds the LightGBM model string (no pickle: a model file can be read, diffed and loaded by
any LightGBM of the same major version), the calibrator's parameters, and ``meta``: the instance
config, the feature list, the training parameters and results, and the likely and LightGBM
versions. ``content_sha256`` is a hash of everything else in the file, so a change after saving is
detected. It guards against corruption and accidental edits, not against someone who rewrites the
hash too: callers that need that keep the hash ``save_model`` returns (the catalog does) and pass
it back as ``expected_sha256``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from likely.errors import ConfigError, NotFoundError
from likely.model.train import Candidate, PropensityModel, TrainParams, TreeModel, feature_ids
from likely.storage import write_bytes

FORMAT = "likely-model"
FORMAT_VERSION = 1


class ModelFileError(ConfigError):
    """A saved model cannot be used as asked: changed since saved, other features or versions.

    ``detail["what"]`` names the check that failed: ``format``, ``hash``, ``lightgbm`` or
    ``features``.
    """

    def __init__(self, message: str, *, what: str, detail: dict | None = None) -> None:
        super().__init__(message, detail={"what": what, **(detail or {})})
        self.what = what


def save_model(
    model: PropensityModel,
    path: str | Path,
    *,
    config: dict[str, Any],
    instance_id: str,
    run_id: str,
    feature_names: Sequence[Any] | None = None,
) -> str:
    """Write ``model`` to ``path`` atomically; return the file's content hash (sha256 hex).

    ``feature_names`` (ids or FeatureInfo-like objects), when given, must be the model's own
    feature list: it guards against saving a model next to the wrong feature definitions.
    """
    booster = model.fitted_booster()
    _check_same_features(model, feature_names)
    body = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "meta": _meta(model, config, instance_id, run_id),
        "calibrator": model.calibrator_.to_dict(),
        "booster": booster.model_to_string(),
    }
    digest = _content_hash(body)
    document = {**body, "content_sha256": digest}
    # Booster last: the small, readable parts come first in the file.
    ordered = {k: document[k] for k in (*[k for k in document if k != "booster"], "booster")}
    write_bytes(json.dumps(ordered, indent=1, default=str).encode(), path)
    return digest


def load_model(
    path: str | Path,
    *,
    expected_features: Sequence[Any] | None = None,
    expected_sha256: str | None = None,
) -> PropensityModel:
    """Read a model saved by ``save_model``; refuse it if it no longer fits.

    Raises ``NotFoundError`` for a missing file and ``ModelFileError`` (a ``ConfigError``) when the
    file is not a likely model, was changed after saving, differs from ``expected_sha256``, was
    written by another major LightGBM version, or was trained on other features than
    ``expected_features`` (the message lists the missing and unexpected ones).
    """
    document = _read(Path(path))
    body = {k: v for k, v in document.items() if k != "content_sha256"}
    actual = _content_hash(body)
    if document.get("content_sha256") != actual:
        raise ModelFileError(
            f"Model file {path} was changed after it was saved (content hash "
            f"{actual[:12]}… ≠ recorded {str(document.get('content_sha256'))[:12]}…). "
            "Retrain the instance to write a fresh model.",
            what="hash",
        )
    if expected_sha256 is not None and actual != expected_sha256:
        raise ModelFileError(
            f"Model file {path} is not the model recorded for this run (hash {actual[:12]}… ≠ "
            f"{expected_sha256[:12]}…). Retrain the instance.",
            what="hash",
        )
    meta = document["meta"]
    _check_lightgbm(meta, path)
    if expected_features is not None:
        _check_features(meta["feature_names"], feature_ids(expected_features, None), path)
    return _rebuild(document)


# -- writing ------------------------------------------------------------------------------------


def _meta(model: PropensityModel, config: dict, instance_id: str, run_id: str) -> dict[str, Any]:
    import lightgbm as lgb

    return {
        "instance_id": instance_id,
        "run_id": run_id,
        "config": config,
        "feature_names": list(model.feature_names_),
        "categorical": list(model.categorical_),
        "input_kind": model.input_kind_,
        "likely_version": _likely_version(),
        "lightgbm_version": lgb.__version__,
        "train_params": (model.params or TrainParams()).to_dict(),
        "lgb_params": model.params_,
        "best_iteration": model.best_iteration_,
        "holdout_auc": model.holdout_auc_,
        "search": [c.to_dict() for c in model.search_],
    }


def _check_same_features(model: PropensityModel, feature_names: Sequence[Any] | None) -> None:
    if feature_names is None:
        return
    names = feature_ids(feature_names, None)
    if names != model.feature_names_:
        _check_features(model.feature_names_, names, "(being saved)")


def _content_hash(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _likely_version() -> str:
    try:
        return metadata.version("likely")
    except metadata.PackageNotFoundError:
        return "0+unknown"


# -- reading ------------------------------------------------------------------------------------


def _read(path: Path) -> dict[str, Any]:
    return _read_json(path, FORMAT, FORMAT_VERSION)


def _read_json(path: Path, form: str, newest: int) -> dict[str, Any]:
    """A model document of format ``form`` up to version ``newest``, or a clear refusal."""
    if not path.is_file():
        raise NotFoundError(f"No model file at {path}. Run the instance to train a model.")
    try:
        document = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(
            f"{path} is not a readable likely model file ({exc}).", what="format"
        ) from None
    if not isinstance(document, dict) or document.get("format") != form:
        raise ModelFileError(f"{path} is not a likely model file.", what="format")
    version = document.get("format_version")
    if not isinstance(version, int) or version > newest:
        raise ModelFileError(
            f"Model file {path} has format version {version}; this likely reads up to "
            f"{newest}. Upgrade likely or retrain.",
            what="format",
        )
    return document


def _check_lightgbm(meta: dict[str, Any], path: str | Path) -> None:
    import lightgbm as lgb

    saved = str(meta.get("lightgbm_version", ""))
    if saved.split(".")[0] != lgb.__version__.split(".")[0]:
        raise ModelFileError(
            f"Model file {path} was written by LightGBM {saved}; LightGBM {lgb.__version__} is "
            "installed and a different major version may read it differently. Retrain the "
            f"instance, or install lightgbm {saved.split('.')[0]}.x.",
            what="lightgbm",
            detail={"saved": saved, "installed": lgb.__version__},
        )


def _check_features(saved: list[str], expected: list[str], path: str | Path) -> None:
    if saved == expected:
        return
    missing = [n for n in expected if n not in saved]
    extra = [n for n in saved if n not in expected]
    what = (
        f"it lacks {len(missing)} expected feature(s) {missing[:5]} and has {len(extra)} "
        f"other(s) {extra[:5]}"
        if missing or extra
        else "the same features are in a different order"
    )
    raise ModelFileError(
        f"Model {path} was trained on other features than expected: {what}. "
        "Retrain the instance after changing its features.",
        what="features",
        detail={"missing": missing, "unexpected": extra},
    )


def restore_trees(model: TreeModel, document: dict[str, Any]) -> TreeModel:
    """Give ``model`` the booster and feature list a saved document holds (any tree model)."""
    import lightgbm as lgb

    meta = document["meta"]
    model.booster_ = lgb.Booster(model_str=document["booster"])
    model.feature_names_ = list(meta["feature_names"])
    model.categorical_ = list(meta["categorical"])
    model.n_features_in_ = len(model.feature_names_)
    model.input_kind_ = meta["input_kind"]
    model.best_iteration_ = int(meta["best_iteration"])
    model.params_ = dict(meta["lgb_params"])
    return model


def _rebuild(document: dict[str, Any]) -> PropensityModel:
    from likely.model.calibration import Calibrator

    meta = document["meta"]
    model = restore_trees(PropensityModel(TrainParams.from_dict(meta["train_params"])),
                          document)
    model.holdout_auc_ = float(meta["holdout_auc"])
    model.search_ = [Candidate(**c) for c in meta["search"]]
    model.calibrator_ = Calibrator.from_dict(document["calibrator"])
    model.meta_ = {k: meta[k] for k in ("instance_id", "run_id", "config", "likely_version")}
    return model
