{{/* Egress peers and ports, shared by the NetworkPolicies. */}}

{{- define "xorj.netpol.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          {{- toYaml .Values.networkPolicy.dns.namespaceSelector | nindent 10 }}
      podSelector:
        matchLabels:
          {{- toYaml .Values.networkPolicy.dns.podSelector | nindent 10 }}
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end -}}

{{- define "xorj.netpol.ledgerEgress" -}}
{{- if .Values.postgresql.enabled }}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .Release.Namespace }}
      podSelector:
        matchLabels:
          {{- include "xorj.selectorLabels" (dict "ctx" . "component" "ledger") | nindent 10 }}
  ports:
    - {protocol: TCP, port: 5432}
{{- else }}
- to:
    {{- if .Values.ledger.podSelector }}
    - podSelector:
        matchLabels:
          {{- toYaml .Values.ledger.podSelector | nindent 10 }}
      {{- if .Values.ledger.namespaceSelector }}
      namespaceSelector:
        matchLabels:
          {{- toYaml .Values.ledger.namespaceSelector | nindent 10 }}
      {{- end }}
    {{- end }}
    {{- range .Values.ledger.cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - {protocol: TCP, port: {{ .Values.ledger.port }}}
{{- end }}
{{- end -}}

{{/* Egress to addresses outside the cluster: (dict "cidrs" [...] "ports" [...] "what" "values path").
An egress rule without `to` allows every destination, so an empty list is refused, never rendered. */}}
{{- define "xorj.netpol.cidrEgress" -}}
{{- if not .cidrs }}
{{- fail (printf "%s.cidrs is required while networkPolicy.enabled: the addresses the executors may reach (there is no open default; write 0.0.0.0/0 if you mean it)" .what) }}
{{- end }}
- to:
    {{- range .cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    {{- range .ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- end -}}

{{/* Metrics ingress peers. An ingress rule without `from` would admit every pod, so with no peers the
metrics port gets no rule at all (the component's policy then denies it). */}}
{{- define "xorj.netpol.metricsFrom" -}}
from:
  {{- toYaml .Values.networkPolicy.metricsFrom | nindent 2 }}
{{- end -}}
