{{/* The chart's name, as in labels and the DaemonSet selector. */}}
{{- define "sscsi.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Base name of the DaemonSets: fullnameOverride, else the release name when it
already contains the chart name, else "<release>-<chart name>" (the same
names upstream's chart gives, so that a release moved to this chart keeps
its objects).
*/}}
{{- define "sscsi.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "sscsi.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object: Helm's bookkeeping plus commonLabels. */}}
{{- define "sscsi.labels" -}}
app.kubernetes.io/name: {{ include "sscsi.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name (.Chart.Version | replace "+" "_") | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* An image reference from {repository, tag, digest}: the digest wins. */}}
{{- define "sscsi.image" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository (toString .tag) -}}
{{- end -}}
{{- end -}}

{{/* The port of a listen address such as ":8095" or "0.0.0.0:8095". */}}
{{- define "sscsi.port" -}}
{{- regexReplaceAll "^.*:" (toString .) "" -}}
{{- end -}}

{{/* --log-level from logLevel, else from upstream's klog logVerbosity. */}}
{{- define "sscsi.logLevel" -}}
{{- if .Values.logLevel -}}
{{- .Values.logLevel -}}
{{- else if ge (int .Values.logVerbosity) 5 -}}
trace
{{- else if ge (int .Values.logVerbosity) 1 -}}
debug
{{- end -}}
{{- end -}}

{{/* Host directory of the FUSE root mount and the keeper's socket. */}}
{{- define "sscsi.stateDir" -}}
{{- .Values.linux.stateDir | default "/var/run/secrets-store-csi-driver" -}}
{{- end -}}
