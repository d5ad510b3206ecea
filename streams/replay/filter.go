package replay

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/interpreter"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
)

// whereVars are the variables a --where expression sees.
//
//	eventId, eventType, version  string
//	timestamp                    timestamp (the envelope's)
//	data                         map: the event's data; decimals are doubles, dates and instants
//	                             timestamps, enums strings, absent optional fields null
//	metadata                     map: tenantId, source, correlationId, userId (null when absent), traceId
//	topic                        string; partition, offset int (where the record was read)
var whereVars = []cel.EnvOption{
	cel.Variable("eventId", cel.StringType),
	cel.Variable("eventType", cel.StringType),
	cel.Variable("version", cel.StringType),
	cel.Variable("timestamp", cel.TimestampType),
	cel.Variable("data", cel.MapType(cel.StringType, cel.DynType)),
	cel.Variable("metadata", cel.MapType(cel.StringType, cel.DynType)),
	cel.Variable("topic", cel.StringType),
	cel.Variable("partition", cel.IntType),
	cel.Variable("offset", cel.IntType),
}

// DefaultWhereCostLimit is the default Config.WhereCostLimit. A usual filter costs under 100 on
// one event; a million leaves room for nested loops over an event's arrays and is reached in about
// a tenth of a second (ten million iterations of a comprehension are refused, not run for minutes).
const DefaultWhereCostLimit = 1_000_000

// whereInterruptEvery is how many comprehension iterations CEL runs between two looks at the
// context (cel.InterruptCheckFrequency): a canceled replay stops a running evaluation within that.
const whereInterruptEvery = 100

// compileWhere compiles a --where expression once, bounded by costLimit per evaluation. Errors
// quote the expression with a caret under the bad part: the expression is the caller's own text,
// never a field value.
func compileWhere(expr string, costLimit uint64) (cel.Program, error) {
	env, err := cel.NewEnv(append(whereVars, cel.CrossTypeNumericComparisons(true), cel.DefaultUTCTimeZone(true))...)
	if err != nil {
		return nil, fmt.Errorf("replay: --where: %w", err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		msg := strings.ReplaceAll(iss.Err().Error(), "<input>:", "")
		return nil, fmt.Errorf("%w: --where: %s", ErrConfig, msg)
	}
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return nil, fmt.Errorf("%w: --where: the expression is a %s, it must be a bool (a condition)", ErrConfig, t)
	}
	prg, err := env.Program(ast, cel.CostLimit(costLimit), cel.InterruptCheckFrequency(whereInterruptEvery))
	if err != nil {
		return nil, fmt.Errorf("%w: --where: %v", ErrConfig, err)
	}
	return prg, nil
}

// evalWhere reports whether env satisfies prg. A record the expression cannot be evaluated on (a
// field another event type does not have, a null) does not match; the error says why. An
// evaluation over the cost limit fails with ErrWhereCost; one that ctx ends stops within
// whereInterruptEvery iterations with an error that wraps ctx's.
func evalWhere(ctx context.Context, prg cel.Program, costLimit uint64, env *streams.Envelope, r *kgo.Record) (bool, error) {
	vars := env.Map("", celValue(env.Data))
	vars["topic"], vars["partition"], vars["offset"] = r.Topic, int64(r.Partition), r.Offset
	out, _, err := prg.ContextEval(ctx, vars)
	var canceled interpreter.EvalCancelledError
	if errors.As(err, &canceled) && canceled.Cause == interpreter.CostLimitExceeded {
		return false, fmt.Errorf("%w of %d (--where-cost-limit)", ErrWhereCost, costLimit)
	}
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("the expression gave a %s, not a bool", out.Type().TypeName())
	}
	return b, nil
}

// celValue converts the generic values of Envelope.Data into values CEL takes natively.
func celValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = celValue(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = celValue(e)
		}
		return a
	case *big.Rat:
		f, _ := x.Float64()
		return f
	case int:
		return int64(x)
	case time.Time:
		return x
	}
	return v
}
