package rabbitmq

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/hotelbus/hotelbus/topics"
)

// rabbitUserRe is the grammar of a RabbitMQ user name in a user map: it becomes a log field and is
// compared with the user-id property, a short string of at most 255 bytes.
var rabbitUserRe = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,128}$`)

// ParseUserMap reads "<system> <rabbitmq user>" lines (blank lines and # comments skipped) and
// returns the map from RabbitMQ user to system. Every system must be in cat; a user may appear
// once (it is one system's identity); a system may have several users. Errors name the line.
func ParseUserMap(r io.Reader, cat *topics.Catalog) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		switch {
		case len(f) != 2:
			return nil, fmt.Errorf("%w: user map line %d: want \"<system> <rabbitmq user>\"", ErrConfig, n)
		case !rabbitUserRe.MatchString(f[1]):
			return nil, fmt.Errorf("%w: user map line %d: user must be 1-128 of [A-Za-z0-9._@-]", ErrConfig, n)
		case out[f[1]] != "":
			return nil, fmt.Errorf("%w: user map line %d: user %s is already %s's", ErrConfig, n, f[1], out[f[1]])
		}
		if _, err := cat.LookupSystem(f[0]); err != nil {
			return nil, fmt.Errorf("%w: user map line %d: %v", ErrConfig, n, err)
		}
		out[f[1]] = f[0]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: user map: %v", ErrConfig, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: user map: no \"<system> <rabbitmq user>\" line", ErrConfig)
	}
	return out, nil
}
