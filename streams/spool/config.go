package spool

import "fmt"

// Option configures a Spool at Open.
type Option func(*config)

type config struct {
	maxBytes   int64
	maxEntries int
}

func defaultConfig() config {
	return config{maxBytes: 1 << 30, maxEntries: 0}
}

func (c *config) validate() error {
	if c.maxBytes <= 0 {
		return fmt.Errorf("spool: MaxBytes must be positive, got %d", c.maxBytes)
	}
	if c.maxEntries < 0 {
		return fmt.Errorf("spool: MaxEntries must not be negative, got %d", c.maxEntries)
	}
	return nil
}

// MaxBytes bounds the payload bytes the spool holds, counting per entry the lengths of Topic, Key,
// Value, EventID and every header key and value (not the encoding overhead, nor bbolt's pages).
// An Append that would exceed it fails with ErrFull. Default: 1 GiB. Must be positive.
func MaxBytes(n int64) Option {
	return func(c *config) { c.maxBytes = n }
}

// MaxEntries bounds the number of entries the spool holds. An Append that would exceed it fails
// with ErrFull. Default: 0, meaning unbounded by count. Must not be negative.
func MaxEntries(n int) Option {
	return func(c *config) { c.maxEntries = n }
}
