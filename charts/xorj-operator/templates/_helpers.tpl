{{/* Names, labels and shared snippets. */}}

{{- define "xorj.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release> when it already says xorj (release "xorj" gives xorj-operator, xorj-ledger, ...). */}}
{{- define "xorj.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains "xorj" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-xorj" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "xorj.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "xorj.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: xorj-operator
{{- end -}}

{{/* Selector labels of one component: include with (dict "ctx" $ "component" "operator"). */}}
{{- define "xorj.selectorLabels" -}}
app.kubernetes.io/name: {{ include "xorj.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels the operator puts on executor pods (see xorj.controller); the policies select them. */}}
{{- define "xorj.executorPodSelector" -}}
app.kubernetes.io/component: executor
app.kubernetes.io/part-of: xorj-operator
{{- end -}}

{{/* The label that admits an executor pod to the bundled ledger (NetworkPolicy): the operator sets it on
executor pod templates (xorj.controller.tradingstrategy.desired.LEDGER_CLIENT_LABEL) and the admission policy
(templates/admission-policies.yaml) refuses it from anyone else, so unlike the labels above a tenant
cannot copy it onto a pod of theirs. */}}
{{- define "xorj.ledgerClientLabel" -}}trading.xorj.io/ledger-client{{- end -}}

{{- define "xorj.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The executor image: executor.image when its repository is set, else the chart's image. */}}
{{- define "xorj.executorImage" -}}
{{- if .Values.executor.image.repository -}}
{{- printf "%s:%s" .Values.executor.image.repository (default .Chart.AppVersion .Values.executor.image.tag) -}}
{{- else -}}
{{- include "xorj.image" . -}}
{{- end -}}
{{- end -}}

{{- define "xorj.executorImagePullPolicy" -}}
{{- default .Values.image.pullPolicy .Values.executor.image.pullPolicy -}}
{{- end -}}


{{- define "xorj.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "xorj.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{- define "xorj.executorServiceAccount" -}}
{{- default (printf "%s-executor" (include "xorj.fullname" .)) .Values.executor.serviceAccount.name -}}
{{- end -}}

{{/* The namespaces the operator watches, as a list (JSON-encoded for include). */}}
{{- define "xorj.watchNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- .Values.watchNamespaces | uniq | toJson -}}
{{- else -}}
{{- list .Release.Namespace | toJson -}}
{{- end -}}
{{- end -}}

{{- define "xorj.postgresqlName" -}}
{{- printf "%s-postgresql" (include "xorj.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Secret and key holding the ledger DSN. */}}
{{- define "xorj.ledgerSecretName" -}}
{{- if .Values.postgresql.enabled -}}
{{- printf "%s-ledger" (include "xorj.fullname" .) -}}
{{- else -}}
{{- required "ledger.existingSecret is required when postgresql.enabled is false (a Secret holding the ledger DSN)" .Values.ledger.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* The Secret executors read their ledger DSN (and the ledger CA) from, in each watched namespace. */}}
{{- define "xorj.executorLedgerSecretName" -}}
{{- .Values.ledger.executorSecret | default (printf "%s-ledger-executor" (include "xorj.fullname" .)) -}}
{{- end -}}

{{/* Where the operator finds the ledger's CA certificate (key ca.crt); empty: none to mount. */}}
{{- define "xorj.ledgerCaSecretName" -}}
{{- if .Values.postgresql.enabled -}}
{{- .Values.postgresql.tls.existingSecret | default (printf "%s-tls" (include "xorj.postgresqlName" .)) -}}
{{- else -}}
{{- .Values.ledger.caSecret -}}
{{- end -}}
{{- end -}}

{{/* The path the ledger CA is mounted at, in the operator's and executors' pods (xorj.controller.tradingstrategy.desired). */}}
{{- define "xorj.ledgerCaPath" -}}/var/run/xorj/ledger/ca.crt{{- end -}}

{{- define "xorj.ledgerSecretKey" -}}
{{- if .Values.postgresql.enabled -}}dsn{{- else -}}{{ .Values.ledger.existingSecretKey }}{{- end -}}
{{- end -}}

{{- define "xorj.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{- define "xorj.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}
