"""End-to-end workflows (the demo, later the benchmark): the top layer, which may use every other part."""
