package dev

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/topics"
)

// StateFile is what a dev data directory remembers from one start to the next, beside the data:
// the ports, the gateway tokens and the dispatch signing secret (mode 0600).
const StateFile = "dev-state.json"

// state is the content of StateFile.
type state struct {
	// Ports of the last start by component: kafka, registry, redis, monitor, gateway.
	Ports map[string]int `json:"ports"`
	// Tokens are the gateway's bearer tokens, one per system, random per data directory.
	Tokens map[string]string `json:"tokens"`
	// DispatchSecret signs `hotelbus dispatch` requests given no other secret.
	DispatchSecret string `json:"dispatchSecret"`
}

// loadState reads dir's StateFile, creating the tokens and secret it lacks (a new data
// directory, or a system added to the catalog).
func loadState(dir string, cat *topics.Catalog) (*state, error) {
	st := &state{}
	path := filepath.Join(dir, StateFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("dev: %w", err)
	default:
		if err := json.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("dev: %s: %w (remove it: new tokens and ports are made)", path, err)
		}
	}
	if st.Ports == nil {
		st.Ports = map[string]int{}
	}
	if st.Tokens == nil {
		st.Tokens = map[string]string{}
	}
	for _, sys := range cat.Systems {
		if len(st.Tokens[sys.Name]) < 16 {
			st.Tokens[sys.Name] = "hbdev_" + randomHex(24)
		}
	}
	if len(st.DispatchSecret) < 16 {
		st.DispatchSecret = randomHex(32)
	}
	return st, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return hex.EncodeToString(b)
}

// save records the ports of addrs (component -> address or URL) and writes the StateFile.
func (st *state) save(dir string, addrs map[string]string) error {
	for name, addr := range addrs {
		if p := port(addr); p != 0 {
			st.Ports[name] = p
		}
	}
	return cmdutil.WriteFileAtomic(filepath.Join(dir, StateFile), func(f *os.File) error { return cmdutil.WriteJSON(f, st) })
}

// port returns the port of "host:port" or a URL's, 0 when there is none.
func port(addr string) int {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
