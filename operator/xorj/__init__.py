"""xorj-operator: exactly-once copy trading on Solana, run by a Kubernetes operator."""

__version__ = "0.1.0"
