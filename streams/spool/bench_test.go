package spool_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/hotelbus/hotelbus/streams/spool"
)

// benchEntry is a typical spooled event: a 700-byte Avro value.
func benchEntry() spool.Entry {
	return spool.Entry{
		Topic:   "hotel-pms.reservation",
		Key:     []byte("tenant-42/res-000123"),
		Value:   bytes.Repeat([]byte{0xA5}, 700),
		Headers: []spool.Header{{Key: "eventType", Value: []byte("reservation.created")}},
		EventID: "6f1c2a9e-3b7d-4c1e-9a55-0d2f8e4b7c10",
	}
}

func benchmarkAppend(b *testing.B, perCall int) {
	s, err := spool.Open(filepath.Join(b.TempDir(), "spool.db"), spool.MaxBytes(1<<40))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	batch := make([]spool.Entry, perCall)
	for i := range batch {
		batch[i] = benchEntry()
	}
	b.SetBytes(int64(perCall * len(batch[0].Value)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Append(batch...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend1 is one 700-byte entry per Append, so one fsync'd commit per entry.
func BenchmarkAppend1(b *testing.B) { benchmarkAppend(b, 1) }

// BenchmarkAppend100 is 100 such entries per Append, one fsync'd commit for all of them.
func BenchmarkAppend100(b *testing.B) { benchmarkAppend(b, 100) }
