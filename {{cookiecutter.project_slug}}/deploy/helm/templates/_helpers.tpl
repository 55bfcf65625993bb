{{/*
Names. The full name is cut at 40 characters so that every name built on it stays a valid
label value (63): "<full>-postgresql" plus the StatefulSet's revision hash, "<full>-migrate-<n>".
*/}}
{{- define "agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{- define "agent.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; pass a dict with "ctx" (the root) and "component". */}}
{{- define "agent.labels" -}}
helm.sh/chart: {{ include "agent.chart" .ctx }}
{{ include "agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{- define "agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agent.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The pods that may reach PostgreSQL and Redis, as a NetworkPolicy peer. */}}
{{- define "agent.appPeer" -}}
podSelector:
  matchLabels:
    app.kubernetes.io/name: {{ include "agent.name" . }}
    app.kubernetes.io/instance: {{ .Release.Name }}
  matchExpressions:
    - key: app.kubernetes.io/component
      operator: In
      values: [api, worker, migrate]
{{- end }}

{{- define "agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "agent.secretName" -}}
{{- if .Values.secrets.create }}
{{- include "agent.fullname" . }}
{{- else }}
{{- .Values.secrets.existingSecret }}
{{- end }}
{{- end }}

{{- define "agent.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The config.yaml the pods read: configYaml verbatim when given, else the config map. */}}
{{- define "agent.configYaml" -}}
{{- if .Values.configYaml }}
{{- .Values.configYaml }}
{{- else }}
{{- toYaml .Values.config }}
{{- end }}
{{- end }}

{{- define "agent.databaseUrl" -}}
{{- if .Values.postgresql.enabled }}
{{- $auth := .Values.postgresql.auth }}
{{- printf "postgresql://%s@%s-postgresql:5432/%s" $auth.username (include "agent.fullname" .) $auth.database }}
{{- else }}
{{- .Values.externalDatabase.url }}
{{- end }}
{{- end }}

{{- define "agent.redisUrl" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s-redis:6379/0" (include "agent.fullname" .) }}
{{- else }}
{{- .Values.externalRedis.url }}
{{- end }}
{{- end }}

{{/*
Least privilege, as compose: a fixed non-root uid, no capabilities, no privilege escalation, a
read-only root. Pass a dict with "uid" and "gid" (the image's own user).
*/}}
{{- define "agent.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .gid }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The pod side of the same; fsGroup makes volumes and secret files readable by the user. */}}
{{- define "agent.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .gid }}
fsGroup: {{ .gid }}
# Volumes are changed only when their root differs: a recursive pass on every start is slow
# on a full volume, and adds group write to files (PostgreSQL then refuses its data).
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The image's user (Dockerfile: ARG APP_UID=10001, group of the same id). */}}
{{- define "agent.appUser" -}}
{{- dict "uid" 10001 "gid" 10001 | toJson }}
{{- end }}

{{/* Settings of the app pods: URLs here, secrets as files (the *_FILE variants). */}}
{{- define "agent.appEnv" -}}
- name: ENVIRONMENT
  value: {{ .Values.environment | quote }}
- name: DATABASE_URL
  value: {{ include "agent.databaseUrl" . | quote }}
- name: DATABASE_PASSWORD_FILE
  value: /run/secrets/postgres_password
- name: REDIS_URL
  value: {{ include "agent.redisUrl" . | quote }}
- name: REDIS_PASSWORD_FILE
  value: /run/secrets/redis_password
- name: API_KEYS_FILE
  value: /run/secrets/api_keys
- name: SECRET_KEY_FILE
  value: /run/secrets/secret_key
- name: OPENAI_API_KEY_FILE
  value: /run/secrets/openai_api_key
- name: ANTHROPIC_API_KEY_FILE
  value: /run/secrets/anthropic_api_key
- name: GEMINI_API_KEY_FILE
  value: /run/secrets/gemini_api_key
{{- end }}

{{/* The Secret as files, only the keys named; a missing key keeps the pod from starting. */}}
{{- define "agent.secretVolume" -}}
name: secrets
secret:
  secretName: {{ .name }}
  defaultMode: 0440
  items:
    {{- range .keys }}
    - key: {{ . }}
      path: {{ . }}
    {{- end }}
{{- end }}

{{- define "agent.appSecretKeys" -}}
{{- list "postgres_password" "redis_password" "api_keys" "secret_key" "openai_api_key" "anthropic_api_key" "gemini_api_key" | toJson }}
{{- end }}

{{/* Pod settings shared by every pod of the chart. */}}
{{- define "agent.podCommon" -}}
automountServiceAccountToken: false
# No Docker-link style variables for every Service of the namespace (REDIS_PORT=tcp://...).
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A changed config or chart-made Secret rolls the pods (they read both at start). The secrets'
digest covers all five at once, random keys included, so it tells nothing about any one.
*/}}
{{- define "agent.configChecksum" -}}
checksum/config: {{ include "agent.configYaml" . | sha256sum }}
{{- if .Values.secrets.create }}
checksum/secrets: {{ toJson .Values.secrets.values | sha256sum }}
{{- end }}
{{- end }}

{{/* Uploads: the shared claim, or an emptyDir per pod (persistence off). */}}
{{- define "agent.uploadsVolume" -}}
name: uploads
{{- if .Values.uploads.persistence.enabled }}
persistentVolumeClaim:
  claimName: {{ default (printf "%s-uploads" (include "agent.fullname" .)) .Values.uploads.persistence.existingClaim }}
{{- else }}
emptyDir:
  sizeLimit: {{ .Values.uploads.sizeLimit }}
{{- end }}
{{- end }}
