"""White-box L∞ attacks on a trained network, defined on the pixel scale.

linf           FGSM, FGSM with random start and PGD on float pixels in [0, 1], against any
               loss; ``Attack`` names one attack at one radius (``pgd:4``: ε = 4/255)
whitebox       the loss a Predictor computes (its normalisation and flip TTA) and attacked
               uint8 images, rounded back to whole pixel values as a file on disk holds them
attacked_copy  an attacked copy of a data set (``realfake data perturb --perturbation pgd:4
               --checkpoint RUN``)

Used by the robustness grid (``fgsm:EPS``, ``pgd:EPS`` entries) and by adversarial training
(``experiment=adversarial``). Attacks need a model, so they live above ``realfake.data`` and
``realfake.inference`` and below the analyses and training that use them.
"""

from realfake.attacks.linf import ATTACKS, Attack, fgsm, make_attack, parse_attack, pgd

__all__ = ["ATTACKS", "Attack", "fgsm", "make_attack", "parse_attack", "pgd"]
