package gateway

import (
	"fmt"
	"strings"
)

// tenantScope is the tenants a credential may publish for: patterns, each a tenantId or a prefix
// ending in "*". Nil allows every tenant.
type tenantScope []string

// maxTenantPattern bounds a pattern of a scope, the "*" included (the tenantId grammar's 128
// characters and the star).
const maxTenantPattern = 129

// parseTenantScope parses "tenants=<pattern>[,<pattern>...]". A pattern uses the characters of a
// tenantId (letters, digits, ".", "_", ":", "-"), and "*" only as its last character. Errors name
// the pattern by position, never by content: the field may hold a mistyped token.
func parseTenantScope(field string) (tenantScope, error) {
	list, ok := strings.CutPrefix(field, "tenants=")
	if !ok {
		return nil, fmt.Errorf("the field after the token must be tenants=<pattern>[,<pattern>...]")
	}
	var scope tenantScope
	for i, p := range strings.Split(list, ",") {
		if err := checkTenantPattern(p); err != nil {
			return nil, fmt.Errorf("tenants= pattern %d: %w", i+1, err)
		}
		if p == "*" {
			return nil, nil
		}
		scope = append(scope, p)
	}
	return scope, nil
}

func checkTenantPattern(p string) error {
	body := strings.TrimSuffix(p, "*")
	switch {
	case p == "*":
		return nil
	case body == "":
		return fmt.Errorf("empty")
	case len(p) > maxTenantPattern:
		return fmt.Errorf("longer than %d characters", maxTenantPattern)
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return fmt.Errorf("character %d is not a letter, digit, '.', '_', ':', '-' or a final '*'", i+1)
		}
	}
	return nil
}

// allows reports whether tenant is in the scope. It compares bytes only: any string, valid UTF-8
// or not, gets an answer.
func (s tenantScope) allows(tenant string) bool {
	if s == nil {
		return true
	}
	for _, p := range s {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(tenant, prefix) {
				return true
			}
		} else if tenant == p {
			return true
		}
	}
	return false
}
