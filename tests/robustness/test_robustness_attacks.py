"""White-box attacks: FGSM and PGD against their definitions, in the grid, as attacked copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from robustness_samples import copy_tree, embedded_images
from torch import nn

from realfake.attacks.linf import fgsm, make_attack, parse_attack, pgd
from realfake.attacks.whitebox import attack_images, log_probabilities, scorer_loss
from realfake.cli import main
from realfake.errors import ConfigError
from realfake.inference import Predictor, Scorer, tta_probabilities
from realfake.robustness.grid import parse_entries, robustness_report
from realfake.runs import ModelSpec

EPS = 8 / 255


def _linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2)).eval()


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 2),
    ).eval()  # fmt: skip


def _ce(model: nn.Module):
    return lambda x, y: F.cross_entropy(model(x), y, reduction="none")


def _batch(n: int = 16, size: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), generator=g).float() / 255
    x[0, 0, 0, :2] = torch.tensor([0.0, 1.0])  # pixels at the ends of the range
    return x, torch.randint(0, 2, (n,), generator=g)


# --- the attacks against their definitions ----------------------------------------------------


def test_fgsm_is_one_signed_gradient_step_clipped_to_the_pixel_range() -> None:
    model = _linear()
    x, y = _batch()
    # For a linear model the gradient of the cross-entropy in x is (p - onehot(y)) W, whose sign
    # for two classes is the sign of W[other] - W[y] (p(other) > 0): no autograd needed.
    w = model[1].weight.detach().view(2, 3, 8, 8)
    direction = (w[1 - y] - w[y]).sign()
    expected = (x + EPS * direction).clamp(0, 1)
    assert torch.allclose(fgsm(_ce(model), x, y, EPS), expected, atol=1e-7)
    assert all(p.grad is None for p in model.parameters())  # gradients in the pixels only


def test_pgd_of_one_step_of_eps_without_random_start_is_fgsm() -> None:
    model, (x, y) = _cnn(), _batch()
    one_step = pgd(_ce(model), x, y, EPS, alpha=EPS, steps=1, random_start=False)
    assert torch.equal(one_step, fgsm(_ce(model), x, y, EPS))


def test_every_pgd_iterate_stays_in_the_eps_ball_and_the_pixel_range() -> None:
    model, (x, y) = _cnn(), _batch()
    seen: list[torch.Tensor] = []

    def loss(pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        seen.append(pixels.detach().clone())
        return _ce(model)(pixels, labels)

    last = pgd(loss, x, y, EPS, alpha=EPS / 3, steps=6, generator=torch.Generator().manual_seed(0))
    assert len(seen) == 6  # the random start, then each iterate before its step
    for iterate in [*seen, last]:
        assert float((iterate - x).abs().max()) <= EPS + 1e-6
        assert float(iterate.min()) >= 0.0 and float(iterate.max()) <= 1.0
    assert float((last - x).abs().max()) > EPS - 1e-6  # it does reach the edge of the ball
    assert not torch.equal(seen[0], x)  # random start


def test_attacks_raise_the_loss_and_pgd_is_stronger() -> None:
    model, (x, y) = _cnn(), _batch(64)
    loss = _ce(model)
    generator = torch.Generator().manual_seed(0)
    attacked = [fgsm(loss, x, y, EPS), pgd(loss, x, y, EPS, 2.5 * EPS / 10, 10, True, generator)]
    with torch.no_grad():
        clean, after_fgsm, after_pgd = (float(loss(a, y).mean()) for a in [x, *attacked])
    assert clean < after_fgsm <= after_pgd


def test_pgd_is_deterministic_given_a_seed() -> None:
    model, (x, y) = _cnn(), _batch()

    def run(seed: int) -> torch.Tensor:
        return pgd(_ce(model), x, y, EPS, EPS / 4, 5, True, torch.Generator().manual_seed(seed))

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_attack_specs_state_steps_and_step_size() -> None:
    pgd4 = parse_attack("pgd:4")
    assert (pgd4.kind, pgd4.eps, pgd4.steps, pgd4.alpha, pgd4.random_start) == (
        "pgd", 4, 20, 0.5, True)  # fmt: skip
    assert pgd4.describe() == (
        "PGD, L∞ ε = 4/255, 20 steps of α = 0.5/255, random start (Madry et al. 2018)"
    )
    fgsm2 = parse_attack("FGSM:2")
    assert (fgsm2.steps, fgsm2.alpha, fgsm2.random_start) == (1, 2, False)
    fast = make_attack("fgsm_rs", 8)  # Wong et al. 2020
    assert (fast.steps, fast.alpha, fast.random_start) == (1, 10.0, True)
    assert [e.name for e in parse_entries("jpeg:50,pgd")] == [
        "jpeg:50", "pgd:1", "pgd:2", "pgd:4", "pgd:8"]  # fmt: skip
    assert not [e for e in parse_entries(None) if e.kind in ("fgsm", "pgd")]  # not by default


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("pgd:0.5", "not an integer in [1, 255]"),
        ("fgsm:0", "not an integer in [1, 255]"),
        ("pgd:x", "not an integer"),
        ("pgd:nan", "not an integer"),
        ("cw:4", "unknown kind 'cw'"),  # lists perturbations and attacks
    ],
)
def test_bad_attack_specs_say_what_would_be_right(spec: str, words: str) -> None:
    with pytest.raises(ConfigError, match="pgd") as info:
        parse_entries(spec)
    assert words in str(info.value)
    with pytest.raises(ConfigError, match="one step"):
        make_attack("fgsm_rs", 8, steps=3)


# --- against a Predictor: its own function, rounded to uint8 ----------------------------------


@pytest.fixture(scope="module")
def random_predictor() -> Predictor:
    spec = ModelSpec(
        model="fastnet", classes=("FAKE", "REAL"), image_size=32, resize="stretch",
        mean=(0.5, 0.45, 0.4), std=(0.25, 0.24, 0.26), flip_tta=True, positive_class="FAKE",
    )  # fmt: skip
    torch.manual_seed(0)
    return Predictor(spec.build_model().eval(), spec)


@pytest.fixture(scope="module")
def random_scorer(random_predictor: Predictor) -> Scorer:
    return Scorer.build(random_predictor)


def test_the_attacked_function_is_the_scorers(random_predictor, random_scorer) -> None:
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    x = random_predictor.normalize(images)
    for flip in (False, True):
        probs = tta_probabilities(random_predictor.model, x, flip)
        log_p = log_probabilities(random_predictor.model, x, flip)
        assert torch.allclose(log_p.exp(), probs, atol=1e-6)
    labels = torch.tensor([0, 1] * 4)
    loss = scorer_loss(random_scorer)(images.float() / 255, labels)
    expected = -np.log(random_predictor.probabilities(images)[np.arange(8), labels.numpy()])
    assert np.allclose(loss.detach().numpy(), expected, atol=1e-5)


@pytest.mark.slow
def test_eps_of_one_moves_pixels_by_exactly_one_after_rounding(random_scorer) -> None:
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    labels = torch.tensor([0, 1] * 4)
    out = attack_images(random_scorer, images, labels, parse_attack("fgsm:1"))
    step = out.int() - images.int()
    assert out.dtype == torch.uint8 and set(step.unique().tolist()) <= {-1, 0, 1}
    moved = (step != 0).float().mean()
    assert moved > 0.9, f"only {moved:.0%} of the pixels moved"  # the rest: zero gradient or clip
    pgd8 = make_attack("pgd", 8, steps=3)  # α = 2.5·ε/3: the edge of the ball in 3 steps
    out = attack_images(random_scorer, images, labels, pgd8, seed=1)
    assert int((out.int() - images.int()).abs().max()) == 8
    assert torch.equal(out, attack_images(random_scorer, images, labels, pgd8, seed=1))


# --- grid entries on the session's tiny run ---------------------------------------------------


@pytest.fixture(scope="module")
def few_test_images(tmp_path_factory) -> Path:
    """16 test images per class of the embedded set: PGD costs 10 passes per image."""
    files = {f"{label}/{p.name}": p for label in ("FAKE", "REAL")
             for p in embedded_images("test", label, 16)}  # fmt: skip
    return copy_tree(files, tmp_path_factory.mktemp("few") / "test")


@pytest.fixture(scope="module")
def attacked_grid(tiny_run: Path, few_test_images: Path):
    return robustness_report(tiny_run, few_test_images, "fgsm:1,fgsm:8,pgd:8")


@pytest.mark.slow
def test_attacked_accuracy_falls_with_eps(attacked_grid) -> None:
    rows = {r.perturbation: r for r in attacked_grid.rows}
    assert list(rows) == ["clean", "fgsm:1", "fgsm:8", "pgd:8"]
    assert all(r.n == 32 for r in rows.values())
    assert (rows["fgsm:1"].kind, rows["fgsm:1"].level) == ("fgsm", 1)
    clean, weak, strong, pgd8 = (rows[k].accuracy for k in rows)
    # The tiny run is barely trained, but white-box it is still a model with gradients: every
    # attack costs accuracy, more ε costs more, and PGD at 8/255 leaves the least.
    assert clean >= weak >= strong >= pgd8
    assert pgd8 < clean
    assert rows["pgd:8"].roc_auc < rows["clean"].roc_auc


@pytest.mark.slow
def test_robustness_command_states_how_each_attack_ran(
    tiny_run: Path, few_test_images: Path, tmp_path: Path, capsys
) -> None:
    args = ["robustness", str(tiny_run), "--data", str(few_test_images)]
    assert main([*args, "--perturbations", "fgsm:2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fgsm:2: FGSM, L∞ ε = 2/255, 1 step of α = 2/255, no random start" in out
    assert "white-box" in out and "rounded to uint8" in out
    assert main([*args, "--perturbations", "pgd:3.5", "--out", str(tmp_path)]) == 2
    assert "not an integer in [1, 255]" in capsys.readouterr().err


# --- attacked copies -------------------------------------------------------------------------


def _pixels(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).transpose(2, 0, 1).copy())


@pytest.mark.slow
def test_attacked_copy_stays_within_eps_and_changes_predictions(
    tiny_run: Path, few_test_images: Path, tmp_path: Path, capsys
) -> None:
    dst = tmp_path / "attacked"
    args = ["data", "perturb", str(few_test_images), str(dst), "-p", "fgsm:4"]
    assert main([*args, "--checkpoint", str(tiny_run)]) == 0
    out = capsys.readouterr().out
    assert "attacked classes: the source's classes" in out and "changed on" in out
    sources = sorted(p.relative_to(few_test_images) for p in few_test_images.rglob("*.jpg"))
    written = sorted(p.relative_to(dst) for p in dst.rglob("*") if p.is_file())
    assert written == [p.with_suffix(".png") for p in sources]
    before = torch.stack([_pixels(few_test_images / p) for p in sources])
    after = torch.stack([_pixels(dst / p.with_suffix(".png")) for p in sources])
    assert int((after.int() - before.int()).abs().max()) == 4
    predictor = Predictor.load(tiny_run)
    labels = np.array([0 if p.parts[0] == "FAKE" else 1 for p in sources])
    clean = predictor.probabilities(before).argmax(1)
    attacked = predictor.probabilities(after).argmax(1)
    assert (clean != attacked).any()
    # The attack pushes each image away from its own class: accuracy can only fall.
    assert (attacked == labels).sum() <= (clean == labels).sum()


def test_attacked_copy_of_unlabelled_images_attacks_the_models_prediction(
    tiny_run: Path, tmp_path: Path, capsys
) -> None:
    flat = copy_tree({p.name: p for p in embedded_images("test", "REAL", 6)}, tmp_path / "flat")
    dst = tmp_path / "dst"
    args = ["data", "perturb", str(flat), str(dst), "-p", "fgsm:2", "--checkpoint", str(tiny_run)]
    assert main(args) == 0
    assert "the model's own predictions (unlabelled source)" in capsys.readouterr().out
    assert len(list(dst.glob("*.png"))) == 6


def test_attack_flags_are_checked(tiny_run: Path, few_test_images: Path, tmp_path: Path, capsys):
    src, dst = str(few_test_images), str(tmp_path / "dst")
    assert main(["data", "perturb", src, dst, "-p", "pgd:4"]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert main(["data", "perturb", src, dst, "-p", "jpeg:50", "--checkpoint", str(tiny_run)]) == 2
    assert "leave --checkpoint out" in capsys.readouterr().err
    other = copy_tree({"CAT/a.jpg": embedded_images("test", "REAL", 1)[0]}, tmp_path / "cats")
    args = ["data", "perturb", str(other), dst, "-p", "pgd:4", "--checkpoint", str(tiny_run)]
    assert main(args) == 2
    assert "class names do not match" in capsys.readouterr().err
    assert not (tmp_path / "dst").exists()
