"""grok: a runner for structural-grokking experiments (Murty, Sharma, Andreas & Manning, ACL 2023)."""

__version__ = "0.1.0"
