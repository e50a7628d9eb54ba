{{/*
Names. Cluster-scoped objects (the ClusterRoles and their binding) carry the
prefix too, so that two releases never fight over one object; with the
release named "skycall" they are skycall-manager and skycall-sender, as in
config/ (kustomize).
*/}}
{{- define "skycall.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "skycall.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The manager's Deployment, ClusterRole and ClusterRoleBinding. */}}
{{- define "skycall.managerName" -}}
{{- printf "%s-manager" (include "skycall.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The ClusterRole sender pods are bound to. */}}
{{- define "skycall.senderRoleName" -}}
{{- printf "%s-sender" (include "skycall.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "skycall.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "skycall.managerName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Leader election is on with more than one replica, or when forced. */}}
{{- define "skycall.leaderElect" -}}
{{- if or (gt (int .Values.replicas) 1) .Values.leaderElection.enabled }}true{{- end }}
{{- end }}

{{- define "skycall.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "skycall.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: skycall
{{- end }}

{{- define "skycall.selectorLabels" -}}
app.kubernetes.io/name: {{ include "skycall.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selects the manager pods (and labels the metrics Service). */}}
{{- define "skycall.managerSelectorLabels" -}}
{{ include "skycall.selectorLabels" . }}
app.kubernetes.io/component: manager
{{- end }}

{{/* The manager image: by digest when one is given, else by tag. */}}
{{- define "skycall.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The ClusterRole that may scrape the manager's metrics. */}}
{{- define "skycall.metricsReaderName" -}}
{{- printf "%s-metrics-reader" (include "skycall.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
