package privacy

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/google/renameio/v2"
)

// KMS wraps data keys with a key-encryption key (KEK) it holds. aad binds a wrapped key to its
// key record (tenant, subject, key id): a wrapped key copied to another record does not unwrap.
// Implementations must be safe for concurrent use and must never log key material.
type KMS interface {
	// Wrap encrypts key under the current KEK and returns that KEK's id.
	Wrap(ctx context.Context, key, aad []byte) (kekID string, wrapped []byte, err error)
	// Unwrap decrypts wrapped under the KEK kekID (ErrUnknownKEK when the KMS does not hold it;
	// ErrTampered when it does not authenticate).
	Unwrap(ctx context.Context, kekID string, wrapped, aad []byte) ([]byte, error)
	// CurrentKEK is the id of the KEK Wrap uses.
	CurrentKEK() string
}

// KeyFile is a KMS whose KEKs are AES-256 keys in a local JSON file of mode 0600: the dev stack's
// (`hotelbus dev` creates <data-dir>/privacy-keys.json) and the tests'. A production deployment
// puts a KMS of its own (a cloud KMS, Vault transit) behind the same interface.
//
// A KeyFile reads the file again when asked to unwrap under a KEK it does not hold, so a process
// whose file was rotated (RotateKeyFile, here or by a copy of the rotated file) follows a
// re-wrap without a restart, and then wraps new keys under the new current KEK.
type KeyFile struct {
	path string

	mu      sync.RWMutex
	current string
	keks    map[string]cipher.AEAD
}

// KeyFileName is the key file's name in the dev stack's data directory.
const KeyFileName = "privacy-keys.json"

type keyFileJSON struct {
	Current string    `json:"current"`
	KEKs    []kekJSON `json:"keks"`
}

type kekJSON struct {
	ID        string    `json:"id"`
	Key       string    `json:"key"` // base64, 32 bytes
	CreatedAt time.Time `json:"createdAt"`
}

var kekIDRe = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// keyFileMu serializes rotations of key files within a process.
var keyFileMu sync.Mutex

// OpenKeyFile reads a key file. It refuses a file that others than its owner may read or write,
// and names the file in every error (never a key).
func OpenKeyFile(path string) (*KeyFile, error) {
	kf := &KeyFile{path: path}
	current, keks, err := loadKeyFile(path)
	if err != nil {
		return nil, err
	}
	kf.current, kf.keks = current, keks
	return kf, nil
}

// loadKeyFile reads and checks a key file, and returns its current KEK's id and its KEKs.
func loadKeyFile(path string) (string, map[string]cipher.AEAD, error) {
	f, err := readKeyFile(path)
	if err != nil {
		return "", nil, err
	}
	kf := &KeyFile{path: path, current: f.Current, keks: map[string]cipher.AEAD{}}
	for i, k := range f.KEKs {
		if !kekIDRe.MatchString(k.ID) {
			return "", nil, fmt.Errorf("%w: %s: keks[%d].id must match %s", ErrInvalid, path, i, kekIDRe)
		}
		if _, dup := kf.keks[k.ID]; dup {
			return "", nil, fmt.Errorf("%w: %s: keks[%d].id %q is listed twice", ErrInvalid, path, i, k.ID)
		}
		raw, err := base64.StdEncoding.DecodeString(k.Key)
		if err != nil || len(raw) != 32 {
			return "", nil, fmt.Errorf("%w: %s: keks[%d].key is not 32 bytes of base64", ErrInvalid, path, i)
		}
		if kf.keks[k.ID], err = newAEAD(raw); err != nil {
			return "", nil, err
		}
	}
	if _, ok := kf.keks[f.Current]; !ok {
		return "", nil, fmt.Errorf("%w: %s: current %q is not one of keks", ErrInvalid, path, f.Current)
	}
	return kf.current, kf.keks, nil
}

func readKeyFile(path string) (*keyFileJSON, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: key file: %v", ErrInvalid, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: key file %s has mode %v: it must be readable by its owner only (chmod 600)", ErrInvalid, path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: key file: %v", ErrInvalid, err)
	}
	var f keyFileJSON
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: key file %s is not JSON of the key file's shape", ErrInvalid, path) // the error could quote key bytes
	}
	return &f, nil
}

// GenerateKeyFile creates a key file with one fresh KEK at path unless a file is there already (it
// is then opened and checked). It reports whether it created the file.
func GenerateKeyFile(path string) (bool, error) {
	keyFileMu.Lock()
	defer keyFileMu.Unlock()
	if _, err := os.Stat(path); err == nil {
		_, err := OpenKeyFile(path)
		return false, err
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("%w: key file: %v", ErrInvalid, err)
	}
	k, err := newKEK(time.Now())
	if err != nil {
		return false, err
	}
	return true, writeKeyFile(path, &keyFileJSON{Current: k.ID, KEKs: []kekJSON{k}})
}

// RotateKeyFile adds a fresh KEK to the key file at path and makes it current; the older KEKs stay
// so that keys wrapped by them still unwrap until Keys.Rewrap has re-wrapped them. It returns the
// new KEK's id.
func RotateKeyFile(path string, now time.Time) (string, error) {
	keyFileMu.Lock()
	defer keyFileMu.Unlock()
	if _, err := OpenKeyFile(path); err != nil {
		return "", err
	}
	f, err := readKeyFile(path)
	if err != nil {
		return "", err
	}
	k, err := newKEK(now)
	if err != nil {
		return "", err
	}
	for _, old := range f.KEKs {
		if old.ID == k.ID {
			return "", fmt.Errorf("%w: key file %s already has a KEK %s", ErrInvalid, path, k.ID)
		}
	}
	f.KEKs = append(f.KEKs, k)
	f.Current = k.ID
	return k.ID, writeKeyFile(path, f)
}

func newKEK(now time.Time) (kekJSON, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return kekJSON{}, fmt.Errorf("privacy: random KEK: %w", err)
	}
	// The time says which KEK is newer to a reader of the file; the random suffix keeps two KEKs made
	// in one second apart.
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return kekJSON{}, fmt.Errorf("privacy: random KEK id: %w", err)
	}
	id := "kek-" + now.UTC().Format("20060102t150405z") + "-" + hex.EncodeToString(suffix)
	return kekJSON{ID: id, Key: base64.StdEncoding.EncodeToString(raw), CreatedAt: now.UTC()}, nil
}

// writeKeyFile replaces path atomically with a file of mode 0600 (renameio: a temporary file in the
// same directory, synced, renamed over path).
func writeKeyFile(path string, f *keyFileJSON) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	t, err := renameio.NewPendingFile(path, renameio.WithTempDir(filepath.Dir(path)), renameio.WithStaticPermissions(0o600))
	if err == nil {
		defer t.Cleanup()
		if _, err = t.Write(append(b, '\n')); err == nil {
			err = t.CloseAtomicallyReplace()
		}
	}
	if err != nil {
		return fmt.Errorf("privacy: writing key file %s: %w", path, err)
	}
	return nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("privacy: aes: %w", err)
	}
	return cipher.NewGCM(b)
}

// Path is the file the KeyFile was read from.
func (k *KeyFile) Path() string { return k.path }

// CurrentKEK implements KMS.
func (k *KeyFile) CurrentKEK() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current
}

// Wrap implements KMS: nonce (12 bytes) | AES-256-GCM ciphertext and tag under the current KEK.
func (k *KeyFile) Wrap(_ context.Context, key, aad []byte) (string, []byte, error) {
	k.mu.RLock()
	current, a := k.current, k.keks[k.current]
	k.mu.RUnlock()
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(key)+a.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, fmt.Errorf("privacy: random nonce: %w", err)
	}
	return current, a.Seal(nonce, nonce, key, aad), nil
}

// Unwrap implements KMS; a KEK it does not hold makes it read the file again (see KeyFile).
func (k *KeyFile) Unwrap(_ context.Context, kekID string, wrapped, aad []byte) ([]byte, error) {
	k.mu.RLock()
	a, ok := k.keks[kekID]
	k.mu.RUnlock()
	if !ok {
		current, keks, err := loadKeyFile(k.path)
		if err != nil {
			return nil, err
		}
		k.mu.Lock()
		k.current, k.keks = current, keks
		k.mu.Unlock()
		if a, ok = keks[kekID]; !ok {
			return nil, fmt.Errorf("%w: %s is not in key file %s", ErrUnknownKEK, kekID, k.path)
		}
	}
	if len(wrapped) < a.NonceSize()+a.Overhead() {
		return nil, fmt.Errorf("%w: wrapped key of %d bytes", ErrTampered, len(wrapped))
	}
	key, err := a.Open(nil, wrapped[:a.NonceSize()], wrapped[a.NonceSize():], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: wrapped key does not unwrap under %s", ErrTampered, kekID)
	}
	return key, nil
}
