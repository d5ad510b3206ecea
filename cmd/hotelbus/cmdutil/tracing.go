package cmdutil

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Tracing returns the OpenTelemetry tracer provider the standard OTEL_* variables configure, or
// nil when tracing is off (the default: no span is then created anywhere). It is on when
// OTEL_TRACES_EXPORTER is "otlp", or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
// OTEL_EXPORTER_OTLP_ENDPOINT is set, and OTEL_SDK_DISABLED is not "true". Spans go over OTLP/HTTP
// (the exporter also reads OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _CERTIFICATE ...), in batches;
// the service name is OTEL_SERVICE_NAME, else "hotelbus-<command>". shutdown flushes the spans.
func (f *Factory) Tracing(ctx context.Context, command string) (tp trace.TracerProvider, shutdown func(context.Context) error, err error) {
	off := func(context.Context) error { return nil }
	tracesURL := f.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if base := f.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); tracesURL == "" && base != "" {
		tracesURL = strings.TrimSuffix(base, "/") + "/v1/traces"
	}
	if strings.EqualFold(f.Getenv("OTEL_SDK_DISABLED"), "true") || (tracesURL == "" && f.Getenv("OTEL_TRACES_EXPORTER") != "otlp") {
		return nil, off, nil
	}
	var opts []otlptracehttp.Option
	if tracesURL != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(tracesURL))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, off, Usagef("OTEL_EXPORTER_OTLP_*: %v", err)
	}
	name := f.Getenv("OTEL_SERVICE_NAME")
	if name == "" {
		name = "hotelbus-" + command
	}
	p := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))))
	return p, func(ctx context.Context) error {
		if err := p.Shutdown(ctx); err != nil {
			return fmt.Errorf("tracing: flushing spans: %w", err)
		}
		return nil
	}, nil
}
