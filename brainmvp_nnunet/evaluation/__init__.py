"""Evaluation: segmentation and classification metrics, statistics and benchmark reports.

Modules (imported one by one, so that metric users do not pay for matplotlib and pandas):

* ``metrics``: Dice, HD95, normalised surface Dice on masks with spacing; empty-mask conventions;
* ``classification``: accuracy, balanced accuracy, ROC AUC, F1 in numpy;
* ``stats``: tidy tables, mean +/- sd ignoring NaN, paired Wilcoxon tests against the scratch arm;
* ``results``: rows from nnU-Net's ``summary.json``; HD95/NSD recomputed for prediction folders;
* ``report``: per-case CSV, markdown table and PNG plots.
"""
