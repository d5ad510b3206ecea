{{/* Names ------------------------------------------------------------------------------------ */}}

{{- define "hotelbus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-unique base name, at most 45 characters so "<base>-<component>-<system>" fits 63. */}}
{{- define "hotelbus.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "hotelbus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "hotelbus.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels: (dict "ctx" $ "component" "gateway" ["system" "hotel-pms"]) */}}
{{- define "hotelbus.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: hotelbus
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
{{ include "hotelbus.selectorLabels" . }}
{{- end -}}

{{- define "hotelbus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hotelbus.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if .system }}
hotelbus.io/system: {{ .system }}
{{- end }}
{{- end -}}

{{- define "hotelbus.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* The catalog resolved for kafka.environment (files/topology.yaml, generated from topics/). */}}
{{- define "hotelbus.topology" -}}
{{- $all := .Files.Get "files/topology.yaml" | fromYaml -}}
{{- toYaml (index $all.environments .Values.kafka.environment) -}}
{{- end -}}

{{/* Kafka credentials ------------------------------------------------------------------------
  (dict "ctx" $ "user" "<Strimzi user name>" "creds" <component kafkaCredentials>) -> YAML
  {username, secretName, secretKey}, all empty without SASL. With strimzi.users.enabled a
  component with a user name is its own KafkaUser, whose password Secret the User Operator names
  after it; "" (the hook's administrator) never is. */}}
{{- define "hotelbus.kafkaUser" -}}
{{- $v := .ctx.Values -}}
{{- if not $v.kafka.sasl.mechanism -}}
{}
{{- else if and $v.strimzi.users.enabled .user -}}
{{- $name := printf "%s%s" $v.strimzi.users.namePrefix .user -}}
username: {{ $name }}
secretName: {{ $name }}
secretKey: password
{{- else if .creds.username -}}
username: {{ .creds.username }}
secretName: {{ required "a kafkaCredentials.username needs its passwordSecret.name" .creds.passwordSecret.name }}
secretKey: {{ .creds.passwordSecret.key }}
{{- else -}}
username: {{ required "kafka.sasl.mechanism needs kafka.sasl.username" $v.kafka.sasl.username }}
secretName: {{ required "kafka.sasl.mechanism needs kafka.sasl.passwordSecret.name" $v.kafka.sasl.passwordSecret.name }}
secretKey: {{ $v.kafka.sasl.passwordSecret.key }}
{{- end -}}
{{- end -}}

{{/* Command-line flags for Kafka: (dict "ctx" $ "user" <hotelbus.kafkaUser dict>) */}}
{{- define "hotelbus.kafkaArgs" -}}
{{- $v := .ctx.Values -}}
{{- if $v.kafka.sasl.mechanism }}
- --sasl-mechanism={{ $v.kafka.sasl.mechanism }}
- --sasl-user={{ .user.username }}
- --sasl-password-env=HOTELBUS_KAFKA_PASSWORD
{{- end }}
{{- if $v.kafka.tls.enabled }}
- --tls
{{- if $v.kafka.tls.caSecret.name }}
- --tls-ca=/etc/hotelbus/kafka-ca/{{ $v.kafka.tls.caSecret.key }}
{{- end }}
{{- end }}
{{- if $v.kafka.topicPrefix }}
- --prefix={{ $v.kafka.topicPrefix }}
{{- end }}
{{- end -}}

{{/* The Redis URL of .Values.redis in the form its mode selects (see streams.NewRedisClient):
  redis[s]://[user@]host:port/db, redis[s]-sentinel://[user@]h:p,.../<master>/<db> or
  redis[s]-cluster://[user@]h:p,...; never a password (HOTELBUS_REDIS_PASSWORD holds it). */}}
{{- define "hotelbus.redisURL" -}}
{{- $user := ternary (printf "%s@" .username) "" (ne .username "") -}}
{{- if eq (.mode | default "single") "sentinel" -}}
{{- printf "%s-sentinel://%s%s/%s/%d" (ternary "rediss" "redis" .sentinel.tls) $user (join "," .sentinel.addresses) .sentinel.master (int .sentinel.db) -}}
{{- else if eq .mode "cluster" -}}
{{- printf "%s-cluster://%s%s" (ternary "rediss" "redis" .cluster.tls) $user (join "," .cluster.addresses) -}}
{{- else -}}
{{- regexReplaceAll "^(rediss?://)" .url (printf "${1}%s" $user) -}}
{{- end -}}
{{- end -}}

{{/* Environment of every hotelbus container: (dict "ctx" $ "user" <kafkaUser dict>). Passwords
  come from Secrets; the registry URL gets its own through $(VAR) expansion, the Redis password
  is read from HOTELBUS_REDIS_PASSWORD by the binary. */}}
{{- define "hotelbus.env" -}}
{{- $v := .ctx.Values -}}
- name: HOTELBUS_BROKERS
  value: {{ required "kafka.bootstrap is required (host:port of the brokers)" $v.kafka.bootstrap | quote }}
{{- if .user.username }}
- name: HOTELBUS_KAFKA_USERNAME
  value: {{ .user.username | quote }}
- name: HOTELBUS_KAFKA_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .user.secretName }}
      key: {{ .user.secretKey }}
{{- end }}
{{- if $v.registry.basicAuth.enabled }}
- name: HOTELBUS_REGISTRY_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ required "registry.basicAuth needs secret.name" $v.registry.basicAuth.secret.name }}
      key: {{ $v.registry.basicAuth.secret.usernameKey }}
- name: HOTELBUS_REGISTRY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.registry.basicAuth.secret.name }}
      key: {{ $v.registry.basicAuth.secret.passwordKey }}
- name: HOTELBUS_REGISTRY
  value: {{ regexReplaceAll "^(https?://)" $v.registry.url "${1}$$(HOTELBUS_REGISTRY_USERNAME):$$(HOTELBUS_REGISTRY_PASSWORD)@" | quote }}
{{- else }}
- name: HOTELBUS_REGISTRY
  value: {{ $v.registry.url | quote }}
{{- end }}
{{- if $v.redis.passwordSecret.name }}
- name: HOTELBUS_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.redis.passwordSecret.name }}
      key: {{ $v.redis.passwordSecret.key }}
{{- end }}
{{- if $v.redis.sentinelPasswordSecret.name }}
- name: HOTELBUS_REDIS_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.redis.sentinelPasswordSecret.name }}
      key: {{ $v.redis.sentinelPasswordSecret.key }}
{{- end }}
- name: HOTELBUS_REDIS
  value: {{ include "hotelbus.redisURL" $v.redis | quote }}
{{- if $v.trustedCA.secretName }}
- name: SSL_CERT_DIR
  value: /etc/ssl/certs:/etc/hotelbus/trusted-ca
{{- end }}
{{- end -}}

{{/* Volume mounts and volumes every hotelbus container has: a writable /tmp and the CA bundles. */}}
{{- define "hotelbus.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/hotelbus/kafka-ca
  readOnly: true
{{- end }}
{{- if .Values.trustedCA.secretName }}
- name: trusted-ca
  mountPath: /etc/hotelbus/trusted-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "hotelbus.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret.name }}
    items:
      - key: {{ .Values.kafka.tls.caSecret.key }}
        path: {{ .Values.kafka.tls.caSecret.key }}
{{- end }}
{{- if .Values.trustedCA.secretName }}
- name: trusted-ca
  secret:
    secretName: {{ .Values.trustedCA.secretName }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by the Deployments: (dict "ctx" $ "component" c ["system" s] "pod" <component values>) */}}
{{- define "hotelbus.podCommon" -}}
{{- $v := .ctx.Values -}}
serviceAccountName: {{ include "hotelbus.serviceAccountName" .ctx }}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- toYaml $v.podSecurityContext | nindent 2 }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- if $v.topologySpread.enabled }}
topologySpreadConstraints:
  {{- range list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
  - maxSkew: {{ $v.topologySpread.maxSkew }}
    topologyKey: {{ . }}
    whenUnsatisfiable: {{ $v.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "hotelbus.selectorLabels" (dict "ctx" $.ctx "component" $.component "system" $.system) | nindent 8 }}
  {{- end }}
{{- end }}
{{- with .pod.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Probes on the named port "http": (dict "ctx" $) */}}
{{- define "hotelbus.probes" -}}
{{- $p := .ctx.Values.probes -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  initialDelaySeconds: {{ $p.liveness.initialDelaySeconds }}
  periodSeconds: {{ $p.liveness.periodSeconds }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  initialDelaySeconds: {{ $p.readiness.initialDelaySeconds }}
  periodSeconds: {{ $p.readiness.periodSeconds }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
{{- end -}}

{{/* Each dispatcher: dispatcherDefaults overridden by its entry, with its resource names. */}}
{{- define "hotelbus.dispatchers" -}}
{{- $out := list -}}
{{- $seen := dict -}}
{{- range .Values.dispatchers -}}
{{- if hasKey $seen .system -}}
{{- fail (printf "dispatchers: system %q is listed twice" .system) -}}
{{- end -}}
{{- $_ := set $seen .system true -}}
{{- $d := mergeOverwrite (deepCopy $.Values.dispatcherDefaults) (deepCopy .) -}}
{{- $_ := set $d "name" (printf "%s-dispatch-%s" (include "hotelbus.fullname" $) .system | trunc 63 | trimSuffix "-") -}}
{{- $out = append $out $d -}}
{{- end -}}
{{- toYaml (dict "items" $out) -}}
{{- end -}}

{{/* Each view server: viewDefaults overridden by its entry, with its resource names. */}}
{{- define "hotelbus.viewServers" -}}
{{- $out := list -}}
{{- $seen := dict -}}
{{- range .Values.views -}}
{{- if hasKey $seen .system -}}
{{- fail (printf "views: system %q is listed twice" .system) -}}
{{- end -}}
{{- $_ := set $seen .system true -}}
{{- $d := mergeOverwrite (deepCopy $.Values.viewDefaults) (deepCopy .) -}}
{{- $_ := set $d "name" (printf "%s-views-%s" (include "hotelbus.fullname" $) .system | trunc 63 | trimSuffix "-") -}}
{{- $out = append $out $d -}}
{{- end -}}
{{- toYaml (dict "items" $out) -}}
{{- end -}}
