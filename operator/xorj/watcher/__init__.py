"""The watcher: lead traders' swaps in, follower trades out, exactly once (docs/design.md "Watcher")."""
