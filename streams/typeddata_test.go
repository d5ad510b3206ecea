package streams_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/events"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// TestDecodeData: an event's data as Serde.DataJSON writes it decodes into its generated type with
// every field; data the schema refuses names the field (ErrInvalidEvent); a type generated from
// another schema than the Serde's is ErrConfig.
func TestDecodeData(t *testing.T) {
	serde, _ := isolated(t, streamstest.Kfake(t))
	env := example(t, serde, "reservation.created")
	env.Version = "1.0"
	data, err := serde.DataJSON(env)
	if err != nil {
		t.Fatal(err)
	}
	e, err := streams.DecodeData[events.ReservationCreatedV1](serde, data)
	if err != nil {
		t.Fatal(err)
	}
	if e.ReservationID != env.Data["reservationId"] || e.AmountAfterTax.Amount.FloatString(2) != "40000.00" ||
		e.GuaranteeCard == nil || e.GuaranteeCard.Brand != events.ReservationCardBrandV1Jcb || len(e.PrimaryGuest.Address.Lines) != 2 {
		t.Errorf("decoded %+v", e)
	}
	bad := strings.Replace(string(data), `"JCB"`, `"NOPE"`, 1)
	if _, err := streams.DecodeData[events.ReservationCreatedV1](serde, []byte(bad)); !errors.Is(err, streams.ErrInvalidEvent) || !strings.Contains(err.Error(), "data.guaranteeCard.brand") {
		t.Errorf("an unknown enum symbol: %v", err)
	}
	if _, err := streams.DecodeData[events.ReservationCreatedV1](serde, []byte(`{"reservationId":"r1"}`)); !errors.Is(err, streams.ErrInvalidEvent) {
		t.Errorf("required fields missing: %v", err)
	}
	if _, err := streams.DecodeData[serviceCanceledV2](serde, []byte(`{}`)); !errors.Is(err, streams.ErrConfig) {
		t.Errorf("a type of a schema the Serde lacks: %v", err)
	}
}
