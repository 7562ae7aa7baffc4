"""Closed sets of choices are written once: where a second place must name them (a CLI that
loads fast, a settings type), it is checked against the one source here."""

from __future__ import annotations

import argparse
import typing

import pytest

from realfake.cli import build_parser
from realfake.errors import CheckpointError
from realfake.runs import ModelSpec


def _choices(argv: list[str], dest: str) -> tuple[str, ...]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = sub.choices[argv[0]]
    for name in argv[1:]:
        inner = next(a for a in command._actions if isinstance(a, argparse._SubParsersAction))
        command = inner.choices[name]
    action = next(a for a in command._actions if a.dest == dest)
    return tuple(action.choices)


def test_backends_are_the_inference_layers():
    from realfake.inference import BACKENDS
    from realfake.serve.settings import ServeSettings

    annotation = ServeSettings.model_fields["backend"].annotation
    assert typing.get_args(annotation) == BACKENDS
    assert _choices(["serve"], "backend") == BACKENDS


def test_resize_policies_criteria_and_aggregates_have_one_source():
    from realfake.data.config import RESIZE_POLICIES, TILE_AGGREGATES
    from realfake.runs.spec import THRESHOLD_CRITERIA
    from realfake.train.config import CHOICES

    assert CHOICES["data.resize"] is RESIZE_POLICIES
    assert _choices(["data", "info"], "resize") == RESIZE_POLICIES
    assert _choices(["evaluate"], "freeze_threshold") == THRESHOLD_CRITERIA
    spec = {
        "model": "fastnet", "classes": ["FAKE", "REAL"], "image_size": 32, "resize": "stretch",
        "mean": [0.5] * 3, "std": [0.25] * 3, "flip_tta": True, "positive_class": "FAKE",
    }  # fmt: skip
    for aggregate in TILE_AGGREGATES:  # the spec accepts exactly the config's aggregates
        assert ModelSpec.from_dict({**spec, "tiles": 4, "tile_aggregate": aggregate})
    with pytest.raises(CheckpointError, match="tile_aggregate"):
        ModelSpec.from_dict({**spec, "tiles": 4, "tile_aggregate": "median"})
