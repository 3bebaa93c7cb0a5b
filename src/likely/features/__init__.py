"""Features: plan once from history (:func:`plan_features`), build at any anchor
(:func:`build_features`), convert for the model (:func:`feature_frame`, :func:`arrow_frame`)."""

from likely.features.build import arrow_frame, build_features, feature_frame
from likely.features.plan import (
    CategoricalColumn,
    FeatureDef,
    FeaturePlan,
    FeatureSpec,
    ProfileAttribute,
    feature_specs,
    plan_features,
)

__all__ = [
    "CategoricalColumn",
    "FeatureDef",
    "FeaturePlan",
    "FeatureSpec",
    "ProfileAttribute",
    "arrow_frame",
    "build_features",
    "feature_frame",
    "feature_specs",
    "plan_features",
]
