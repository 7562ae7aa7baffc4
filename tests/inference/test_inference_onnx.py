"""ONNX export and the ONNX Runtime backend: the torch Predictor's probabilities and labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from realfake.cli import main
from realfake.data.embedded import embedded_data_path
from realfake.errors import CheckpointError, ConfigError, OutputError
from realfake.export import export_onnx
from realfake.inference import OnnxPredictor, Predictor, Scorer, load_predictor
from realfake.runs import ModelSpec

PARITY = 1e-4  # max |Δ probability| promised by issue 15


@pytest.fixture(scope="module")
def predictor(frozen) -> Predictor:
    """The Predictor of the tiny run with a frozen threshold (the run ``tiny_onnx`` exports)."""
    return Predictor.load(frozen[0])


@pytest.fixture(scope="module")
def scorer(predictor) -> Scorer:
    """The torch scorer of that run: its flip TTA and frozen threshold."""
    built = Scorer.build(predictor)
    assert built.rule.origin == "frozen"
    return built


@pytest.fixture(scope="module")
def exported(tiny_onnx) -> Path:
    """The tiny run exported with its own flip TTA (the session's one export)."""
    return tiny_onnx


@pytest.fixture(scope="module")
def test_split(predictor) -> tuple[torch.Tensor, np.ndarray]:
    """The embedded test split as the network sees it (uint8 N×3×S×S) and its labels."""
    paths = sorted((embedded_data_path() / "test").glob("*/*.jpg"))
    labels = np.array([predictor.classes.index(p.parent.name) for p in paths])
    return predictor.prepare_batch(paths), labels


@pytest.mark.slow  # 400 forward passes per backend: ~2.5 s on 2 busy cores
def test_onnx_runtime_gives_the_predictors_probabilities_and_labels(
    predictor, scorer, exported, test_split
):
    images, labels = test_split
    onnx = OnnxPredictor.load(exported)
    assert len(images) == 200
    assert predictor.spec.flip_tta  # the run's default, baked into the export
    expected = predictor.probabilities(images)
    got = onnx.probabilities(images)
    assert np.abs(got - expected).max() <= PARITY
    # The threshold evaluate froze travels in the file and decides the same labels.
    onnx_scorer = Scorer.build(onnx)
    assert onnx_scorer.rule == scorer.rule
    assert (onnx_scorer.decide(got) == scorer.decide(expected)).all()
    # Not a constant model: the labels follow the images.
    assert 0.5 < (scorer.decide(expected) == labels).mean() < 1.0
    # Predictions carry the same labels through the shared decision code.
    assert [p.label for p in onnx_scorer.predict(images[:9])] == [
        p.label for p in scorer.predict(images[:9])
    ]


@pytest.mark.slow  # the session's ONNX export of the frozen run
def test_metadata_holds_the_runs_spec_threshold_and_checkpoint(predictor, scorer, exported):
    onnx = OnnxPredictor.load(exported)
    # The checkpoint's spec, with the threshold the run froze for these weights.
    with_threshold = predictor.spec.with_threshold(scorer.rule.frozen)
    assert json.loads(onnx.metadata["realfake.spec"]) == with_threshold.to_dict()
    assert onnx.metadata["realfake.flip_tta"] == "true"
    assert onnx.sha256 == predictor.sha256 == onnx.metadata["realfake.checkpoint_sha256"]
    assert onnx.spec == with_threshold
    assert onnx.metadata["realfake.version"]


@pytest.mark.slow  # the session's ONNX export of the frozen run
def test_the_batch_axis_is_dynamic_and_labels_match(predictor, scorer, exported, test_split):
    images = test_split[0][:7]
    onnx = OnnxPredictor.load(exported)
    expected = predictor.probabilities(images)
    for batch in (1, 7):  # through the graph directly: one input, N×C out
        out = onnx.session.run(None, {"images": images[:batch].numpy()})[0]
        assert out.shape == (batch, 2)
        assert np.abs(out - expected[:batch]).max() <= PARITY
    by_one = onnx.probabilities(images, batch_size=1)
    assert np.abs(by_one - expected).max() <= PARITY
    onnx_scorer = Scorer.build(onnx, batch_size=1)
    assert onnx_scorer.rule.threshold == scorer.rule.threshold is not None
    assert (onnx_scorer.decide(by_one) == scorer.decide(expected)).all()


@pytest.mark.slow  # the session's ONNX export of the frozen run
def test_tta_is_fixed_at_export(predictor, exported, test_split):
    onnx = OnnxPredictor.load(exported)
    assert onnx.resolve_tta(None) is True and onnx.resolve_tta(True) is True
    with pytest.raises(ConfigError, match=r"exported with flip TTA on; re-export .* --no-tta"):
        onnx.probabilities(test_split[0][:2], tta=False)
    with pytest.raises(ConfigError, match="re-export"):
        Scorer.build(onnx, tta=False)


@pytest.mark.slow  # the session's ONNX export of the frozen run
def test_export_refuses_a_graph_that_disagrees_with_torch(predictor, exported):
    from realfake.export.onnx import ProbabilityGraph, _check_parity

    spec = predictor.spec
    same = ProbabilityGraph(predictor.model, spec.mean, spec.std, flip=True)
    _check_parity(same, OnnxPredictor.load(exported))
    other = ProbabilityGraph(predictor.model, spec.mean, spec.std, flip=False)
    with pytest.raises(RuntimeError, match="differs from torch"):
        _check_parity(other, OnnxPredictor.load(exported))


def test_a_foreign_or_broken_onnx_file_is_one_sentence(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save_model(helper.make_model(graph), foreign)
    with pytest.raises(CheckpointError, match="has no realfake metadata") as err:
        load_predictor(foreign)
    assert "\n" not in str(err.value)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    with pytest.raises(CheckpointError, match="not a readable ONNX model") as err:
        OnnxPredictor.load(junk)
    assert "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="no such ONNX file"):
        OnnxPredictor.load(tmp_path / "missing.onnx")


@pytest.mark.slow  # the session's ONNX export of the frozen run
def test_load_predictor_picks_the_backend_from_the_file(tiny_run, exported):
    assert type(load_predictor(exported)) is OnnxPredictor
    assert type(load_predictor(tiny_run)) is Predictor
    assert (load_predictor(exported).backend, load_predictor(tiny_run).backend) == ("onnx", "torch")
    assert type(load_predictor(exported, backend="onnx")) is OnnxPredictor
    with pytest.raises(ConfigError, match="is an ONNX file"):
        load_predictor(exported, backend="torch")
    with pytest.raises(ConfigError, match="export it first"):
        load_predictor(tiny_run, backend="onnx")
    with pytest.raises(ConfigError, match="unknown"):
        load_predictor(tiny_run, backend="tensorrt")


@pytest.mark.slow  # the session's ONNX export of the frozen run
def test_threads_reach_onnx_runtime_and_keep_the_answers(exported, test_split):
    images, _ = test_split
    default = load_predictor(exported)
    one = load_predictor(exported, threads=1)
    options = one.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    np.testing.assert_allclose(one.probabilities(images), default.probabilities(images), atol=1e-6)
    with pytest.raises(ConfigError, match="threads=0"):
        load_predictor(exported, threads=0)


def test_export_refuses_an_existing_out_without_force(tiny_run, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"keep me")
    assert main(["export", str(tiny_run), "--out", str(out)]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    with pytest.raises(OutputError):
        export_onnx(tiny_run, tmp_path)  # a folder, not a file


@pytest.mark.slow
def test_export_without_tta_matches_the_predictor_without_tta(predictor, test_split, tmp_path):
    images = test_split[0]
    path = export_onnx(predictor, tmp_path / "no-tta.onnx", tta=False)
    onnx = OnnxPredictor.load(path)
    assert onnx.metadata["realfake.flip_tta"] == "false" and onnx.resolve_tta(None) is False
    got, expected = onnx.probabilities(images), predictor.probabilities(images, tta=False)
    assert np.abs(got - expected).max() <= PARITY
    # The flip really is in the TTA graph and not in this one.
    assert np.abs(got - predictor.probabilities(images, tta=True)).max() > 1e-3
    with pytest.raises(ConfigError, match="chosen with flip TTA on"):
        Scorer.build(onnx)  # the run's threshold belongs to TTA probabilities


@pytest.mark.slow
def test_cli_export_then_predict_gives_the_runs_labels(frozen, test_folder, tmp_path):
    run = frozen[0]
    model = tmp_path / "tiny.onnx"
    assert main(["export", str(run), "--format", "onnx", "--out", str(model)]) == 0
    tables = {}
    for name, ref in (("torch", run), ("onnx", model)):
        out = tmp_path / f"{name}.csv"
        args = ["predict", str(ref), str(test_folder), "--threshold", "frozen", "--out", str(out)]
        assert main(args) == 0
        tables[name] = pd.read_csv(out, keep_default_na=False)
    torch_t, onnx_t = tables["torch"], tables["onnx"]
    assert len(onnx_t) == 202  # 200 images and 2 unreadable files, as error rows
    assert onnx_t["filename"].tolist() == torch_t["filename"].tolist()
    assert onnx_t["label"].tolist() == torch_t["label"].tolist()
    assert onnx_t["error"].tolist() == torch_t["error"].tolist()
    good = onnx_t["error"] == ""
    probs = [
        t.loc[good, ["prob_FAKE", "prob_REAL"]].astype(float).to_numpy() for t in tables.values()
    ]
    assert np.abs(probs[0] - probs[1]).max() <= PARITY
    no_tta = ["predict", str(model), str(test_folder), "--no-tta", "--out", str(tmp_path / "x")]
    assert main(no_tta) == 2  # the graph has TTA inside: one sentence saying to re-export


def _randomise_batch_norm(model: torch.nn.Module, seed: int) -> None:
    """Running statistics away from (0, 1), so the exported graph must carry them right."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fastnet", "resnet18", "resnext29_2x64d", "vgg11"])
def test_every_model_family_exports_with_parity(name, tmp_path):
    spec = ModelSpec(
        model=name,
        classes=("cat", "dog", "ship"),
        image_size=32,
        resize="stretch",
        mean=(0.49, 0.48, 0.45),
        std=(0.25, 0.24, 0.26),
        flip_tta=True,
        positive_class=None,
    )
    torch.manual_seed(0)
    model = spec.build_model().eval()
    _randomise_batch_norm(model, 0)
    # Weights as a channels_last training leaves them: the export must not depend on it.
    model = model.to(memory_format=torch.channels_last)
    predictor = Predictor(model, spec)
    onnx = load_predictor(export_onnx(predictor, tmp_path / f"{name}.onnx"))
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    got, expected = onnx.probabilities(images), predictor.probabilities(images)
    assert got.shape == (5, 3)
    assert np.abs(got - expected).max() <= PARITY
    assert (got.argmax(1) == expected.argmax(1)).all()  # multi-class: arg-max
