/**
 * OpenTelemetry spans for the sync engines. Deno exports traces itself when run with
 * `OTEL_DENO=true` (plus the usual `OTEL_EXPORTER_OTLP_*` variables; on Deno Deploy the platform
 * turns it on): it instruments `Deno.serve` and `fetch`, and registers its tracer provider with
 * `@opentelemetry/api`, which is what this module uses. Without it no span is made.
 *
 * Span names and attributes are listed in docs/operations.md ("Tracing"). Room, store and user ids
 * go in attributes (`sync.room_id`, `sync.store_id`, `enduser.id`): traces are per event, unlike
 * metric labels.
 *
 * @module
 */
import {
  type Attributes,
  INVALID_SPAN_CONTEXT,
  ProxyTracerProvider,
  type Span,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";

const tracer = trace.getTracer("deno-sync");
// What the API's provider hands spans to while no SDK (or Deno) registered one.
const NO_PROVIDER = new ProxyTracerProvider().getDelegate();
const NON_RECORDING = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/**
 * Whether spans go anywhere. Without a provider a span still costs a context and a few objects per
 * commit (about 1 % of the JavaScript thread under many-room load), so none is made.
 */
function tracing(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegate() !== NO_PROVIDER;
}

export type { Attributes, Span };

/**
 * Runs `fn` inside a span named `name` (the active span while it runs, so spans it starts are its
 * children). The span ends when `fn` settles; a thrown error is recorded and marks it failed.
 */
export function withSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  if (!tracing()) return fn(NON_RECORDING);
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span.end();
    }
  });
}

/**
 * Records a span that already happened (`startTime`/`endTime` from `performance.now()`), as a child
 * of the active span: for work that is only worth a span once its outcome is known (a clock poll
 * that found nothing new would be one span per room per second).
 */
export function recordSpan(
  name: string,
  attributes: Attributes,
  startTime: number,
  endTime: number = performance.now(),
): void {
  if (!tracing()) return;
  const origin = performance.timeOrigin;
  tracer.startSpan(name, { attributes, startTime: origin + startTime }).end(origin + endTime);
}
