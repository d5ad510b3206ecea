package replay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/hotelbus/hotelbus/topics"
)

// Move is one partition of a resync: the group's committed offset (-1: none) and the offset it
// moves to, the first at or after the resync time (the end of the partition when there is none).
type Move struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Old       int64  `json:"old"`
	New       int64  `json:"new"`
}

// ResyncPlan moves one system's consumer group to a time on every topic the system reads.
type ResyncPlan struct {
	System string    `json:"system"`
	Group  string    `json:"group"`
	At     time.Time `json:"at"`
	Moves  []Move    `json:"moves"`
	// Members are the group's live members (client id and host) when the plan was made.
	Members []string `json:"members"`
}

// PlanResync computes the moves for system's group to at, without changing anything.
func PlanResync(ctx context.Context, adm *kadm.Client, cat *topics.Catalog, system string, at time.Time) (*ResyncPlan, error) {
	sys, err := cat.LookupSystem(system)
	if err != nil {
		return nil, fmt.Errorf("%w: --system: %w", ErrResyncConfig, err)
	}
	names := cat.SubscribedTopics(system)
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: --system: %s subscribes to nothing", ErrResyncConfig, system)
	}
	p := &ResyncPlan{System: system, Group: sys.Group, At: at.UTC()}
	groups, err := adm.DescribeGroups(ctx, sys.Group)
	if err != nil {
		return nil, fmt.Errorf("resync: describing group %s: %w", sys.Group, err)
	}
	if g, ok := groups[sys.Group]; ok && g.Err == nil {
		for _, m := range g.Members {
			p.Members = append(p.Members, m.ClientID+"@"+m.ClientHost)
		}
	}
	committed, err := adm.FetchOffsets(ctx, sys.Group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = nil, nil // a group that never committed
	}
	if err != nil {
		return nil, fmt.Errorf("resync: fetching the offsets of group %s: %w", sys.Group, err)
	}
	targets, err := adm.ListOffsetsAfterMilli(ctx, at.UnixMilli(), names...)
	if err == nil {
		err = listErr(targets, names)
	}
	if err != nil {
		return nil, fmt.Errorf("resync: listing offsets at %s: %w", at.Format(time.RFC3339Nano), err)
	}
	targets.Each(func(o kadm.ListedOffset) {
		m := Move{Topic: o.Topic, Partition: o.Partition, Old: -1, New: o.Offset}
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.Err == nil {
			m.Old = c.At
		}
		p.Moves = append(p.Moves, m)
	})
	slices.SortFunc(p.Moves, func(a, b Move) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
	return p, nil
}

// Refusal is the error Apply would return without force (ErrLiveMembers while the group has live
// members), nil when Apply would go ahead; a dry run prints it as a warning.
func (p *ResyncPlan) Refusal() error {
	if len(p.Members) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s has %d (%s): stop the system's consumers first, or pass --force",
		ErrLiveMembers, p.Group, len(p.Members), strings.Join(p.Members, ", "))
}

// Apply commits the planned offsets for the group. With live members it refuses with
// ErrLiveMembers unless force is set (the broker may still refuse a commit for an active group).
func (p *ResyncPlan) Apply(ctx context.Context, adm *kadm.Client, force bool) error {
	if err := p.Refusal(); err != nil && !force {
		return err
	}
	os := make(kadm.Offsets)
	for _, m := range p.Moves {
		os.Add(kadm.Offset{Topic: m.Topic, Partition: m.Partition, At: m.New, LeaderEpoch: -1})
	}
	if err := adm.CommitAllOffsets(ctx, p.Group, os); err != nil {
		return fmt.Errorf("resync: committing offsets for group %s: %w", p.Group, err)
	}
	return nil
}
