package streams_test

import (
	"context"
	"fmt"
	"log"
	"math/big"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/events"
	"github.com/hotelbus/hotelbus/streams/registry"
	"github.com/hotelbus/hotelbus/topics"
)

// What the examples' deployment provides: Kafka's bootstrap brokers, the schema registry's URL
// and the topics environment. Here they are the embedded backends (franz-go's kfake broker and the
// embedded registry, with the topics created and the schemas registered, as `hotelbus dev` does),
// started by TestMain through startExampleStack.
var (
	brokers     []string
	registryURL string
	environment = "test"
)

// startExampleStack starts the examples' backends and returns what stops them.
func startExampleStack() (stop func(), err error) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return nil, err
	}
	reg, err := registry.New()
	if err != nil {
		cluster.Close()
		return nil, err
	}
	stop = func() { _ = reg.Close(); cluster.Close() }
	brokers, registryURL = cluster.ListenAddrs(), reg.URL()
	cat, err := topics.Load(topics.Embedded(), environment)
	if err == nil {
		var cl *kgo.Client
		if cl, err = kgo.NewClient(kgo.SeedBrokers(brokers...)); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err = topics.Ensure(ctx, kadm.NewClient(cl), cat)
			cl.Close()
			if err == nil {
				err = registerSchemas(ctx, cat)
			}
		}
	}
	if err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

func registerSchemas(ctx context.Context, cat *topics.Catalog) error {
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		return err
	}
	cl, err := sr.NewClient(sr.URLs(registryURL))
	if err != nil {
		return err
	}
	topicOf := func(et string) (string, bool) { tp, ok := cat.TopicFor(et); return tp.Name, ok }
	states, err := schemas.Compare(ctx, cl, set, topicOf, schemas.DefaultLevel)
	if err != nil {
		return err
	}
	return schemas.Register(ctx, cl, states, schemas.DefaultLevel)
}

// A producer publishes the events its system owns as generated types: the Go struct is the
// schema, so a missing field or a wrong type does not compile.
func ExamplePublish() {
	ctx := context.Background()
	registryClient, err := sr.NewClient(sr.URLs(registryURL))
	if err != nil {
		log.Fatal(err)
	}
	catalog, err := topics.Load(topics.Embedded(), environment)
	if err != nil {
		log.Fatal(err)
	}
	schemaSet, err := schemas.Load(schemas.Embedded())
	if err != nil {
		log.Fatal(err)
	}
	serde, err := streams.NewSerde(registryClient, schemaSet, catalog)
	if err != nil {
		log.Fatal(err)
	}
	p, err := streams.NewProducer("hotel-pms", serde, streams.Brokers(brokers...))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)

	res, err := streams.Publish(ctx, p, "sakura-hotels", &events.ReservationCreatedV1{
		ReservationID:      "rsv-1001",
		ConfirmationNumber: "KYO-1001",
		PropertyID:         "KYO01",
		Status:             events.ReservationStatusV1Confirmed,
		ArrivalDate:        time.Date(2026, 12, 18, 0, 0, 0, 0, time.UTC),
		DepartureDate:      time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC),
		RoomTypeCode:       "STD-DBL",
		RatePlanCode:       "BAR-RO",
		Adults:             2,
		ChildrenAges:       []int{7},
		AmountBeforeTax:    events.Money{Amount: big.NewRat(36000, 1), Currency: "JPY"},
		AmountAfterTax:     events.Money{Amount: big.NewRat(40000, 1), Currency: "JPY"},
		BookingChannel:     events.ReservationBookingChannelV1DirectWeb,
		Purpose:            events.ReservationStayPurposeV1Leisure,
		PrimaryGuest:       events.ReservationGuestV1{GivenName: "Kenta", Surname: "Sato"},
		Guarantee:          events.ReservationGuaranteeTypeV1None,
		CreatedAt:          time.Now(),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Topic, res.Spooled)
	// Output: hotelbus.pms.reservations false
}

// A consumer handles the events its system subscribes to as generated types; m.Envelope holds
// the envelope (eventId, tenantId, correlationId ...). Returning nil marks the event done.
func ExampleHandle() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	registryClient, err := sr.NewClient(sr.URLs(registryURL))
	if err != nil {
		log.Fatal(err)
	}
	catalog, err := topics.Load(topics.Embedded(), environment)
	if err != nil {
		log.Fatal(err)
	}
	schemaSet, err := schemas.Load(schemas.Embedded())
	if err != nil {
		log.Fatal(err)
	}
	serde, err := streams.NewSerde(registryClient, schemaSet, catalog)
	if err != nil {
		log.Fatal(err)
	}
	p, err := streams.NewProducer("hotel-pms", serde, streams.Brokers(brokers...))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)
	fee := events.Money{Amount: big.NewRat(1200050, 100), Currency: "JPY"}
	if _, err := streams.Publish(ctx, p, "sakura-hotels", &events.ReservationCanceledV1{
		ReservationID:      "rsv-1002",
		ConfirmationNumber: "KYO-1002",
		PropertyID:         "KYO01",
		Status:             events.ReservationStatusV1Canceled,
		ArrivalDate:        time.Date(2026, 12, 24, 0, 0, 0, 0, time.UTC),
		DepartureDate:      time.Date(2026, 12, 26, 0, 0, 0, 0, time.UTC),
		CanceledAt:         time.Now(),
		Reason:             events.ReservationCancellationReasonV1RequestedByGuest,
		CanceledBy:         events.ReservationCancellationPartyV1Guest,
		CancellationFee:    &fee,
	}); err != nil {
		log.Fatal(err)
	}

	c, err := streams.NewConsumer("hotel-member", serde, streams.Brokers(brokers...))
	if err != nil {
		log.Fatal(err)
	}
	streams.Handle(c, func(ctx context.Context, m *streams.Message, e *events.ReservationCanceledV1) error {
		fmt.Println(m.Envelope.Metadata.TenantID, e.ReservationID, e.Reason, e.CancellationFee.Amount.FloatString(2))
		stop()
		return nil
	})
	if err := c.Run(ctx); err != nil {
		log.Fatal(err)
	}
	// Output: sakura-hotels rsv-1002 REQUESTED_BY_GUEST 12000.50
}
