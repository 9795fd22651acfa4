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

{{/* repository@digest when a digest is given (immutable), else repository:tag (tag defaults to appVersion). */}}
{{- define "cloudtaser-beacon.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
An object's name with a suffix, kept within 63 characters: the full name is shortened first, so the suffix
always survives. Call with (dict "root" . "suffix" "headless").
*/}}
{{- define "cloudtaser-beacon.suffixedName" -}}
{{- $base := include "cloudtaser-beacon.fullname" .root | trunc (int (sub 62 (len .suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base .suffix }}
{{- end }}

{{- define "cloudtaser-beacon.tlsSecretName" -}}
{{- default (include "cloudtaser-beacon.suffixedName" (dict "root" . "suffix" "tls")) .Values.tls.secretName }}
{{- end }}

{{/* The in-cluster address bridges dial: the headless Service, on the port the pods listen on (no translation). */}}
{{- define "cloudtaser-beacon.headlessAddress" -}}
{{- printf "%s.%s.svc:%d" (include "cloudtaser-beacon.suffixedName" (dict "root" . "suffix" "headless")) .Release.Namespace (int .Values.beacon.port) }}
{{- end }}

{{/* The ConfigMap (key ca.crt) with the CAs of the bridges' client certificates. */}}
{{- define "cloudtaser-beacon.bridgeCaConfigMap" -}}
{{- default (include "cloudtaser-beacon.suffixedName" (dict "root" . "suffix" "bridge-ca")) .Values.beacon.bridgeAuth.caConfigMap }}
{{- end }}
