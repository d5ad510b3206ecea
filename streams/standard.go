package streams

import "strings"

// StandardChain is the handler chain every service consumer of hotelbus runs (dispatch, the
// RabbitMQ bridge), assembled in the one order that keeps its guarantees:
//
//		Metrics, Audit, Dedup, DeadLetters, Retry, the handler
//
//	  - Metrics and Audit are outermost: they observe each record's final outcome (handled,
//	    duplicate, dead-lettered, failed) once, not each attempt.
//	  - Dedup is outside dead letters and retry, so that a message keeps its lease through all its
//	    attempts and a dead-lettered event is done too; it is also the consumer's BatchPreparer
//	    (one Redis round trip per polled batch), which UseStandard registers, so it cannot be given
//	    to one of Use and UsePreparer and forgotten in the other.
//	  - DeadLetters is outside Retry, so that only the last attempt's failure is dead-lettered.
//
// A nil part is left out (a chain without Audit, without Metrics). Retry is always in the chain,
// with the options in Retry (nil: its defaults); an invalid one makes NewConsumer fail with
// ErrConfig.
type StandardChain struct {
	Metrics     *Metrics
	Audit       *AuditLog
	Dedup       *Dedup
	DeadLetters *DeadLetters
	Retry       []RetryOption
}

// UseStandard appends the standard chain (see StandardChain) to the consumer's middleware, and
// registers its Dedup as a BatchPreparer. Middleware given with Use before it runs outside the
// chain, after it inside (between Retry and the handler).
func UseStandard(ch StandardChain) ConsumerOption {
	return consumerOptionFunc(func(c *consumerConfig) {
		if ch.Metrics != nil {
			c.middleware = append(c.middleware, ch.Metrics.Middleware())
		}
		if ch.Audit != nil {
			c.middleware = append(c.middleware, ch.Audit.Middleware())
		}
		if ch.Dedup != nil {
			c.middleware = append(c.middleware, ch.Dedup.Middleware())
			c.preparers = append(c.preparers, ch.Dedup)
		}
		if ch.DeadLetters != nil {
			c.middleware = append(c.middleware, ch.DeadLetters.Middleware())
		}
		rc := defaultRetryConfig()
		for _, o := range ch.Retry {
			o(&rc)
		}
		if err := rc.validate(); err != nil {
			c.errs = append(c.errs, "UseStandard: "+strings.TrimPrefix(err.Error(), ErrConfig.Error()+": "))
			return
		}
		c.middleware = append(c.middleware, Retry(ch.Retry...))
	})
}
