{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "cloudtaser-beacon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already contains the chart name. */}}
{{- define "cloudtaser-beacon.fullname" -}}
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

{{- define "cloudtaser-beacon.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cloudtaser-beacon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cloudtaser-beacon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cloudtaser-beacon.labels" -}}
helm.sh/chart: {{ include "cloudtaser-beacon.chart" . }}
{{ include "cloudtaser-beacon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: beacon
app.kubernetes.io/part-of: cloudtaser
{{- end }}

{{- define "cloudtaser-beacon.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "cloudtaser-beacon.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "cloudtaser-beacon.fullname" .)) .Values.tls.secretName }}
{{- end }}

{{/* The ConfigMap (key ca.crt) with the CAs of the bridges' client certificates. */}}
{{- define "cloudtaser-beacon.bridgeCaConfigMap" -}}
{{- default (printf "%s-bridge-ca" (include "cloudtaser-beacon.fullname" .)) .Values.beacon.bridgeAuth.caConfigMap }}
{{- end }}
