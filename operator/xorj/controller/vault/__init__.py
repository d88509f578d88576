"""The Vault kind: one more follower vault of a TradingStrategy (docs/design.md "Vaults")."""
