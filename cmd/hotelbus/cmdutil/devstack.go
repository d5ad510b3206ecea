package cmdutil

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/google/renameio/v2"
)

// EnvDataDir names the environment variable that sets the data directory of `hotelbus dev` and
// the only place the other commands look for a running stack.
const EnvDataDir = "HOTELBUS_DATA_DIR"

// DataDirName is the name of the data directory of `hotelbus dev` inside a repository.
const DataDirName = ".hotelbus"

// modulePath identifies the hotelbus repository by its go.mod.
const modulePath = "github.com/hotelbus/hotelbus"

// DevLocation says where `hotelbus dev` keeps its data and where the other commands look for a
// running stack's endpoints.json.
type DevLocation struct {
	// DataDir is the default --data-dir of `hotelbus dev`.
	DataDir string
	// Search lists the data directories looked in, in order, for a running stack.
	Search []string
	// From is the directory the search walked up from; "" when HOTELBUS_DATA_DIR chose.
	From string
}

// LocateDev finds the dev data directory for a command started in dir:
//
//   - $HOTELBUS_DATA_DIR, when set, is the data directory and the only place searched;
//   - otherwise every .hotelbus directory in dir or one of its parents is searched, nearest first,
//     then the per-user state directory (UserStateDir). dev itself uses the nearest .hotelbus, or,
//     in a clone of the hotelbus repository that has none yet, <repository root>/.hotelbus (the
//     root is the nearest parent whose go.mod declares the hotelbus module), or else the per-user
//     state directory.
func LocateDev(getenv func(string) string, dir string) DevLocation {
	if d := getenv(EnvDataDir); d != "" {
		return DevLocation{DataDir: d, Search: []string{d}}
	}
	loc := DevLocation{From: dir}
	for a := dir; a != ""; {
		cand := filepath.Join(a, DataDirName)
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			loc.Search = append(loc.Search, cand)
			if loc.DataDir == "" {
				loc.DataDir = cand
			}
		} else if loc.DataDir == "" && isRepositoryRoot(a) {
			loc.DataDir = cand
		}
		parent := filepath.Dir(a)
		if parent == a {
			break
		}
		a = parent
	}
	if state := UserStateDir(getenv); state != "" {
		loc.Search = append(loc.Search, state)
		if loc.DataDir == "" {
			loc.DataDir = state
		}
	}
	if loc.DataDir == "" { // no home directory either
		loc.DataDir = filepath.Join(dir, DataDirName)
	}
	return loc
}

// UserStateDir is the per-user data directory of `hotelbus dev` outside a repository:
// $XDG_STATE_HOME/hotelbus, by default ~/.local/state/hotelbus (the XDG base directory for state
// that outlives a restart, which a broker log is); %LocalAppData%\hotelbus on Windows. "" when
// there is no home directory.
func UserStateDir(getenv func(string) string) string {
	if d := getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "hotelbus")
	}
	if runtime.GOOS == "windows" {
		if d := getenv("LocalAppData"); d != "" {
			return filepath.Join(d, "hotelbus")
		}
	}
	if h := getenv("HOME"); filepath.IsAbs(h) {
		return filepath.Join(h, ".local", "state", "hotelbus")
	}
	return ""
}

// isRepositoryRoot reports whether dir holds the go.mod of the hotelbus module.
func isRepositoryRoot(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if mod, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(mod), `"`) == modulePath
		}
	}
	return false
}

// Endpoints is the shape of <data-dir>/endpoints.json written by `hotelbus dev` (mode 0600: it
// holds the dev tokens and signing secret).
type Endpoints struct {
	Kafka    string `json:"kafka,omitempty"`
	Registry string `json:"registry,omitempty"`
	Redis    string `json:"redis,omitempty"`
	Gateway  string `json:"gateway,omitempty"`
	Monitor  string `json:"monitor,omitempty"`
	// Tokens are the gateway's bearer tokens, one per system.
	Tokens map[string]string `json:"tokens,omitempty"`
	// DispatchSecret is the signing secret `hotelbus dispatch` uses given none.
	DispatchSecret string `json:"dispatchSecret,omitempty"`
	// KeyFile is the key file of guest-data protection (privacy.KeyFile) commands use given no
	// --key-file.
	KeyFile string `json:"keyFile,omitempty"`
	// PID is the process of `hotelbus dev`; a file whose process is gone is stale (0: unknown).
	PID int `json:"pid,omitempty"`
}

// Stale reports whether the process that wrote e is gone (it was killed before it could remove
// the file). Without a pid (a file of an older dev) it is not known to be stale.
func (e *Endpoints) Stale() bool { return e.PID != 0 && !processAlive(e.PID) }

// EndpointsFile is the file name of Endpoints inside the data directory.
const EndpointsFile = "endpoints.json"

// ReadEndpoints reads dir/endpoints.json.
func ReadEndpoints(dir string) (*Endpoints, error) {
	b, err := os.ReadFile(filepath.Join(dir, EndpointsFile))
	if err != nil {
		return nil, err
	}
	var e Endpoints
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, EndpointsFile), err)
	}
	return &e, nil
}

// WriteEndpoints replaces dir/endpoints.json atomically (a reader sees the old file or the new
// one, never a part) with mode 0600.
func WriteEndpoints(dir string, e Endpoints) error {
	return WriteFileAtomic(filepath.Join(dir, EndpointsFile), func(f *os.File) error { return WriteJSON(f, e) })
}

// WriteFileAtomic writes path through a temporary file of mode 0600 in the same directory,
// synced, then renamed over path (renameio).
func WriteFileAtomic(path string, write func(*os.File) error) error {
	t, err := renameio.NewPendingFile(path, renameio.WithTempDir(filepath.Dir(path)), renameio.WithStaticPermissions(0o600))
	if err == nil {
		defer t.Cleanup()
		if err = write(t.File); err == nil {
			err = t.CloseAtomicallyReplace()
		}
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// DevStack returns the endpoints of the first running `hotelbus dev` stack, in the order of
// f.DevSearch (f.DataDir alone when empty), that has what the command needs, and the file they
// came from.
// Otherwise the error says, for each directory looked in, what it found there (no endpoints.json,
// a stale one whose process is gone, a running stack without that endpoint).
func (f *Factory) DevStack(what string, has func(*Endpoints) bool) (*Endpoints, string, error) {
	dirs := f.DevSearch
	if len(dirs) == 0 {
		dirs = []string{f.DataDir}
	}
	var found []string
	for _, dir := range dirs {
		file := filepath.Join(dir, EndpointsFile)
		e, err := ReadEndpoints(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			found = append(found, fmt.Sprintf("%s: no %s (no dev stack there)", dir, EndpointsFile))
		case err != nil:
			found = append(found, err.Error())
		case e.Stale():
			found = append(found, fmt.Sprintf("%s: stale: the dev stack of pid %d is not running (it did not stop cleanly); start `hotelbus dev` again", file, e.PID))
		case !has(e):
			found = append(found, fmt.Sprintf("%s: the running dev stack has no %s", file, what))
		default:
			return e, file, nil
		}
	}
	if f.DevSearchFrom != "" && !slices.ContainsFunc(dirs, func(d string) bool { return filepath.Base(d) == DataDirName }) {
		found = append([]string{fmt.Sprintf("%s and its parents: no %s directory", f.DevSearchFrom, DataDirName)}, found...)
	}
	msg := "looked for a running `hotelbus dev` in:\n  " + strings.Join(found, "\n  ")
	if f.DevSearchFrom != "" {
		msg += fmt.Sprintf("\n  (the %s directories of %s and its parents, then the per-user state directory; %s overrides)", DataDirName, f.DevSearchFrom, EnvDataDir)
	}
	return nil, "", errors.New(msg)
}
