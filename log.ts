/**
 * Structured logging: one JSON object per line, with a level, a message and context fields
 * (room, session, user, request ids). Child loggers carry their context into every line. Under
 * `deno task dev` lines are written for people instead (`LOG_FORMAT=pretty`): time, level, message,
 * then the fields as `key=value`.
 *
 * @module
 */
import type { LogFormat, LogLevel } from "./config.ts";

/** Levels by rank: a threshold admits its own level and those above it. */
export const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

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
  /**
   * Calls `listener` with every line this logger, its parent and its children write from now on, at
   * any level (also below the threshold: a live tail may ask for `debug`); returns the unsubscribe
   * function. Listeners run synchronously and must be quick; one that throws is ignored.
   */
  subscribe(listener: LogListener): () => void;
}

/** One written line: its level, its fields (`time`, `level`, `msg`, context) and its JSON text. */
export interface LogEntry {
  level: LogLevel;
  record: LogFields;
  line: string;
}

/** Receives written lines (see {@link Logger.subscribe}). */
export type LogListener = (entry: LogEntry) => void;

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** How `sink` receives lines (default `json`; listeners always get the JSON line). */
  format?: LogFormat;
  /** Fields every line carries. */
  context?: LogFields;
}

/** Creates a logger that writes lines at or above `level` to `sink`. */
export function createLogger(
  level: LogLevel = "info",
  sink: LogSink = defaultSink,
  options: LoggerOptions = {},
): Logger {
  const format = options.format === "pretty" ? prettyLine : undefined;
  return loggerWith(LEVEL_RANK[level], sink, format, options.context ?? {}, new Set());
}

/** A logger of one tree: the root and its children share the threshold, sink and listeners. */
function loggerWith(
  threshold: number,
  sink: LogSink,
  format: ((record: LogFields, level: LogLevel) => string) | undefined,
  context: LogFields,
  listeners: Set<LogListener>,
): Logger {
  const write = (lineLevel: LogLevel, msg: string, fields?: LogFields) => {
    const rank = LEVEL_RANK[lineLevel];
    if (rank < threshold && listeners.size === 0) return;
    const record = {
      time: new Date().toISOString(),
      level: lineLevel,
      msg,
      ...context,
      ...(fields ? serialiseFields(fields) : {}),
    };
    const line = JSON.stringify(record);
    if (rank >= threshold) sink(format ? format(record, lineLevel) : line, lineLevel);
    if (listeners.size === 0) return;
    for (const listener of [...listeners]) {
      try {
        listener({ level: lineLevel, record, line });
      } catch {
        // A listener's problem must not break the code that logs.
      }
    }
  };
  return {
    debug: (msg, fields) => write("debug", msg, fields),
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
    child: (fields) => loggerWith(threshold, sink, format, { ...context, ...fields }, listeners),
    subscribe: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
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

const LEVEL_LABELS: Record<LogLevel, string> = {
  debug: "DEBUG",
  info: "INFO ",
  warn: "WARN ",
  error: "ERROR",
};

/**
 * `12:03:04.567 INFO  listening port=8000 host=127.0.0.1`; an error field's stack follows on its
 * own lines.
 */
function prettyLine(record: LogFields, level: LogLevel): string {
  const { time, level: _level, msg, ...fields } = record;
  let stack = "";
  const parts = [`${String(time).slice(11, 23)} ${LEVEL_LABELS[level]} ${String(msg)}`];
  for (const [key, value] of Object.entries(fields)) {
    if (isSerialisedError(value)) {
      parts.push(`${key}=${JSON.stringify(value.message)}`);
      if (value.stack && level !== "debug") stack = `\n${value.stack}`;
    } else {
      parts.push(`${key}=${typeof value === "string" ? value : JSON.stringify(value)}`);
    }
  }
  return parts.join(" ") + stack;
}

function isSerialisedError(value: unknown): value is { message: string; stack?: string } {
  return typeof value === "object" && value !== null && "message" in value && "name" in value &&
    typeof (value as { message: unknown }).message === "string";
}

/** A logger that discards everything (for tests that do not inspect logs). */
export const silentLogger: Logger = createLogger("error", () => {});
