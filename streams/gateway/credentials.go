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
type CredentialSource struct {
	// Path is a credentials file or a directory.
	//
	// A file has one credential per line, "<system> <token or digest>"; blank lines and lines
	// starting with # are ignored.
	//
	// A directory (a mounted Kubernetes secret) has one file per system, named after it, holding
	// one token or digest per line; names starting with "." (the secret's ..data links) are
	// skipped.
	//
	// Path is read again by Reload and Watch, so rewriting it rotates credentials without a
	// restart.
	Path string
	// Getenv looks up HOTELBUS_GATEWAY_TOKEN_<SYSTEM> (the system name upper-cased, "-" as "_";
	// several tokens separated by commas). Nil reads no environment. Read once, at NewCredentials.
	Getenv func(string) string
	// Tokens are fixed tokens per system (a `hotelbus dev` stack's).
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
	set     atomic.Pointer[[]credential]

	reloads, failures atomic.Uint64
}

type credential struct {
	digest [32]byte
	system string
}

// NewCredentials loads the credentials of src for the given systems; a credential naming another
// system, a malformed line, or finding no credential at all is an error.
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
	files, err := c.readPath()
	if err != nil {
		c.failures.Add(1)
		return false, err
	}
	sum := contentDigest(files)
	if !force && sum == c.content && c.set.Load() != nil {
		return false, nil
	}
	set := slices.Clone(c.fixed)
	for _, f := range files {
		crs, err := c.parseFile(f)
		if err != nil {
			c.failures.Add(1)
			return false, err
		}
		set = append(set, crs...)
	}
	if len(set) == 0 {
		c.failures.Add(1)
		return false, fmt.Errorf("gateway: no credentials: give a credentials file or directory, %s<SYSTEM>, or dev tokens", EnvPrefix)
	}
	c.set.Store(&set)
	c.content = sum
	c.reloads.Add(1)
	return true, nil
}

// Watch reloads Path every interval when its content changed, until ctx ends; failures are logged
// and leave the previous credentials in force.
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
		if changed, err := c.reload(false); err != nil {
			log.Error("gateway: reloading credentials failed; the previous ones stay in force", "path", c.src.Path, "err", err)
		} else if changed {
			log.Info("gateway: credentials reloaded", "path", c.src.Path)
		}
	}
}

// Authenticate returns the system a "Bearer <token>" Authorization header value authenticates.
// Every known digest is compared in constant time, so timing reveals neither the token nor which
// credential matched.
func (c *Credentials) Authenticate(authorization string) (system string, ok bool) {
	scheme, token, found := strings.Cut(authorization, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", false
	}
	d := sha256.Sum256([]byte(token))
	for _, cr := range *c.set.Load() {
		if subtle.ConstantTimeCompare(d[:], cr.digest[:]) == 1 {
			system = cr.system
		}
	}
	return system, system != ""
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

func (c *Credentials) parseFile(f credFile) ([]credential, error) {
	var out []credential
	sc := bufio.NewScanner(bytes.NewReader(f.data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sys, tok := f.name, line
		if !f.fromDir {
			fields := strings.Fields(line)
			if len(fields) != 2 {
				return nil, fmt.Errorf("gateway: %s:%d: want \"<system> <token or sha256:digest>\"", f.path, n)
			}
			sys, tok = fields[0], fields[1]
		}
		cr, err := c.parse(sys, tok)
		if err != nil {
			return nil, fmt.Errorf("gateway: %s:%d: %w", f.path, n, err)
		}
		out = append(out, cr)
	}
	return out, sc.Err()
}

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
