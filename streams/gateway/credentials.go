package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// CredentialSource says where the per-system bearer tokens are. Every source that is set
// contributes; a system may have several tokens at once (the overlap of a rotation).
//
// A token is given either as "sha256:<64 hex digits>", the SHA-256 digest of the token (the form
// to keep at rest; HashToken prints it), or as the token itself (at least 16 characters), which
// is hashed when read. The gateway keeps only digests in memory.
//
// A credential of Path may be scoped to tenants: "tenants=" and a comma-separated list of
// patterns, each a tenantId or a prefix ending in "*" ("sakura-*"; "*" alone allows every
// tenant). A publish for a tenant outside the scope is refused with 403 tenant-not-allowed.
// Without a scope, a credential publishes for any tenant.
type CredentialSource struct {
	// Path is a credentials file or a directory.
	//
	// A file has one credential per line, "<system> <token or digest> [tenants=<patterns>]", the
	// fields separated by spaces or tabs; blank lines and lines starting with # are ignored:
	//
	//	# system    token or digest                                                          scope
	//	hotel-pms   sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  tenants=sakura-*,kyoto-grand
	//	hotel-saas  sha256:60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
	//
	// A directory (a mounted Kubernetes secret) has one file per system, named after it, holding
	// one "<token or digest> [tenants=<patterns>]" per line; names starting with "." (the
	// secret's ..data links) are skipped.
	//
	// Reload semantics: Path is read again by Reload and, when its content changed, by Watch, so
	// rewriting it rotates credentials without a restart. A load replaces every credential of
	// Path at once. A file or directory without any credential is a valid load: it revokes every
	// credential of Path (only those of Getenv and Tokens remain). A load that fails (a missing
	// file, a malformed line, an unknown system, a token listed twice) changes nothing: the
	// previous credentials stay in force, the failure is counted
	// (hotelbus_gateway_credential_reload_failures_total) and shown
	// (hotelbus_gateway_credentials_stale is 1 until a load succeeds). Error messages name the
	// file and the line, never a line's content.
	Path string
	// Getenv looks up HOTELBUS_GATEWAY_TOKEN_<SYSTEM> (the system name upper-cased, "-" as "_";
	// several tokens separated by commas, without tenant scope). Nil reads no environment. Read
	// once, at NewCredentials.
	Getenv func(string) string
	// Tokens are fixed tokens per system (a `hotelbus dev` stack's), without tenant scope.
	Tokens map[string][]string
}

// EnvPrefix prefixes the environment variable holding a system's tokens.
const EnvPrefix = "HOTELBUS_GATEWAY_TOKEN_"

// EnvName returns the environment variable holding system's tokens.
func EnvName(system string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(system, "-", "_"))
}

// HashToken returns the at-rest form of a token: "sha256:" and its hex SHA-256 digest.
func HashToken(token string) string {
	d := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(d[:])
}

// Credentials maps bearer tokens to the systems they authenticate. It is safe for concurrent use;
// Reload swaps the whole set at once, so a request sees either the old or the new credentials.
type Credentials struct {
	src     CredentialSource
	systems []string
	fixed   []credential // from Getenv and Tokens

	mu      sync.Mutex // serializes reloads
	content [32]byte   // digest of Path's content at the last successful load
	lastErr string     // the last failure Watch logged, "" after a success
	set     atomic.Pointer[[]credential]

	reloads, failures atomic.Uint64
	stale             atomic.Bool // the last load of Path failed
}

type credential struct {
	digest  [32]byte
	system  string
	tenants tenantScope
}

// NewCredentials loads the credentials of src for the given systems; a credential naming another
// system, a malformed line, or no source at all (neither Path, an environment token nor Tokens)
// is an error. An empty Path is a valid source without credentials (see CredentialSource).
func NewCredentials(systems []string, src CredentialSource) (*Credentials, error) {
	c := &Credentials{src: src, systems: slices.Clone(systems)}
	sort.Strings(c.systems)
	for _, sys := range c.systems {
		if src.Getenv == nil {
			break
		}
		for _, tok := range strings.Split(src.Getenv(EnvName(sys)), ",") {
			if tok = strings.TrimSpace(tok); tok == "" {
				continue
			}
			cr, err := c.parse(sys, tok)
			if err != nil {
				return nil, fmt.Errorf("gateway: %s: %w", EnvName(sys), err)
			}
			c.fixed = append(c.fixed, cr)
		}
	}
	for sys, toks := range src.Tokens {
		for _, tok := range toks {
			cr, err := c.parse(sys, tok)
			if err != nil {
				return nil, fmt.Errorf("gateway: token of %s: %w", sys, err)
			}
			c.fixed = append(c.fixed, cr)
		}
	}
	if src.Path == "" && len(c.fixed) == 0 {
		return nil, fmt.Errorf("gateway: no credentials: give a credentials file or directory, %s<SYSTEM>, or dev tokens", EnvPrefix)
	}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads Path again and replaces the credentials it gave. On an error the previous
// credentials stay in force.
func (c *Credentials) Reload() error {
	_, err := c.reload(true)
	return err
}

// reload loads Path when force is set or its content changed since the last load, reporting
// whether the credentials were replaced.
func (c *Credentials) reload(force bool) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed, err := c.load(force)
	c.stale.Store(err != nil)
	if err != nil {
		c.failures.Add(1)
	}
	return changed, err
}

func (c *Credentials) load(force bool) (bool, error) {
	files, err := c.readPath()
	if err != nil {
		return false, err
	}
	sum := contentDigest(files)
	if !force && sum == c.content && c.set.Load() != nil {
		return false, nil
	}
	set := slices.Clone(c.fixed)
	seen := map[[32]byte]string{} // digest -> where Path lists it
	for _, f := range files {
		crs, err := c.parseFile(f, seen)
		if err != nil {
			return false, err
		}
		set = append(set, crs...)
	}
	c.set.Store(&set)
	c.content = sum
	c.reloads.Add(1)
	return true, nil
}

// Watch reloads Path every interval when its content changed, until ctx ends. A failure is
// logged once (again only when it changes), counted, and leaves the previous credentials in
// force; a load that leaves no credential at all is logged as a warning.
func (c *Credentials) Watch(ctx context.Context, every time.Duration, log *slog.Logger) {
	if c.src.Path == "" {
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		changed, err := c.reload(false)
		c.mu.Lock()
		switch {
		case err != nil && err.Error() != c.lastErr:
			c.lastErr = err.Error()
			log.Error("gateway: reloading credentials failed; the previous ones stay in force", "path", c.src.Path, "err", err)
		case err == nil && c.lastErr != "":
			c.lastErr = ""
			log.Info("gateway: credentials load again", "path", c.src.Path)
		}
		c.mu.Unlock()
		if changed {
			if n := c.Count(); n == 0 {
				log.Warn("gateway: credentials reloaded: none in force, every request is refused", "path", c.src.Path)
			} else {
				log.Info("gateway: credentials reloaded", "path", c.src.Path, "credentials", n)
			}
		}
	}
}

// Count returns the number of credentials in force.
func (c *Credentials) Count() int { return len(*c.set.Load()) }

// Authenticate returns the system a "Bearer <token>" Authorization header value authenticates.
func (c *Credentials) Authenticate(authorization string) (system string, ok bool) {
	cr, ok := c.lookup(authorization)
	if !ok {
		return "", false
	}
	return cr.system, true
}

// Authorize returns the system a "Bearer <token>" Authorization header value authenticates and
// whether the credential's tenant scope allows tenant (always true without a scope). Readers that
// share the gateway's credentials format, such as the view server, check their requests with it.
func (c *Credentials) Authorize(authorization, tenant string) (system string, tenantAllowed, ok bool) {
	cr, ok := c.lookup(authorization)
	if !ok {
		return "", false, false
	}
	return cr.system, cr.tenants.allows(tenant), true
}

// lookup returns the credential of a "Bearer <token>" Authorization header value. Every known
// digest is compared in constant time, so timing reveals neither the token nor which credential
// matched.
func (c *Credentials) lookup(authorization string) (credential, bool) {
	scheme, token, found := strings.Cut(authorization, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return credential{}, false
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return credential{}, false
	}
	d := sha256.Sum256([]byte(token))
	var match credential
	for _, cr := range *c.set.Load() {
		if subtle.ConstantTimeCompare(d[:], cr.digest[:]) == 1 {
			match = cr
		}
	}
	return match, match.system != ""
}

type credFile struct {
	name    string // the system for a directory entry, "" for a credentials file
	path    string
	data    []byte
	fromDir bool
}

// readPath reads the credentials file, or every file of the credentials directory.
func (c *Credentials) readPath() ([]credFile, error) {
	if c.src.Path == "" {
		return nil, nil
	}
	st, err := os.Stat(c.src.Path)
	if err != nil {
		return nil, fmt.Errorf("gateway: credentials: %w", err)
	}
	if !st.IsDir() {
		b, err := os.ReadFile(c.src.Path)
		if err != nil {
			return nil, fmt.Errorf("gateway: credentials: %w", err)
		}
		return []credFile{{path: c.src.Path, data: b}}, nil
	}
	entries, err := os.ReadDir(c.src.Path)
	if err != nil {
		return nil, fmt.Errorf("gateway: credentials: %w", err)
	}
	var out []credFile
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(c.src.Path, e.Name())
		if st, err := os.Stat(p); err != nil || st.IsDir() { // Stat follows the secret's symlinks
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("gateway: credentials: %w", err)
		}
		out = append(out, credFile{name: e.Name(), path: p, data: b, fromDir: true})
	}
	return out, nil
}

func contentDigest(files []credFile) [32]byte {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00", f.path, len(f.data))
		h.Write(f.data)
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// parseFile parses the credentials of one file; seen maps the digests already listed to where.
// Its errors name the file and the line, never the line's content (it may hold a token).
func (c *Credentials) parseFile(f credFile, seen map[[32]byte]string) ([]credential, error) {
	var out []credential
	sc := bufio.NewScanner(bytes.NewReader(f.data))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		at := fmt.Sprintf("%s:%d", f.path, n)
		fields := strings.Fields(line)
		sys := f.name
		if !f.fromDir {
			if len(fields) < 2 {
				return nil, fmt.Errorf("gateway: %s: want \"<system> <token or sha256:digest> [tenants=<patterns>]\"", at)
			}
			sys, fields = fields[0], fields[1:]
			if _, ok := slices.BinarySearch(c.systems, sys); !ok {
				return nil, fmt.Errorf("gateway: %s: the first field is not a system this gateway publishes for (%s)", at, strings.Join(c.systems, ", "))
			}
		}
		if len(fields) > 2 {
			return nil, fmt.Errorf("gateway: %s: too many fields: want \"<token or sha256:digest> [tenants=<patterns>]\" after the system", at)
		}
		cr, err := c.parse(sys, fields[0])
		if err != nil {
			return nil, fmt.Errorf("gateway: %s: %w", at, err)
		}
		if len(fields) == 2 {
			if cr.tenants, err = parseTenantScope(fields[1]); err != nil {
				return nil, fmt.Errorf("gateway: %s: %w", at, err)
			}
		}
		if prev, dup := seen[cr.digest]; dup {
			return nil, fmt.Errorf("gateway: %s: the same token as %s", at, prev)
		}
		seen[cr.digest] = at
		out = append(out, cr)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("gateway: %s:%d: %w", f.path, n+1, err)
	}
	return out, nil
}

// parse returns the credential of a token or digest for system. Its errors never contain tok.
func (c *Credentials) parse(system, tok string) (credential, error) {
	if _, ok := slices.BinarySearch(c.systems, system); !ok {
		return credential{}, fmt.Errorf("%q is not a system this gateway publishes for (%s)", system, strings.Join(c.systems, ", "))
	}
	cr := credential{system: system}
	if hexDigest, ok := strings.CutPrefix(tok, "sha256:"); ok {
		b, err := hex.DecodeString(hexDigest)
		if err != nil || len(b) != sha256.Size {
			return credential{}, fmt.Errorf("a sha256: credential needs 64 hex digits")
		}
		copy(cr.digest[:], b)
		return cr, nil
	}
	if len(tok) < 16 {
		return credential{}, fmt.Errorf("a token must have at least 16 characters")
	}
	cr.digest = sha256.Sum256([]byte(tok))
	return cr, nil
}
