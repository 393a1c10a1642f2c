{{/* Labels on every object of the chart. */}}
{{- define "dbtls.labels" -}}
app.kubernetes.io/part-of: dbtls
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/*
The two operators as a list of dicts {name, values}, so that the Deployment, ServiceAccount,
Service and ServiceMonitor templates are written once. Usage:
  {{- range (include "dbtls.operators" . | fromYamlArray) }} ... {{- end }}
*/}}
{{- define "dbtls.operators" -}}
- name: provisioner
  values: {{ toJson .Values.provisioner }}
- name: ops-manager
  values: {{ toJson .Values.opsManager }}
{{- end }}

{{/* "true" when leader election must run: more than one replica, or forced on. */}}
{{- define "dbtls.leaderElect" -}}
{{- if or (gt (int .replicas) 1) .leaderElection.enabled -}}true{{- else -}}false{{- end -}}
{{- end }}
