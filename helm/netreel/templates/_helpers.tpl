{{/* Names, labels and the conversions the templates share. */}}

{{/* Every object's name starts with this: "netreel" unless fullnameOverride says otherwise. */}}
{{- define "netreel.fullname" -}}
{{- default "netreel" .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "netreel.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: netreel
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: netreel
{{- end -}}

{{/* Selector labels of one component: call with (dict "root" $ "component" "hub"). */}}
{{- define "netreel.selectorLabels" -}}
app.kubernetes.io/name: netreel
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "netreel.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{- define "netreel.tlsSecret" -}}
{{- default (printf "%s-tls" (include "netreel.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{- define "netreel.tokenSecret" -}}
{{- default (printf "%s-hub-token" (include "netreel.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/* The headless Service of the stores, as the hub resolves it (every node's address). */}}
{{- define "netreel.storeHost" -}}
{{ include "netreel.fullname" . }}-store.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
{{- end -}}

{{/* The user id of the image's non-root user (docker/Dockerfile). */}}
{{- define "netreel.uid" -}}65532{{- end -}}

{{/*
A size as the programs read it ("500MB", "1.5GiB", "64Mi", "1000") in whole bytes, so that a
Kubernetes field can take it (Kubernetes reads "MB" and "MiB" otherwise or not at all). The
schema has already checked the spelling; the units are those of lib/util/parse.c.
*/}}
{{- define "netreel.bytes" -}}
{{- $s := toString . -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $s -}}
{{- $unit := trimPrefix $num $s -}}
{{- $units := dict "" 1 "B" 1 "K" 1000 "KB" 1000 "k" 1000 "kB" 1000 "M" 1000000 "MB" 1000000 "G" 1000000000 "GB" 1000000000 "T" 1000000000000 "TB" 1000000000000 "Ki" 1024 "KiB" 1024 "Mi" 1048576 "MiB" 1048576 "Gi" 1073741824 "GiB" 1073741824 "Ti" 1099511627776 "TiB" 1099511627776 -}}
{{- if or (not $num) (not (hasKey $units $unit)) -}}
{{- fail (printf "netreel: %q is not a size (a number and one of B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)" $s) -}}
{{- end -}}
{{- mulf (float64 $num) (get $units $unit) | floor | int64 -}}
{{- end -}}

{{/* The container securityContext of the store and the hub: nothing but their own files. */}}
{{- define "netreel.restrictedContext" -}}
runAsNonRoot: true
runAsUser: {{ include "netreel.uid" . }}
runAsGroup: {{ include "netreel.uid" . }}
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "netreel.healthProbes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
  periodSeconds: 5
  failureThreshold: {{ .startupFailures | default 12 }}
readinessProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
  periodSeconds: 10
  failureThreshold: 3
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}

{{/*
The TLS Secret's data (base64, as JSON): the one already in the cluster when it holds every key
and was made for the same names (upgrades keep the certificates), else a new CA and one
certificate per part. Made once per render and kept in .Values, so that the Secret and the
pods' checksum annotation see the same certificates.
*/}}
{{- define "netreel.tlsData" -}}
{{- if not (hasKey .Values "__netreelTlsData") -}}
{{- $fullname := include "netreel.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $domain := .Values.clusterDomain -}}
{{- $names := dict -}}
{{- range $part := list "store" "hub" -}}
{{- $svc := printf "%s-%s" $fullname $part -}}
{{- $_ := set $names $part (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns $domain) "localhost") -}}
{{- end -}}
{{- $_ := set $names "capture" (list (printf "%s-capture" $fullname)) -}}
{{- $_ := set $names "client" (list (printf "%s-client" $fullname)) -}}
{{- $stamp := toJson $names | sha256sum | trunc 16 -}}
{{- $keys := list "ca.crt" "store.crt" "store.key" "capture.crt" "capture.key" "hub.crt" "hub.key" "client.crt" "client.key" -}}
{{- $old := lookup "v1" "Secret" $ns (printf "%s-tls" $fullname) -}}
{{- $reuse := false -}}
{{- if and $old $old.data $old.metadata.annotations -}}
{{- $reuse = eq (index $old.metadata.annotations "netreel.io/names") $stamp -}}
{{- range $keys -}}
{{- if not (hasKey $old.data .) -}}{{- $reuse = false -}}{{- end -}}
{{- end -}}
{{- end -}}
{{- $data := dict -}}
{{- if $reuse -}}
{{- range $keys -}}{{- $_ := set $data . (index $old.data .) -}}{{- end -}}
{{- else -}}
{{- $days := int .Values.tls.validityDays -}}
{{- $ca := genCA (printf "%s-ca" $fullname) $days -}}
{{- $_ := set $data "ca.crt" (b64enc $ca.Cert) -}}
{{- $ips := list "127.0.0.1" "::1" -}}
{{- range $part := list "store" "capture" "hub" "client" -}}
{{- $cert := genSignedCert (printf "%s-%s" $fullname $part) $ips (index $names $part) $days $ca -}}
{{- $_ := set $data (printf "%s.crt" $part) (b64enc $cert.Cert) -}}
{{- $_ := set $data (printf "%s.key" $part) (b64enc $cert.Key) -}}
{{- end -}}
{{- end -}}
{{- $_ := set .Values "__netreelTlsData" (dict "data" $data "stamp" $stamp) -}}
{{- end -}}
{{- toJson (get .Values "__netreelTlsData") -}}
{{- end -}}

{{/* The hub's bearer token (base64), kept across upgrades like the certificates. */}}
{{- define "netreel.tokenData" -}}
{{- if not (hasKey .Values "__netreelToken") -}}
{{- $old := lookup "v1" "Secret" .Release.Namespace (printf "%s-hub-token" (include "netreel.fullname" .)) -}}
{{- $token := "" -}}
{{- if and $old $old.data (hasKey $old.data "token") -}}
{{- $token = index $old.data "token" -}}
{{- else -}}
{{- $token = randAlphaNum 48 | b64enc -}}
{{- end -}}
{{- $_ := set .Values "__netreelToken" $token -}}
{{- end -}}
{{- get .Values "__netreelToken" -}}
{{- end -}}

{{/* What the schema cannot say: fails the install with a message that names the value. */}}
{{- define "netreel.validate" -}}
{{- range $key, $v := dict "pcapdump.timeInterval" .Values.pcapdump.timeInterval "capture.batchTime" .Values.capture.batchTime -}}
{{- if not (regexMatch "[1-9]" $v) -}}
{{- fail (printf "netreel: %s is %q: it must be a duration above zero (30s, 1m, 1h30m)" $key $v) -}}
{{- end -}}
{{- end -}}
{{- range $key, $v := dict "pcapdump.maxSize" .Values.pcapdump.maxSize "tap.bufferSize" .Values.tap.bufferSize "capture.batchBytes" .Values.capture.batchBytes "capture.spoolSize" .Values.capture.spoolSize -}}
{{- if not (regexMatch "[1-9]" $v) -}}
{{- fail (printf "netreel: %s is %q: it must be a size above zero (64MiB, 500MB, 2GiB)" $key $v) -}}
{{- end -}}
{{- end -}}
{{- if and (eq .Values.storage.type "hostPath") (eq (clean .Values.storage.hostPath.path) "/") -}}
{{- fail "netreel: storage.hostPath.path must not be / (the store deletes old segments in it)" -}}
{{- end -}}
{{- end -}}

{{/*
The hub's resources: as given, with limits.memory derived from the budget when not given:
64MiB + maxSnapshots x expectedNodes x 32KiB (each snapshot's connection to each store; 64KiB
with tls.enabled: OpenSSL's state on each) + the larger of memoryBudget and maxSnapshots x
expectedNodes x 8KiB (a store's least share: a 4 KiB window and two 2 KiB messages), in whole MiB
(docs/deploy.md, "Sizing the hub").
*/}}
{{- define "netreel.hubResources" -}}
{{- $r := deepCopy .Values.hub.resources -}}
{{- $limits := $r.limits | default dict -}}
{{- if not (hasKey $limits "memory") -}}
{{- $mi := 1048576 -}}
{{- $nodes := int64 .Values.hub.expectedNodes -}}
{{- $budget := include "netreel.bytes" .Values.hub.memoryBudget | int64 -}}
{{- $floor := mul (int64 .Values.hub.maxSnapshots) $nodes 8192 -}}
{{- $conn := ternary 65536 32768 (.Values.tls.enabled | default false) -}}
{{- $conns := mul (int64 .Values.hub.maxSnapshots) $nodes $conn -}}
{{- $bytes := add (mul 64 $mi) $conns (max $budget $floor) -}}
{{- $_ := set $limits "memory" (printf "%dMi" (div (add $bytes (sub $mi 1)) $mi)) -}}
{{- $_ := set $r "limits" $limits -}}
{{- end -}}
{{- toYaml $r -}}
{{- end -}}

