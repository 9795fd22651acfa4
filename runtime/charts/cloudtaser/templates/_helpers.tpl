{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "cloudtaser.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already contains the chart name. */}}
{{- define "cloudtaser.fullname" -}}
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

{{- define "cloudtaser.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cloudtaser.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cloudtaser.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cloudtaser.labels" -}}
helm.sh/chart: {{ include "cloudtaser.chart" . }}
{{ include "cloudtaser.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: cloudtaser
{{- end }}

{{- define "cloudtaser.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cloudtaser.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cloudtaser.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The one required value, with a message that says what to set (the schema says the same at install). */}}
{{- define "cloudtaser.beaconAddress" -}}
{{- required "operator.broker.beacon.address is required: set it to the beacon's host:port, e.g. --set operator.broker.beacon.address=beacon.example.com:443" .Values.operator.broker.beacon.address }}
{{- end }}

{{/* The broker's trust record ConfigMap (see trust-record.yaml); the Role grants get/patch on this name only. */}}
{{- define "cloudtaser.trustRecordName" -}}
{{- printf "%s-trust" (include "cloudtaser.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
