"""`grok report`: figures and tables from run directories' metrics.jsonl (no wandb needed).

collect (find and read runs) -> summary (early stopping, Δ, grokking step, success fractions) -> figures (PNGs)
and render/document (report.md, report.html), beside the paper's numbers in published; build ties them together.
"""
