"""Evaluation of trained runs: metrics, the frozen threshold, bootstrap intervals, figures, reports.

evaluation  evaluate(run) -> metrics.json, figures/, report.md/.html
sources     the images scored and the threshold frozen on the run's validation split
metrics     classification metrics of probabilities (scikit-learn, torchmetrics)
threshold   choosing the binary threshold on validation data
bootstrap   percentile intervals of the metrics
significance paired tests of two classifiers on the same images (bootstrap, McNemar)
figures     confusion matrix, ROC, PR, reliability, mistakes, learning curves
report      the run's report.md/.html; markup renders both from one document
"""
