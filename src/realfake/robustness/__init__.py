"""Robustness and audits of trained checkpoints.

grid       metrics under every perturbation (data.perturbations) and white-box attack
           (attacks: fgsm, pgd), threshold frozen on clean validation data, as ``evaluate``
           chooses it
scores     accuracy, F1, ROC-AUC and AP of one set of probabilities
plot       the heat-map of a robustness report
shortcuts  JPEG re-encoding, per-CIFAR-10-class and other-size probes
leaks      exact and perceptual-hash near duplicates between train and test
"""
