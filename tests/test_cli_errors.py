"""A hostile user at the command line: every mistake is one sentence on stderr and exit code 2.

Cases run through ``realfake.cli.main`` in-process (a subprocess costs seconds of imports); one
subprocess test checks the installed entry point itself.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from realfake.cli import main


class _Evil:
    """A pickle that would run a shell command if unpickled without weights_only=True."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _write_checkpoint(kind: str, folder: Path, tiny_run: Path | None = None) -> Path:
    if kind == "text":
        path = folder / "notes.txt"
        path.write_text("just some notes\nnot a checkpoint\n")
    elif kind == "empty":
        path = folder / "empty.ckpt"
        path.write_bytes(b"")
    elif kind == "list":
        path = folder / "list.ckpt"
        torch.save([1, 2, 3], path)
    elif kind == "code":  # a zip checkpoint whose pickle names os.system
        path = folder / "code.ckpt"
        torch.save({"state_dict": {}, "payload": _Evil()}, path)
    elif kind == "raw_pickle":  # a plain pickle (not torch.save), refused by the safe unpickler
        path = folder / "raw.pkl"
        path.write_bytes(pickle.dumps(_Evil()))
    elif kind == "truncated":
        assert tiny_run is not None
        whole = (tiny_run / "checkpoints" / "best.ckpt").read_bytes()
        path = folder / "half.ckpt"
        path.write_bytes(whole[: len(whole) // 2])
    else:
        raise AssertionError(kind)
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Commands that write by default (predict's predictions.csv) write into tmp_path."""
    monkeypatch.chdir(tmp_path)


CHECKPOINT_CASES = [
    # (file kind, command before the checkpoint, arguments after it, fragment of the sentence)
    ("text", ["evaluate"], [], "notes.txt is not a realfake checkpoint or is damaged"),
    ("text", ["predict"], ["imgs"], "notes.txt is not a realfake checkpoint or is damaged"),
    ("empty", ["evaluate"], [], "the file is empty"),
    ("list", ["predict"], ["imgs"], "list.ckpt is not a realfake checkpoint: it holds a list"),
    ("code", ["explain"], ["imgs", "--out", "cams"], "data other than tensors"),
    ("raw_pickle", ["evaluate"], [], "raw.pkl is not a realfake checkpoint or is damaged"),
    ("truncated", ["robustness"], [], "half.ckpt is not a realfake checkpoint or is damaged"),
]


@pytest.mark.parametrize(
    "kind,command,rest,fragment",
    [
        # A truncated checkpoint is cut from the session's trained run: the slow tier's.
        pytest.param(*c, marks=pytest.mark.slow) if c[0] == "truncated" else c
        for c in CHECKPOINT_CASES
    ],
    ids=[f"{c[0]}-{c[1][0]}" for c in CHECKPOINT_CASES],
)
def test_unreadable_checkpoint_is_one_sentence(
    kind, command, rest, fragment, tmp_path, capsys, request
):
    tiny_run = request.getfixturevalue("tiny_run") if kind == "truncated" else None
    path = _write_checkpoint(kind, tmp_path, tiny_run)
    (tmp_path / "imgs").mkdir()
    assert main([*command, str(path), *rest]) == 2
    line = _one_error_line(capsys)
    assert fragment in line
    assert str(path) in line  # the file is named
    assert "weights_only" not in line  # never PyTorch's advice to unpickle arbitrary code


CONFIG_CASES = [
    (["model.options.width=abc"], ["'model.options.width'", "not an integer", "default 32"]),
    (
        ["model=vgg16", "model.options.batch_norm=maybe"],
        ["'model.options.batch_norm'", "'maybe' is not true or false"],
    ),
    (["trainer.max_epochs=abc"], ["'trainer.max_epochs'", "'abc' is not an integer"]),
    (["data.augment.flip=maybe"], ["'data.augment.flip'", "'maybe' is not true or false"]),
    (["data.augment.flip=yes"], ["'data.augment.flip'", "'yes' is not true or false"]),
    (["model=resnet35"], ["no model named 'resnet35'", "did you mean", "resnet34", "vgg19"]),
    (["optim=rmsprop"], ["no optim config named 'rmsprop'", "adam, adamw, sgd"]),
    (["data.augment=x"], ["'data.augment'", "is a section", "data.augment.flip"]),
    (["trainer.accelerator=gpu"], ["no CUDA GPU is available here", "trainer.accelerator=cpu"]),
    (["trainer.accelerator=cuda"], ["no CUDA GPU is available here", "trainer.accelerator=cpu"]),
    (["trainer=gpu"], ["no CUDA GPU is available here"]),
]


@pytest.mark.parametrize(
    "overrides,fragments", CONFIG_CASES, ids=[" ".join(c[0]) for c in CONFIG_CASES]
)
def test_bad_training_config_is_one_sentence(overrides, fragments, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on GPU machines
    assert main(["train", "--print-config", *overrides]) == 2
    line = _one_error_line(capsys)
    for fragment in fragments:
        assert fragment in line
    assert capsys.readouterr().out == ""  # stopped before anything else


def test_a_registered_model_without_a_config_file_is_a_group_choice(capsys):
    assert main(["train", "--print-config", "model=resnet34"]) == 0
    assert "name: resnet34" in capsys.readouterr().out


ARGPARSE_CASES = [
    (["evaluate", "RUN", "--resamples", "-1"], "argument --resamples"),
    (["evaluate", "RUN", "--seed", "-1"], "argument --seed"),
    (["evaluate", "RUN", "--batch-size", "0"], "argument --batch-size"),
    (["predict", "RUN", "imgs", "--batch-size", "0"], "argument --batch-size"),
    (["explain", "RUN", "imgs", "--out", "o", "--size", "0"], "argument --size"),
    (["explain", "RUN", "imgs", "--out", "o", "--limit", "0"], "argument --limit"),
    (["robustness", "RUN", "--seed", "-3"], "argument --seed"),
    (["robustness", "RUN", "--device", "toaster"], "argument --device"),
    (["audit", "shortcuts", "RUN", "--jpeg-quality", "0,50"], "argument --jpeg-quality"),
    (["audit", "shortcuts", "RUN", "--sizes", "0"], "argument --sizes"),
    (["audit", "leaks", "TRAIN", "--max-distance", "64"], "argument --max-distance"),
    (["audit", "leaks", "TRAIN", "--image-size", "0"], "argument --image-size"),
]


@pytest.mark.parametrize(
    "argv,fragment", ARGPARSE_CASES, ids=[" ".join(c[0]) for c in ARGPARSE_CASES]
)
def test_numbers_out_of_range_are_usage_errors(argv, fragment, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"error: {fragment}" in err.strip().splitlines()[-1]


def test_cuda_device_on_a_machine_without_one_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as stop:
        main(["explain", "RUN", "imgs", "--out", "o", "--device", "cuda"])
    assert stop.value.code == 2
    assert "no CUDA GPU is available here" in capsys.readouterr().err


def test_verbose_adds_the_traceback_of_a_user_error(tmp_path, capsys):
    path = _write_checkpoint("text", tmp_path)
    assert main(["-v", "evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "CheckpointError" in err
    assert err.strip().splitlines()[-1].startswith(f"error: {path} is not a realfake checkpoint")


def test_a_bug_keeps_its_traceback(monkeypatch):
    from realfake.train import config

    def broken(overrides):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(config, "compose", broken)
    with pytest.raises(ZeroDivisionError):
        main(["train", "--print-config"])


def test_a_multiline_message_is_printed_on_one_line(capsys, monkeypatch):
    from realfake.errors import ConfigError
    from realfake.train import config

    def fails(overrides):
        raise ConfigError("first part\nsecond part")

    monkeypatch.setattr(config, "compose", fails)
    assert main(["train", "--print-config"]) == 2
    assert _one_error_line(capsys) == "error: first part second part"


@pytest.mark.slow
def test_the_installed_command_prints_one_sentence(tmp_path):
    notes = _write_checkpoint("text", tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "realfake", "predict", str(notes), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {notes} is not a realfake checkpoint")


def test_overrides_may_follow_options(capsys):
    """`realfake compare study=x --seeds 3 KEY=VALUE`, as the docs write it: every item counts."""
    assert main(["train", "seed=7", "--print-config", "trainer.max_epochs=9"]) == 0
    printed = capsys.readouterr().out
    assert "\nseed: 7\n" in printed
    assert "  max_epochs: 9\n" in printed
    from realfake.cli import build_parser, parse

    args = parse(build_parser(), ["compare", "study=architectures", "--seeds", "3", "a=1", "b=2"])
    assert (args.items, args.seeds) == (["study=architectures", "a=1", "b=2"], 3)


def test_an_unknown_option_after_overrides_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "seed=7", "--print-config", "--bogus", "x=1"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --bogus x=1" in capsys.readouterr().err
