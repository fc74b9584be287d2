{{/* Names and labels. */}}
{{- define "trtllm-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "trtllm-operator.fullname" -}}
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

{{- define "trtllm-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "trtllm-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trtllm-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "trtllm-operator.labels" -}}
helm.sh/chart: {{ include "trtllm-operator.chart" . }}
{{ include "trtllm-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "trtllm-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trtllm-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "trtllm-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
RBAC: exactly what the operator's code calls (k8s.py: informers list+watch, writes), nothing more.
No wildcards, no pods/create (Jobs and Deployments make pods), no get at all: every read is served
from the watch-fed caches (handlers/runtime.py Caches). Secrets: only list/watch/create, for the
multi-node SSH identities the operator generates (handlers/mpissh.py); its cache asks only for its
own (label selector), build pods get tokens through secretKeyRef, which the kubelet resolves.
*/}}

{{/* Cluster-scoped: always a ClusterRole, also when watchNamespaces is set. */}}
{{- define "trtllm-operator.clusterRules" -}}
# GPU capacity: the node cache is fed by a cluster-wide watch (handlers/watch.py on_node).
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["list", "watch"]
# A terminating namespace can't run a cleanup Job: its engines' finalizers go at once (namespace cache).
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
# Whether custom.metrics.k8s.io is served (autoscaling on inference load, else CPU): apiservices cache.
- apiGroups: ["apiregistration.k8s.io"]
  resources: ["apiservices"]
  verbs: ["list", "watch"]
{{- end }}

{{/* Namespaced: in the ClusterRole when watching all namespaces, else a Role per watched namespace. */}}
{{- define "trtllm-operator.namespacedRules" -}}
# Watched (cache); patch only for the trtllm.dev/engine-files finalizer (deletionPolicy: Delete).
- apiGroups: ["trtllm.dev"]
  resources: ["trtengines"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["trtllm.dev"]
  resources: ["inferenceservices"]
  verbs: ["list", "watch"]
- apiGroups: ["trtllm.dev"]
  resources: ["trtengines/status", "inferenceservices/status"]
  verbs: ["patch"]
# Children carry ownerReferences with blockOwnerDeletion: true; API servers with the
# OwnerReferencesPermissionEnforcement admission plugin (OpenShift) require this.
- apiGroups: ["trtllm.dev"]
  resources: ["trtengines/finalizers", "inferenceservices/finalizers"]
  verbs: ["update"]
# Build and cleanup Jobs: watched (cache, build slots), created, deleted when superseded.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "delete"]
# Build pods are watched for scheduling and exit status (label-selected), never created directly.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# A build's plan, and the engine volume when storage.claim is set.
- apiGroups: [""]
  resources: ["configmaps", "persistentvolumeclaims"]
  verbs: ["create"]
# Serving: watched (cache), applied with server-side apply (patch) only when the rendering changed.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Multi-node engines: one LeaderWorkerSet per architecture instead of a Deployment (the LWS API may be
# absent: the operator then reports LeaderWorkerSetNotInstalled instead of failing).
- apiGroups: ["leaderworkerset.x-k8s.io"]
  resources: ["leaderworkersets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Their SSH identity (<service>-mpi-ssh): created once, read only through a watch selecting the
# operator's own label (RBAC can't scope list/watch by label: the admission policy confines what may
# be created), never get/update/delete (ownerReferences delete it with its InferenceService).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["list", "watch", "create"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "create", "patch"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/* Leader election: the Lease in the release namespace (a Role there, in every install mode). */}}
{{- define "trtllm-operator.leaderElectionRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
{{- end }}

{{/* settings.nodeSelector as TRTLLM_NODE_SELECTOR: "k1=v1,k2=v2" (keys sorted). */}}
{{- define "trtllm-operator.nodeSelectorSetting" -}}
{{- $pairs := list }}
{{- range $key, $value := .Values.settings.nodeSelector }}
{{- $pairs = append $pairs (printf "%s=%s" $key (toString $value)) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}
