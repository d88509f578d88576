{{/*
The operator's rules in a watched namespace: exactly the calls xorj.controller and kopf make, as
recorded by tests/e2e/chart (a proxy in front of the API server while the operator runs under this
Role). Children are written by server-side apply: PATCH, plus create when the apply creates them.
*/}}
{{- define "xorj.operatorRules" -}}
# The two custom resources: watched by kopf, annotated/finalized by it, status mirrored from the
# ledger. A strategy is read directly when the watch-fed index has not seen it yet.
- apiGroups: [trading.xorj.io]
  resources: [tradingstrategies]
  verbs: [get, list, watch, patch]
# Terminal CopyTrades are deleted after ttlSecondsAfterFinished.
- apiGroups: [trading.xorj.io]
  resources: [copytrades]
  verbs: [list, watch, patch, delete]
# TraderPools: scored on a timer (kopf watches them); a strategy's topN reads its pool's ranks.
- apiGroups: [trading.xorj.io]
  resources: [traderpools]
  verbs: [get, list, watch, patch]
# Vaults: reconciled into the ledger's vault registry; finalized (their PENDING trades cancelled).
- apiGroups: [trading.xorj.io]
  resources: [vaults]
  verbs: [list, watch, patch]
- apiGroups: [trading.xorj.io]
  resources: [tradingstrategies/status, copytrades/status, traderpools/status, vaults/status]
  verbs: [patch]
# What a TradingStrategy is reconciled into (owned by it; garbage-collected with it). The
# Deployment is read back for its replica counts, and scaled to zero (patch) when its strategy is
# refused (e.g. a Secret binding revoked).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, create, patch]
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [create, patch]
# A TraderPool's candidates may be listed in ConfigMaps chosen by label (spec.walletConfigMaps).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [list]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [create, patch]
# The metadata of the Secrets a strategy names (vault keypair, API keys), to check their binding
# annotation. The operator asks for PartialObjectMetadata: the API server sends no Secret data.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- if .Values.ledger.executorLogins }}
# The executors' ledger login Secret (xorj.controller.ledger_logins), written by server-side apply; no
# other Secret is written. (create cannot be limited to a name; its metadata is read by the get above.)
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [{{ include "xorj.executorLedgerSecretName" . }}]
  verbs: [patch]
{{- end }}
# Kubernetes Events for every transition a person cares about.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- if .Values.operator.peering }}
# kopf peering: one active operator among the replicas; the operator creates its KopfPeering at start.
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [list, watch, create, patch]
{{- end }}
{{- end -}}
