/**
 * Structured logging: one JSON object per line, with a level, a message and context fields
 * (room, session, user, request ids). Child loggers carry their context into every line.
 *
 * @module
 */
import type { LogLevel } from "./config.ts";

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Context fields attached to log lines. Values must be JSON-serialisable. */
export type LogFields = Record<string, unknown>;

/** Where formatted lines go; tests swap it to capture output. */
export type LogSink = (line: string, level: LogLevel) => void;

const defaultSink: LogSink = (line, level) => {
  if (level === "error" || level === "warn") console.error(line);
  else console.log(line);
};

/** A structured logger. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger whose lines all carry `fields` as well. */
  child(fields: LogFields): Logger;
}

/** Creates a logger that writes lines at or above `level` to `sink`. */
export function createLogger(
  level: LogLevel = "info",
  sink: LogSink = defaultSink,
  context: LogFields = {},
): Logger {
  const threshold = LEVEL_RANK[level];
  const write = (lineLevel: LogLevel, msg: string, fields?: LogFields) => {
    if (LEVEL_RANK[lineLevel] < threshold) return;
    const record = {
      time: new Date().toISOString(),
      level: lineLevel,
      msg,
      ...context,
      ...(fields ? serialiseFields(fields) : {}),
    };
    sink(JSON.stringify(record), lineLevel);
  };
  return {
    debug: (msg, fields) => write("debug", msg, fields),
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
    child: (fields) => createLogger(level, sink, { ...context, ...fields }),
  };
}

/** Errors do not serialise with JSON.stringify; keep their name, message and stack for the log. */
function serialiseFields(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [key, value] of Object.entries(fields)) {
    out[key] = value instanceof Error
      ? { name: value.name, message: value.message, stack: value.stack }
      : value;
  }
  return out;
}

/** A logger that discards everything (for tests that do not inspect logs). */
export const silentLogger: Logger = createLogger("error", () => {});
