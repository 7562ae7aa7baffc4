"""Studies: sets of runs trained, evaluated and compared in one table, and hyper-parameter sweeps.

study       named arms of config overrides, trained over seeds (configs/study/*.yaml)
comparison  finished runs as one table (mean ± std per arm), Markdown, CSV, HTML, curves
sweepfile   sweep files, ours (configs/sweep/*.yaml) and W&B's, read and checked
sweep       Optuna searches: each trial a train() run; pruning, interruptions, results
sweepstorage  the study's storage: timeouts, masked secrets, dead workers' trials retried
sweepplots  a sweep's PNG plots (history, importances, parallel coordinates, slices)
"""
