package views

import (
	"encoding/json"
	"fmt"

	"github.com/hotelbus/hotelbus/streams"
)

// GetAs returns the item of key in tenant with its data decoded into a new PT, the generated type
// (package streams/events) of an event type that feeds the view: events.CustomerUpdatedV2 for
// hotel-saas guests, events.MemberStatusChangedV1 for hotel-pms members. The data's top-level fields
// PT's schema does not have are left out (a merge view's item holds the fields of every type that
// fed it); a field PT requires that the item lacks is streams.ErrInvalidEvent naming it. Errors
// wrap ErrNotFound (no item), ErrConfig (PT's type does not feed the view) or streams.ErrConfig
// (PT was generated from another schema than the views' Serde holds).
func GetAs[T any, PT interface {
	*T
	streams.Event
}](v *View, tenant, key string) (PT, Item, error) {
	zero := PT(new(T))
	if _, feeds := v.def.Apply[zero.EventType()]; !feeds {
		return nil, Item{}, fmt.Errorf("%w: %s does not feed view %s (it reads %v)", ErrConfig, zero.EventType(), v.def, v.def.EventTypes)
	}
	it, err := v.Get(tenant, key)
	if err != nil {
		return nil, Item{}, err
	}
	schema, _, err := v.l.serde.DataSchema(zero.EventType(), zero.EventVersion())
	if err != nil {
		return nil, it, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(it.Data, &fields); err != nil {
		return nil, it, fmt.Errorf("views: %s: stored item %s/%s: %w", v.def, tenant, key, err)
	}
	own := make(map[string]json.RawMessage, len(schema.Fields()))
	for _, f := range schema.Fields() {
		if raw, ok := fields[f.Name()]; ok {
			own[f.Name()] = raw
		}
	}
	data, err := json.Marshal(own)
	if err != nil {
		return nil, it, err
	}
	out, err := streams.DecodeData[T, PT](v.l.serde, data)
	if err != nil {
		return nil, it, fmt.Errorf("views: %s: item %s/%s as %T: %w", v.def, tenant, key, zero, err)
	}
	return out, it, nil
}
