package view_test

import (
	"strings"
	"testing"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
)

// TestServeUsage: bad usage exits 2 and names the flag, before anything is opened.
func TestServeUsage(t *testing.T) {
	env := map[string]string{"HOTELBUS_BROKERS": "127.0.0.1:1", "HOTELBUS_REGISTRY": "http://127.0.0.1:1",
		"HOTELBUS_GATEWAY_TOKEN_HOTEL_SAAS": "view-cmd-test-token-0123456789"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"view", "serve", "--system", "hotel-saas"}, "--dir is required"},
		{[]string{"view", "serve", "--dir", "d"}, "--system is required"},
		{[]string{"view", "serve", "--system", "hotel-spa", "--dir", "d"}, "--system"},
		{[]string{"view", "serve", "--system", "hotel-common", "--dir", "d"}, "hotel-common has no views"},
		{[]string{"view", "serve", "--system", "hotel-saas", "--dir", "d", "--view", "guest"}, `--view: hotel-saas has no view "guest"; did you mean guests?`},
	} {
		res := cmdtest.Run(t, env, "", tc.args...)
		if res.Code != cmdutil.ExitUsage || !strings.Contains(res.ErrOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, res.Code, res.ErrOut, cmdutil.ExitUsage, tc.want)
		}
	}
}
