// Package crd holds typed Go structs for the third-party custom resources the chart renders whose
// projects publish no light Go module: KEDA's ScaledObject and TriggerAuthentication
// (keda.sh/v1alpha1) and Strimzi's KafkaTopic and KafkaUser (kafka.strimzi.io/v1beta2). The
// fields, required keys and enums follow the CRDs' published openAPIV3Schema; decoding strictly
// into them refuses an unknown field, and Validate checks what a type cannot express.
package crd

import (
	"errors"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ScaledObject is keda.sh/v1alpha1 ScaledObject.
type ScaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ScaledObjectSpec `json:"spec"`
}

// ScaledObjectSpec is the spec of a ScaledObject.
type ScaledObjectSpec struct {
	ScaleTargetRef        *ScaleTarget    `json:"scaleTargetRef"`
	PollingInterval       *int32          `json:"pollingInterval,omitempty"`
	InitialCooldownPeriod *int32          `json:"initialCooldownPeriod,omitempty"`
	CooldownPeriod        *int32          `json:"cooldownPeriod,omitempty"`
	IdleReplicaCount      *int32          `json:"idleReplicaCount,omitempty"`
	MinReplicaCount       *int32          `json:"minReplicaCount,omitempty"`
	MaxReplicaCount       *int32          `json:"maxReplicaCount,omitempty"`
	Triggers              []ScaleTriggers `json:"triggers"`
	Fallback              *Fallback       `json:"fallback,omitempty"`
}

// ScaleTarget names the workload a ScaledObject scales.
type ScaleTarget struct {
	Name                   string `json:"name"`
	APIVersion             string `json:"apiVersion,omitempty"`
	Kind                   string `json:"kind,omitempty"`
	EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
}

// ScaleTriggers is one trigger; KEDA's metadata values are strings.
type ScaleTriggers struct {
	Type              string             `json:"type"`
	Name              string             `json:"name,omitempty"`
	UseCachedMetrics  bool               `json:"useCachedMetrics,omitempty"`
	Metadata          map[string]string  `json:"metadata"`
	AuthenticationRef *AuthenticationRef `json:"authenticationRef,omitempty"`
	MetricType        string             `json:"metricType,omitempty"`
}

// AuthenticationRef points to a TriggerAuthentication (or ClusterTriggerAuthentication).
type AuthenticationRef struct {
	Name string `json:"name"`
	Kind string `json:"kind,omitempty"`
}

// Fallback is the replica count used while the scaler fails.
type Fallback struct {
	FailureThreshold int32 `json:"failureThreshold"`
	Replicas         int32 `json:"replicas"`
}

// Validate checks what the ScaledObject CRD requires beyond the types.
func (s *ScaledObject) Validate() error {
	var errs []error
	if s.Spec.ScaleTargetRef == nil || s.Spec.ScaleTargetRef.Name == "" {
		errs = append(errs, errors.New("spec.scaleTargetRef.name is required"))
	}
	if len(s.Spec.Triggers) == 0 {
		errs = append(errs, errors.New("spec.triggers needs at least one trigger"))
	}
	for i, tr := range s.Spec.Triggers {
		if tr.Type == "" || tr.Metadata == nil {
			errs = append(errs, fmt.Errorf("spec.triggers[%d]: type and metadata are required", i))
		}
		if tr.MetricType != "" && !slices.Contains([]string{"AverageValue", "Value", "Utilization"}, tr.MetricType) {
			errs = append(errs, fmt.Errorf("spec.triggers[%d].metricType %q", i, tr.MetricType))
		}
	}
	if mn, mx := s.Spec.MinReplicaCount, s.Spec.MaxReplicaCount; mn != nil && mx != nil && *mn > *mx {
		errs = append(errs, fmt.Errorf("minReplicaCount %d > maxReplicaCount %d", *mn, *mx))
	}
	return errors.Join(errs...)
}

// TriggerAuthentication is keda.sh/v1alpha1 TriggerAuthentication.
type TriggerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              TriggerAuthenticationSpec `json:"spec"`
}

// TriggerAuthenticationSpec lists where the scaler's parameters come from.
type TriggerAuthenticationSpec struct {
	SecretTargetRef    []AuthSecretTargetRef    `json:"secretTargetRef,omitempty"`
	ConfigMapTargetRef []AuthConfigMapTargetRef `json:"configMapTargetRef,omitempty"`
	Env                []AuthEnvironment        `json:"env,omitempty"`
}

// AuthSecretTargetRef takes a parameter from a Secret's key.
type AuthSecretTargetRef struct {
	Parameter string `json:"parameter"`
	Name      string `json:"name"`
	Key       string `json:"key"`
}

// AuthConfigMapTargetRef takes a parameter from a ConfigMap's key.
type AuthConfigMapTargetRef struct {
	Parameter string `json:"parameter"`
	Name      string `json:"name"`
	Key       string `json:"key"`
}

// AuthEnvironment takes a parameter from an environment variable of the scale target's container.
type AuthEnvironment struct {
	Parameter     string `json:"parameter"`
	Name          string `json:"name"`
	ContainerName string `json:"containerName,omitempty"`
}

// Validate checks the required fields of every reference.
func (a *TriggerAuthentication) Validate() error {
	var errs []error
	for i, r := range a.Spec.SecretTargetRef {
		if r.Parameter == "" || r.Name == "" || r.Key == "" {
			errs = append(errs, fmt.Errorf("spec.secretTargetRef[%d]: parameter, name and key are required", i))
		}
	}
	for i, r := range a.Spec.Env {
		if r.Parameter == "" || r.Name == "" {
			errs = append(errs, fmt.Errorf("spec.env[%d]: parameter and name are required", i))
		}
	}
	return errors.Join(errs...)
}

// KafkaTopic is kafka.strimzi.io/v1beta2 KafkaTopic.
type KafkaTopic struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              KafkaTopicSpec `json:"spec"`
}

// KafkaTopicSpec is the topic's name, size and configs.
type KafkaTopicSpec struct {
	TopicName  string         `json:"topicName,omitempty"`
	Partitions *int32         `json:"partitions,omitempty"`
	Replicas   *int32         `json:"replicas,omitempty"`
	Config     map[string]any `json:"config,omitempty"`
}

// Validate checks the CRD's bounds (partitions >= 1, 1 <= replicas <= 32767) and that configs are
// scalars.
func (k *KafkaTopic) Validate() error {
	var errs []error
	if p := k.Spec.Partitions; p != nil && *p < 1 {
		errs = append(errs, fmt.Errorf("spec.partitions %d < 1", *p))
	}
	if r := k.Spec.Replicas; r != nil && (*r < 1 || *r > 32767) {
		errs = append(errs, fmt.Errorf("spec.replicas %d out of 1..32767", *r))
	}
	for key, v := range k.Spec.Config {
		switch v.(type) {
		case string, float64, bool:
		default:
			errs = append(errs, fmt.Errorf("spec.config.%s: %T is not a string, number or boolean", key, v))
		}
	}
	return errors.Join(errs...)
}

// KafkaUser is kafka.strimzi.io/v1beta2 KafkaUser.
type KafkaUser struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              KafkaUserSpec `json:"spec"`
}

// KafkaUserSpec is how the user authenticates and what it may do.
type KafkaUserSpec struct {
	Authentication *KafkaUserAuthentication `json:"authentication,omitempty"`
	Authorization  *KafkaUserAuthorization  `json:"authorization,omitempty"`
}

// KafkaUserAuthentication selects the credential the User Operator creates.
type KafkaUserAuthentication struct {
	Type string `json:"type"`
}

// KafkaUserAuthorization is the user's simple-authorizer ACLs.
type KafkaUserAuthorization struct {
	Type string    `json:"type"`
	ACLs []AclRule `json:"acls"`
}

// AclRule is one ACL: the resource, the operations, the host and allow or deny.
type AclRule struct {
	Type       string          `json:"type,omitempty"`
	Resource   AclRuleResource `json:"resource"`
	Host       string          `json:"host,omitempty"`
	Operations []string        `json:"operations,omitempty"`
}

// AclRuleResource is the resource an ACL applies to.
type AclRuleResource struct {
	Type        string `json:"type"`
	Name        string `json:"name,omitempty"`
	PatternType string `json:"patternType,omitempty"`
}

// Enums of the KafkaUser CRD.
var (
	userAuthTypes    = []string{"tls", "tls-external", "scram-sha-512"}
	aclTypes         = []string{"", "allow", "deny"}
	aclResourceTypes = []string{"topic", "group", "cluster", "transactionalId"}
	aclPatternTypes  = []string{"", "literal", "prefix"}
	aclOperations    = []string{"Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction",
		"AlterConfigs", "DescribeConfigs", "IdempotentWrite", "All"}
)

// Validate checks the CRD's enums and required fields.
func (u *KafkaUser) Validate() error {
	var errs []error
	if a := u.Spec.Authentication; a != nil && !slices.Contains(userAuthTypes, a.Type) {
		errs = append(errs, fmt.Errorf("spec.authentication.type %q is not one of %v", a.Type, userAuthTypes))
	}
	if z := u.Spec.Authorization; z != nil {
		if z.Type != "simple" {
			errs = append(errs, fmt.Errorf("spec.authorization.type %q is not simple", z.Type))
		}
		for i, r := range z.ACLs {
			if !slices.Contains(aclTypes, r.Type) || !slices.Contains(aclResourceTypes, r.Resource.Type) ||
				!slices.Contains(aclPatternTypes, r.Resource.PatternType) {
				errs = append(errs, fmt.Errorf("spec.authorization.acls[%d]: type %q, resource type %q or pattern %q not allowed",
					i, r.Type, r.Resource.Type, r.Resource.PatternType))
			}
			if r.Resource.Type != "cluster" && r.Resource.Name == "" {
				errs = append(errs, fmt.Errorf("spec.authorization.acls[%d]: resource name is required", i))
			}
			if len(r.Operations) == 0 {
				errs = append(errs, fmt.Errorf("spec.authorization.acls[%d]: no operations", i))
			}
			for _, op := range r.Operations {
				if !slices.Contains(aclOperations, op) {
					errs = append(errs, fmt.Errorf("spec.authorization.acls[%d]: operation %q is not one of %v", i, op, aclOperations))
				}
			}
		}
	}
	return errors.Join(errs...)
}
