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

{{/* repository@digest when a digest is given (immutable), else repository:tag (tag defaults to appVersion). */}}
{{- define "cloudtaser-bridge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
An object's name with a suffix, kept within 63 characters: the full name is shortened first, so the suffix
always survives. Call with (dict "root" . "suffix" "peers").
*/}}
{{- define "cloudtaser-bridge.suffixedName" -}}
{{- $base := include "cloudtaser-bridge.fullname" .root | trunc (int (sub 62 (len .suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base .suffix }}
{{- end }}

{{/* The TokenReview endpoint as OpenBao reaches it: what `source register --tokenreview-endpoint` takes. */}}
{{- define "cloudtaser-bridge.tokenReviewEndpoint" -}}
{{- printf "https://%s.%s.svc:%d" (include "cloudtaser-bridge.fullname" .) .Release.Namespace (int .Values.bridge.tokenReview.port) }}
{{- end }}

{{- define "cloudtaser-bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cloudtaser-bridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cloudtaser-bridge.required" -}}
{{- $beacon := required "bridge.beacon.address is required: the beacon's host:port, e.g. --set bridge.beacon.address=cloudtaser-beacon-headless.cloudtaser-system.svc:8443" .Values.bridge.beacon.address }}
{{- $openbao := required "bridge.openbao.address is required: OpenBao's URL, e.g. --set bridge.openbao.address=https://openbao.openbao.svc:8200" .Values.bridge.openbao.address }}
{{- if eq .Values.bridge.openbao.auth.method "approle" }}
{{- $approle := required "bridge.openbao.auth.approle.secretName is required with auth.method approle: a Secret with the AppRole role-id and secret-id (never put them in values), or use auth.method kubernetes" .Values.bridge.openbao.auth.approle.secretName }}
{{- end }}
{{- end }}
