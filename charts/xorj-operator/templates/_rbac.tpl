{{/* The operator's rules in a watched namespace. Keep in step with xorj.controller. */}}
{{- define "xorj.operatorRules" -}}
# The two custom resources: watched, annotated/finalized by kopf, status mirrored from the ledger.
- apiGroups: [trading.xorj.io]
  resources: [tradingstrategies, copytrades]
  verbs: [get, list, watch, patch]
- apiGroups: [trading.xorj.io]
  resources: [tradingstrategies/status, copytrades/status]
  verbs: [patch]
# Terminal CopyTrades are deleted after ttlSecondsAfterFinished.
- apiGroups: [trading.xorj.io]
  resources: [copytrades]
  verbs: [delete]
# What a TradingStrategy is reconciled into (owned by it; garbage-collected with it).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [get, list, watch, create, patch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch]
# Kubernetes Events for every transition a person cares about.
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create]
{{- if .Values.operator.peering }}
# kopf peering: one active operator among the replicas.
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end -}}
