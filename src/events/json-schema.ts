import { toJsonSchema } from "@valibot/to-json-schema";
import { VERSION } from "../version.ts";
import { EventLine } from "./schema.ts";

export function eventJsonSchema(): Record<string, unknown> {
  const schema = toJsonSchema(EventLine, { target: "draft-2020-12", errorMode: "throw" });
  return {
    ...schema,
    $id: "https://proxywall.dev/schema/events-v1.json",
    title: `proxywall event line (v1, proxywall ${VERSION})`,
    description: "One JSON object per line; `event` tells which kind.",
  };
}
