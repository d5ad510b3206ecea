//go:build race

package views_test

func init() { raceEnabled = true }
