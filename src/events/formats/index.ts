// `--event-format`: how each event line is written. `json` is proxywall's own lines (the schema in
// ../schema.ts); `ocsf` and `ecs` map each line to the schema security teams already ingest. A
// format turns one event into one line of text, so a format whose lines are not JSON fits the same
// writer: `human` (./human.ts, loaded only when used), short lines for a person at a terminal,
// which has no JSON Schema to print.
import { toJsonSchema } from "@valibot/to-json-schema";
import * as v from "valibot";
import { VERSION } from "../../version.ts";
import { eventJsonSchema } from "../json-schema.ts";
import type { EventLine } from "../schema.ts";
import { ECS_VERSION, EcsDocument, toEcs } from "./ecs.ts";
import { OCSF_DEFINITIONS, OCSF_VERSION, OcsfEvent, toOcsf } from "./ocsf.ts";

export const EVENT_FORMATS = ["json", "ocsf", "ecs"] as const;
export type EventFormatName = (typeof EVENT_FORMATS)[number];

/** What `run` and `monitor` write: the JSON formats, or short lines for people. */
export const OUTPUT_FORMATS = [...EVENT_FORMATS, "human"] as const;
export type OutputFormatName = (typeof OUTPUT_FORMATS)[number];

export interface EventFormat {
  readonly name: OutputFormatName;
  /** One event as its line, without the newline; "" when the event has nothing to show (human only). */
  line(e: EventLine): string;
  /** The JSON Schema of the lines, or null for a format whose lines are not JSON. */
  schema(): Record<string, unknown> | null;
}

function schemaOf(schema: v.GenericSchema, id: string, title: string, description: string, definitions?: Record<string, v.GenericSchema>) {
  return {
    ...toJsonSchema(schema, { target: "draft-2020-12", errorMode: "throw", ...(definitions ? { definitions } : {}) }),
    $id: `https://proxywall.dev/schema/${id}.json`,
    title,
    description,
  };
}

const FORMATS: Record<EventFormatName, EventFormat> = {
  json: {
    name: "json",
    line: (e) => JSON.stringify(e),
    schema: eventJsonSchema,
  },
  ocsf: {
    name: "ocsf",
    line: (e) => JSON.stringify(toOcsf(e)),
    schema: () =>
      schemaOf(
        OcsfEvent,
        `events-ocsf-${OCSF_VERSION}`,
        `proxywall event line as OCSF ${OCSF_VERSION} (proxywall ${VERSION})`,
        "One OCSF event per line: Network Activity (4001), DNS Activity (4003) or Application Lifecycle (6002); `class_uid` tells which.",
        OCSF_DEFINITIONS,
      ),
  },
  ecs: {
    name: "ecs",
    line: (e) => JSON.stringify(toEcs(e)),
    schema: () =>
      schemaOf(
        EcsDocument,
        `events-ecs-${ECS_VERSION}`,
        `proxywall event line as ECS ${ECS_VERSION} (proxywall ${VERSION})`,
        "One ECS document per line; `event.action` is proxywall's event name.",
      ),
  },
};

export function eventFormat(name: EventFormatName): EventFormat {
  return FORMATS[name];
}

const oneOf = (names: readonly string[]) => `must be ${names.join(", ").replace(/, ([^,]*)$/, " or $1")}`;

/** The --event-format option's check (parse, schema). */
export const EventFormatOption = v.optional(v.picklist(EVENT_FORMATS, oneOf(EVENT_FORMATS)), "json");

/** `run`'s and `monitor`'s --event-format: absent means "human on a terminal, else json" (../human.ts). */
export const OutputFormatOption = v.optional(v.picklist(OUTPUT_FORMATS, oneOf(OUTPUT_FORMATS)));

/** Any format by name; the human one is imported on first use, so start-up never pays for it. */
export async function loadEventFormat(name: OutputFormatName, opts: { color: boolean }): Promise<EventFormat> {
  if (name !== "human") return eventFormat(name);
  const { HumanFormat } = await import("./human.ts");
  return new HumanFormat(opts);
}
