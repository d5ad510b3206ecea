package privacy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/streams/privacy"
)

// TestKeyFileFollowsRotation: a KeyFile opened before a rotation unwraps a key wrapped under the
// new KEK (it reads the file again) and then wraps under it; a KEK the file never held is
// ErrUnknownKEK; a file others may read is refused without quoting it.
func TestKeyFileFollowsRotation(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), privacy.KeyFileName)
	if created, err := privacy.GenerateKeyFile(path); err != nil || !created {
		t.Fatalf("generate: %v %v", created, err)
	}
	if created, err := privacy.GenerateKeyFile(path); err != nil || created {
		t.Fatalf("generate again: %v %v, want the existing file kept", created, err)
	}
	running, err := privacy.OpenKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old := running.CurrentKEK()
	kek, err := privacy.RotateKeyFile(path, time.Now().Add(time.Hour))
	if err != nil || kek == old {
		t.Fatalf("rotate: %q %v", kek, err)
	}
	rotated, err := privacy.OpenKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	id, wrapped, err := rotated.Wrap(ctx, []byte("0123456789abcdef0123456789abcdef"), []byte("aad"))
	if err != nil || id != kek {
		t.Fatalf("wrap: %q %v", id, err)
	}
	if key, err := running.Unwrap(ctx, id, wrapped, []byte("aad")); err != nil || string(key) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("the running key file unwrapping under the new KEK: %v", err)
	}
	if running.CurrentKEK() != kek {
		t.Errorf("after reading the rotated file, current KEK %s, want %s", running.CurrentKEK(), kek)
	}
	if _, err := running.Unwrap(ctx, id, wrapped, []byte("other aad")); !errors.Is(err, privacy.ErrTampered) {
		t.Errorf("wrong aad: %v, want ErrTampered", err)
	}
	if _, err := running.Unwrap(ctx, "kek-never", wrapped, []byte("aad")); !errors.Is(err, privacy.ErrUnknownKEK) {
		t.Errorf("unknown KEK: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := privacy.OpenKeyFile(path); !errors.Is(err, privacy.ErrInvalid) || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable key file: %v", err)
	}
}
