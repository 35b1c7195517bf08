"""Cross-validation benchmarking: label budgets and (later) the benchmark runner's pure parts."""
