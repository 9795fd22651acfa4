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

{{/* repository@digest when a digest is given (immutable), else repository:tag (tag defaults to appVersion). */}}
{{- define "cloudtaser.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
A namespaced object's name with a suffix, kept within 63 characters: the full name is shortened first, so the
suffix always survives. Call with (dict "root" . "suffix" "attestation").
*/}}
{{- define "cloudtaser.suffixedName" -}}
{{- $base := include "cloudtaser.fullname" .root | trunc (int (sub 62 (len .suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base .suffix }}
{{- end }}

{{/*
Name of a cluster-scoped object (ClusterRoles, their bindings, the MutatingWebhookConfiguration): the release
namespace, the full name and an optional suffix, so two releases (another namespace, another name) never collide.
Longer than 63 characters, it keeps a hash of the whole so it stays unique. Call with (dict "root" . "suffix" "").
*/}}
{{- define "cloudtaser.clusterName" -}}
{{- $name := printf "%s-%s" .root.Release.Namespace (include "cloudtaser.fullname" .root) }}
{{- if .suffix }}
{{- $name = printf "%s-%s" $name .suffix }}
{{- end }}
{{- if gt (len $name) 63 }}
{{- printf "%s-%s" ($name | trunc 54 | trimSuffix "-") ($name | sha256sum | trunc 8) }}
{{- else }}
{{- $name }}
{{- end }}
{{- end }}

{{/* The one required value, with a message that says what to set (the schema says the same at install). */}}
{{- define "cloudtaser.beaconAddress" -}}
{{- required "operator.broker.beacon.address is required: set it to the beacon's host:port, e.g. --set operator.broker.beacon.address=beacon.example.com:443" .Values.operator.broker.beacon.address }}
{{- end }}

{{/* The broker's trust record ConfigMap (see trust-record.yaml); the Role grants get/patch on this name only. */}}
{{- define "cloudtaser.trustRecordName" -}}
{{- include "cloudtaser.suffixedName" (dict "root" . "suffix" "trust") }}
{{- end }}
