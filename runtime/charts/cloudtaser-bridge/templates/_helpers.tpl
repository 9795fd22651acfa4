{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "cloudtaser-bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already contains the chart name. */}}
{{- define "cloudtaser-bridge.fullname" -}}
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

{{- define "cloudtaser-bridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cloudtaser-bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cloudtaser-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cloudtaser-bridge.labels" -}}
helm.sh/chart: {{ include "cloudtaser-bridge.chart" . }}
{{ include "cloudtaser-bridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: bridge
app.kubernetes.io/part-of: cloudtaser
{{- end }}

{{- define "cloudtaser-bridge.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "cloudtaser-bridge.required" -}}
{{- $beacon := required "bridge.beacon.address is required: the beacon's host:port, e.g. --set bridge.beacon.address=cloudtaser-beacon-headless.cloudtaser.svc:443" .Values.bridge.beacon.address }}
{{- $openbao := required "bridge.openbao.address is required: OpenBao's URL, e.g. --set bridge.openbao.address=https://openbao.openbao.svc:8200" .Values.bridge.openbao.address }}
{{- $approle := required "bridge.openbao.auth.approle.secretName is required: a Secret with the AppRole role-id and secret-id (never put them in values)" .Values.bridge.openbao.auth.approle.secretName }}
{{- end }}
