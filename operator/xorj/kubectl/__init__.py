"""``kubectl xorj``: a kubectl plugin (the console script ``kubectl-xorj``) for people on call.

Shaped like CloudNativePG's ``kubectl cnpg``: thin click commands (:mod:`.cli`) over a small read/act
layer (:mod:`.cluster` for the Kubernetes API, :mod:`.ledger` for the read-only ledger login,
:mod:`.chain` for signature slots) and pure views (:mod:`.views`) that build what is printed, as a
table or as JSON. See docs/kubectl-xorj.md.
"""
