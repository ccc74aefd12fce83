"""The 502 lab: real nginx + php-fpm on loopback reproduce every cause of docs/causes.md, with an exact ground truth.

``python -m lab.run OUTDIR`` runs it (see lab/run.py); ``python -m lab.record`` records a run into examples/lab.
"""
