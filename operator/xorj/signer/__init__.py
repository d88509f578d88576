"""The signer boundary: the ``xorj signer`` process that holds vault keys and signs only what its own
checks allow (docs/security.md, "The signer boundary")."""
