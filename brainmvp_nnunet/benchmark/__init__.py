"""Cross-validation benchmarking, pure parts: label budgets, the TOML configuration, job scheduling
(in-process or one worker per GPU) and collecting finished runs into report rows."""
