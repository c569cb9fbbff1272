// proxywall's event lines as tests and benchmarks read them: one JSON object per line with a string
// `event`, among other lines (diagnostics, CMD's own stderr). No bun:test here, so that the
// benchmarks (bench/support.ts) use the same reading.

/** One event line, parsed; fields are checked by the tests that use them (or by the schema). */
export type Event = Record<string, any> & { event: string };

/** The event a line holds, or null when it is not one (not JSON, not an object, no string `event`). */
export function eventLine(line: string): Event | null {
  if (!line.startsWith("{")) return null;
  try {
    const e = JSON.parse(line) as unknown;
    return e !== null && typeof e === "object" && typeof (e as Event).event === "string" ? (e as Event) : null;
  } catch {
    return null;
  }
}

/** proxywall's stderr (or an --events file, or monitor's stdout) split into event lines and other non-empty lines. */
export function splitStderr(stderr: string): { events: Event[]; text: string[] } {
  const events: Event[] = [];
  const text: string[] = [];
  for (const line of stderr.split("\n")) {
    if (!line) continue;
    const e = eventLine(line);
    if (e) events.push(e);
    else text.push(line);
  }
  return { events, text };
}

/** The events of one kind, in order. */
export function eventsOf(events: readonly Event[], name: string): Event[] {
  return events.filter((e) => e.event === name);
}
