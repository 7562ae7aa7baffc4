"""Studies: sets of runs trained, evaluated and compared in one table (sweeps will live here).

study       named arms of config overrides, trained over seeds (configs/study/*.yaml)
comparison  finished runs as one table (mean ± std per arm), Markdown, CSV, HTML, curves
"""
