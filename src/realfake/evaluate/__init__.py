"""Evaluation of trained runs: metrics, bootstrap intervals, figures, reports, tracking.

evaluation  evaluate(model) -> metrics.json, predictions.csv, figures/, report.md/.html; the
            deliberate step that freezes a threshold, UNSURE band and feature distance
metrics     classification metrics of probabilities (scikit-learn, torchmetrics)
tracking    the evaluation logged to the run's MLflow entry (and W&B offline run)
bootstrap   percentile intervals of the metrics
significance paired tests of two classifiers on the same images (bootstrap, McNemar)
figures     confusion matrix, ROC, PR, reliability, mistakes, learning curves
report      the run's report.md/.html; markup renders both from one document
"""
