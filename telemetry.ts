/**
 * OpenTelemetry spans for the sync engines. Deno exports traces itself when run with
 * `OTEL_DENO=true` (plus the usual `OTEL_EXPORTER_OTLP_*` variables; on Deno Deploy the platform
 * turns it on): it instruments `Deno.serve` and `fetch`, and registers its tracer provider with
 * `@opentelemetry/api`, which is what this module uses. Without it the API hands out non-recording
 * spans, so a span costs a few small allocations and nothing is exported.
 *
 * Span names and attributes are listed in docs/operations.md ("Tracing"). Room, store and user ids
 * go in attributes (`sync.room_id`, `sync.store_id`, `enduser.id`): traces are per event, unlike
 * metric labels.
 *
 * @module
 */
import { type Attributes, type Span, SpanStatusCode, trace } from "@opentelemetry/api";

const tracer = trace.getTracer("deno-sync");

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
  const origin = performance.timeOrigin;
  tracer.startSpan(name, { attributes, startTime: origin + startTime }).end(origin + endTime);
}
